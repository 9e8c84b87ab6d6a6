package dev.cask.server;

import dev.cask.common.CaskException;
import dev.cask.image.Images;
import dev.cask.server.nbd.NbdServer;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.Stream;

import static dev.cask.server.nbd.NbdProtocol.IHAVEOPT;
import static dev.cask.server.nbd.NbdProtocol.NBD_CMD_DISC;
import static dev.cask.server.nbd.NbdProtocol.NBD_CMD_FLUSH;
import static dev.cask.server.nbd.NbdProtocol.NBD_CMD_READ;
import static dev.cask.server.nbd.NbdProtocol.NBD_CMD_WRITE;
import static dev.cask.server.nbd.NbdProtocol.NBD_FLAG_C_FIXED_NEWSTYLE;
import static dev.cask.server.nbd.NbdProtocol.NBD_FLAG_C_NO_ZEROES;
import static dev.cask.server.nbd.NbdProtocol.NBD_OPT_GO;
import static dev.cask.server.nbd.NbdProtocol.NBD_OPT_STRUCTURED_REPLY;
import static dev.cask.server.nbd.NbdProtocol.NBD_REPLY_FLAG_DONE;
import static dev.cask.server.nbd.NbdProtocol.NBD_REP_ACK;
import static dev.cask.server.nbd.NbdProtocol.NBD_REQUEST_MAGIC;
import static dev.cask.server.nbd.NbdProtocol.NBD_SIMPLE_REPLY_MAGIC;
import static dev.cask.server.nbd.NbdProtocol.NBD_STRUCTURED_REPLY_MAGIC;

/**
 * Runs the hot paths of serving once, on a throwaway store, before {@code cask serve} takes its
 * first client: so that the first VM to boot meets compiled code, not the JVM's interpreter.
 *
 * <p>Why: a fresh JVM interprets every method until the JIT has seen it run often enough. A boot
 * measured against a cold server spent 4.2 s of latency in 1,259 reads and 4.2 s in 83 writes
 * (CRC32C of a 1 MiB write in interpreted code alone takes tens of milliseconds); against the same
 * server a minute later it spent 0.8 s and 0.3 s, on par with qemu-nbd. The work here is that of a
 * boot, smaller: an NBD client on loopback negotiates structured replies, writes 1 MiB and 4 KiB
 * requests (journal appends and in-place rewrites), flushes, reads them back at both sizes, and
 * disconnects, which checkpoints the image (hashing, compression, the pack and index writes, the
 * catalog commit); a second connection reads the new version through the tree, as a read-only
 * export. About a second of CPU, bounded by {@link #BUDGET_NANOS} in all, then the store is deleted.
 * Its servers log nothing under INFO meanwhile (their lines would name the throwaway image).
 *
 * <p>Everything runs in a private directory under the system temporary directory, with its own
 * store, catalog and server on an ephemeral loopback port: the user's store is never touched.
 * A failure is not fatal: {@link #run} returns the reason and the server starts anyway.
 */
public final class Warmup {
    /** Upper bound on the whole warm-up's time (a loaded machine does less of the work). */
    static final long BUDGET_NANOS = 2_000_000_000L;
    private static final long SIZE = 64L << 20;
    private static final String IMAGE = "warmup";

    private Warmup() {}

