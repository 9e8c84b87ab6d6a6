package dev.cask.cli;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/**
 * A minimal NBD client for tests that need to know exactly which writes a FLUSH acknowledged
 * (fixed newstyle, NBD_OPT_GO, simple replies, one request at a time).
 */
final class NbdClient implements AutoCloseable {
    private final Socket socket;
    private final DataInputStream in;
    private final DataOutputStream out;
    final long size;
    private long handle;

    NbdClient(int port, String export) throws IOException {
        socket = new Socket("127.0.0.1", port);
        socket.setTcpNoDelay(true); // a request is one flush of a buffer: no Nagle wait for the previous one's ACK
        in = new DataInputStream(new java.io.BufferedInputStream(socket.getInputStream()));
        out = new DataOutputStream(new java.io.BufferedOutputStream(socket.getOutputStream()));
        if (in.readLong() != 0x4e42444d41474943L || in.readLong() != 0x49484156454F5054L) throw new IOException("not an NBD server");
        in.readUnsignedShort();
        out.writeInt(3); // FIXED_NEWSTYLE | NO_ZEROES
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        out.writeLong(0x49484156454F5054L);
        out.writeInt(7); // NBD_OPT_GO
        out.writeInt(4 + name.length + 2);
        out.writeInt(name.length);
        out.write(name);
        out.writeShort(0);
        out.flush();
        long exportSize = -1;
        while (true) {
            if (in.readLong() != 0x3e889045565a9L) throw new IOException("bad option reply magic");
            in.readInt();
            int type = in.readInt();
            int len = in.readInt();
            byte[] data = in.readNBytes(len);
            if (type == 1) break; // ACK
            if (type == 3 && len >= 12 && data[0] == 0 && data[1] == 0) {
                exportSize = java.nio.ByteBuffer.wrap(data, 2, 8).getLong();
            } else if (type < 0) {
                throw new IOException("server refused export '" + export + "': " + new String(data, StandardCharsets.UTF_8));
            }
        }
        size = exportSize;
    }

    private void request(int type, long offset, byte[] data, int length) throws IOException {
        out.writeInt(0x25609513);
        out.writeShort(0);
        out.writeShort(type);
        out.writeLong(++handle);
        out.writeLong(offset);
        out.writeInt(length);
        if (data != null) out.write(data, 0, length);
        out.flush();
        if (in.readInt() != 0x67446698) throw new IOException("bad reply magic");
        int error = in.readInt();
        if (in.readLong() != handle) throw new IOException("reply for another request");
        if (error != 0) throw new IOException("NBD error " + error);
    }

    void write(long offset, byte[] data) throws IOException {
        request(1, offset, data, data.length);
    }

    void flush() throws IOException {
        request(3, 0, null, 0);
    }

    byte[] read(long offset, int length) throws IOException {
        out.writeInt(0x25609513);
        out.writeShort(0);
        out.writeShort(0);
        out.writeLong(++handle);
        out.writeLong(offset);
        out.writeInt(length);
        out.flush();
        if (in.readInt() != 0x67446698) throw new IOException("bad reply magic");
        int error = in.readInt();
        in.readLong();
        if (error != 0) throw new IOException("NBD error " + error);
        byte[] data = in.readNBytes(length);
        if (data.length != length) throw new java.io.EOFException("the server closed the connection after " + data.length + " of " + length + " bytes");
        return data;
    }

    @Override
    public void close() throws IOException {
        try {
            out.writeInt(0x25609513);
            out.writeShort(0);
            out.writeShort(2); // DISC
            out.writeLong(++handle);
            out.writeLong(0);
            out.writeInt(0);
            out.flush();
        } catch (IOException ignored) {
            // the server may be gone
        }
        socket.close();
    }
}
