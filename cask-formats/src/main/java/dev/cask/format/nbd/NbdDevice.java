package dev.cask.format.nbd;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.cask.server.nbd.NbdProtocol.*;

/**
 * An NBD export on a server (qemu-nbd, nbdkit, another cask...) as a {@link BlockDevice}: the
 * client side of the protocol, for import from and export to {@code nbd://} URIs, and for the
 * formats that QEMU reads and writes for cask ({@link QemuNbd}).
 *
 * <p>Negotiation is fixed newstyle: {@code NBD_OPT_STRUCTURED_REPLY} and, when that is accepted,
 * {@code NBD_OPT_SET_META_CONTEXT base:allocation}, then {@code NBD_OPT_GO} (or, on a server that
 * does not know it, {@code NBD_OPT_EXPORT_NAME}). Replies may be simple or structured;
 * {@link #blockStatus} asks {@code NBD_CMD_BLOCK_STATUS} when the context was granted, so holes
 * are never read, and reports a range as a hole only when the server says it reads as zeros
 * ({@code NBD_STATE_ZERO}); without the context everything is data.
 *
 * <p>One caller at a time (every method is synchronized), but not one request: a read or write
 * is cut into pieces of 256 KiB that go out together, up to 16 unanswered, and their replies are
 * taken in any order by cookie, so a server that works on requests in parallel (qemu-nbd) is kept
 * busy; one request at a time made a vmdk import twenty times slower than qemu-img convert. A server error is a {@link CaskException.Io}
 * naming the export, the command, the range and the NBD error; a closed connection likewise.
 */
public final class NbdDevice implements BlockDevice {
    private static final int MAX_REQUEST = 32 << 20;
    /** Size of one READ or WRITE request; a larger read is cut into pieces sent together. */
    private static final int PIECE = 256 << 10;
    /** Requests sent before the first reply is read (qemu-nbd serves up to 16 at once). */
    private static final int IN_FLIGHT = 16;

    private final String what;
    private final SocketChannel channel;
    private final DataInputStream in;
    private final DataOutputStream out;
    private long size;
    private int flags;
    private boolean structured;
    private int allocationContext = -1;
    private int maxRequest = MAX_REQUEST;
    private long cookie;
    private boolean closed;

    private NbdDevice(String what, SocketChannel channel) {
        this.what = what;
        this.channel = channel;
        this.in = new DataInputStream(new BufferedInputStream(Channels.newInputStream(channel), 1 << 16));
        this.out = new DataOutputStream(new BufferedOutputStream(Channels.newOutputStream(channel), 1 << 16));
    }

    /** Connects to the export {@code uri} names and negotiates; {@code writable} requires a read-write export. */
    public static NbdDevice connect(NbdUri uri, boolean writable) {
        String what = uri.toString();
        SocketChannel ch;
        try {
            if (uri.socket() != null) {
                ch = SocketChannel.open(StandardProtocolFamily.UNIX);
                ch.connect(UnixDomainSocketAddress.of(uri.socket()));
            } else {
                ch = SocketChannel.open(new InetSocketAddress(uri.host(), uri.port()));
                ch.socket().setTcpNoDelay(true);
            }
        } catch (IOException e) {
            throw new CaskException.Io(what + ": cannot connect: " + e.getMessage(), e);
        }
        NbdDevice d = new NbdDevice(what, ch);
        try {
            d.negotiate(uri.export());
        } catch (IOException e) {
            d.closeChannel();
            throw new CaskException.Io(what + ": handshake failed: " + (e instanceof EOFException ? "connection closed by the server" : e.getMessage()), e);
        } catch (RuntimeException e) {
            d.closeChannel();
            throw e;
        }
        if (writable && (d.flags & NBD_FLAG_READ_ONLY) != 0) {
            d.close();
            throw new CaskException.InvalidInput(what + ": the export is read-only");
        }
        return d;
    }

    // ------------------------------------------------------------------ negotiation

    private void negotiate(String export) throws IOException {
        long magic = in.readLong();
        if (magic != NBDMAGIC) throw new CaskException.InvalidInput(what + ": not an NBD server (magic 0x" + Long.toHexString(magic) + ")");
        long style = in.readLong();
        if (style != IHAVEOPT) throw new CaskException.InvalidInput(what + ": server speaks oldstyle NBD (0x" + Long.toHexString(style) + "); cask needs newstyle");
        int hs = in.readUnsignedShort();
        if ((hs & NBD_FLAG_FIXED_NEWSTYLE) == 0) throw new CaskException.InvalidInput(what + ": server is not fixed newstyle (handshake flags 0x" + Integer.toHexString(hs) + ")");
        boolean noZeroes = (hs & NBD_FLAG_NO_ZEROES) != 0;
        out.writeInt(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0));

