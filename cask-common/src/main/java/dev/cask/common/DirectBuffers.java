package dev.cask.common;

import java.nio.ByteBuffer;

/**
 * Recycled direct byte buffers for large NBD read replies. A reply sent from a heap array is first
 * copied by the JDK into a temporary direct buffer, a mebibyte per mebibyte sent (a tenth of a
 * sequential read's CPU); read into a direct buffer, it goes to the socket as it is. Direct memory
 * is slow to allocate and freed only by the garbage collector, hence the pool.
 *
 * <p>Size classes are powers of two from 64 KiB to 1 MiB (the largest piece of a reply);
 * {@link #take} returns a buffer whose capacity is at least the length asked, <b>holding old
 * bytes</b>, position 0 and limit its capacity. Each class keeps at most 16 MiB of idle buffers,
 * so all of them at most 80 MiB. Thread-safe.
 */
public final class DirectBuffers {
    /** Smallest length served (shorter replies are cheap to copy). */
    public static final int MIN = 64 << 10;
    /** Largest length served. */
    public static final int MAX = 1 << 20;
    private static final int MIN_SHIFT = 16;
    private static final int MAX_SHIFT = 20;
    private static final long IDLE_BYTES_PER_CLASS = 16 << 20;
    @SuppressWarnings("unchecked")
    private static final Pool<ByteBuffer>[] CLASSES = new Pool[MAX_SHIFT - MIN_SHIFT + 1];

    static {
        for (int s = MIN_SHIFT; s <= MAX_SHIFT; s++) {
            int size = 1 << s;
            CLASSES[s - MIN_SHIFT] = new Pool<>(() -> ByteBuffer.allocateDirect(size), (int) Math.max(1, IDLE_BYTES_PER_CLASS / size));
        }
    }

    private DirectBuffers() {}

    private static int shift(int length) {
        return Math.max(MIN_SHIFT, 32 - Integer.numberOfLeadingZeros(length - 1));
    }

    /** A direct buffer of at least {@code length} bytes ({@link #MIN} to {@link #MAX}; old content); give it back with {@link #give}. */
    public static ByteBuffer take(int length) {
        if (length < 0 || length > MAX) throw new IllegalArgumentException("direct buffer of " + length + " bytes; at most " + MAX);
        return CLASSES[shift(length) - MIN_SHIFT].take().clear();
    }

    /** Gives back a buffer from {@link #take} (null is ignored); the caller must not use it afterwards. */
    public static void give(ByteBuffer b) {
        if (b == null || !b.isDirect() || Integer.bitCount(b.capacity()) != 1) return;
        int s = Integer.numberOfTrailingZeros(b.capacity());
        if (s < MIN_SHIFT || s > MAX_SHIFT) return;
        CLASSES[s - MIN_SHIFT].give(b);
    }
}
