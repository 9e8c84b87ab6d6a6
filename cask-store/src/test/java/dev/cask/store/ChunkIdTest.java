package dev.cask.store;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/**
 * {@link ChunkId}'s order, equality and hash code are those of its 32 bytes (unsigned, first byte
 * first), although they look at a long of the first 8 bytes first: ids that differ only after
 * byte 8, and ids whose first bytes have the sign bit set, are where a shortcut would go wrong.
 */
class ChunkIdTest {
    @Test
    void orderEqualityAndHashFollowTheBytes() {
        Random rnd = new Random(42);
        byte[][] raw = new byte[400][];
        for (int i = 0; i < raw.length; i++) {
            raw[i] = new byte[ChunkId.LENGTH];
            rnd.nextBytes(raw[i]);
            if (i % 4 == 1) System.arraycopy(raw[i - 1], 0, raw[i], 0, 8 + rnd.nextInt(24)); // same head, maybe more
            if (i % 8 == 2) raw[i][0] = (byte) 0xff;                                           // sign bit in the head
            if (i % 8 == 3) System.arraycopy(raw[i - 1], 0, raw[i], 0, ChunkId.LENGTH);       // equal ids
        }
        for (byte[] a : raw) {
            for (byte[] b : raw) {
                ChunkId x = ChunkId.fromBytes(a), y = ChunkId.fromBytes(b);
                assertEquals(Integer.signum(Arrays.compareUnsigned(a, b)), Integer.signum(x.compareTo(y)),
                        () -> x.hex() + " vs " + y.hex());
                assertEquals(Arrays.equals(a, b), x.equals(y), () -> x.hex() + " vs " + y.hex());
                if (x.equals(y)) assertEquals(x.hashCode(), y.hashCode());
            }
        }
        // the hash code is the first four bytes, big-endian, as it always was
        ChunkId id = ChunkId.parse("80000001" + "00".repeat(28));
        assertEquals(0x80000001, id.hashCode());
        assertNotEquals(ChunkId.ZERO, id);
        assertEquals(0, ChunkId.ZERO.compareTo(ChunkId.fromBytes(new byte[ChunkId.LENGTH])));
    }
}
