package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;

import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Golden bytes of format 1 (pack header, plain and zstd records; the layout's golden bytes are in
 * cask-tree's LayoutGoldenTest), written by the first
 * release, and of pack format 2 (its header and a segment). Later versions must keep decoding them
 * exactly; the encoders must keep producing the plain ones byte for byte. Never edit these
 * strings: add new ones for new formats.
 */
class GoldenFormatTest {
    private static final HexFormat HEX = HexFormat.of();
    static final String PACK_HEADER_7 = "6361736b000000010000000700000000";
    static final String HELLO_ID = "074e50f9f8180f3fb41ba84a3adbd631c2e07c981c77e8330f0890a923c8214d";
    static final String HELLO_RECORD = "63726563000000000000000c0000000c" + HELLO_ID + "cf3f39f968656c6c6f2c206361736b0a";
    static final String ZSTD_RECORD = "6372656301000000000000c800000012c2a908d98f5df987ade41b5fce213067efbcc21ef2240212a41e54b5e7c28ae5018d71c228b52ffd20c84d00001061610100430a6001";
    static final String PACK_HEADER_7_V2 = "6361736b000000020000000700000000";
    static final String A200_ID = "c2a908d98f5df987ade41b5fce213067efbcc21ef2240212a41e54b5e7c28ae5";
    /** Pack format 2: a segment of "hello, cask\n" and 200 times "a", zstd level 3. */
    static final String SEGMENT = "63736567" + "01000000" + "00000002" + "000000d4" + "0000001d"
            + HELLO_ID + "0000000c" + "266d7d96"
            + A200_ID + "000000c8" + "50137e73"
            + "064f9889"
            + "28b52ffd20d4a500006868656c6c6f2c206361736b0a610100440a7c01";

    @Test
    void packHeader() {
        assertEquals(PACK_HEADER_7, HEX.formatHex(PackFormat.encodePackHeader(7, 1)));
        assertEquals(7, PackFormat.decodePackHeader("golden", HEX.parseHex(PACK_HEADER_7)));
        assertEquals(1, PackFormat.packFormat("golden", HEX.parseHex(PACK_HEADER_7)));
    }

    @Test
    void packHeaderFormat2() {
        assertEquals(PACK_HEADER_7_V2, HEX.formatHex(PackFormat.encodePackHeader(7)));
        assertEquals(7, PackFormat.decodePackHeader("golden", HEX.parseHex(PACK_HEADER_7_V2)));
        assertEquals(2, PackFormat.packFormat("golden", HEX.parseHex(PACK_HEADER_7_V2)));
        byte[] v3 = HEX.parseHex(PACK_HEADER_7_V2);
        v3[7] = 3;
        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> PackFormat.decodePackHeader("pack 7", v3));
        assertTrue(e.getMessage().contains("pack format 3"), e.getMessage());
    }

    @Test
    void segment() {
        byte[] hello = "hello, cask\n".getBytes();
        byte[] a200 = "a".repeat(200).getBytes();
        byte[] seg = HEX.parseHex(SEGMENT);
        assertEquals(seg.length, PackFormat.segmentLength("golden", seg, 0));
        PackFormat.Segment s = PackFormat.decodeSegment("golden", seg, 0, seg.length);
        assertEquals(PackFormat.CODEC_ZSTD, s.codec());
        assertEquals(List.of(ChunkId.parse(HELLO_ID), ChunkId.parse(A200_ID)), List.of(s.ids()));
        assertArrayEquals(new int[]{12, 200}, s.plainLengths());
        assertArrayEquals(new int[]{PackFormat.crc32c(hello, 0, 12), PackFormat.crc32c(a200, 0, 200)}, s.plainCrcs());
        byte[] all = PackReader.segmentPlain("golden", s);
        assertArrayEquals(hello, PackFormat.chunkPlain("golden", s, all, 0));
        assertArrayEquals(a200, PackFormat.chunkPlain("golden", s, all, 1));
        assertEquals(ChunkId.parse(A200_ID), ChunkId.of(a200));
        // the encoder, given the decoded fields and frame, writes the same bytes
        assertEquals(SEGMENT, HEX.formatHex(PackFormat.encodeSegment(s.ids(), s.plainLengths(), s.plainCrcs(),
                s.buf(), s.frameOffset(), s.frameLength())));
        // decoding consumes exactly the segment: a byte more or less is an error
        byte[] longer = java.util.Arrays.copyOf(seg, seg.length + 1);
        assertThrows(CaskException.Corrupt.class, () -> PackFormat.decodeSegment("golden", longer, 0, longer.length));
        assertThrows(CaskException.Corrupt.class, () -> PackFormat.decodeSegment("golden", seg, 0, seg.length - 1));
        // every byte is covered: flipping any one is caught by the segment CRC or a field check
        for (int i = 0; i < seg.length; i++) {
            byte[] bad = seg.clone();
            bad[i] ^= 0x10;
            int at = i;
            assertThrows(CaskException.Corrupt.class, () -> PackFormat.decodeSegment("golden", bad, 0, bad.length), "byte " + at);
        }
    }

    @Test
    void segmentChunkWithWrongPlainBytesIsCorruptNamingIt() {
        byte[] seg = HEX.parseHex(SEGMENT);
        PackFormat.Segment s = PackFormat.decodeSegment("golden", seg, 0, seg.length);
        byte[] all = PackReader.segmentPlain("golden", s);
        all[20] ^= 1;
        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> PackFormat.chunkPlain("chunk c2a908d98f5d", s, all, 1));
        assertTrue(e.getMessage().startsWith("chunk c2a908d98f5d: plain bytes fail their crc32c"), e.getMessage());
        assertArrayEquals("hello, cask\n".getBytes(), PackFormat.chunkPlain("golden", s, all, 0), "its neighbour is fine");
    }

    @Test
    void plainRecord() {
        byte[] data = "hello, cask\n".getBytes();
        ChunkId id = ChunkId.parse(HELLO_ID);
        assertEquals(id, ChunkId.of(data));
        assertEquals(HELLO_RECORD, HEX.formatHex(PackFormat.encodeRecord(id, PackFormat.CODEC_NONE, data.length, data, 0, data.length)));
        byte[] rec = HEX.parseHex(HELLO_RECORD);
        PackFormat.Record r = PackFormat.decodeRecord("golden", rec, 0, rec.length);
        assertEquals(id, r.id());
        assertArrayEquals(data, PackReader.plainBytes("golden", r));
    }

    /**
     * A store writes a plain record as two parts (header, then the caller's bytes) straight into its
     * pack's buffer: the pack must hold the golden record all the same, from the caller's offset.
     */
    @Test
    void storeWritesThePlainRecordByteForByte(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        byte[] around = ("xx" + "hello, cask\n" + "yy").getBytes();
        try (LocalChunkStore store = LocalChunkStore.open(dir.resolve("s"), LocalChunkStore.Options.defaults())) {
            assertEquals(ChunkId.parse(HELLO_ID), store.put(around, 2, 12));
            store.sync();
        }
        byte[] pack = java.nio.file.Files.readAllBytes(dir.resolve("s/packs/00000001.pack"));
        assertEquals(HEX.formatHex(PackFormat.encodePackHeader(1)) + HELLO_RECORD, HEX.formatHex(pack));
    }

    @Test
    void zstdRecord() {
        byte[] rec = HEX.parseHex(ZSTD_RECORD);
        PackFormat.Record r = PackFormat.decodeRecord("golden", rec, 0, rec.length);
        assertEquals(PackFormat.CODEC_ZSTD, r.codec());
        byte[] plain = PackReader.plainBytes("golden", r);
        assertArrayEquals("a".repeat(200).getBytes(), plain);
        assertEquals(r.id(), ChunkId.of(plain));
    }

    /** The gc_state row's state (format 1, written by casks before index schema 5): what a complete collection leaves the next one. */
    static final String GC_STATE = "00000001" + "00000007" + "00000001" + "00000007" + "00000001" + "00000003" + "00000000000003e8"
            + "00000001" + HELLO_ID;

    /** The same state in format 2: the settled table's change count at the sweep's scan (42) follows. */
    static final String GC_STATE_2 = "00000002" + GC_STATE.substring(8) + "000000000000002a";

    @Test
    void gcStateFormatOne() {
        GcState s = new GcState(7, java.util.Map.of(7, GcState.Open.UNSEEN), java.util.Map.of(3, 1000L), List.of(ChunkId.parse(HELLO_ID)), -1);
        assertEquals(s, GcState.decode(HEX.parseHex(GC_STATE)), "format 1 reads as a change count not known (-1)");
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex(GC_STATE.substring(0, GC_STATE.length() - 2))));
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex(GC_STATE + "00")));
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex("00000004" + GC_STATE.substring(8))));
    }

    /** The same state in format 3: open pack 7 seen by scans up to offset 65,536, where 12,288 bytes are still live. */
    static final String GC_STATE_3 = "00000003" + "00000007" + "00000001" + "00000007" + "0000000000010000" + "0000000000003000"
            + GC_STATE_2.substring(32);

    @Test
    void gcStateFormatThree() {
        GcState s = new GcState(7, java.util.Map.of(7, new GcState.Open(65536, 12288)), java.util.Map.of(3, 1000L), List.of(ChunkId.parse(HELLO_ID)), 42);
        assertEquals(GC_STATE_3, HEX.formatHex(s.encode()));
        assertEquals(s, GcState.decode(HEX.parseHex(GC_STATE_3)));
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex(GC_STATE_3.substring(0, GC_STATE_3.length() - 2))));
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex(GC_STATE_3 + "00")));
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex(GC_STATE_3.replace("0000000000010000", "ffffffffffff0000"))),
                "an open pack scanned to a negative offset");
    }

    @Test
    void gcStateFormatTwo() {
        GcState s = new GcState(7, java.util.Map.of(7, GcState.Open.UNSEEN), java.util.Map.of(3, 1000L), List.of(ChunkId.parse(HELLO_ID)), 42);
        assertEquals(s, GcState.decode(HEX.parseHex(GC_STATE_2)), "format 2 reads its open packs as not scanned yet");
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex(GC_STATE_2.substring(0, GC_STATE_2.length() - 2))));
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex(GC_STATE_2 + "00")));
        assertThrows(CaskException.Corrupt.class, () -> GcState.decode(HEX.parseHex(GC_STATE_2.substring(0, GC_STATE_2.length() - 16) + "fffffffffffffffe")),
                "a change count below -1");
    }

    /** A pack's holes file (format 1): the stretches a collection punched out of pack 7. */
    static final String HOLES = "63686f6c" + "00000001" + "00000007" + "00000002"
            + "0000000000000010" + "0000000000001068" + "0000000000002000" + "0000000000005000" + "5b646e4a";

    @Test
    void holesFileFormatOne() {
        PackHoles h = PackHoles.NONE.with(List.of(new long[]{8192, 20480}, new long[]{16, 4200}));
        assertEquals(HOLES, HEX.formatHex(h.encode(7)));
        assertEquals(h, PackHoles.decode("t", HEX.parseHex(HOLES), 7));
        assertEquals(12288, h.punched(), "[16, 4200) holds no whole 4 KiB block; [8192, 20480) holds three");
        assertThrows(CaskException.Corrupt.class, () -> PackHoles.decode("t", HEX.parseHex(HOLES.substring(0, HOLES.length() - 2)), 7));
        assertThrows(CaskException.Corrupt.class, () -> PackHoles.decode("t", HEX.parseHex(HOLES.replaceFirst("63686f6c", "63686f6d")), 7),
                "a flipped bit fails the crc");
    }
}
