package dev.cask.server.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;

/**
 * Big-endian reads and writes on one blocking socket channel, buffered both ways so a request
 * header or a chain of reply chunks costs one system call, not one per field.
 *
 * <p>Each buffer is {@link #BUFFER} bytes: enough for a header and a 4 KiB block, small enough
 * for a thousand connections. Bulk data (READ replies, WRITE payloads) moves in slices of at most {@link #SLICE} bytes:
 * the JDK copies heap buffers through a temporary direct buffer of the slice's size, so the
 * slice bounds the direct memory a connection pins, whatever the request length.
 *
 * <p><b>Stalls.</b> Every read and write system call that may block is timed: while one is
 * under way, {@link #stalledNanos} tells for how long, so the server's watchdog can close a
 * connection whose client stopped sending a payload or stopped taking its replies (a blocking
 * channel has no read timeout of its own). The wait for the first byte of the next request
 * ({@link #awaitMessage}) is not timed: a client may stay idle between requests as long as it
 * likes (TCP keepalive finds peers that vanished).
 *
 * <p>Not thread-safe. The input side belongs to the connection's reader thread; the output
 * side is used only under the connection's sending lock. The two sides share no state but the
 * two volatile stall clocks, which the watchdog reads. End of stream in the middle of a value
 * is an {@link EOFException}.
 */
final class Wire {
    static final int SLICE = 1 << 20;

    private final ByteChannel channel;
    static final int BUFFER = 16 << 10;

    private final ByteBuffer in = ByteBuffer.allocate(BUFFER).flip();
    private final ByteBuffer out = ByteBuffer.allocate(BUFFER);
    private long bytesIn;
    private volatile long readingSince;  // System.nanoTime() when a timed read began, 0 when none is under way
    private volatile long writingSince;  // likewise for writes

    Wire(ByteChannel channel) {
        this.channel = channel;
    }

    /** Bytes taken from the channel so far (for log lines about truncated input). */
    long bytesIn() {
        return bytesIn - in.remaining();
    }

    // ---- input

    /** How long the read or write under way has been blocked (the longer of the two); 0 when none is. */
    long stalledNanos(long now) {
        long r = readingSince;
        long w = writingSince;
        return Math.max(r == 0 ? 0 : now - r, w == 0 ? 0 : now - w);
    }

    /** True while a timed read is under way (the client owes us bytes), false while only a write is. */
    boolean reading() {
        return readingSince != 0;
    }

    private int read(ByteBuffer b, boolean timed) throws IOException {
        if (!timed) return channel.read(b);
        readingSince = System.nanoTime() | 1; // never 0
        try {
            return channel.read(b);
        } finally {
            readingSince = 0;
        }
    }

    private void write(ByteBuffer b) throws IOException {
        writingSince = System.nanoTime() | 1;
        try {
            channel.write(b);
        } finally {
            writingSince = 0;
        }
    }

    private void fill(int atLeast) throws IOException {
        fill(atLeast, true);
    }

    private void fill(int atLeast, boolean timed) throws IOException {
        if (in.remaining() >= atLeast) return;
        in.compact();
        try {
            while (in.position() < atLeast) {
                int n = read(in, timed);
                if (n < 0) throw new EOFException("connection closed by the client");
                bytesIn += n;
            }
        } finally {
            in.flip();
        }
    }

    /**
     * Waits for the first byte of the next message; false when the client closed the connection
     * cleanly at a message boundary.
     */
    boolean awaitMessage() throws IOException {
        if (in.hasRemaining()) return true;
        try {
            fill(1, false);
            return true;
        } catch (EOFException e) {
            return false;
        }
    }

    int readShort() throws IOException {
        fill(2);
        return in.getShort() & 0xffff;
    }

    int readInt() throws IOException {
        fill(4);
        return in.getInt();
    }

    long readLong() throws IOException {
        fill(8);
        return in.getLong();
    }

