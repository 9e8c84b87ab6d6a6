package dev.cask.tree;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The layout encoding: a symmetric encode/decode pair, and decode refuses every malformed input as corrupt. */
class LayoutTest {
    private static final int HEADER = 9;
    private static final int EXTENT = 53;

    private static Root root(long size, int blockSize, String content) {
        return new Root(size, blockSize, Root.depthFor(size, blockSize), ChunkId.of(content.getBytes()));
    }

    /** An MBR gap, a big partition and a ragged tail, each with its own block size. */
    private static Layout threeExtents() {
        Root gap = root(1 << 20, 4096, "gap");              // 256 blocks: depth 2
        Root part = root(10L << 30, 65536, "partition");    // 163,840 blocks: depth 3
        Root tail = root(12345, 1 << 20, "tail");           // one short block: depth 0
        return new Layout(List.of(
                new Layout.Extent(0, gap),
                new Layout.Extent(gap.size(), part),
                new Layout.Extent(gap.size() + part.size(), tail)));
    }

    private static void assertCorrupt(byte[] bytes, String why) {
        try {
            Layout.decode(bytes);
        } catch (CaskException.Corrupt e) {
            assertTrue(e.getMessage().startsWith("layout") || e.getMessage().startsWith("tree root"), "message names what is corrupt: " + e.getMessage());
            return;
        } catch (RuntimeException e) {
            throw new AssertionError(why + ": expected CaskException.Corrupt, got " + e, e);
        }
        throw new AssertionError(why + ": decode accepted it");
    }

    // ---------------------------------------------------------------- round trip

    @Test
    void roundTripOfSeveralExtents() {
        Layout l = threeExtents();
        byte[] enc = l.encode();
        assertEquals(HEADER + 3 * EXTENT, enc.length);
        Layout back = Layout.decode(enc);
        assertEquals(l, back);
        assertEquals((1 << 20) + (10L << 30) + 12345, back.size());
        assertArrayEquals(enc, back.encode(), "encode(decode(x)) == x");
    }

    @Test
    void roundTripOfSingleEmptyAndHoleExtents() {
        for (Layout l : List.of(
                Layout.single(root(2L << 40, 4096, "big")),
                Layout.single(Root.empty(0, 4096)),
                Layout.single(Root.empty(5L << 30, 1 << 20)),
                new Layout(List.of()),
                new Layout(List.of(new Layout.Extent(0, Root.empty(0, 8192)), new Layout.Extent(0, root(4096, 4096, "x")))))) {
            Layout back = Layout.decode(l.encode());
            assertEquals(l, back);
            assertEquals(l.size(), back.size());
        }
        assertEquals(0, new Layout(List.of()).size());
        assertEquals(HEADER, new Layout(List.of()).encode().length);
    }

    @Test
    void encodingIsTheDocumentedBytes() {
        Root r = root(12345, 4096, "x");
        byte[] enc = Layout.single(r).encode();
        ByteBuffer b = ByteBuffer.wrap(enc);
        assertEquals(0x636c6179, b.getInt(), "magic 'clay'");
        assertEquals(1, b.get(), "version");
        assertEquals(1, b.getInt(), "extent count");
        assertEquals(0, b.getLong(), "offset");
        assertEquals(12345, b.getLong(), "length");
        assertEquals(4096, b.getInt(), "block size");
        assertEquals(1, b.get(), "depth");
        byte[] id = new byte[32];
        b.get(id);
        assertEquals(r.top(), ChunkId.fromBytes(id));
        assertEquals(0, b.remaining());
    }

    // ---------------------------------------------------------------- decode refuses

