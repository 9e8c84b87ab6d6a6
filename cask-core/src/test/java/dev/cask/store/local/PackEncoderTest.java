package dev.cask.store.local;

import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** How {@link PackEncoder#segment} stores a run: random runs plain, compressible ones as segments, mixed ones not plain. */
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
}
