package dev.cask.volume;

import dev.cask.common.CaskException;
import dev.cask.image.Images;
import dev.cask.local.LocalImages;
import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The journal's crash behaviour: a file cut at any byte replays every whole record before the
 * cut and nothing after it; a block whose bytes were torn is dropped alone; a damaged header is
 * an error, not an empty journal; a format 1 journal is upgraded on open.
 */
class JournalTest {
    @TempDir
    Path dir;

    private static byte[] block(int seed) {
        byte[] b = new byte[4096];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void aTornTailKeepsEveryWholeRecordBeforeIt() throws Exception {
        Path p = dir.resolve("img.journal-1");
        List<Long> ends = new ArrayList<>();
        try (Journal j = Journal.create(p, "img", 1, 7)) {
            ends.add(j.size());
            for (int r = 0; r < 6; r++) {
                byte[] data = new byte[3 * 4096];
                for (int k = 0; k < 3; k++) System.arraycopy(block(r * 3 + k), 0, data, k * 4096, 4096);
                if (r == 2) j.appendZero(0, 100, 5, 4096);
                else j.append(0, r * 3, 4096, 3, data, 0);
                ends.add(j.size());
            }
            j.sync();
        }
        long full = Files.size(p);
        byte[] whole = Files.readAllBytes(p);
        for (long cut = ends.getFirst(); cut <= full; cut += 997) {
            Path c = dir.resolve("cut.journal-1");
            Files.write(c, Arrays.copyOf(whole, (int) cut));
            Journal.Replayed r = Journal.open(c, "img");
            int records = 0;
            for (int k = 1; k < ends.size(); k++) if (ends.get(k) <= cut) records = k;
            int expected = 0;
            for (int k = 0; k < records; k++) expected += k == 2 ? 5 : 3;
            assertEquals(expected, r.entries().size(), "cut at " + cut);
            assertEquals(7, r.baseVersion());
            for (Journal.Entry e : r.entries()) {
                if (e.zero()) continue;
                byte[] got = new byte[4096];
                r.journal().readBlock(e.offset(), 4096, got, 0, 0, 4096);
                assertArrayEquals(block((int) e.block()), got, "cut at " + cut + ", block " + e.block());
            }
            r.journal().close();
        }
    }

    @Test
    void aTornBlockIsDroppedAloneAndAReadOfItFails() throws Exception {
        Path p = dir.resolve("img.journal-3");
        long first;
        try (Journal j = Journal.create(p, "img", 3, 1)) {
            byte[] data = new byte[4 * 4096];
            for (int k = 0; k < 4; k++) System.arraycopy(block(k), 0, data, k * 4096, 4096);
            first = j.append(2, 10, 4096, 4, data, 0);
        }
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.seek(first + (4096 + 4) + 100); // inside block 11
            f.write(0x5a);
        }
        Journal.Replayed r = Journal.open(p, "img");
        List<Long> blocks = r.entries().stream().map(Journal.Entry::block).toList();
        assertEquals(List.of(10L, 12L, 13L), blocks);
        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class,
                () -> r.journal().readBlock(first + 4096 + 4, 4096, new byte[4096], 0, 0, 4096));
        assertTrue(e.getMessage().contains("checksum"), e.getMessage());
        r.journal().close();
    }

    @Test
    void aDamagedHeaderOrAnotherImagesJournalIsAnError() throws Exception {
        Path p = dir.resolve("img.journal-1");
        Journal.create(p, "img", 1, 1).close();
        assertTrue(assertThrows(CaskException.Corrupt.class, () -> Journal.open(p, "other")).getMessage().contains("belongs to image 'img'"));
        byte[] b = Files.readAllBytes(p);
        b[10] ^= 1;
        Files.write(p, b);
        assertTrue(assertThrows(CaskException.Corrupt.class, () -> Journal.open(p, "img")).getMessage().contains("checksum"));
    }

    /** A format 1 journal (block -> chunk id) left by an older cask comes back as data on open. */
    /**
     * A kill between creating a generation's file and writing its header (CrashTest met it): the
     * file exists only under its temporary name, so the volume opens (and overwrites it when it
     * makes that generation), and removing the image deletes it.
     */
    @Test
    void aGenerationCutWhileBeingCreatedNeverStopsTheVolumeFromOpening() throws Exception {
        Path direct = dir.resolve("x.journal-1");
        Journal.create(direct, "x", 1, 1).close();
        assertFalse(Files.exists(dir.resolve("x.journal-1" + Journal.CREATING)), "the temporary name is renamed away");
        assertTrue(Files.size(direct) > 0);
        assertThrows(CaskException.Io.class, () -> Journal.create(direct, "x", 1, 1), "an existing generation is never replaced");

        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.create("t/cut", 1 << 20, 4096);
            byte[] data = block(44);
            try (Volume v = images.openVolume("t/cut")) {
                v.write(4096, data, 0, 4096, false);
                v.flush();
            }
            Path journals = LocalImages.store(images).dir().resolve("journals");
            for (int g = 1; g <= 3; g++) Files.write(journals.resolve("t+cut.journal-" + g + Journal.CREATING), new byte[0]);
            Files.write(journals.resolve("t+cutter.journal-9" + Journal.CREATING), new byte[]{1}); // another image's
            try (Volume v = images.openVolume("t/cut")) {
                byte[] got = new byte[4096];
                v.read(4096, got, 0, 4096);
                assertArrayEquals(data, got);
            }
            images.remove("t/cut");
            try (var left = Files.list(journals)) {
                List<String> names = left.map(q -> q.getFileName().toString()).filter(n -> n.startsWith("t+cut.journal")).toList();
                assertEquals(List.of(), names, "rm deletes every journal file of the image, temporary ones too");
            }
            assertTrue(Files.exists(journals.resolve("t+cutter.journal-9" + Journal.CREATING)), "another image's files stay");
        }
    }

    @Test
    void aFormatOneJournalIsUpgradedOnOpen() throws Exception {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.create("t/old", 1 << 20, 4096);
            byte[] data = block(42);
            ChunkId id = images.store().put(data);
            ChunkId lost = ChunkId.of(block(43), 0, 4096); // never stored: an unflushed write
            images.store().sync();
            Path legacy = writeFormatOne(images, "t/old", new Object[][]{{5L, id}, {6L, lost}, {7L, ChunkId.ZERO}});
            try (Volume v = images.openVolume("t/old")) {
                assertFalse(Files.exists(legacy), "the format 1 file is removed after the upgrade");
                byte[] got = new byte[3 * 4096];
                v.read(5 * 4096, got, 0, got.length);
                assertArrayEquals(data, Arrays.copyOf(got, 4096));
                assertArrayEquals(new byte[2 * 4096], Arrays.copyOfRange(got, 4096, 3 * 4096), "the lost chunk's block stays old (zero)");
            }
            byte[] after = new byte[4096];
            try (var dev = images.open(images.resolve("t/old"))) {
                dev.read(5 * 4096, after, 0, 4096);
            }
            assertArrayEquals(data, after, "close checkpointed the upgraded write");
        }
    }

    /** Writes the format 1 journal an older cask left for image {@code image}: records of (block, chunk id) in extent 0. */
    static Path writeFormatOne(Images images, String image, Object[][] records) throws java.io.IOException {
        Path journals = LocalImages.store(images).dir().resolve("journals");
        Files.createDirectories(journals);
        byte[] name = image.getBytes(StandardCharsets.UTF_8);
        ByteBuffer h = ByteBuffer.allocate(14 + name.length + 4 + records.length * 48);
        h.putInt(Journal.MAGIC).putInt(1).putInt(1).putShort((short) name.length).put(name);
        CRC32C crc = new CRC32C();
        crc.update(h.array(), 0, h.position());
        h.putInt((int) crc.getValue());
        for (Object[] rec : records) {
            int at = h.position();
            h.putInt(0).putLong((Long) rec[0]).put(((ChunkId) rec[1]).toBytes());
            crc.reset();
            crc.update(h.array(), at, 44);
            h.putInt((int) crc.getValue());
        }
        Path legacy = journals.resolve(image.replace('/', '+') + ".journal");
        Files.write(legacy, Arrays.copyOf(h.array(), h.position()));
        return legacy;
    }

    /**
     * A format 1 journal holds no data, only the ids of chunks its volume stored: a crashed
     * older cask's flushed writes are chunks no version references. Until the volume is opened
     * and upgrades the journal, garbage collection must keep them (they are roots, as the
     * journal's base version is), or the upgrade finds them gone and keeps the old blocks: the
     * flushed writes would be lost without a word.
     */
    @Test
    void aFormatOneJournalsChunksAreKeptByGarbageCollection() throws Exception {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.create("t/old", 1 << 20, 4096);
            byte[] data = block(45);
            ChunkId id = images.store().put(data);
            images.store().sync();
            writeFormatOne(images, "t/old", new Object[][]{{3L, id}});
            var r = images.collector().run(false, m -> {}, dev.cask.common.Progress.NONE);
            assertEquals(0, r.chunksFreed(), "the journal's chunk is not garbage: " + r);
            try (Volume v = images.openVolume("t/old")) {
                byte[] got = new byte[4096];
                v.read(3 * 4096, got, 0, got.length);
                assertArrayEquals(data, got, "the flushed write the format 1 journal holds");
            }
            images.collector().run(false, m -> {}, dev.cask.common.Progress.NONE); // the journal is gone: the close's version holds it
            byte[] after = new byte[4096];
            try (var dev = images.open(images.resolve("t/old"))) {
                dev.read(3 * 4096, after, 0, 4096);
            }
            assertArrayEquals(data, after, "the version the close made, after another gc");
        }
    }

    /**
     * Golden bytes of journal format 2 (docs/format.md): a generation of image "team/vm" with a
     * two-block data record (16-byte blocks) and a three-block zero record. Never edit this string:
     * later versions must keep replaying it (format 3 replaced it as what the encoder writes).
     */
    static final String GOLDEN_V2 = "636a6e6c0000000200000000000000010000000300077465616d2f766dea980d95"
            + "636a7263010000000200000000000000050000000200000010791ce2f3"
            + "3031323334353637383961626364656642d3119e" + "46454443424139383736353433323130e2b62431"
            + "636a7263020000000000000000000000090000000300001000a0fdb59c";

    /**
     * Golden bytes of journal format 3: the same records as {@link #GOLDEN_V2} under a format 3
     * header, then a base record naming version 7. Never edit this string: later versions must
     * keep replaying it, and the encoder must keep producing it.
     */
    static final String GOLDEN_V3 = "636a6e6c0000000300000000000000010000000300077465616d2f766db68de321"
            + "636a7263010000000200000000000000050000000200000010791ce2f3"
            + "3031323334353637383961626364656642d3119e" + "46454443424139383736353433323130e2b62431"
            + "636a7263020000000000000000000000090000000300001000a0fdb59c"
            + "636a7263030000000000000000000000070000000000000000512c63c1";

    private static final List<Journal.Entry> GOLDEN_ENTRIES = List.of(new Journal.Entry(2, 5, 62, false), new Journal.Entry(2, 6, 82, false),
            new Journal.Entry(0, 9, 102, true), new Journal.Entry(0, 10, 102, true), new Journal.Entry(0, 11, 102, true));

    @Test
    void formatTwoGoldenBytesStillReplay() throws Exception {
        Path g = dir.resolve("frozen.journal-1");
        Files.write(g, java.util.HexFormat.of().parseHex(GOLDEN_V2));
        Journal.Replayed r = Journal.open(g, "team/vm");
        assertEquals(3, r.baseVersion());
        assertEquals(1, r.journal().generation());
        assertEquals(GOLDEN_ENTRIES, r.entries());
        byte[] got = new byte[16];
        r.journal().readBlock(82, 16, got, 0, 0, 16);
        assertEquals("FEDCBA9876543210", new String(got, StandardCharsets.US_ASCII));
        r.journal().close();
    }

    @Test
    void formatThreeGoldenBytes() throws Exception {
        Path p = dir.resolve("golden.journal-1");
        try (Journal j = Journal.create(p, "team/vm", 1, 3)) {
            j.append(2, 5, 16, 2, "0123456789abcdefFEDCBA9876543210".getBytes(StandardCharsets.US_ASCII), 0);
            j.appendZero(0, 9, 3, 4096);
            j.appendBase(7);
            j.sync();
        }
        assertEquals(GOLDEN_V3, java.util.HexFormat.of().formatHex(Files.readAllBytes(p)), "the encoder writes format 3 byte for byte");
        Path g = dir.resolve("frozen.journal-1");
        Files.write(g, java.util.HexFormat.of().parseHex(GOLDEN_V3));
        Journal.Replayed r = Journal.open(g, "team/vm");
        assertEquals(7, r.baseVersion(), "the base record overrides the header's base version");
        assertEquals(GOLDEN_ENTRIES, r.entries());
        r.journal().close();
        // cut inside the base record: a torn tail, the header's base again
        Files.write(g, Arrays.copyOf(java.util.HexFormat.of().parseHex(GOLDEN_V3), GOLDEN_V3.length() / 2 - 1));
        Journal.Replayed cut = Journal.open(g, "team/vm");
        assertEquals(3, cut.baseVersion());
        assertEquals(GOLDEN_ENTRIES, cut.entries());
        cut.journal().close();
    }
}
