package dev.cask.device;

import java.util.List;

/**
 * A disk as a range of bytes: what the NBD server serves, what importers read and exporters
 * write. It knows nothing about trees or stores.
 *
 * <p>Contract, for every implementation:
 * <ul>
 *   <li>{@link #size()} is fixed for the life of the object.
 *   <li>{@link #read} MUST fill exactly {@code length} bytes or throw; offsets are checked:
 *       {@code offset < 0}, {@code length < 0} or {@code offset + length > size()} throw
 *       {@link IllegalArgumentException} before anything is read. Reads of holes return zeros.
 *   <li>Write-side methods MUST throw {@link UnsupportedOperationException} unless
 *       {@link #capabilities()} says they are supported; a failed call changes nothing visible.
 *   <li>{@link #blockStatus} MUST cover exactly {@code [offset, offset+length)} with
 *       contiguous, non-empty, non-overlapping entries in ascending order. A range reported as
 *       a hole MUST read as zeros; a range reported as data may also read as zeros.
 *   <li>Implementations say whether they are thread-safe; read-only ones should be.
 * </ul>
 */
public interface BlockDevice extends AutoCloseable {
    long size();

    Capabilities capabilities();

    /**
     * Reads {@code [offset, offset+length)} into {@code buffer} at {@code bufferOffset}. MUST write
     * every one of the {@code length} bytes (holes as zeros): callers pass recycled buffers that
     * hold old data. Throws {@link dev.cask.common.CaskException} when the data cannot be read
     * (corrupt data is an error, never wrong bytes); what was written to the buffer is then undefined.
     */
    void read(long offset, byte[] buffer, int bufferOffset, int length);

    /**
     * Reads {@code [offset, offset+length)} into {@code buffer} from its index {@code bufferIndex}
     * (absolute: its position and limit are left alone), with the contract of
     * {@link #read(long, byte[], int, int)}. The default reads into a heap array and copies; a
     * device the NBD server reads much from implements it directly (see {@link ReadBuffer}).
     */
    default void read(long offset, java.nio.ByteBuffer buffer, int bufferIndex, int length) {
        if (buffer.hasArray()) {
            read(offset, buffer.array(), buffer.arrayOffset() + bufferIndex, length);
            return;
        }
        checkRange(this, offset, length);
        byte[] tmp = dev.cask.common.ByteArrays.take(length);
        try {
            read(offset, tmp, 0, length);
            buffer.put(bufferIndex, tmp, 0, length);
        } finally {
            dev.cask.common.ByteArrays.give(tmp);
        }
    }

    default void write(long offset, byte[] buffer, int bufferOffset, int length, boolean fua) {
        throw new UnsupportedOperationException("device is read-only");
    }

    /** Makes {@code [offset, offset+length)} read as zeros. */
    default void zero(long offset, long length, boolean fua) {
        throw new UnsupportedOperationException("device is read-only");
    }

    /** Hints that the range is no longer needed; it MAY then read as zeros or as before. */
    default void trim(long offset, long length) {
        throw new UnsupportedOperationException("device is read-only");
    }

    /** Makes every completed write durable. */
    default void flush() {
        throw new UnsupportedOperationException("device is read-only");
    }

    /** Allocation map of the range: see the class contract. */
    List<BlockStatus> blockStatus(long offset, long length);

    @Override
    void close();

    /** Checks a request's range against the device size; every implementation calls this first. */
    static void checkRange(BlockDevice device, long offset, long length) {
        if (offset < 0 || length < 0 || offset > device.size() - length) {
            throw new IllegalArgumentException("range " + offset + "+" + length + " outside device of size " + device.size());
        }
    }
}
