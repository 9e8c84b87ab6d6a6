package dev.cask.store.local;

import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * How {@link PackEncoder#segment} stores a run: random runs plain, compressible ones as segments,
 * mixed ones not plain; a checkpoint's ({@code fast}) segment at the records' level, not the segments'.
 */
class PackEncoderTest {
    private static final int CHUNK = 4096;
    private final PackEncoder encoder = new PackEncoder(1, 3);

    private record Run(ChunkId[] ids, byte[] data, int[] offs) {}

    /** {@code n} chunks; chunk k is text when {@code text[k % text.length]}, else random bytes. */
    private static Run run(int n, boolean... text) {
        Random rnd = new Random(n);
        byte[] data = new byte[n * CHUNK];
        byte[] words = "the quick brown fox jumps over the lazy dog; pack segment chunk ".getBytes(StandardCharsets.US_ASCII);
        ChunkId[] ids = new ChunkId[n];
        int[] offs = new int[n];
        for (int k = 0; k < n; k++) {
            offs[k] = k * CHUNK;
            if (text[k % text.length]) {
                for (int i = 0; i < CHUNK; i++) data[k * CHUNK + i] = words[(i * 7 + k + rnd.nextInt(3)) % words.length];
            } else {
                byte[] noise = new byte[CHUNK];
                rnd.nextBytes(noise);
                System.arraycopy(noise, 0, data, k * CHUNK, CHUNK);
            }
            ids[k] = ChunkId.of(data, k * CHUNK, CHUNK);
        }
        return new Run(ids, data, offs);
    }

    @Test
    void aRandomRunIsStoredPlain() {
        Run r = run(64, false);
        PackEncoder.Run out = encoder.segment(r.ids(), r.data(), r.offs(), CHUNK);
        assertNull(out.segment());
        assertTrue(out.plain(), "random bytes are stored as they are");
    }

    /**
     * With a {@link PackEncoder.Probe}: after two runs that did not compress, a random run is probed
     * and stored plain without a whole try; a text run after such a streak is probed, then tried
     * whole and made a segment, and the streak starts again (the next run is not probed).
     */
    @Test
    void aProbeSkipsRandomRunsAfterAStreakButNotText() {
        PackEncoder.Probe probe = new PackEncoder.Probe();
        for (int i = 0; i < 2; i++) {
            Run r = run(4 + i, false);
            assertTrue(encoder.segment(r.ids(), r.data(), r.offs(), CHUNK, probe).plain());
        }
        assertEquals(0, probe.probed());
        Run r = run(6, false);
        assertTrue(encoder.segment(r.ids(), r.data(), r.offs(), CHUNK, probe).plain());
        assertEquals(1, probe.probed());
        assertEquals(1, probe.skipped(), "the third random run is not tried whole");
        Run t = run(4, true);
        assertNotNull(encoder.segment(t.ids(), t.data(), t.offs(), CHUNK, probe).segment(), "text after the streak is a segment");
        assertEquals(2, probe.probed());
        assertEquals(1, probe.skipped());
        Run after = run(5, false);
        assertTrue(encoder.segment(after.ids(), after.data(), after.offs(), CHUNK, probe).plain());
        assertEquals(2, probe.probed(), "the streak starts again after a run that compressed");
    }

    @Test
    void aTextRunIsOneSegment() {
        Run r = run(64, true);
        PackEncoder.Run out = encoder.segment(r.ids(), r.data(), r.offs(), CHUNK);
        assertNotNull(out.segment(), "text compresses as a segment");
        assertTrue(out.segment().length < 64 * CHUNK / 2, "and saves: " + out.segment().length);
    }

    @Test
    void aHalfTextRunIsNotStoredPlain() {
        // every other chunk is text
        Run r = run(64, true, false);
        PackEncoder.Run out = encoder.segment(r.ids(), r.data(), r.offs(), CHUNK);
        assertFalse(out.plain(), "half of the run compresses: not stored plain");
    }

    @Test
    void aFastSegmentIsCompressedAtTheRecordLevel() {
        // records at level 1, segments at level 19: the two frames differ, and the fast one is level 1's
        PackEncoder levels = new PackEncoder(1, 19);
        Run r = run(16, true);
        byte[] plain = new byte[16 * CHUNK];
        System.arraycopy(r.data(), 0, plain, 0, plain.length);
        byte[] fast = levels.segment(r.ids(), r.data(), r.offs(), CHUNK, true).segment();
        byte[] slow = levels.segment(r.ids(), r.data(), r.offs(), CHUNK, false).segment();
        assertNotNull(fast);
        assertNotNull(slow);
        assertArrayEquals(frame(fast), com.github.luben.zstd.Zstd.compress(plain, 1), "a fast segment's frame is zstd level 1");
        assertArrayEquals(frame(slow), com.github.luben.zstd.Zstd.compress(plain, 19), "a sequential segment's frame is the segment level");
        for (byte[] seg : new byte[][]{fast, slow}) {
            PackFormat.Segment decoded = PackFormat.decodeSegment("test", seg, 0, seg.length);
            assertEquals(16, decoded.count());
            assertArrayEquals(plain, com.github.luben.zstd.Zstd.decompress(frame(seg), plain.length), "both decode to the chunks");
        }
    }

    /**
     * Chunks back to back in the caller's array are compressed where they are, others are first
     * copied together: both make the same segment, whose table checks each chunk's own bytes.
     */
    @Test
    void aRunFromAnywhereInTheArrayMakesTheSameSegment() {
        Run r = run(8, true);
        byte[] spread = new byte[3 * CHUNK + r.data().length * 2];
        int[] apart = new int[8];
        int[] after = new int[8];
        for (int k = 0; k < 8; k++) {
            apart[k] = 3 * CHUNK + k * 2 * CHUNK + 1; // gaps between the chunks, an odd start
            System.arraycopy(r.data(), k * CHUNK, spread, apart[k], CHUNK);
            after[k] = CHUNK + 5 + k * CHUNK; // back to back, at an offset
        }
        byte[] shifted = new byte[r.data().length + CHUNK + 5];
        System.arraycopy(r.data(), 0, shifted, CHUNK + 5, r.data().length);
        byte[] base = encoder.segment(r.ids(), r.data(), r.offs(), CHUNK).segment();
        assertNotNull(base);
        assertArrayEquals(base, encoder.segment(r.ids(), spread, apart, CHUNK).segment());
        assertArrayEquals(base, encoder.segment(r.ids(), shifted, after, CHUNK).segment());
        PackFormat.Segment s = PackFormat.decodeSegment("test", base, 0, base.length);
        byte[] all = com.github.luben.zstd.Zstd.decompress(frame(base), 8 * CHUNK);
        for (int k = 0; k < 8; k++) {
            assertArrayEquals(java.util.Arrays.copyOfRange(r.data(), k * CHUNK, (k + 1) * CHUNK), PackFormat.chunkPlain("test", s, all, k));
        }
    }

    private static byte[] frame(byte[] segment) {
        PackFormat.Segment s = PackFormat.decodeSegment("test", segment, 0, segment.length);
        return java.util.Arrays.copyOfRange(s.buf(), s.frameOffset(), s.frameOffset() + s.frameLength());
    }
}
