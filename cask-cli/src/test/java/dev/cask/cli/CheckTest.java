package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Corruption injected into packs is found by check, reads fail loudly, and --repair rebuilds the index. */
class CheckTest {
    @TempDir
    Path dir;

    private Path store() {
        return dir.resolve("store");
    }

    private Path importRandom(Cli cli, String name, int blocks) throws Exception {
        byte[] disk = new byte[blocks * 4096];
        new Random(7).nextBytes(disk);
        Path raw = dir.resolve(name.replace('/', '_') + ".raw");
        Files.write(raw, disk);
        Cli.Result r = cli.run("import", raw.toString(), name);
        assertEquals(0, r.code(), r.toString());
        return raw;
    }

    private Path onlyPack() throws Exception {
        try (Stream<Path> s = Files.list(store().resolve("packs"))) {
            List<Path> packs = s.filter(p -> p.toString().endsWith(".pack")).toList();
            assertEquals(1, packs.size());
            return packs.getFirst();
        }
    }

    @Test
    void aFlippedByteIsFoundNamedAndNeverReadAsData() throws Exception {
        Cli cli = new Cli(store());
        importRandom(cli, "team/vm-1", 64);
        assertEquals(0, cli.run("clone", "team/vm-1", "team/vm-2").code());
        assertEquals(0, cli.run("check", "--deep").code());

        // flip one byte in the payload of the 10th record: random data is stored uncompressed, 4148 bytes a record
        Path pack = onlyPack();
        long at = 16 + 9L * (52 + 4096) + 52 + 100;
        try (FileChannel ch = FileChannel.open(pack, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            ch.read(b, at);
            b.put(0, (byte) (b.get(0) ^ 0x40));
            ch.write(b.flip(), at);
        }

        Cli.Result check = cli.run("check");
        assertEquals(1, check.code(), check.toString());
        assertTrue(check.out().contains("checksum mismatch"), check.out());
        // block 9 of both images is named, with its byte offset
        assertTrue(check.out().contains("image 'team/vm-1' version 1: offset 36864"), check.out());
        assertTrue(check.out().contains("image 'team/vm-2' version 1: offset 36864"), check.out());

        Cli.Result json = cli.run("check", "--json");
        JsonNode j = new ObjectMapper().readTree(json.out());
        assertEquals(false, j.get("ok").asBoolean());
        // each problem as fields: the damaged record, the index entry that needs it, each version it spoils
        String block9 = dev.cask.store.ChunkId.of(java.util.Arrays.copyOfRange(Files.readAllBytes(dir.resolve("team_vm-1.raw")), 9 * 4096, 10 * 4096)).hex();
        long record = 16 + 9L * (52 + 4096);
        JsonNode damaged = only(j.get("problems"), "bad-record", null);
        assertFields(damaged, 1, record, null, null, null, null);
        assertTrue(damaged.get("message").asText().startsWith("pack 1 at offset " + record + ": ") && damaged.get("message").asText().contains("checksum mismatch"), damaged.toString());
        assertFields(only(j.get("problems"), "corrupt-chunk", null), 1, record, block9, null, null, null);
        for (String image : List.of("team/vm-1", "team/vm-2")) {
            JsonNode f = only(j.get("problems"), "corrupt-chunk", image);
            assertFields(f, 1, record, block9, image, 1, 36864L);
            assertEquals("image '" + image + "' version 1: offset 36864: data chunk " + block9.substring(0, 12) + " is corrupt", f.get("message").asText());
        }
        assertEquals(4, j.get("problems").size(), json.out());

        Cli.Result export = cli.run("export", "team/vm-2", dir.resolve("x.raw").toString());
        assertEquals(1, export.code(), export.toString());
        assertTrue(export.err().contains("chunk ") && export.err().contains("checksum mismatch"), export.err());
        assertTrue(Files.notExists(dir.resolve("x.raw")), "no half-written export under the real name");
    }

    /** The one finding of {@code kind} about {@code image} (null: about no image) in a JSON list. */
    private static JsonNode only(JsonNode list, String kind, String image) {
        List<JsonNode> found = new java.util.ArrayList<>();
        for (JsonNode f : list) {
            if (f.get("kind").asText().equals(kind) && (image == null ? f.get("image").isNull() : image.equals(f.get("image").asText()))) found.add(f);
        }
        assertEquals(1, found.size(), "one " + kind + " about " + image + " in " + list);
        return found.getFirst();
    }

    /** Every field of a finding, null where not applicable. */
    private static void assertFields(JsonNode f, Integer pack, Long offset, String chunk, String image, Integer version, Long byteOffset) {
        assertEquals(pack == null ? "null" : pack.toString(), f.get("pack").toString(), f.toString());
        assertEquals(offset == null ? "null" : offset.toString(), f.get("offset").toString(), f.toString());
        assertEquals(chunk == null ? "null" : "\"" + chunk + "\"", f.get("chunk").toString(), f.toString());
        assertEquals(image == null ? "null" : "\"" + image + "\"", f.get("image").toString(), f.toString());
        assertEquals(version == null ? "null" : version.toString(), f.get("version").toString(), f.toString());
        assertEquals(byteOffset == null ? "null" : byteOffset.toString(), f.get("byte_offset").toString(), f.toString());
        assertTrue(f.get("message").isTextual() && !f.get("message").asText().isEmpty(), f.toString());
    }

    @Test
    void repairRebuildsALostIndex() throws Exception {
        Cli cli = new Cli(store());
        Path raw = importRandom(cli, "a", 32);
        Files.delete(store().resolve("index.db"));
        Files.deleteIfExists(store().resolve("index.db-wal"));
        Files.deleteIfExists(store().resolve("index.db-shm"));
        Cli.Result broken = cli.run("check");
        assertEquals(1, broken.code(), broken.toString());
        assertTrue(broken.out().contains("is missing"), broken.out());
        JsonNode missing = only(new ObjectMapper().readTree(cli.run("check", "--json").out()).get("problems"), "missing-chunk", "a");
        assertEquals(64, missing.get("chunk").asText().length(), missing.toString());
        // the top pointer chunk: the whole disk from offset 0; a missing chunk has no pack
        assertFields(missing, null, null, missing.get("chunk").asText(), "a", 1, 0L);

        Cli.Result repair = cli.run("check", "--repair");
        assertEquals(0, repair.code(), repair.toString());
        assertTrue(repair.out().contains("index rebuilt from packs: 33 chunks"), repair.out());
        Path out = dir.resolve("a.out");
        assertEquals(0, cli.run("export", "a", out.toString()).code());
        Cli.mustTool("cmp", raw.toString(), out.toString());
    }

    @Test
    void aTornTailNothingReferencesIsReclaimableAndRepairCutsIt() throws Exception {
        Cli cli = new Cli(store());
        Path raw = importRandom(cli, "a", 8);
        Path pack = onlyPack();
        long whole = Files.size(pack);
        // half a record: what a writer killed mid-append (or a power cut) leaves, on a sealed pack
        byte[] torn = new byte[2000];
        new Random(1).nextBytes(torn);
        System.arraycopy("crec".getBytes(), 0, torn, 0, 4);
        Files.write(pack, torn, StandardOpenOption.APPEND);

        Cli.Result check = cli.run("check");
        assertEquals(0, check.code(), check.toString());
        assertTrue(check.out().contains("note: pack 1 at offset " + whole + ": ") && check.out().contains("2000 bytes reclaimable"), check.out());
        assertTrue(check.out().contains("; 1.95 KiB reclaimable"), check.out());
        JsonNode j = new ObjectMapper().readTree(cli.run("check", "--json").out());
        assertTrue(j.get("ok").asBoolean());
        assertEquals(2000, j.get("reclaimable_bytes").asLong());
        assertEquals(0, j.get("problems").size());
        assertFields(only(j.get("notes"), "torn-tail", null), 1, whole, null, null, null, null);

        Cli.Result repair = cli.run("check", "--repair");
        assertEquals(0, repair.code(), repair.toString());
        assertTrue(repair.err().contains("pack 1 at offset " + whole + ": cut a torn tail of 2000 bytes"), repair.toString());
        assertEquals(whole, Files.size(pack));
        Cli.Result clean = cli.run("check", "--json");
        assertEquals(0, new ObjectMapper().readTree(clean.out()).get("reclaimable_bytes").asLong(), clean.out());
        Path out = dir.resolve("a.out");
        assertEquals(0, cli.run("export", "a", out.toString()).code());
        Cli.mustTool("cmp", raw.toString(), out.toString());
    }

    @Test
    void anImportThatNeverCommittedIsReclaimableNotAProblem() throws Exception {
        // what a killed import leaves once it synced: indexed chunks no version references
        Cli cli = new Cli(store());
        importRandom(cli, "a", 8);
        try (dev.cask.image.Images images = dev.cask.local.LocalImages.open(store())) {
            byte[] orphan = new byte[4096];
            new Random(99).nextBytes(orphan);
            images.store().put(orphan);
            images.store().sync();
        }
        Cli.Result check = cli.run("check", "--json");
        assertEquals(0, check.code(), check.toString());
        JsonNode j = new ObjectMapper().readTree(check.out());
        assertEquals(52 + 4096, j.get("reclaimable_bytes").asLong(), "one record of a 4 KiB random chunk: " + check.out());
        assertEquals(0, j.get("problems").size());
    }

    @Test
    void truncatedPackTailIsReported() throws Exception {
        Cli cli = new Cli(store());
        importRandom(cli, "a", 8);
        Path pack = onlyPack();
        try (FileChannel ch = FileChannel.open(pack, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 10);
        }
        Cli.Result check = cli.run("check");
        assertEquals(1, check.code(), "the index needs the last record: " + check);
        assertTrue(check.out().contains("runs past the end of the pack"), check.out());
        assertTrue(check.out().contains("problem: image 'a' version 1: offset 0"), "the tree's top pointer chunk was last: " + check.out());
        assertTrue(!check.out().contains("nothing refers to it"), check.out());
        JsonNode j = new ObjectMapper().readTree(cli.run("check", "--json").out());
        JsonNode tail = only(j.get("problems"), "torn-tail", null);
        assertEquals(1, tail.get("pack").asInt(), tail.toString());
        assertEquals(0, j.get("notes").size(), "needed damage is never a note: " + j);
    }

    @Test
    void aBadPackHeaderIsAProblemOfItsKind() throws Exception {
        Cli cli = new Cli(store());
        importRandom(cli, "a", 4);
        try (FileChannel ch = FileChannel.open(onlyPack(), StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(new byte[]{0, 0, 0, 0}), 0);
        }
        Cli.Result check = cli.run("check", "--json");
        assertEquals(1, check.code(), check.toString());
        JsonNode header = only(new ObjectMapper().readTree(check.out()).get("problems"), "bad-pack-header", null);
        assertFields(header, 1, 0L, null, null, null, null);
        assertTrue(header.get("message").asText().contains("magic"), header.toString());
    }

    /** Text-like blocks, each different, that zstd compresses well: import stores them in segments. */
    private Path importText(Cli cli, String name, int blocks) throws Exception {
        Random rnd = new Random(11);
        String[] words = {"cask ", "chunk ", "pack ", "index ", "segment ", "tree "};
        StringBuilder sb = new StringBuilder();
        byte[] disk = new byte[blocks * 4096];
        for (int b = 0; b < blocks; b++) {
            sb.setLength(0);
            sb.append("block ").append(b).append(' ');
            while (sb.length() < 4096) sb.append(words[rnd.nextInt(words.length)]);
            System.arraycopy(sb.toString().getBytes(), 0, disk, b * 4096, 4096);
        }
        Path raw = dir.resolve(name.replace('/', '_') + ".raw");
        Files.write(raw, disk);
        Cli.Result r = cli.run("import", raw.toString(), name);
        assertEquals(0, r.code(), r.toString());
        return raw;
    }

    @Test
    void aFlippedByteInASegmentIsFoundNamedAndNeverReadAsData() throws Exception {
        Cli cli = new Cli(store());
        // 512 text blocks: two import batches, each one segment of 256 blocks (1 MiB, the default)
        Path raw = importText(cli, "team/vm-1", 512);
        assertEquals(0, cli.run("clone", "team/vm-1", "team/vm-2").code());
        assertEquals(0, cli.run("check", "--deep").code());
        Path pack = onlyPack();
        assertTrue(Files.size(pack) < 512 * 4096 / 4, "512 text blocks in segments take " + Files.size(pack) + " bytes");

        // the first segment in the pack: header 20 bytes, table 256 x 40, crc 4, then the frame.
        // The batches are compressed in parallel, so it holds blocks 0..255 or 256..511: its
        // table's first id says which.
        long at = 16 + 20 + 256 * 40 + 4 + 100;
        long firstBlock;
        try (FileChannel ch = FileChannel.open(pack, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer id = ByteBuffer.allocate(32);
            ch.read(id, 16 + 20);
            byte[] block0 = java.util.Arrays.copyOf(Files.readAllBytes(raw), 4096);
            firstBlock = java.util.Arrays.equals(id.array(), java.security.MessageDigest.getInstance("SHA-256").digest(block0)) ? 0 : 256;
            ByteBuffer b = ByteBuffer.allocate(1);
            ch.read(b, at);
            b.put(0, (byte) (b.get(0) ^ 0x40));
            ch.write(b.flip(), at);
        }
        long otherBlock = 256 - firstBlock;

        Cli.Result check = cli.run("check");
        assertEquals(1, check.code(), check.toString());
        assertTrue(check.out().contains("checksum mismatch"), check.out());
        for (String image : List.of("team/vm-1", "team/vm-2")) {
            for (long block : new long[]{firstBlock, firstBlock + 100, firstBlock + 255}) {
                assertTrue(check.out().contains("image '" + image + "' version 1: offset " + block * 4096 + ":"), image + " block " + block + ": " + check.out());
            }
            for (long block : new long[]{otherBlock, otherBlock + 255}) {
                assertTrue(!check.out().contains("image '" + image + "' version 1: offset " + block * 4096 + ":"), "block " + block + " is in the other segment: " + check.out());
            }
        }
        Cli.Result deep = cli.run("check", "--deep");
        assertEquals(1, deep.code(), deep.toString());

        Cli.Result export = cli.run("export", "team/vm-2", dir.resolve("x.raw").toString());
        assertEquals(1, export.code(), export.toString());
        assertTrue(export.err().contains("chunk ") && export.err().contains("checksum mismatch"), export.err());
        assertTrue(Files.notExists(dir.resolve("x.raw")), "no half-written export under the real name");

        // --repair rebuilds the index without the damaged segment's chunks: they are missing now
        Cli.Result repair = cli.run("check", "--repair");
        assertEquals(1, repair.code(), repair.toString());
        // the other segment's 256 data chunks and the tree's 5 pointer chunks (4 of 128 ids, the top)
        assertTrue(repair.out().contains("index rebuilt from packs: " + (512 - 256 + 5) + " chunks"), repair.out());
        assertTrue(repair.out().contains("image 'team/vm-1' version 1: offset " + firstBlock * 4096 + ": data chunk") && repair.out().contains("is missing"), repair.out());
        // so importing the same disk again stores them again, and every version reads whole
        assertEquals(0, cli.run("import", raw.toString(), "team/vm-3").code());
        Path out = dir.resolve("vm-1.out");
        assertEquals(0, cli.run("export", "team/vm-1", out.toString()).code());
        Cli.mustTool("cmp", raw.toString(), out.toString());
        Cli.Result after = cli.run("check", "--deep");
        assertEquals(0, after.code(), "the damaged segment is still in the pack, but nothing needs it: " + after);
        assertTrue(after.out().contains("note: ") && after.out().contains("checksum mismatch") && !after.out().contains("image '"),
                "it is a note, no version is affected: " + after.out());
    }

    @Test
    void repairRebuildsALostIndexOfSegments() throws Exception {
        Cli cli = new Cli(store());
        Path raw = importText(cli, "a", 40);
        Files.delete(store().resolve("index.db"));
        Files.deleteIfExists(store().resolve("index.db-wal"));
        Files.deleteIfExists(store().resolve("index.db-shm"));
        Cli.Result repair = cli.run("check", "--repair", "--deep");
        assertEquals(0, repair.code(), repair.toString());
        assertTrue(repair.out().contains("index rebuilt from packs: 41 chunks"), repair.out());
        Path out = dir.resolve("a.out");
        assertEquals(0, cli.run("export", "a", out.toString()).code());
        Cli.mustTool("cmp", raw.toString(), out.toString());
    }
}