    @Test
    void badMagicIsCorrupt() {
        byte[] enc = threeExtents().encode();
        enc[0] ^= 0x20;
        assertCorrupt(enc, "bad magic");
        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> Layout.decode(new byte[]{0, 0, 0, 0, 1, 0, 0, 0, 0}));
        assertTrue(e.getMessage().contains("magic"), e.getMessage());
    }

    @Test
    void unknownVersionIsCorrupt() {
        for (int v : new int[]{0, 2, 0x7f, 0x80, 0xff}) {
            byte[] enc = threeExtents().encode();
            enc[4] = (byte) v;
            assertCorrupt(enc, "version " + v);
        }
        byte[] enc = threeExtents().encode();
        enc[4] = 2;
        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> Layout.decode(enc));
        assertTrue(e.getMessage().contains("2"), "message names the version found: " + e.getMessage());
    }

    @Test
    void everyTruncationIsCorrupt() {
        byte[] enc = threeExtents().encode();
        for (int n = 0; n < enc.length; n++) assertCorrupt(Arrays.copyOf(enc, n), "first " + n + " of " + enc.length + " bytes");
    }

    @Test
    void trailingBytesAreCorrupt() {
        byte[] enc = threeExtents().encode();
        assertCorrupt(Arrays.copyOf(enc, enc.length + 1), "one trailing byte");
        assertCorrupt(Arrays.copyOf(enc, enc.length + EXTENT), "a whole extent's worth of trailing bytes");
        byte[] empty = new Layout(List.of()).encode();
        assertCorrupt(Arrays.copyOf(empty, empty.length + 3), "trailing bytes after zero extents");
    }

    @Test
    void extentCountThatDoesNotMatchIsCorrupt() {
        for (int n : new int[]{2, 4, -1, Integer.MAX_VALUE, Integer.MIN_VALUE, 0}) {
            byte[] enc = threeExtents().encode();
            ByteBuffer.wrap(enc).putInt(5, n);
            assertCorrupt(enc, "count " + n + " for 3 extents");
        }
    }

    @Test
    void nonContiguousExtentsAreCorrupt() {
        byte[] gap = threeExtents().encode();
        ByteBuffer b = ByteBuffer.wrap(gap);
        b.putLong(HEADER + EXTENT, b.getLong(HEADER + EXTENT) + 1); // a 1-byte gap before extent 1
        assertCorrupt(gap, "gap between extents");

        byte[] overlap = threeExtents().encode();
        b = ByteBuffer.wrap(overlap);
        b.putLong(HEADER + 2 * EXTENT, b.getLong(HEADER + 2 * EXTENT) - 4096); // extent 2 overlaps extent 1
        assertCorrupt(overlap, "overlapping extents");

        byte[] late = threeExtents().encode();
        ByteBuffer.wrap(late).putLong(HEADER, 512); // the first extent must start at 0
        assertCorrupt(late, "first extent not at 0");

        assertThrows(CaskException.Corrupt.class, () -> new Layout(List.of(new Layout.Extent(4096, root(4096, 4096, "x")))));
    }

    @Test
    void depthThatDoesNotFitTheSizeIsCorrupt() {
        int depthAt = HEADER + 8 + 8 + 4;
        for (int d : new int[]{0, 1, 3, 9, 0xff}) {
            byte[] enc = threeExtents().encode(); // extent 0 has depth 2
            enc[depthAt] = (byte) d;
            assertCorrupt(enc, "depth " + d + " for 1 MiB at 4 KiB");
        }
        byte[] grown = threeExtents().encode();
        ByteBuffer b = ByteBuffer.wrap(grown);
        // the size says 4 TiB at 64 KiB (depth 4) but the depth byte still says 3; keep extents contiguous
        long oldLen = b.getLong(HEADER + EXTENT + 8);
        b.putLong(HEADER + EXTENT + 8, 4L << 40);
        b.putLong(HEADER + 2 * EXTENT, b.getLong(HEADER + 2 * EXTENT) - oldLen + (4L << 40));
        assertCorrupt(grown, "size grown past what the depth covers");
    }

    @Test
    void outOfRangeFieldsAreCorruptNotSomethingElse() {
        int lenAt = HEADER + 8;
        int bsAt = HEADER + 16;
        for (long len : new long[]{-1, Long.MIN_VALUE, (1L << 60) + 1}) {
            byte[] enc = Layout.single(root(4096, 4096, "x")).encode();
            ByteBuffer.wrap(enc).putLong(lenAt, len);
            assertCorrupt(enc, "extent length " + len);
        }
        for (int bs : new int[]{0, -4096, 4095, 6144, 2048, 2 << 20}) {
            byte[] enc = Layout.single(root(4096, 4096, "x")).encode();
            ByteBuffer.wrap(enc).putInt(bsAt, bs);
            assertCorrupt(enc, "block size " + bs);
        }
    }
}
