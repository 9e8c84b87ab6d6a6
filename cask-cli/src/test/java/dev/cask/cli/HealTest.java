package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cask.image.Images;
import dev.cask.local.LocalImages;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Healing: a chunk whose stored copy is corrupt gets a new, verified copy when the same bytes
 * arrive again (an import from a file or stdin, a served image's write and checkpoint); the
 * index moves to it, every version reads right again, and check calls the bad record a note.
 */
class HealTest {
    @AfterEach
    void punching() {
        System.clearProperty("cask.gc.punch");
    }

    @TempDir
    Path dir;

    private static final ObjectMapper JSON = new ObjectMapper();
    /** A record of a 4 KiB random (incompressible, so stored plain) block: 52-byte header and the payload. */
    private static final int RECORD = 52 + 4096;

    private Path store() {
        return dir.resolve("store");
    }

    private byte[] randomDisk(int blocks, long seed) {
        byte[] disk = new byte[blocks * 4096];
        new Random(seed).nextBytes(disk);
        return disk;
    }

    private Path onlyPack() throws Exception {
        try (Stream<Path> s = Files.list(store().resolve("packs"))) {
            List<Path> packs = s.filter(p -> p.toString().endsWith(".pack")).toList();
            assertEquals(1, packs.size());
            return packs.getFirst();
        }
    }

    private static void flip(Path pack, long at) throws Exception {
        try (FileChannel ch = FileChannel.open(pack, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            ch.read(b, at);
            b.put(0, (byte) (b.get(0) ^ 0x40));
            ch.write(b.flip(), at);
        }
    }

    private ChunkLocation locate(ChunkId id) {
        try (Images images = LocalImages.open(store())) {
            return LocalImages.store(images).locate(id);
        }
    }

    private static JsonNode find(JsonNode list, String kind) {
        for (JsonNode f : list) if (f.get("kind").asText().equals(kind)) return f;
        throw new AssertionError("no " + kind + " in " + list);
    }

    private byte[] export(Cli cli, String name) throws Exception {
        Path out = dir.resolve("export-" + name.replace('/', '_').replace('@', '_') + ".raw");
        Cli.Result r = cli.run("export", name, out.toString());
        assertEquals(0, r.code(), r.toString());
        return Files.readAllBytes(out);
    }

    @Test
    void aCorruptRecordIsHealedByImportingTheSameBytesAgain() throws Exception {
        Cli cli = new Cli(store());
        byte[] disk = randomDisk(64, 7);
        Path raw = dir.resolve("disk.raw");
        Files.write(raw, disk);
        assertEquals(0, cli.run("import", raw.toString(), "team/vm-1").code());
        ChunkId block9 = ChunkId.of(Arrays.copyOfRange(disk, 9 * 4096, 10 * 4096));
        ChunkLocation bad = locate(block9);
        assertEquals(new ChunkLocation(1, 16 + 9L * RECORD, RECORD), bad, "random blocks are stored plain, in disk order");
        flip(onlyPack(), bad.offset() + 52 + 100);

        Cli.Result check = cli.run("check");
        assertEquals(1, check.code(), check.toString());
        assertTrue(check.out().contains("problem: image 'team/vm-1' version 1: offset 36864: data chunk " + block9.shortHex() + " is corrupt"), check.out());
        Cli.Result export = cli.run("export", "team/vm-1", dir.resolve("x.raw").toString());
        assertEquals(1, export.code(), export.toString());
        assertTrue(export.err().contains("chunk " + block9.shortHex()) && export.err().contains("checksum mismatch"), export.err());

        // the same bytes arrive again, as another image: a new copy is written and the index points at it
        Cli.Result again = cli.run("import", raw.toString(), "team/vm-1-again");
        assertEquals(0, again.code(), again.toString());
        ChunkLocation healed = locate(block9);
        assertNotEquals(bad, healed, "the index moved to the new copy");
        assertEquals(2, healed.pack(), "the new copy is in the second import's own pack: " + healed);

        Cli.Result clean = cli.run("check", "--json");
        assertEquals(0, clean.code(), clean.toString());
        JsonNode j = JSON.readTree(clean.out());
        assertEquals(0, j.get("problems").size(), clean.out());
        JsonNode note = find(j.get("notes"), "bad-record");
        assertEquals(1, note.get("pack").asInt());
        assertEquals(bad.offset(), note.get("offset").asLong());
        assertTrue(note.get("message").asText().contains(RECORD + " bytes reclaimable"), note.toString());
        assertEquals(RECORD, j.get("reclaimable_bytes").asLong(), "the bad record, and nothing else, is garbage: " + clean.out());
        // the original image reads right again, and so does a deep check
        assertArrayEquals(disk, export(cli, "team/vm-1"));
        assertEquals(0, cli.run("check", "--deep").code());
    }

    /**
     * Nobody ran check: the export that fails marks the damage, and an import from stdin heals all
     * of the damaged segment's chunks (256 blocks), not only the one the export stopped at.
     */
    @Test
    void aFailedReadMarksADamagedSegmentAndAStdinImportHealsAllOfIt() throws Exception {
        Cli cli = new Cli(store());
        Random rnd = new Random(11);
        String[] words = {"cask ", "chunk ", "pack ", "index ", "segment ", "tree "};
        byte[] disk = new byte[256 * 4096];
        StringBuilder sb = new StringBuilder();
        for (int b = 0; b < 256; b++) {
            sb.setLength(0);
            sb.append("block ").append(b).append(' ');
            while (sb.length() < 4096) sb.append(words[rnd.nextInt(words.length)]);
            System.arraycopy(sb.toString().getBytes(), 0, disk, b * 4096, 4096);
        }
        Path raw = dir.resolve("text.raw");
        Files.write(raw, disk);
        assertEquals(0, cli.run("import", raw.toString(), "docs").code());
        ChunkLocation segment = locate(ChunkId.of(Arrays.copyOf(disk, 4096)));
        assertTrue(segment.inSegment(), "text blocks are stored as one segment: " + segment);
        flip(onlyPack(), segment.offset() + 20 + 256 * 40 + 4 + 100); // inside the zstd frame

        Cli.Result export = cli.run("export", "docs", dir.resolve("x.raw").toString());
        assertEquals(1, export.code(), export.toString());
        assertTrue(export.err().contains("checksum mismatch"), export.err());

        Cli.Result again = cli.process(disk, "import", "-", "docs-again");
        assertEquals(0, again.code(), again.toString());
        for (int b : new int[]{0, 1, 128, 255}) {
            ChunkLocation now = locate(ChunkId.of(Arrays.copyOfRange(disk, b * 4096, (b + 1) * 4096)));
            assertEquals(2, now.pack(), "block " + b + " has a new copy, in the second import's pack: " + now);
        }
        assertArrayEquals(disk, export(cli, "docs"));
        Cli.Result check = cli.run("check", "--deep");
        assertEquals(0, check.code(), check.toString());
        assertTrue(check.out().contains("note: pack 1 at offset " + segment.offset() + ": ") && check.out().contains("reclaimable"), check.out());
    }

    /**
     * The bytes arrive again through a running server: a client's read of the corrupt block fails
     * (and marks it), the client writes the same block content, a checkpoint stores it: the
     * original version reads right again, through the server and from the CLI.
     */
    @Test
    void aServedImagesWriteAndCheckpointHealTheChunk() throws Exception {
        Cli cli = new Cli(store());
        byte[] disk = randomDisk(16, 21);
        Path raw = dir.resolve("disk.raw");
        Files.write(raw, disk);
        assertEquals(0, cli.run("import", raw.toString(), "team/db").code());
        byte[] block3 = Arrays.copyOfRange(disk, 3 * 4096, 4 * 4096);
        ChunkLocation bad = locate(ChunkId.of(block3));
        flip(onlyPack(), bad.offset() + 52 + 7);

        try (Server server = new Server(cli, "--checkpoint-interval", "0", "--no-warmup");
             NbdClient client = new NbdClient(server.port, "team/db")) {
            assertArrayEquals(Arrays.copyOf(disk, 4096), client.read(0, 4096), "a good block reads");
            assertThrows(java.io.IOException.class, () -> client.read(3 * 4096, 4096), "never wrong data");
            String named = "chunk " + ChunkId.of(block3).shortHex();
            for (int i = 0; i < 100 && !server.log.toString().contains(named); i++) Thread.sleep(50); // stderr is pumped by a thread
            assertTrue(server.log.toString().contains(named) && server.log.toString().contains("checksum mismatch"), "the server logs which chunk: " + server.log);
            client.write(3 * 4096, block3); // e.g. the guest restores the file from a backup
            client.flush();
            Cli.Result snap = cli.run("snapshot", "team/db", "-m", "after the rewrite");
            assertEquals(0, snap.code(), snap.toString());
            try (NbdClient old = new NbdClient(server.port, "team/db@1")) {
                assertArrayEquals(block3, old.read(3 * 4096, 4096), "version 1, read through the server, is whole again");
            }
            Cli.Result check = cli.run("check", "--json");
            assertEquals(0, check.code(), check.toString());
            JsonNode note = find(JSON.readTree(check.out()).get("notes"), "bad-record");
            assertEquals(bad.offset(), note.get("offset").asLong(), check.out());
        }
        assertNotEquals(bad, locate(ChunkId.of(block3)));
        assertArrayEquals(disk, export(cli, "team/db@1"));
    }

    /**
     * A copy marked damaged that reads good again (the pack was restored from a backup) is
     * cleared by check, so the next import of the same bytes stores nothing: no needless copy.
     */
    @Test
    void checkClearsTheMarkOfACopyThatReadsGoodAgain() throws Exception {
        Cli cli = new Cli(store());
        byte[] disk = randomDisk(8, 9);
        Path raw = dir.resolve("disk.raw");
        Files.write(raw, disk);
        assertEquals(0, cli.run("import", raw.toString(), "a").code());
        Path pack = onlyPack();
        byte[] backup = Files.readAllBytes(pack);
        ChunkLocation at = locate(ChunkId.of(Arrays.copyOfRange(disk, 2 * 4096, 3 * 4096)));
        flip(pack, at.offset() + 52 + 1);
        assertEquals(1, cli.run("export", "a", dir.resolve("x.raw").toString()).code(), "the read fails and marks the copy");
        Files.write(pack, backup);

        Cli.Result check = cli.run("check", "--json");
        assertEquals(0, check.code(), check.toString());
        assertEquals(0, JSON.readTree(check.out()).get("notes").size(), check.out());
        assertEquals(0, cli.run("import", raw.toString(), "b").code());
        try (Stream<Path> s = Files.list(store().resolve("packs"))) {
            assertEquals(List.of(pack), s.filter(p -> p.toString().endsWith(".pack")).toList(), "the second import stored nothing");
        }
        assertArrayEquals(disk, export(cli, "a"));
    }

    /**
     * A record whose CRC is right but whose bytes are another block's (what only rehashing finds):
     * check --deep reports it once, as the index's and the version's problem, every time it runs;
     * the next import heals it, and the bad record is then a note.
     */
    @Test
    void aRecordOnlyADeepCheckFindsIsReportedOnceAndHealed() throws Exception {
        Cli cli = new Cli(store());
        byte[] disk = randomDisk(8, 3);
        Path raw = dir.resolve("disk.raw");
        Files.write(raw, disk);
        assertEquals(0, cli.run("import", raw.toString(), "a").code());
        ChunkId block3 = ChunkId.of(Arrays.copyOfRange(disk, 3 * 4096, 4 * 4096));
        ChunkLocation at = locate(block3);
        byte[] liar = dev.cask.store.local.PackFormat.encodeRecord(block3, dev.cask.store.local.PackFormat.CODEC_NONE, 4096, disk, 4 * 4096, 4096);
        assertEquals(at.length(), liar.length);
        try (FileChannel ch = FileChannel.open(onlyPack(), StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(liar), at.offset());
        }
        for (int run = 0; run < 2; run++) {
            Cli.Result deep = cli.run("check", "--deep", "--json");
            assertEquals(1, deep.code(), deep.toString());
            JsonNode problems = JSON.readTree(deep.out()).get("problems");
            assertEquals(2, problems.size(), "the copy the index points at, and version 1 of 'a' at block 3: " + problems);
            JsonNode copy = find(problems, "corrupt-chunk");
            assertTrue(copy.get("image").isNull() && copy.get("message").asText().contains("bytes hash to"), problems.toString());
            assertEquals(block3.hex(), copy.get("chunk").asText());
            assertEquals(at.offset(), copy.get("offset").asLong());
        }
        assertEquals(0, cli.run("import", raw.toString(), "b").code());
        Cli.Result healed = cli.run("check", "--deep", "--json");
        assertEquals(0, healed.code(), healed.toString());
        JsonNode note = find(JSON.readTree(healed.out()).get("notes"), "corrupt-chunk");
        assertEquals(at.offset(), note.get("offset").asLong(), note.toString());
        assertArrayEquals(disk, export(cli, "a"));
    }

    /** An index entry pointing at another chunk's record is found by check (kind index-mismatch) and healed the same way. */
    @Test
    void anIndexEntryPointingAtTheWrongRecordIsHealedToo() throws Exception {
        Cli cli = new Cli(store());
        byte[] disk = randomDisk(8, 5);
        Path raw = dir.resolve("disk.raw");
        Files.write(raw, disk);
        assertEquals(0, cli.run("import", raw.toString(), "a").code());
        ChunkId block5 = ChunkId.of(Arrays.copyOfRange(disk, 5 * 4096, 6 * 4096));
        ChunkLocation six = locate(ChunkId.of(Arrays.copyOfRange(disk, 6 * 4096, 7 * 4096)));
        try (var c = java.sql.DriverManager.getConnection("jdbc:sqlite:" + store().resolve("index.db"))) {
            int n = 0;
            for (String table : List.of("recent", "chunks")) { // the entry is in one of the index's two tables
                try (var st = c.prepareStatement("UPDATE " + table + " SET offset = ? WHERE id = ?")) {
                    st.setLong(1, six.offset());
                    st.setBytes(2, block5.toBytes());
                    n += st.executeUpdate();
                }
            }
            assertEquals(1, n);
        }
        Cli.Result check = cli.run("check", "--json");
        assertEquals(1, check.code(), check.toString());
        JsonNode j = JSON.readTree(check.out());
        JsonNode mismatch = find(j.get("problems"), "index-mismatch");
        assertEquals(block5.hex(), mismatch.get("chunk").asText());
        assertEquals(six.offset(), mismatch.get("offset").asLong());
        assertTrue(mismatch.get("image").isNull() && mismatch.get("byte_offset").isNull(), mismatch.toString());
        JsonNode affected = find(j.get("problems"), "corrupt-chunk");
        assertEquals("a", affected.get("image").asText());
        assertEquals(1, affected.get("version").asInt());
        assertEquals(5 * 4096, affected.get("byte_offset").asLong());
        assertEquals(block5.hex(), affected.get("chunk").asText());

        assertEquals(0, cli.run("import", raw.toString(), "b").code());
        Cli.Result clean = cli.run("check");
        assertEquals(0, clean.code(), clean.toString());
        assertArrayEquals(disk, export(cli, "a"));
    }

    /**
     * The same with compressible blocks, stored in segments: compaction copies a segment whose
     * chunks are all live byte for byte, and one whose CRC fails must not be copied as it is (a
     * copy would carry the damage under a new location the damage marks do not name): the pack
     * stays, gc says so, and once a put heals the chunks the next gc rewrites it and everything
     * reads back exactly.
     */
    @Test
    void gcLeavesAPackWithADamagedLiveSegmentUntilItIsHealed() throws Exception {
        System.setProperty("cask.gc.punch", "false"); // compaction by copying is what this is about (punching never copies)
        Cli cli = new Cli(store());
        byte[] disk = textDisk(64, 41);
        Path raw = dir.resolve("disk.raw");
        Path junk = dir.resolve("junk.raw");
        Files.write(raw, disk);
        Files.write(junk, textDisk(64, 42));
        assertEquals(0, cli.run("import", raw.toString(), "vm", junk.toString(), "junk").code(), "one import: one pack");
        assertEquals(0, cli.run("rm", "junk").code(), "half of pack 1 becomes garbage");
        Path other = dir.resolve("other.raw");
        Files.write(other, textDisk(8, 43));
        assertEquals(0, cli.run("import", other.toString(), "other").code(), "pack 2: pack 1 is not the highest any more");
        ChunkLocation bad = locate(ChunkId.of(Arrays.copyOfRange(disk, 40 * 4096, 41 * 4096)));
        assertEquals(1, bad.pack());
        assertTrue(bad.inSegment(), "compressible blocks are stored in segments: " + bad);
        Path pack1 = store().resolve("packs").resolve("00000001.pack");
        flip(pack1, bad.offset() + bad.length() - 10); // in the frame of a segment all of whose chunks are live: its CRC fails

        Cli.Result gc = cli.run("gc", "--json");
        assertEquals(0, gc.code(), gc.toString());
        assertEquals(1, JSON.readTree(gc.out()).get("packs_damaged").asInt(), gc.out());
        assertTrue(Files.exists(pack1), "the pack with the damaged segment stays");
        assertEquals(1, cli.run("check").code(), "the damage is still a problem, not moved out of sight");

        assertEquals(0, cli.run("import", raw.toString(), "vm-again").code(), "the same bytes again: the segment's chunks healed");
        Cli.Result gc2 = cli.run("gc", "--json");
        assertEquals(0, gc2.code(), gc2.toString());
        assertEquals(0, JSON.readTree(gc2.out()).get("packs_damaged").asInt(), gc2.out());
        assertTrue(!Files.exists(pack1), "pack 1 was rewritten");
        assertArrayEquals(disk, export(cli, "vm"));
        assertArrayEquals(disk, export(cli, "vm-again"));
        Cli.Result check = cli.run("check", "--deep", "--json");
        assertEquals(0, check.code(), check.toString());
    }

    /** {@code blocks} 4 KiB blocks of distinct, compressible text. */
    private static byte[] textDisk(int blocks, long seed) {
        java.util.Random rnd = new java.util.Random(seed);
        byte[] disk = new byte[blocks * 4096];
        String[] words = {"cask ", "chunk ", "segment ", "pack ", "index ", "version ", "image ", "store "};
        for (int b = 0; b < blocks; b++) {
            StringBuilder sb = new StringBuilder("block " + b + " seed " + seed + " " + rnd.nextLong() + "\n");
            while (sb.length() < 4096) sb.append(words[rnd.nextInt(words.length)]);
            System.arraycopy(sb.toString().getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, disk, b * 4096, 4096);
        }
        return disk;
    }

    /**
     * Garbage collection next to damage: a pack holding garbage and a damaged live chunk is left
     * as it is (gc succeeds and says so, `packs_damaged`), nothing live is lost; once the same
     * bytes arrive again and heal the chunk, the next gc rewrites the pack and every kept version
     * reads back exactly. Failed before the merge of healing and GC: the damaged chunk stopped gc
     * with exit 1 and a checksum error.
     */
    @Test
    void gcLeavesAPackWithADamagedLiveChunkUntilItIsHealed() throws Exception {
        System.setProperty("cask.gc.punch", "false"); // compaction by copying is what this is about (punching never copies)
        Cli cli = new Cli(store());
        byte[] d1 = randomDisk(64, 31);
        byte[] d2 = d1.clone();
        System.arraycopy(randomDisk(32, 32), 0, d2, 0, 32 * 4096); // the first half rewritten
        Path raw1 = dir.resolve("d1.raw");
        Path raw2 = dir.resolve("d2.raw");
        Files.write(raw1, d1);
        Files.write(raw2, d2);
        assertEquals(0, cli.run("import", raw1.toString(), "vm").code());
        assertEquals(0, cli.run("import", raw2.toString(), "vm", "--as-version").code());
        assertEquals(0, cli.run("rm", "vm@1").code(), "the first half of pack 1 becomes garbage");
        ChunkId block40 = ChunkId.of(Arrays.copyOfRange(d1, 40 * 4096, 41 * 4096));
        ChunkLocation bad = locate(block40);
        assertEquals(1, bad.pack());
        Path pack1 = store().resolve("packs").resolve("00000001.pack");
        flip(pack1, bad.offset() + 52 + 100);

        Cli.Result gc = cli.run("gc", "--json");
        assertEquals(0, gc.code(), gc.toString());
        JsonNode j = JSON.readTree(gc.out());
        assertEquals(33, j.get("chunks_freed").asInt(), "32 data chunks and version 1's pointer chunk: " + gc.out());
        assertEquals(1, j.get("packs_damaged").asInt(), gc.out());
        assertTrue(gc.err().contains("1 pack(s) left uncompacted"), gc.err());
        assertTrue(Files.exists(pack1), "the pack with the damaged chunk stays");
        assertEquals(1, cli.run("check").code(), "the damage is still a problem");

        assertEquals(0, cli.run("import", raw2.toString(), "vm-again").code(), "the same bytes again: block 40 healed");
        assertNotEquals(bad, locate(block40));
        Cli.Result gc2 = cli.run("gc", "--json");
        assertEquals(0, gc2.code(), gc2.toString());
        JsonNode j2 = JSON.readTree(gc2.out());
        assertEquals(0, j2.get("packs_damaged").asInt(), gc2.out());
        assertEquals(1, j2.get("packs_rewritten").asInt() + j2.get("packs_deleted").asInt(), gc2.out());
        assertTrue(!Files.exists(pack1), "pack 1 was rewritten");
        assertArrayEquals(d2, export(cli, "vm"));
        assertArrayEquals(d2, export(cli, "vm-again"));
        Cli.Result check = cli.run("check", "--deep", "--json");
        assertEquals(0, check.code(), check.toString());
        assertEquals(0, JSON.readTree(check.out()).get("notes").size(), "no damage mark or bad record left: " + check.out());
    }
}
