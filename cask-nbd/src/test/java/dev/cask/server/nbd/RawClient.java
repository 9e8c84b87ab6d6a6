package dev.cask.server.nbd;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static dev.cask.server.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A deliberately simple NBD client for the protocol and fuzz tests: it sends exactly the bytes
 * it is told to (including wrong ones) and decodes replies strictly, so the tests see what the
 * server really put on the wire. One request at a time; 10 s read timeout.
 */
final class RawClient implements AutoCloseable {
    record OptionReply(int option, int type, byte[] data) {
        boolean isError() {
            return type < 0;
        }

        String text() {
            return new String(data, StandardCharsets.UTF_8);
        }
    }

    record Negotiated(long size, int flags, List<OptionReply> infos) {
        boolean has(int flag) {
            return (flags & flag) != 0;
        }
    }

    record Chunk(int flags, int type, byte[] payload) {}

    /** A decoded reply: error 0 on success; data assembled for READs; descriptors for BLOCK_STATUS. */
    record Reply(long cookie, int error, String message, byte[] data, List<Chunk> chunks, int[] descriptors) {}

    final Socket socket;
    final DataInputStream in;
    final DataOutputStream out;
    boolean structured;

    RawClient(int port) throws IOException {
        socket = new Socket();
        socket.connect(new InetSocketAddress("127.0.0.1", port), 5_000);
        socket.setSoTimeout(10_000);
        socket.setTcpNoDelay(true);
        in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
        out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream()));
    }

    /** Reads the server's greeting, checks it, answers with {@code clientFlags}; returns the handshake flags. */
    int handshake(int clientFlags) throws IOException {
        assertEquals(NBDMAGIC, in.readLong(), "NBDMAGIC");
        assertEquals(IHAVEOPT, in.readLong(), "IHAVEOPT");
        int flags = in.readUnsignedShort();
        out.writeInt(clientFlags);
        out.flush();
        return flags;
    }

    void sendOption(int option, byte[] data) throws IOException {
        out.writeLong(IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    OptionReply readOptionReply() throws IOException {
        long magic = in.readLong();
        assertEquals(NBD_REP_MAGIC, magic, "option reply magic");
        int option = in.readInt();
        int type = in.readInt();
        int length = in.readInt();
        assertTrue(length >= 0 && length <= 1 << 20, "option reply length " + length);
        byte[] data = new byte[length];
        in.readFully(data);
        return new OptionReply(option, type, data);
    }

    /** Sends an option and reads replies up to the final one (ACK or an error). */
    List<OptionReply> option(int option, byte[] data) throws IOException {
        sendOption(option, data);
        List<OptionReply> replies = new ArrayList<>();
        while (true) {
            OptionReply r = readOptionReply();
            assertEquals(option, r.option(), "reply names the option");
            replies.add(r);
            if (r.type() == NBD_REP_ACK || r.isError()) return replies;
        }
    }

    static byte[] infoRequest(String name, int... infos) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(4 + n.length + 2 + 2 * infos.length);
        b.putInt(n.length).put(n).putShort((short) infos.length);
        for (int i : infos) b.putShort((short) i);
        return b.array();
    }

    static byte[] metaRequest(String name, String... queries) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        int len = 4 + n.length + 4;
        for (String q : queries) len += 4 + q.getBytes(StandardCharsets.UTF_8).length;
        ByteBuffer b = ByteBuffer.allocate(len);
        b.putInt(n.length).put(n).putInt(queries.length);
        for (String q : queries) {
            byte[] qb = q.getBytes(StandardCharsets.UTF_8);
            b.putInt(qb.length).put(qb);
        }
        return b.array();
    }

    /** Full fixed-newstyle negotiation ending in NBD_OPT_GO; fails the test if the server refuses. */
    Negotiated go(String name, boolean structuredReplies, boolean baseAllocation) throws IOException {
        int hs = handshake(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        assertEquals(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, hs, "handshake flags");
        if (structuredReplies) {
            assertEquals(NBD_REP_ACK, option(NBD_OPT_STRUCTURED_REPLY, new byte[0]).getLast().type());
            structured = true;
        }
        if (baseAllocation) {
            List<OptionReply> r = option(NBD_OPT_SET_META_CONTEXT, metaRequest(name, BASE_ALLOCATION));
            assertEquals(NBD_REP_ACK, r.getLast().type(), "SET_META_CONTEXT");
            assertEquals(2, r.size(), "one context selected");
        }
        List<OptionReply> replies = option(NBD_OPT_GO, infoRequest(name, NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE));
        OptionReply last = replies.getLast();
        if (last.type() != NBD_REP_ACK) fail("NBD_OPT_GO '" + name + "' refused: type 0x" + Integer.toHexString(last.type()) + " " + last.text());
        for (OptionReply r : replies) {
            if (r.type() == NBD_REP_INFO && ByteBuffer.wrap(r.data()).getShort() == NBD_INFO_EXPORT) {
                ByteBuffer b = ByteBuffer.wrap(r.data());
                b.getShort();
                return new Negotiated(b.getLong(), b.getShort() & 0xffff, replies);
            }
        }
        return fail("no NBD_INFO_EXPORT in the reply to NBD_OPT_GO");
    }

    void request(int flags, int type, long cookie, long offset, long length, byte[] payload) throws IOException {
        out.writeInt(NBD_REQUEST_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt((int) length);
        if (payload != null) out.write(payload);
        out.flush();
    }

    /**
     * Reads one reply. {@code readOffset}/{@code readLength} describe the READ it answers (length
     * 0 for other commands), so a simple reply's data can be read and structured chunks placed.
     */
    Reply reply(long readOffset, int readLength) throws IOException {
        int magic = in.readInt();
        if (magic == NBD_SIMPLE_REPLY_MAGIC) {
            int error = in.readInt();
            long cookie = in.readLong();
            byte[] data = new byte[error == 0 ? readLength : 0];
            in.readFully(data);
            return new Reply(cookie, error, "", data, List.of(), null);
        }
        assertEquals(NBD_STRUCTURED_REPLY_MAGIC, magic, "reply magic 0x" + Integer.toHexString(magic));
        assertTrue(structured, "structured reply without negotiation");
        byte[] data = new byte[readLength];
        boolean[] covered = new boolean[readLength];
        List<Chunk> chunks = new ArrayList<>();
        int error = 0;
        String message = "";
        int[] descriptors = null;
        long cookie;
        for (boolean first = true; ; first = false) {
            if (!first) assertEquals(NBD_STRUCTURED_REPLY_MAGIC, in.readInt(), "chunk magic");
            int flags = in.readUnsignedShort();
            int type = in.readUnsignedShort();
            cookie = in.readLong();
            int length = in.readInt();
            assertTrue(length >= 0 && length <= (64 << 20), "chunk length " + length);
            byte[] payload = new byte[length];
            in.readFully(payload);
            chunks.add(new Chunk(flags, type, payload));
            ByteBuffer b = ByteBuffer.wrap(payload);
            switch (type) {
                case NBD_REPLY_TYPE_NONE -> assertEquals(0, length, "NONE chunk length");
                case NBD_REPLY_TYPE_OFFSET_DATA -> {
                    long off = b.getLong();
                    int n = length - 8;
                    assertTrue(n > 0 && off >= readOffset && off + n <= readOffset + readLength, "data chunk " + off + "+" + n + " outside the read");
                    for (int i = 0; i < n; i++) {
                        int at = (int) (off - readOffset) + i;
                        assertTrue(!covered[at], "overlapping chunks at " + (readOffset + at));
                        covered[at] = true;
                    }
                    b.get(data, (int) (off - readOffset), n);
                }
                case NBD_REPLY_TYPE_OFFSET_HOLE -> {
                    assertEquals(12, length, "hole chunk length");
                    long off = b.getLong();
                    int n = b.getInt();
                    assertTrue(n > 0 && off >= readOffset && off + n <= readOffset + readLength, "hole chunk " + off + "+" + n + " outside the read");
                    for (int i = 0; i < n; i++) {
                        int at = (int) (off - readOffset) + i;
                        assertTrue(!covered[at], "overlapping chunks at " + (readOffset + at));
                        covered[at] = true;
                    }
                }
                case NBD_REPLY_TYPE_BLOCK_STATUS -> {
                    assertTrue(length >= 12 && (length - 4) % 8 == 0, "block status length " + length);
                    b.getInt();
                    descriptors = new int[(length - 4) / 4];
                    for (int i = 0; i < descriptors.length; i++) descriptors[i] = b.getInt();
                }
                case NBD_REPLY_TYPE_ERROR, NBD_REPLY_TYPE_ERROR_OFFSET -> {
                    error = b.getInt();
                    int mlen = b.getShort() & 0xffff;
                    assertTrue(mlen <= length - 6, "error message length " + mlen + " in a chunk of " + length);
                    byte[] m = new byte[mlen];
                    b.get(m);
                    message = new String(m, StandardCharsets.UTF_8);
                    assertTrue(error != 0, "error chunk with error 0");
                }
                default -> fail("unknown chunk type " + type);
            }
            if ((flags & NBD_REPLY_FLAG_DONE) != 0) break;
        }
        if (error == 0 && readLength > 0) {
            for (int i = 0; i < readLength; i++) assertTrue(covered[i], "byte " + (readOffset + i) + " of the read not covered by any chunk");
        }
        return new Reply(cookie, error, message, data, chunks, descriptors);
    }

    Reply read(long cookie, long offset, int length) throws IOException {
        request(0, NBD_CMD_READ, cookie, offset, length, null);
        Reply r = reply(offset, length);
        assertEquals(cookie, r.cookie(), "cookie");
        return r;
    }

    Reply write(long cookie, long offset, byte[] data, int flags) throws IOException {
        request(flags, NBD_CMD_WRITE, cookie, offset, data.length, data);
        Reply r = reply(0, 0);
        assertEquals(cookie, r.cookie(), "cookie");
        return r;
    }

    Reply command(int type, int flags, long cookie, long offset, long length) throws IOException {
        request(flags, type, cookie, offset, length, null);
        Reply r = reply(0, 0);
        assertEquals(cookie, r.cookie(), "cookie");
        return r;
    }

    void disconnect() throws IOException {
        request(0, NBD_CMD_DISC, 0, 0, 0, null);
    }

    /** True when the server has closed the connection (end of stream or reset) within the timeout. */
    boolean closedByServer(int timeoutMillis) {
        try {
            socket.setSoTimeout(timeoutMillis);
            while (true) {
                int b = in.read();
                if (b < 0) return true;
                // stray bytes (e.g. a reply to an option we did not wait for): keep reading
            }
        } catch (SocketTimeoutException e) {
            return false;
        } catch (SocketException | EOFException e) {
            return true;
        } catch (IOException e) {
            return true;
        }
    }

    @Override
    public void close() {
        try {
            socket.close();
        } catch (IOException e) {
            // test helper
        }
    }
}
