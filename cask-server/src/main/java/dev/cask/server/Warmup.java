package dev.cask.server;

import dev.cask.local.LocalImages;
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
import static dev.cask.server.nbd.NbdProtocol.NBD_REPLY_TYPE_OFFSET_DATA;
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
 * server a minute later it spent 0.8 s and 0.3 s, on par with qemu-nbd. Replaying a recorded boot
 * (1,263 reads, 70 writes) showed the same again after the first warm-up: the first replay took
 * 1.7 s, the next ones 0.85 s, and a replay against a different image warmed the server just as
 * well, so it is code that is cold, not data.
 *
 * <p>The work here is therefore that of a boot, smaller, in five connections: the first fills the
 * start of the image (up to {@link #FILL_BYTES} in 1 MiB writes of compressible and random blocks,
 * every other MiB random throughout, with some zero blocks, 4 KiB rewrites, a flush) and
 * disconnects, which checkpoints it (hashing, compression into segments, the pack and index
 * writes, the catalog commit); then the store is opened again, as a restarted server opens it
 * (nothing cached: reads ask the index), and the
 * second reads what was filled through the volume, as a boot does: requests from 512 bytes to
 * 1 MiB, runs of neighbouring reads and random ones, with a few writes and flushes between them;
 * the third reads random 4 KiB blocks, 16 at a time, as a database or fio's randread does (each
 * block read on its own from its pack); the fourth reads it from the start in 1 MiB reads, 8 at a
 * time, as a file copy or a backup does ({@link #sequentialReads}); the fifth reads it as a
 * read-only export. Then it
 * waits, up to {@link #SETTLE_NANOS}, until the JIT has compiled what the work queued
 * ({@link #awaitJit}). The fill stops at 40 % of {@link #BUDGET_NANOS}; the reads have
 * {@link #READ_NANOS} from the end of its checkpoint, so a slow start cannot leave them out; all
 * of it ends by twice the budget plus that wait, then the store is deleted. Its servers log
 * nothing under INFO meanwhile (their lines would name the throwaway image).
 *
 * <p>Everything runs in a private directory under the system temporary directory, with its own
 * store, catalog and server on an ephemeral loopback port: the user's store is never touched.
 * A failure is not fatal: {@link #run} returns the reason and the server starts anyway.
 */
public final class Warmup {
    /** The work's time: the fill stops at 40 % of it; the reads have {@link #READ_NANOS} after the checkpoint, all of it ends by twice this. */
    static final long BUDGET_NANOS = 2_000_000_000L;
    /** The reads' time, from the end of the fill's checkpoint. */
    static final long READ_NANOS = 1_600_000_000L;
    /** Most bytes the fill writes in 1 MiB writes (then its checkpoint is short, and the reads get the time). */
    private static final long FILL_BYTES = 16L << 20;
    /** Upper bound on the wait for the JIT after the work. */
    static final long SETTLE_NANOS = 2_000_000_000L;
    private static final long SIZE = 64L << 20;
    private static final String IMAGE = "warmup";
    /** Read sizes of a boot, smallest to largest (a Linux guest reads 4 KiB to 256 KiB mostly). */
    private static final int[] READ_SIZES = {512, 4096, 4096, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1 << 20};

    private Warmup() {}

    /** Runs the warm-up in a directory under the system's temporary directory; returns null when it ran, else why it could not (it never throws). */
    public static String run(long journalLimit) {
        return run(journalLimit, Path.of(System.getProperty("java.io.tmpdir")));
    }

    /** As {@link #run(long)}, with its throwaway store in a new directory under {@code tmp}, removed at the end. */
    public static String run(long journalLimit, Path tmp) {
        Done[] done = {null};
        return run(journalLimit, tmp, done);
    }

    /**
     * What a warm-up did: the bytes its fill wrote, and per read phase (a boot's reads through the
     * volume, random 4 KiB reads, sequential 1 MiB reads, a boot's reads of the read-only export) the reads answered and
     * how many of them returned bytes that are not all zero (what the fill wrote, not holes).
     */
    record Done(long filled, int bootReads, int bootData, int randomReads, int randomData, int sequentialReads, int sequentialData,
                int readOnlyReads, int readOnlyData) {}

    /** {@link #run(long, Path)}, telling {@code done[0]} what the work did when it ran. */
    static String run(long journalLimit, Path tmp, Done[] done) {
        loadLateClasses();
        long start = System.nanoTime();
        java.util.logging.Logger[] quiet = {java.util.logging.Logger.getLogger("cask.serve"), java.util.logging.Logger.getLogger("cask.volume"),
                java.util.logging.Logger.getLogger(NbdServer.class.getName())};
        java.util.logging.Level[] levels = new java.util.logging.Level[quiet.length];
        for (int i = 0; i < quiet.length; i++) {
            levels[i] = quiet[i].getLevel();
            quiet[i].setLevel(java.util.logging.Level.WARNING);
        }
        Path dir = null;
        try {
            dir = Files.createTempDirectory(tmp, "cask-warmup-");
            Random rnd = new Random(1);
            long filled;
            try (Images images = LocalImages.open(dir.resolve("store"))) {
                images.create(IMAGE, SIZE, 4096);
                try (ImageExports exports = new ImageExports(images, journalLimit);
                     NbdServer server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), exports)) {
                    filled = fill(server.port(), rnd, start + BUDGET_NANOS * 4 / 10);
                    awaitCheckpoint(exports, start + BUDGET_NANOS * 2); // it must end before the store closes
                }
            }
            // the reads on the store opened again, as after a restart: no location is cached, so they
            // ask the index (its queries are code a server that ran a while has compiled too)
            try (Images images = LocalImages.open(dir.resolve("store"));
                 ImageExports exports = new ImageExports(images, journalLimit);
                 NbdServer server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), exports)) {
                // the reads' slices count from here, not from the start: however long the fill and
                // its checkpoint took on this machine, the read path gets its turn
                long reads = System.nanoTime();
                long cap = start + 2 * BUDGET_NANOS;
                int[] rw = boot(server.port(), IMAGE, filled, true, rnd, Math.min(cap, reads + READ_NANOS * 3 / 10));
                int[] random = randomReads(server.port(), IMAGE, filled, rnd, Math.min(cap, reads + READ_NANOS * 6 / 10));
                int[] seq = sequentialReads(server.port(), IMAGE, filled, Math.min(cap, reads + READ_NANOS * 8 / 10));
                awaitCheckpoint(exports, cap);
                int[] ro = boot(server.port(), IMAGE + "@latest", filled, false, rnd, Math.min(cap, reads + READ_NANOS));
                done[0] = new Done(filled, rw[0], rw[1], random[0], random[1], seq[0], seq[1], ro[0], ro[1]);
            }
            awaitJit(System.nanoTime() + SETTLE_NANOS);
            return null;
        } catch (IOException | RuntimeException e) {
            return e.getMessage() == null ? e.toString() : e.getMessage();
        } finally {
            if (dir != null) deleteQuietly(dir);
            for (int i = 0; i < quiet.length; i++) quiet[i].setLevel(levels[i]);
        }
    }

    /**
     * Loads, before the work, the classes a server loads only after it, which would otherwise
     * throw away what the work compiled. The JIT compiles a call through an interface with one
     * loaded implementation as a direct call, on the condition that no second one is loaded; when
     * one is, every method compiled on that condition is deoptimised at once. Right after the
     * warm-up, {@code cask serve} loaded {@code CachingChunkStore} (a second {@code ChunkStore}:
     * its check for a --cache), and its background gc opened the JVM's first confined
     * {@link java.lang.foreign.Arena} (a second kind of memory session): 48 compiled methods of the
     * read path, the tree's and the volume's reads, {@code NbdConnection.read}, the JDK's buffer
     * and channel code, went back to the interpreter in the 10 ms after the warm-up (session 34,
     * {@code -Xlog:dependencies}), and were compiled again while the first client read. (The
     * first 1 GiB read after a restart was not measurably faster for it alone, as in session 31;
     * it keeps what the warm-up compiled, for every client after it.)
     */
    static void loadLateClasses() {
        try {
            Class.forName("dev.cask.store.cache.CachingChunkStore", false, Warmup.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            // not on the class path: then it is never loaded later either
        }
        java.lang.foreign.Arena.ofConfined().close();
    }

    /**
     * Waits until the JIT compilers have been idle for a tenth of a second (their total compile
     * time grew by less than 5 ms in 100 ms), or until {@code until}. Without this, the methods the
     * work made hot are still being compiled when the first client comes, on the cores its VM needs.
     */
    private static void awaitJit(long until) {
        var jit = java.lang.management.ManagementFactory.getCompilationMXBean();
        if (jit == null || !jit.isCompilationTimeMonitoringSupported()) return;
        long last = jit.getTotalCompilationTime();
        while (System.nanoTime() < until) {
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            long now = jit.getTotalCompilationTime();
            if (now - last < 5) return;
            last = now;
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

    /**
     * One block of warm-up data: zeros (one in eight, a hole), random bytes (one in four,
     * incompressible), or text with a few random bytes in it (compressible, so checkpoints pack
     * such runs into segments and reads decompress them).
     */
    private static void block(byte[] buf, int off, Random rnd) {
        int kind = rnd.nextInt(8);
        if (kind == 0) {
            java.util.Arrays.fill(buf, off, off + 4096, (byte) 0);
        } else if (kind <= 2) {
            byte[] b = new byte[4096];
            rnd.nextBytes(b);
            System.arraycopy(b, 0, buf, off, 4096);
        } else {
            byte[] text = "usr/lib/x86_64-linux-gnu/libc.so.6 ELF cask warm-up block \n".getBytes(StandardCharsets.US_ASCII);
            for (int i = 0; i < 4096; i++) buf[off + i] = text[i % text.length];
            for (int i = 0; i < 64; i++) buf[off + rnd.nextInt(4096)] = (byte) rnd.nextInt();
        }
    }

    /**
     * Fills the start of the image with 1 MiB writes, of {@link #block}s and (every other one) of
     * random bytes, until {@code until} (at least 1 MiB, at most {@link #FILL_BYTES}), rewrites
     * some 4 KiB blocks there, flushes, disconnects. Returns how many bytes from the start it
     * filled: the reads after it read only there. (They read all of the image until session 25, when the fill stopped at 30 % of the
     * budget: a fresh JVM's first 1 MiB write takes most of that, so the image held one MiB,
     * nearly every read met a hole or a cached segment, and the code that reads one block from a
     * pack was first compiled while a client waited on it.)
     */
    private static long fill(int port, Random rnd, long until) throws IOException {
        try (Client c = new Client(port, IMAGE)) {
            byte[] big = new byte[1 << 20];
            int mib = 0;
            while (mib < FILL_BYTES >> 20 && (mib == 0 || System.nanoTime() < until)) {
                // every other MiB random bytes throughout: a long run of incompressible blocks is
                // stored as plain records, not segments, and a sequential read of it is a run of
                // record reads from the pack, the path of a disk full of compressed files or media
                // (serve-bench's "unique" rows), which the mixed blocks alone left to the first client
                if (mib % 2 == 1) rnd.nextBytes(big);
                else for (int b = 0; b < big.length; b += 4096) block(big, b, rnd);
                c.call(NBD_CMD_WRITE, (long) mib << 20, big, big.length, null);
                mib++;
            }
            long filled = (long) mib << 20;
            byte[] small = new byte[4096];
            for (int i = 0; i < 2000 && System.nanoTime() < until; i++) {
                block(small, 0, rnd);
                c.call(NBD_CMD_WRITE, (long) rnd.nextInt((int) (filled / 4096)) * 4096, small, small.length, null);
            }
            c.call(NBD_CMD_FLUSH, 0, null, 0, null);
            return filled;
        }
    }

    /**
     * Reads as a booting guest does: a random start, then a run of neighbouring requests of one
     * size, within the first {@code filled} bytes; with {@code write}, a few 4 KiB writes and a
     * flush now and then. Disconnects at the end; returns the reads and those that met data.
     */
    private static int[] boot(int port, String export, long filled, boolean write, Random rnd, long until) throws IOException {
        try (Client c = new Client(port, export)) {
            byte[] buf = new byte[1 << 20];
            for (int run = 0; run == 0 || System.nanoTime() < until; run++) { // one run at least, however late
                int size = READ_SIZES[run % READ_SIZES.length];
                long pos = (long) rnd.nextInt((int) (filled / 512)) * 512;
                for (int i = 0; i < 8 && pos + size <= filled; i++, pos += size) {
                    c.call(NBD_CMD_READ, pos, null, size, buf);
                }
                if (write && run % 16 == 15) {
                    block(buf, 0, rnd);
                    c.call(NBD_CMD_WRITE, (long) rnd.nextInt((int) (filled / 4096)) * 4096, buf, 4096, null);
                    if (run % 64 == 63) c.call(NBD_CMD_FLUSH, 0, null, 0, null);
                }
            }
            return new int[] {c.reads, c.dataReplies};
        }
    }

    /**
     * Random 4 KiB reads, {@link #RANDOM_DEPTH} in flight, all over what the fill wrote: a guest's random
     * reads (a database, fio's randread) right after a restart. A boot's runs of neighbouring
     * reads mostly meet the caches (a segment read whole, the run-ahead); these take the path of
     * a single block read on its own (tree, location, one record read, the reply among others in
     * flight), which was otherwise first compiled while the first client waited on it: a restarted
     * server's first seconds of random reads ran at a fifth of its later speed (session 25).
     */
    private static int[] randomReads(int port, String export, long filled, Random rnd, long until) throws IOException {
        try (Client c = new Client(port, export)) {
            do {
                c.randomReads(RANDOM_DEPTH, filled, rnd);
            } while (System.nanoTime() < until);
            return new int[] {c.reads, c.dataReplies};
        }
    }

    /** Random reads in flight at once in {@link #randomReads}. */
    private static final int RANDOM_DEPTH = 16;

    /**
     * 1 MiB reads, {@link #SEQUENTIAL_DEPTH} in flight, through what the fill wrote from its start,
     * again and again: a guest copying a large file, a backup reading the disk. They take the
     * run-ahead over a pack's records and whole segments, and send 1 MiB replies. A boot's reads
     * are mostly smaller, so until session 30 that path was still at the JIT's first tiers when a
     * restarted server took its first client: a sequential read of 1 GiB right after a restart
     * (page cache warm) ran at 507-529 MiB/s, the JIT's C2 thread busy on it all along.
     */
    private static int[] sequentialReads(int port, String export, long filled, long until) throws IOException {
        try (Client c = new Client(port, export)) {
            long pos = 0;
            do {
                pos = c.sequentialReads(SEQUENTIAL_DEPTH, pos, filled);
            } while (System.nanoTime() < until);
            return new int[] {c.reads, c.dataReplies};
        }
    }

    /** Sequential reads in flight at once in {@link #sequentialReads}. */
    private static final int SEQUENTIAL_DEPTH = 8;

    /** A minimal NBD client: fixed newstyle, structured replies; one request at a time, or a batch of reads. */
    private static final class Client implements AutoCloseable {
        private final SocketChannel ch;
        private final DataInputStream in;
        private final DataOutputStream out;
        private long cookie;
        /** Reads answered, and how many of them returned bytes that are not all zero. */
        int reads;
        int dataReplies;

        Client(int port, String export) throws IOException {
            ch = SocketChannel.open(new InetSocketAddress("127.0.0.1", port));
            try {
                ch.socket().setTcpNoDelay(true);
                in = new DataInputStream(new java.io.BufferedInputStream(Channels.newInputStream(ch), 1 << 16));
                out = new DataOutputStream(new java.io.BufferedOutputStream(Channels.newOutputStream(ch), 1 << 16));
                handshake(in, out, export);
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
        }

        /** Sends one request and reads its reply (the data of a read into {@code buf}). */
        void call(int type, long offset, byte[] data, int length, byte[] buf) throws IOException {
            request(out, type, ++cookie, offset, data, length);
            boolean gotData = reply(in, cookie, cookie, buf, length);
            if (type == NBD_CMD_READ) count(gotData);
        }

        private void count(boolean gotData) {
            reads++;
            if (gotData) dataReplies++;
        }

        /** Sends {@code depth} 4 KiB reads at random blocks of the first {@code filled} bytes, then takes their replies in whatever order they come. */
        void randomReads(int depth, long filled, Random rnd) throws IOException {
            long first = cookie + 1;
            for (int i = 0; i < depth; i++) request(out, NBD_CMD_READ, ++cookie, (long) rnd.nextInt((int) (filled / 4096)) * 4096, null, 4096);
            byte[] block = new byte[4096];
            for (int left = depth; left > 0; left--) count(reply(in, first, cookie, block, 4096));
        }

        /** Sends {@code depth} 1 MiB reads from {@code pos} on (from 0 again at {@code filled}), takes their replies; returns where the next would start. */
        long sequentialReads(int depth, long pos, long filled) throws IOException {
            long first = cookie + 1;
            int size = 1 << 20;
            for (int i = 0; i < depth; i++) {
                if (pos + size > filled) pos = 0;
                request(out, NBD_CMD_READ, ++cookie, pos, null, size);
                pos += size;
            }
            byte[] buf = new byte[size];
            for (int left = depth; left > 0; left--) count(reply(in, first, cookie, buf, size));
            return pos;
        }

        @Override
        public void close() throws IOException {
            try {
                request(out, NBD_CMD_DISC, ++cookie, 0, null, 0);
            } finally {
                ch.close();
            }
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

    /**
     * Reads one reply to a request among cookies {@code first} to {@code last}: a simple reply, or
     * structured chunks (of any of them) up to one marked done; a simple read reply's data goes to
     * {@code buf} (null for a request that is not a read), as does a data chunk's. Returns whether
     * the reply carried a byte that is not zero (a read of what the fill wrote, not of a hole).
     */
    private static boolean reply(DataInputStream in, long first, long last, byte[] buf, int length) throws IOException {
        int magic = in.readInt();
        if (magic == NBD_SIMPLE_REPLY_MAGIC) {
            int error = in.readInt();
            long c = in.readLong();
            if (error != 0 || c < first || c > last) throw new IOException("warm-up: request " + c + " failed with error " + error);
            if (buf == null) return false;
            in.readFully(buf, 0, length);
            return nonZero(buf, length);
        }
        boolean data = false;
        while (true) {
            if (magic != NBD_STRUCTURED_REPLY_MAGIC) throw new IOException("warm-up: bad reply magic 0x" + Integer.toHexString(magic));
            int flags = in.readUnsignedShort();
            int type = in.readUnsignedShort();
            long c = in.readLong();
            int len = in.readInt();
            if (c < first || c > last || (type & 0x8000) != 0) { // bit 15: an error chunk
                throw new IOException("warm-up: request " + c + " failed (reply chunk type " + type + ")");
            }
            if (type == NBD_REPLY_TYPE_OFFSET_DATA && buf != null && len >= 8 && len - 8 <= buf.length) {
                in.readLong(); // the offset
                in.readFully(buf, 0, len - 8);
                data |= nonZero(buf, len - 8);
            } else {
                in.skipNBytes(len);
            }
            if ((flags & NBD_REPLY_FLAG_DONE) != 0) return data;
            magic = in.readInt();
        }
    }

    private static boolean nonZero(byte[] b, int length) {
        for (int i = 0; i < length; i++) if (b[i] != 0) return true;
        return false;
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