    /** Runs the warm-up; returns null when it ran, else why it could not (it never throws). */
    public static String run(long journalLimit) {
        long deadline = System.nanoTime() + BUDGET_NANOS;
        java.util.logging.Logger[] quiet = {java.util.logging.Logger.getLogger("cask.serve"), java.util.logging.Logger.getLogger(NbdServer.class.getName())};
        java.util.logging.Level[] levels = new java.util.logging.Level[quiet.length];
        for (int i = 0; i < quiet.length; i++) {
            levels[i] = quiet[i].getLevel();
            quiet[i].setLevel(java.util.logging.Level.WARNING);
        }
        Path dir = null;
        try {
            dir = Files.createTempDirectory("cask-warmup-");
            try (Images images = Images.open(dir.resolve("store"))) {
                images.create(IMAGE, SIZE, 4096);
                try (ImageExports exports = new ImageExports(images, journalLimit);
                     NbdServer server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), exports)) {
                    exercise(server.port(), IMAGE, true, deadline - BUDGET_NANOS / 2);
                    awaitCheckpoint(exports, deadline + BUDGET_NANOS); // it must end before the store closes
                    exercise(server.port(), IMAGE + "@latest", false, deadline);
                }
            }
            return null;
        } catch (IOException | RuntimeException e) {
            return e.getMessage() == null ? e.toString() : e.getMessage();
        } finally {
            if (dir != null) deleteQuietly(dir);
            for (int i = 0; i < quiet.length; i++) quiet[i].setLevel(levels[i]);
        }
    }

    /** The checkpoint on disconnect runs in the background: wait until the image is closed. */
    private static void awaitCheckpoint(ImageExports exports, long until) {
        while (!exports.openImages().isEmpty() && System.nanoTime() < until) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** One connection: handshake, then writes (when {@code write}) and reads of 1 MiB and 4 KiB, until {@code until}. */
    private static void exercise(int port, String export, boolean write, long until) throws IOException {
        try (SocketChannel ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", port))) {
            ch.socket().setTcpNoDelay(true);
            DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(Channels.newInputStream(ch), 1 << 16));
            DataOutputStream out = new DataOutputStream(new java.io.BufferedOutputStream(Channels.newOutputStream(ch), 1 << 16));
            handshake(in, out, export);
            Random rnd = new Random(1);
            byte[] big = new byte[1 << 20];
            byte[] small = new byte[4096];
            long cookie = 0;
            if (write) {
                for (int i = 0; i < 48 && System.nanoTime() < until; i++) {
                    rnd.nextBytes(big);
                    java.util.Arrays.fill(big, 0, 4096 * (i % 8), (byte) 0); // some zero blocks: hole records
                    request(out, NBD_CMD_WRITE, ++cookie, (long) (i % 32) << 20, big, big.length);
                    reply(in, cookie, null, 0);
                }
                for (int i = 0; i < 4000 && System.nanoTime() < until; i++) {
                    rnd.nextBytes(small);
                    request(out, NBD_CMD_WRITE, ++cookie, (long) rnd.nextInt((int) (SIZE / 4096)) * 4096, small, small.length);
                    reply(in, cookie, null, 0);
                }
                request(out, NBD_CMD_FLUSH, ++cookie, 0, null, 0);
                reply(in, cookie, null, 0);
            }
            for (int i = 0; i < 64 && System.nanoTime() < until; i++) {
                request(out, NBD_CMD_READ, ++cookie, (long) (i % 64) << 20, null, big.length);
                reply(in, cookie, big, big.length);
            }
            for (int i = 0; i < 8000 && System.nanoTime() < until; i++) {
                request(out, NBD_CMD_READ, ++cookie, (long) rnd.nextInt((int) (SIZE / 4096)) * 4096, null, small.length);
                reply(in, cookie, small, small.length);
            }
            request(out, NBD_CMD_DISC, ++cookie, 0, null, 0);
        }
    }

    private static void handshake(DataInputStream in, DataOutputStream out, String export) throws IOException {
        in.readLong(); // NBDMAGIC
        if (in.readLong() != IHAVEOPT) throw new IOException("warm-up: not a newstyle NBD server");
        in.readUnsignedShort();
        out.writeInt(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
        option(out, NBD_OPT_STRUCTURED_REPLY, new byte[0]);
        optionReplies(in);
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        java.nio.ByteBuffer go = java.nio.ByteBuffer.allocate(4 + name.length + 2);
        go.putInt(name.length).put(name).putShort((short) 0);
        option(out, NBD_OPT_GO, go.array());
        optionReplies(in);
    }

    private static void option(DataOutputStream out, int option, byte[] data) throws IOException {
        out.writeLong(IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    /** Reads option replies up to the final one; an error reply is an IOException. */
    private static void optionReplies(DataInputStream in) throws IOException {
        while (true) {
            in.readLong();
            in.readInt();
            int type = in.readInt();
            int len = in.readInt();
            in.skipNBytes(len);
            if (type == NBD_REP_ACK) return;
            if (type < 0) throw new IOException("warm-up: option refused (reply type 0x" + Integer.toHexString(type) + ")");
        }
    }

    private static void request(DataOutputStream out, int type, long cookie, long offset, byte[] data, int length) throws IOException {
        out.writeInt(NBD_REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt(length);
        if (data != null) out.write(data, 0, length);
        out.flush();
    }

    /** Reads the reply to {@code cookie}: a simple reply, or structured chunks up to the one marked done. */
    private static void reply(DataInputStream in, long cookie, byte[] buf, int length) throws IOException {
        int magic = in.readInt();
        if (magic == NBD_SIMPLE_REPLY_MAGIC) {
            int error = in.readInt();
            long c = in.readLong();
            if (error != 0 || c != cookie) throw new IOException("warm-up: request " + cookie + " failed with error " + error);
            if (buf != null) in.readFully(buf, 0, length);
            return;
        }
        while (true) {
            if (magic != NBD_STRUCTURED_REPLY_MAGIC) throw new IOException("warm-up: bad reply magic 0x" + Integer.toHexString(magic));
            int flags = in.readUnsignedShort();
            int type = in.readUnsignedShort();
            long c = in.readLong();
            int len = in.readInt();
            if (c != cookie || (type & 0x8000) != 0) { // bit 15: an error chunk
                throw new IOException("warm-up: request " + cookie + " failed (reply chunk type " + type + ")");
            }
            in.skipNBytes(len);
            if ((flags & NBD_REPLY_FLAG_DONE) != 0) return;
            magic = in.readInt();
        }
    }

    private static void deleteQuietly(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort: it is a temporary directory
                }
            });
        } catch (IOException | CaskException ignored) {
            // best effort
        }
    }
}
