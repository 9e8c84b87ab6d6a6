package dev.cask.common;

/**
 * Recycled byte arrays for request-sized buffers (NBD payloads and read replies, checkpoint
 * batches). Allocating a 1 MiB array costs zeroing a mebibyte and, soon after, a garbage
 * collection: a profile of a sequential write load spent a sixth of its CPU in memset and a tenth
 * in G1 on such arrays. A checkpoint's 16 KiB segments were the same story on a smaller scale:
 * two fresh arrays per segment (its plain bytes and zstd's output) were half of what a sustained
 * write of unique data allocated, and every ZGC cycle they caused marked the server's whole live
 * set. A random 4 KiB read was the same again: a served disk's reply and the record read from the
 * pack were two fresh 4 KiB arrays per request, and a young server's first seconds of reads went
 * to faulting in the heap pages such garbage filled (see the launcher's soft heap limit). Arrays
 * under {@link #MIN_POOLED} bytes are plain allocations (the JIT makes those cheap).
 *
 * <p>Size classes are powers of two from 4 KiB to 32 MiB; {@link #take} returns an array of at
 * least the asked length, possibly longer, <b>holding old bytes</b>: callers use only the length
 * they asked for and overwrite before they read. Each class keeps at most 16 MiB of idle arrays
 * (at least one), so all classes together hold at most 224 MiB, and far less in practice.
 * Thread-safe.
 */
public final class ByteArrays {
    /** Smallest pooled length. */
    public static final int MIN_POOLED = 4 << 10;
    private static final int MIN_SHIFT = 12;
    private static final int MAX_SHIFT = 25;
    private static final long IDLE_BYTES_PER_CLASS = 16 << 20;
    @SuppressWarnings("unchecked")
    private static final Pool<byte[]>[] CLASSES = new Pool[MAX_SHIFT - MIN_SHIFT + 1];

    static {
        for (int s = MIN_SHIFT; s <= MAX_SHIFT; s++) {
            int size = 1 << s;
            CLASSES[s - MIN_SHIFT] = new Pool<>(() -> new byte[size], (int) Math.max(1, IDLE_BYTES_PER_CLASS / size));
        }
    }

    private ByteArrays() {}

    private static int shift(int length) {
        return Math.max(MIN_SHIFT, 32 - Integer.numberOfLeadingZeros(length - 1));
    }

    /** An array of at least {@code length} bytes (old content); give it back with {@link #give}. */
    public static byte[] take(int length) {
        if (length < MIN_POOLED || shift(length) > MAX_SHIFT) return new byte[length];
        return CLASSES[shift(length) - MIN_SHIFT].take();
    }

    /** Gives back an array from {@link #take} (others are ignored); the caller must not use it afterwards. */
    public static void give(byte[] a) {
        if (a == null || a.length < MIN_POOLED || Integer.bitCount(a.length) != 1) return;
        int s = Integer.numberOfTrailingZeros(a.length);
        if (s > MAX_SHIFT) return;
        CLASSES[s - MIN_SHIFT].give(a);
    }
}
