package dev.cask.store.s3;

import dev.cask.store.local.PackFormat;

import java.util.Arrays;

/**
 * A pack being built in memory before it is uploaded as one object: the pack header, then records
 * and segments appended back to back, exactly the bytes of a local pack file. The array grows by
 * doubling (so appends cost amortised one copy) up to the pack limit plus the largest segment. Reads of
 * chunks not yet uploaded are served from here ({@link #read}).
 *
 * <p>Thread-safe: appends and reads are synchronized (an append may replace the array).
 */
final class OpenPack {
    final int id;
    /** The largest the array grows to without a record that needs more. */
    private final int cap;
    private byte[] buf;
    private int size;
    /** Set once the object is uploaded (its bytes may then be dropped by the store). */
    volatile boolean uploaded;

    OpenPack(int id, int initialCapacity, int cap) {
        this.id = id;
        this.cap = cap;
        this.buf = new byte[Math.max(PackFormat.PACK_HEADER, initialCapacity)];
        byte[] header = PackFormat.encodePackHeader(id);
        System.arraycopy(header, 0, buf, 0, header.length);
        this.size = header.length;
    }

    /** Appends a record or segment; returns its offset in the pack. */
    synchronized long append(byte[] record) {
        if (size + record.length > buf.length) {
            long want = Math.max((long) size + record.length, Math.min(2L * buf.length, cap));
            if (want > Integer.MAX_VALUE - 16) throw new IllegalStateException("pack " + id + " would pass 2 GiB");
            buf = Arrays.copyOf(buf, (int) want);
        }
        System.arraycopy(record, 0, buf, size, record.length);
        long at = size;
        size += record.length;
        return at;
    }

    synchronized int size() {
        return size;
    }

    /** True when nothing but the header is in it. */
    synchronized boolean isEmpty() {
        return size == PackFormat.PACK_HEADER;
    }

    /** A copy of bytes {@code [offset, offset+length)}, or null when the pack does not hold them all. */
    synchronized byte[] read(long offset, int length) {
        if (offset < 0 || offset + length > size) return null;
        return Arrays.copyOfRange(buf, (int) offset, (int) offset + length);
    }

    /** The array holding the pack's {@link #size()} bytes (not a copy: sealed packs are not appended to any more). */
    synchronized byte[] array() {
        return buf;
    }
}