    void readFully(byte[] buffer, int offset, int length) throws IOException {
        int n = Math.min(in.remaining(), length);
        in.get(buffer, offset, n);
        int pos = offset + n;
        int end = offset + length;
        while (pos < end) {
            ByteBuffer bb = ByteBuffer.wrap(buffer, pos, Math.min(SLICE, end - pos));
            while (bb.hasRemaining()) {
                int r = read(bb, true);
                if (r < 0) throw new EOFException("connection closed by the client after " + (bb.position() - offset) + " of " + length + " bytes");
                bytesIn += r;
            }
            pos = bb.position();
        }
    }

    /**
     * Waits until {@code length} bytes (at most one buffer's worth) have arrived, without taking
     * them: a payload's first bytes, before memory is set aside for it, so a client that announces
     * a large WRITE and sends nothing more holds no buffer.
     */
    void awaitBytes(int length) throws IOException {
        fill(Math.min(length, in.capacity()));
    }

    /** Reads and drops {@code length} bytes (the payload of a refused request). */
    void skip(long length) throws IOException {
        long left = length;
        int n = (int) Math.min(in.remaining(), left);
        in.position(in.position() + n);
        left -= n;
        if (left == 0) return;
        ByteBuffer scratch = ByteBuffer.allocate((int) Math.min(64 << 10, left));
        while (left > 0) {
            scratch.clear().limit((int) Math.min(scratch.capacity(), left));
            int r = read(scratch, true);
            if (r < 0) throw new EOFException("connection closed by the client with " + left + " of " + length + " bytes unread");
            bytesIn += r;
            left -= r;
        }
    }

    // ---- output

    private void room(int n) throws IOException {
        if (out.remaining() < n) flushBuffer();
    }

    Wire putShort(int v) throws IOException {
        room(2);
        out.putShort((short) v);
        return this;
    }

    Wire putInt(int v) throws IOException {
        room(4);
        out.putInt(v);
        return this;
    }

    Wire putLong(long v) throws IOException {
        room(8);
        out.putLong(v);
        return this;
    }

    /** Queues bytes; large arrays go straight to the channel after what is buffered. */
    Wire put(byte[] bytes, int offset, int length) throws IOException {
        if (length <= out.remaining()) {
            out.put(bytes, offset, length);
            return this;
        }
        flushBuffer();
        if (length <= out.capacity() / 2) {
            out.put(bytes, offset, length);
            return this;
        }
        for (int pos = offset, end = offset + length; pos < end; ) {
            ByteBuffer bb = ByteBuffer.wrap(bytes, pos, Math.min(SLICE, end - pos));
            while (bb.hasRemaining()) write(bb);
            pos = bb.position();
        }
        return this;
    }

    /**
     * Queues the first {@code length} bytes of {@code bytes} (from index 0; its position and limit
     * are left alone): what is buffered goes first, then the buffer straight to the channel (a
     * direct buffer is sent as it is, with no copy).
     */
    Wire put(ByteBuffer bytes, int length) throws IOException {
        if (length <= out.remaining() && length <= out.capacity() / 2) {
            out.put(out.position(), bytes, 0, length);
            out.position(out.position() + length);
            return this;
        }
        flushBuffer();
        ByteBuffer bb = bytes.slice(0, length);
        while (bb.hasRemaining()) write(bb);
        return this;
    }

    Wire put(byte[] bytes) throws IOException {
        return put(bytes, 0, bytes.length);
    }

    Wire zeros(int n) throws IOException {
        room(n);
        for (int i = 0; i < n; i++) out.put((byte) 0);
        return this;
    }

    private void flushBuffer() throws IOException {
        out.flip();
        try {
            while (out.hasRemaining()) write(out);
        } finally {
            out.clear();
        }
    }

    /** Sends everything queued. */
    void flush() throws IOException {
        if (out.position() > 0) flushBuffer();
    }
}