        sendOption(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
        structured = readOptionReplies(NBD_OPT_STRUCTURED_REPLY, null);
        if (structured) {
            byte[] name = export.getBytes(StandardCharsets.UTF_8);
            byte[] query = BASE_ALLOCATION.getBytes(StandardCharsets.UTF_8);
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 + name.length + 4 + 4 + query.length);
            b.putInt(name.length).put(name).putInt(1).putInt(query.length).put(query);
            sendOption(NBD_OPT_SET_META_CONTEXT, b.array());
            readOptionReplies(NBD_OPT_SET_META_CONTEXT, null);
        }
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        java.nio.ByteBuffer go = java.nio.ByteBuffer.allocate(4 + name.length + 2 + 2);
        go.putInt(name.length).put(name).putShort((short) 1).putShort((short) NBD_INFO_BLOCK_SIZE);
        sendOption(NBD_OPT_GO, go.array());
        int[] unsupported = {0};
        boolean ok = readOptionReplies(NBD_OPT_GO, unsupported);
        if (!ok && unsupported[0] == NBD_REP_ERR_UNSUP) {
            // an old server: NBD_OPT_EXPORT_NAME has no error reply, the server just closes
            out.writeLong(IHAVEOPT);
            out.writeInt(NBD_OPT_EXPORT_NAME);
            out.writeInt(name.length);
            out.write(name);
            out.flush();
            size = in.readLong();
            flags = in.readUnsignedShort();
            if (!noZeroes) in.skipNBytes(124);
            allocationContext = -1;
        } else if (!ok) {
            throw new AssertionError("unreachable: readOptionReplies throws on errors other than UNSUP");
        }
    }

    private void sendOption(int option, byte[] data) throws IOException {
        out.writeLong(IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    /**
     * Reads the replies to one option up to the final one. True on ACK. An error reply is false for
     * STRUCTURED_REPLY and SET_META_CONTEXT (features we can do without) and for GO when the server
     * does not know GO ({@code unsupported[0]} is then set); any other error is thrown.
     */
    private boolean readOptionReplies(int option, int[] unsupported) throws IOException {
        while (true) {
            long magic = in.readLong();
            if (magic != NBD_REP_MAGIC) throw new CaskException.InvalidInput(what + ": bad option reply magic 0x" + Long.toHexString(magic));
            int opt = in.readInt();
            int type = in.readInt();
            int length = in.readInt();
            if (opt != option || length < 0 || length > 1 << 20) {
                throw new CaskException.InvalidInput(what + ": bad reply to option " + option + " (option " + opt + ", length " + length + ")");
            }
            byte[] data = in.readNBytes(length);
            if (data.length < length) throw new EOFException();
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(data);
            if (type == NBD_REP_ACK) return true;
            if (type == NBD_REP_META_CONTEXT && length >= 4) {
                int id = b.getInt();
                if (new String(data, 4, length - 4, StandardCharsets.UTF_8).equals(BASE_ALLOCATION)) allocationContext = id;
            } else if (type == NBD_REP_INFO && length >= 2) {
                int info = b.getShort() & 0xffff;
                if (info == NBD_INFO_EXPORT && length >= 12) {
                    size = b.getLong();
                    flags = b.getShort() & 0xffff;
                } else if (info == NBD_INFO_BLOCK_SIZE && length >= 14) {
                    b.getInt();
                    b.getInt();
                    int max = b.getInt();
                    if (max > 0) maxRequest = Math.min(MAX_REQUEST, max);
                }
            } else if (type < 0) {
                String message = new String(data, StandardCharsets.UTF_8);
                if (option != NBD_OPT_GO) return false;
                if (type == NBD_REP_ERR_UNSUP && unsupported != null) {
                    unsupported[0] = type;
                    return false;
                }
                String reason = type == NBD_REP_ERR_UNKNOWN ? "no such export" : type == NBD_REP_ERR_TLS_REQD ? "the server requires TLS"
                        : type == NBD_REP_ERR_POLICY ? "refused by the server's policy" : "error 0x" + Integer.toHexString(type);
                CaskException.InvalidInput e = new CaskException.InvalidInput(what + ": cannot open the export: " + reason
                        + (message.isBlank() ? "" : " (" + message.strip() + ")"));
                if (type == NBD_REP_ERR_UNKNOWN) throw new CaskException.NotFound(e.getMessage());
                throw e;
            }
        }
    }

    // ------------------------------------------------------------------ BlockDevice

    @Override
    public long size() {
        return size;
    }

    @Override
    public Capabilities capabilities() {
        boolean rw = (flags & NBD_FLAG_READ_ONLY) == 0;
        return new Capabilities(rw, rw && (flags & NBD_FLAG_SEND_FLUSH) != 0, false, false, rw, false, true, false,
                1, 4096, maxRequest);
    }

    /** True when the server said the export can take writes. */
    public boolean writable() {
        return (flags & NBD_FLAG_READ_ONLY) == 0;
    }

    @Override
    public synchronized void read(long offset, byte[] buffer, int bufferOffset, int length) {
        BlockDevice.checkRange(this, offset, length);
        List<Pending> reqs = new ArrayList<>();
        int piece = Math.min(maxRequest, PIECE);
        for (int done = 0, n; done < length; done += n) {
            n = Math.min(piece, length - done);
            reqs.add(new Pending(NBD_CMD_READ, 0, offset + done, n, buffer, bufferOffset + done, null));
        }
        run(reqs);
    }

    @Override
    public synchronized void write(long offset, byte[] buffer, int bufferOffset, int length, boolean fua) {
        BlockDevice.checkRange(this, offset, length);
        requireWritable();
        List<Pending> reqs = new ArrayList<>();
        int piece = Math.min(maxRequest, PIECE);
        for (int done = 0, n; done < length; done += n) {
            n = Math.min(piece, length - done);
            reqs.add(new Pending(NBD_CMD_WRITE, fua ? NBD_CMD_FLAG_FUA : 0, offset + done, n, buffer, bufferOffset + done, null));
        }
        run(reqs);
    }

    /** Zeroes the range: NBD_CMD_WRITE_ZEROES when the server offers it, else written zeros. */
    @Override
    public synchronized void zero(long offset, long length, boolean fua) {
        BlockDevice.checkRange(this, offset, length);
        requireWritable();
        if ((flags & NBD_FLAG_SEND_WRITE_ZEROES) != 0) {
            List<Pending> reqs = new ArrayList<>();
            for (long done = 0; done < length; ) {
                int n = (int) Math.min(1 << 30, length - done);
                reqs.add(new Pending(NBD_CMD_WRITE_ZEROES, fua ? NBD_CMD_FLAG_FUA : 0, offset + done, n, null, 0, null));
                done += n;
            }
            run(reqs);
            return;
        }
        byte[] zeros = new byte[(int) Math.min(maxRequest, Math.min(length, 4 << 20))];
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(zeros.length, length - done);
            write(offset + done, zeros, 0, n, fua);
            done += n;
        }
    }

    @Override
    public synchronized void flush() {
        requireWritable();
        if ((flags & NBD_FLAG_SEND_FLUSH) == 0) return; // the server has nothing to flush
        run(List.of(new Pending(NBD_CMD_FLUSH, 0, 0, 0, null, 0, null)));
    }

    @Override
    public synchronized List<BlockStatus> blockStatus(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        List<BlockStatus> outList = new ArrayList<>();
        if (length == 0) return outList;
        if (allocationContext < 0) return List.of(new BlockStatus(offset, length, false));
        long pos = offset, end = offset + length;
        while (pos < end) {
            int n = (int) Math.min(1L << 30, end - pos);
            List<long[]> descriptors = new ArrayList<>();
            run(List.of(new Pending(NBD_CMD_BLOCK_STATUS, 0, pos, n, null, 0, descriptors)));
            long before = pos;
            for (long[] d : descriptors) {
                long len = Math.min(d[0], end - pos);
                if (len <= 0) break;
                add(outList, pos, len, (d[1] & NBD_STATE_ZERO) != 0);
                pos += len;
            }
            if (pos == before) throw new CaskException.Io(what + ": BLOCK_STATUS at offset " + pos + " described no bytes", null);
        }
        return outList;
    }

    private static void add(List<BlockStatus> list, long offset, long length, boolean hole) {
        if (!list.isEmpty() && list.getLast().hole() == hole && list.getLast().end() == offset) {
            BlockStatus last = list.removeLast();
            list.add(new BlockStatus(last.offset(), last.length() + length, hole));
        } else {
            list.add(new BlockStatus(offset, length, hole));
        }
    }

    // ------------------------------------------------------------------ transmission

    private void requireWritable() {
        if (!writable()) throw new UnsupportedOperationException(what + ": the export is read-only");
    }

    /** One request on the wire: what it asks, where its READ data goes, and how it ended. */
    private static final class Pending {
        final int type;
        final int cmdFlags;
        final long offset;
        final int length;
        final byte[] buffer;
        final int bufferOffset;
        final List<long[]> descriptors;
        long cookie;
        int error;
        String message = "";

        Pending(int type, int cmdFlags, long offset, int length, byte[] buffer, int bufferOffset, List<long[]> descriptors) {
            this.type = type;
            this.cmdFlags = cmdFlags;
            this.offset = offset;
            this.length = length;
            this.buffer = buffer;
            this.bufferOffset = bufferOffset;
            this.descriptors = descriptors;
        }

        int readLength() {
            return type == NBD_CMD_READ ? length : 0;
        }
    }

    /**
     * Sends the requests, at most {@link #IN_FLIGHT} unanswered at a time (a server such as
     * qemu-nbd works on them in parallel, as qemu-img convert's parallel requests do), and reads
     * the replies in whatever order they come. After a failed request no more are sent; the ones
     * on the wire are still read, then the first failure is thrown.
     */
    private void run(List<Pending> reqs) {
        java.util.Map<Long, Pending> inFlight = new java.util.HashMap<>();
        Pending failed = null;
        int next = 0;
        Pending current = reqs.getFirst();
        try {
            while ((failed == null && next < reqs.size()) || !inFlight.isEmpty()) {
                boolean sent = false;
                while (failed == null && next < reqs.size() && inFlight.size() < IN_FLIGHT) {
                    Pending p = reqs.get(next++);
                    current = p;
                    if (p.type == NBD_CMD_READ && structured) Arrays.fill(p.buffer, p.bufferOffset, p.bufferOffset + p.length, (byte) 0);
                    p.cookie = send(p.type, p.cmdFlags, p.offset, p.length, p.type == NBD_CMD_WRITE ? p.buffer : null, p.bufferOffset);
                    inFlight.put(p.cookie, p);
                    sent = true;
                }
                if (sent) out.flush();
                Pending done = readMessage(inFlight);
                if (done != null) {
                    inFlight.remove(done.cookie);
                    if (done.error != 0 && failed == null) failed = done;
                }
            }
        } catch (IOException e) {
            throw failed(dev.cask.server.nbd.NbdProtocol.commandName(current.type), current.offset, current.length, e);
        }
        if (failed != null) {
            throw serverError(dev.cask.server.nbd.NbdProtocol.commandName(failed.type), failed.offset, failed.length, failed.error, failed.message);
        }
    }

    private long send(int type, int cmdFlags, long offset, int length, byte[] payload, int payloadOffset) throws IOException {
        if (closed) throw new IOException("connection closed");
        long c = ++cookie;
        out.writeInt(NBD_REQUEST_MAGIC);
        out.writeShort(cmdFlags);
        out.writeShort(type);
        out.writeLong(c);
        out.writeLong(offset);
        out.writeInt(length);
        if (payload != null) out.write(payload, payloadOffset, length);
        return c;
    }

    /**
     * Reads one simple reply or one structured reply chunk and applies it to the request it names.
     * Returns that request when this message finished it, else null. READ data lands in the
     * request's buffer (structured: holes were zero-filled before sending); BLOCK_STATUS
     * descriptors (length, flags) of our context go to its list.
     */
    private Pending readMessage(java.util.Map<Long, Pending> inFlight) throws IOException {
        int magic = in.readInt();
        if (magic == NBD_SIMPLE_REPLY_MAGIC) {
            int error = in.readInt();
            Pending p = pending(inFlight, in.readLong());
            p.error = error;
            if (error == 0 && p.readLength() > 0) in.readFully(p.buffer, p.bufferOffset, p.length);
            return p;
        }
        if (magic != NBD_STRUCTURED_REPLY_MAGIC || !structured) {
            throw new CaskException.Io(what + ": bad reply magic 0x" + Integer.toHexString(magic), null);
        }
        int chunkFlags = in.readUnsignedShort();
        int type = in.readUnsignedShort();
        Pending p = pending(inFlight, in.readLong());
        int length = in.readInt();
        if (length < 0) throw new CaskException.Io(what + ": reply chunk length " + Integer.toUnsignedString(length), null);
        switch (type) {
            case NBD_REPLY_TYPE_NONE -> in.skipNBytes(length);
            case NBD_REPLY_TYPE_OFFSET_DATA -> {
                long at = in.readLong();
                int n = length - 8;
                if (at < p.offset || n < 0 || at - p.offset + n > p.readLength()) {
                    throw new CaskException.Io(what + ": READ reply data at " + at + "+" + n + " outside " + p.offset + "+" + p.readLength(), null);
                }
                in.readFully(p.buffer, p.bufferOffset + (int) (at - p.offset), n);
            }
            case NBD_REPLY_TYPE_OFFSET_HOLE -> {
                long at = in.readLong();
                int n = in.readInt();
                if (at < p.offset || n < 0 || at - p.offset + n > p.readLength()) {
                    throw new CaskException.Io(what + ": READ reply hole at " + at + "+" + n + " outside " + p.offset + "+" + p.readLength(), null);
                }
                in.skipNBytes(length - 12);
            }
            case NBD_REPLY_TYPE_BLOCK_STATUS -> {
                int id = in.readInt();
                for (int left = length - 4; left >= 8; left -= 8) {
                    long len = in.readInt() & 0xffffffffL;
                    long st = in.readInt() & 0xffffffffL;
                    if (id == allocationContext && p.descriptors != null) p.descriptors.add(new long[]{len, st});
                }
                in.skipNBytes((length - 4) % 8);
            }
            default -> {
                if ((type & (1 << 15)) != 0 && length >= 6) {
                    int error = in.readInt();
                    int msgLen = in.readUnsignedShort();
                    byte[] msg = in.readNBytes(Math.min(msgLen, length - 6));
                    if (p.error == 0) {
                        p.error = error == 0 ? NBD_EIO : error;
                        p.message = new String(msg, StandardCharsets.UTF_8);
                    }
                    in.skipNBytes(length - 6 - msg.length);
                } else {
                    in.skipNBytes(length);
                }
            }
        }
        return (chunkFlags & NBD_REPLY_FLAG_DONE) != 0 ? p : null;
    }

    private Pending pending(java.util.Map<Long, Pending> inFlight, long c) {
        Pending p = inFlight.get(c);
        if (p == null) throw new CaskException.Io(what + ": reply for request " + c + ", which is not waiting for one", null);
        return p;
    }

    private CaskException serverError(String command, long offset, int length, int error, String message) {
        String name = switch (error) {
            case NBD_EPERM -> "EPERM";
            case NBD_EIO -> "EIO";
            case NBD_ENOMEM -> "ENOMEM";
            case NBD_EINVAL -> "EINVAL";
            case NBD_ENOSPC -> "ENOSPC";
            case NBD_EOVERFLOW -> "EOVERFLOW";
            case NBD_ENOTSUP -> "ENOTSUP";
            case NBD_ESHUTDOWN -> "ESHUTDOWN";
            default -> "error " + error;
        };
        return new CaskException.Io(what + ": " + command + " at offset " + offset + (length > 0 ? " length " + length : "")
                + " failed: " + name + (message.isBlank() ? "" : " (" + message.strip() + ")"), null);
    }

    private CaskException failed(String command, long offset, int length, IOException e) {
        String why = e instanceof EOFException ? "connection closed by the server" : e.getMessage();
        return new CaskException.Io(what + ": " + command + " at offset " + offset + " length " + length + " failed: " + why, e);
    }

    /** Sends NBD_CMD_DISC (the server then finishes and closes) and closes the socket. */
    @Override
    public synchronized void close() {
        if (closed) return;
        try {
            send(NBD_CMD_DISC, 0, 0, 0, null, 0);
            out.flush();
        } catch (IOException ignored) {
            // the server is gone already
        }
        closeChannel();
    }

    private void closeChannel() {
        closed = true;
        try {
            channel.close();
        } catch (IOException ignored) {
            // nothing to lose: every write was answered
        }
    }
}
