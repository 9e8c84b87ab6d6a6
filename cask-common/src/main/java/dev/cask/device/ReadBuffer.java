package dev.cask.device;

import java.nio.ByteBuffer;

/**
 * Where a device read puts its bytes: a heap array ({@link #of(byte[])}) or a byte buffer, direct
 * or not ({@link #of(ByteBuffer)}), addressed by absolute index (a buffer's position and limit are
 * left alone). It lets one read path serve both {@link BlockDevice#read(long, byte[], int, int)}
 * and {@link BlockDevice#read(long, ByteBuffer, int, int)}: the NBD server reads large replies
 * into direct buffers, which the socket sends as they are, where a heap array is first copied
 * into a temporary direct buffer by the JDK (a tenth of a sequential read's CPU). Not thread-safe
 * as such: concurrent writers must use disjoint ranges (the parallel shares of a read do).
 */
public sealed interface ReadBuffer {
    /** Copies {@code src[off, off+len)} to index {@code at}. */
    void put(int at, byte[] src, int off, int len);

    /** Copies {@code len} bytes of {@code src} from its index {@code srcAt} to index {@code at} (src's position is left alone). */
    void put(int at, ByteBuffer src, int srcAt, int len);

    /** Zeros {@code [from, to)}. */
    void zero(int from, int to);

    static ReadBuffer of(byte[] buffer) {
        return new Array(buffer);
    }

    static ReadBuffer of(ByteBuffer buffer) {
        return buffer.hasArray() ? new Array(buffer.array(), buffer.arrayOffset()) : new Buffer(buffer);
    }

    /** A heap array, from index {@code base}. */
    record Array(byte[] array, int base) implements ReadBuffer {
        Array(byte[] array) {
            this(array, 0);
        }

        @Override
        public void put(int at, byte[] src, int off, int len) {
            System.arraycopy(src, off, array, base + at, len);
        }

        @Override
        public void put(int at, ByteBuffer src, int srcAt, int len) {
            src.get(srcAt, array, base + at, len);
        }

        @Override
        public void zero(int from, int to) {
            java.util.Arrays.fill(array, base + from, base + to, (byte) 0);
        }
    }

    /** A byte buffer without an accessible array (direct). */
    record Buffer(ByteBuffer buffer) implements ReadBuffer {
        private static final byte[] ZEROS = new byte[64 << 10];

        @Override
        public void put(int at, byte[] src, int off, int len) {
            buffer.put(at, src, off, len);
        }

        @Override
        public void put(int at, ByteBuffer src, int srcAt, int len) {
            buffer.put(at, src, srcAt, len);
        }

        @Override
        public void zero(int from, int to) {
            for (int at = from; at < to; at += ZEROS.length) buffer.put(at, ZEROS, 0, Math.min(ZEROS.length, to - at));
        }
    }
}
