package dev.cask.server.nbd;

import dev.cask.device.Capabilities;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static dev.cask.server.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Hostile clients. Seeded garbage, truncated and mutated sessions, unknown and oversize options,
 * bad magic, out-of-range, huge and misaligned requests, writes to read-only exports, requests
 * after DISC, disconnects in the middle of a payload, and random requests checked against the
 * spec's answer and a byte-array model. Throughout, a well-behaved client on its own connection
 * keeps writing and verifying its data: nothing a bad client does may disturb it. Every
 * rejected request must leave the device unchanged; every session must end with its export
 * released.
 *
 * <p>The seed is printed and in every assertion message; replay with {@code -Dcask.seed=N}.
 */
class NbdFuzzTest {
    private static final int SIZE = 4 << 20;

    private long seed;
    private MemoryResolver resolver;
    private MemoryDevice w;      // writable, minimum block 1
    private MemoryDevice a;      // writable, minimum block 512
    private MemoryDevice ro;     // read-only export
    private MemoryDevice good;   // the well-behaved client's
    private NbdServer server;
    private Thread goodThread;
    private final AtomicBoolean stop = new AtomicBoolean();
    private final AtomicReference<Throwable> goodFailure = new AtomicReference<>();
    private final AtomicLong goodRounds = new AtomicLong();

    @BeforeEach
    void start() throws Exception {
        seed = Long.getLong("cask.seed", System.nanoTime());
        System.out.println("NbdFuzzTest seed=" + seed + " (replay with -Dcask.seed=" + seed + ")");
        Random rnd = new Random(seed);
        w = new MemoryDevice(SIZE);
        a = new MemoryDevice(SIZE, new Capabilities(true, true, true, true, true, true, true, true, 512, 4096, 1 << 20));
        ro = new MemoryDevice(SIZE);
        good = new MemoryDevice(SIZE);
        for (MemoryDevice d : new MemoryDevice[] {w, a, ro}) {
            byte[] b = new byte[256 << 10];
            rnd.nextBytes(b);
            d.write(512 << 10, b, 0, b.length, false);
        }
        resolver = new MemoryResolver()
                .add("w", w, false, "")
                .add("a", a, false, "")
                .add("ro", ro, true, "")
                .add("good", good, false, "");
        server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), resolver);
        startGoodClient();
    }

    /** A client that behaves: random writes, each read back, on its own export, until told to stop. */
    private void startGoodClient() throws Exception {
        RawClient c = new RawClient(server.port());
        c.go("good", true, true);
        byte[] model = new byte[SIZE];
        goodThread = Thread.ofPlatform().name("good client").start(() -> {
            Random rnd = new Random(seed ^ 0x600d);
            try (c) {
                long cookie = 0;
                while (!stop.get()) {
                    int len = 1 + rnd.nextInt(64 << 10);
                    int off = rnd.nextInt(SIZE - len);
                    byte[] data = new byte[len];
                    rnd.nextBytes(data);
                    RawClient.Reply wr = c.write(++cookie, off, data, rnd.nextInt(4) == 0 ? NBD_CMD_FLAG_FUA : 0);
                    if (wr.error() != 0) throw new AssertionError("good client write " + off + "+" + len + ": error " + wr.error());
                    System.arraycopy(data, 0, model, off, len);
                    int roff = rnd.nextInt(SIZE - len);
                    RawClient.Reply rd = c.read(++cookie, roff, len);
                    if (rd.error() != 0) throw new AssertionError("good client read: error " + rd.error());
                    if (!Arrays.equals(rd.data(), 0, len, model, roff, roff + len)) {
                        throw new AssertionError("good client read " + roff + "+" + len + " differs from what it wrote");
                    }
                    goodRounds.incrementAndGet();
                }
                c.disconnect();
                if (!Arrays.equals(model, good.content())) throw new AssertionError("good export content differs from the model");
            } catch (Throwable t) {
                goodFailure.set(t);
            }
        });
    }

    @AfterEach
    void stop() throws Exception {
        long before = goodRounds.get();
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (goodRounds.get() < before + 3 && goodFailure.get() == null && System.nanoTime() < deadline) Thread.sleep(5);
        stop.set(true);
        goodThread.join(10_000);
        try {
            if (goodFailure.get() != null) throw new AssertionError("seed " + seed + ": the well-behaved client failed", goodFailure.get());
            assertTrue(goodRounds.get() > before, "seed " + seed + ": the well-behaved client made progress to the end");
            awaitIdle();
        } finally {
            server.close();
        }
        assertEquals(0, resolver.held(), "seed " + seed + ": every opened export was released");
    }

    /** Waits until only the good client's connection (if any) is left. */
    private void awaitIdle() throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while ((server.connectionCount() > 1 || resolver.held() > 1) && System.nanoTime() < deadline) Thread.sleep(5);
        assertTrue(server.connectionCount() <= 1, "seed " + seed + ": connections left " + server.connectionCount());
        assertTrue(resolver.held() <= 1, "seed " + seed + ": exports still held " + resolver.held());
    }

    private RawClient client() throws IOException {
        return new RawClient(server.port());
    }

    /** Sends {@code bytes}, shuts our output and waits (draining replies) until the server closes; fails on a hang. */
    private void sendAndExpectClose(byte[] bytes, String what) throws Exception {
        try (RawClient c = client()) {
            AtomicBoolean closed = new AtomicBoolean();
            Thread drain = Thread.ofVirtual().start(() -> {
                try {
                    InputStream in = c.socket.getInputStream();
                    byte[] buf = new byte[1 << 16];
                    c.socket.setSoTimeout(10_000);
                    while (in.read(buf) >= 0) {
                        // replies, if any: not judged here
                    }
                    closed.set(true);
                } catch (IOException e) {
                    closed.set(!(e instanceof java.net.SocketTimeoutException));
                }
            });
            try {
                c.socket.getOutputStream().write(bytes);
                c.socket.shutdownOutput();
            } catch (IOException e) {
                // the server may close before reading everything (bad magic): that is a close too
            }
            drain.join(12_000);
            assertTrue(closed.get(), "seed " + seed + ": " + what + ": the server closed the connection");
        }
    }

    // ------------------------------------------------------------------ transcripts

    private static final class Transcript {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        final DataOutputStream out = new DataOutputStream(bytes);

        Transcript clientFlags(int flags) throws IOException {
            out.writeInt(flags);
            return this;
        }

        Transcript option(int option, byte[] data) throws IOException {
            out.writeLong(IHAVEOPT);
            out.writeInt(option);
            out.writeInt(data.length);
            out.write(data);
            return this;
        }

        Transcript request(int flags, int type, long cookie, long offset, int length, byte[] payload) throws IOException {
            out.writeInt(NBD_REQUEST_MAGIC);
            out.writeShort(flags);
            out.writeShort(type);
            out.writeLong(cookie);
            out.writeLong(offset);
            out.writeInt(length);
            if (payload != null) out.write(payload);
            return this;
        }

        byte[] toByteArray() {
            return bytes.toByteArray();
        }
    }

    /** A whole valid session on {@code export}: negotiation, a read, a write of {@code data} at 4096, block status, DISC. */
    private static byte[] session(String export, byte[] data) throws IOException {
        return new Transcript()
                .clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)
                .option(NBD_OPT_STRUCTURED_REPLY, new byte[0])
                .option(NBD_OPT_SET_META_CONTEXT, RawClient.metaRequest(export, BASE_ALLOCATION))
                .option(NBD_OPT_GO, RawClient.infoRequest(export, NBD_INFO_BLOCK_SIZE))
                .request(0, NBD_CMD_READ, 1, 0, 8192, null)
                .request(0, NBD_CMD_WRITE, 2, 4096, data.length, data)
                .request(0, NBD_CMD_BLOCK_STATUS, 3, 0, SIZE, null)
                .request(0, NBD_CMD_FLUSH, 4, 0, 0, null)
                .request(0, NBD_CMD_DISC, 5, 0, 0, null)
                .toByteArray();
    }

    // ------------------------------------------------------------------ cases

    @Test
    void garbageAndTruncatedHandshakes() throws Exception {
        Random rnd = new Random(seed);
        String before = w.sha256();
        for (int i = 0; i < 150; i++) {
            byte[] junk = new byte[rnd.nextInt(i % 10 == 0 ? 8 : 3000)];
            rnd.nextBytes(junk);
            if (i % 3 == 0 && junk.length >= 4) junk[0] = junk[1] = junk[2] = 0; // often plausible client flags
            sendAndExpectClose(junk, "case " + i + ": " + junk.length + " bytes of garbage");
        }
        byte[] write = new byte[8192];
        rnd.nextBytes(write);
        byte[] full = session("w", write);
        byte[] expectedAfterWrite = w.content();
        System.arraycopy(write, 0, expectedAfterWrite, 4096, write.length);
        for (int i = 0; i < 150; i++) {
            int cut = rnd.nextInt(full.length);
            sendAndExpectClose(Arrays.copyOf(full, cut), "case " + i + ": session cut at byte " + cut + " of " + full.length);
            byte[] now = w.content();
            String sha = w.sha256();
            assertTrue(sha.equals(before) || Arrays.equals(now, expectedAfterWrite),
                    "seed " + seed + " case " + i + ": a session cut at byte " + cut + " left the device neither before nor after its one write");
        }
    }

    @Test
    void mutatedSessionsNeverChangeAReadOnlyExport() throws Exception {
        Random rnd = new Random(seed);
        String before = ro.sha256();
        byte[] write = new byte[4096];
        rnd.nextBytes(write);
        byte[] full = session("ro", write);
        for (int i = 0; i < 150; i++) {
            byte[] m = full.clone();
            int flips = 1 + rnd.nextInt(4);
            for (int f = 0; f < flips; f++) m[rnd.nextInt(m.length)] = (byte) rnd.nextInt(256);
            sendAndExpectClose(m, "case " + i + ": mutated session");
            assertEquals(before, ro.sha256(), "seed " + seed + " case " + i + ": a read-only export changed");
        }
    }

    @Test
    void unknownAndOversizeOptions() throws Exception {
        Random rnd = new Random(seed);
        try (RawClient c = client()) {
            c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
            for (int i = 0; i < 200; i++) {
                int option;
                do {
                    option = rnd.nextInt(4) == 0 ? rnd.nextInt() : rnd.nextInt(64);
                } while (option >= NBD_OPT_EXPORT_NAME && option <= NBD_OPT_SET_META_CONTEXT && option != 4);
                byte[] data = new byte[rnd.nextInt(2000)];
                rnd.nextBytes(data);
                RawClient.OptionReply r = c.option(option, data).getLast();
                assertEquals(NBD_REP_ERR_UNSUP, r.type(), "seed " + seed + " case " + i + ": option " + Integer.toUnsignedString(option));
            }
            // known options with random data: an error or a proper answer, never a hang or a close
            for (int i = 0; i < 200; i++) {
                int option = new int[] {NBD_OPT_LIST, NBD_OPT_INFO, NBD_OPT_STRUCTURED_REPLY, NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT}[rnd.nextInt(5)];
                byte[] data = new byte[rnd.nextInt(40)];
                rnd.nextBytes(data);
                RawClient.OptionReply r = c.option(option, data).getLast();
                if (option == NBD_OPT_STRUCTURED_REPLY && r.type() == NBD_REP_ACK) c.structured = true;
                assertTrue(r.type() == NBD_REP_ACK || r.type() == NBD_REP_ERR_INVALID || r.type() == NBD_REP_ERR_UNKNOWN,
                        "seed " + seed + " case " + i + ": option " + option + " with " + data.length + " random bytes: reply 0x" + Integer.toHexString(r.type()));
            }
            assertEquals(NBD_REP_ACK, c.option(NBD_OPT_GO, RawClient.infoRequest("w")).getLast().type(), "still negotiating after 400 bad options");
            assertEquals(0, c.read(1, 0, 4096).error());
        }
        for (int i = 0; i < 20; i++) {
            long length = (MAX_OPTION_LENGTH + 1L) + (long) (rnd.nextDouble() * ((1L << 32) - MAX_OPTION_LENGTH - 2));
            int option = i % 4 == 0 ? NBD_OPT_EXPORT_NAME : NBD_OPT_GO;
            try (RawClient c = client()) {
                c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
                c.out.writeLong(IHAVEOPT);
                c.out.writeInt(option);
                c.out.writeInt((int) length);
                c.out.flush();
                if (option != NBD_OPT_EXPORT_NAME) {
                    RawClient.OptionReply r = c.readOptionReply();
                    assertEquals(NBD_REP_ERR_TOO_BIG, r.type(), "seed " + seed + " case " + i + ": option length " + length);
                }
                assertTrue(c.closedByServer(5_000), "seed " + seed + " case " + i + ": closed after an option of " + length + " bytes");
            }
        }
        // a name over 4096 bytes
        try (RawClient c = client()) {
            c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
            RawClient.OptionReply r = c.option(NBD_OPT_GO, RawClient.infoRequest("x".repeat(4097))).getLast();
            assertEquals(NBD_REP_ERR_INVALID, r.type());
            RawClient.OptionReply bad = c.option(NBD_OPT_GO, RawClient.infoRequest("a\0b")).getLast();
            assertEquals(NBD_REP_ERR_INVALID, bad.type(), "NUL in a name");
            byte[] utf = RawClient.infoRequest("ab");
            utf[4] = (byte) 0xc3; // a lone lead byte
            assertEquals(NBD_REP_ERR_INVALID, c.option(NBD_OPT_GO, utf).getLast().type(), "invalid UTF-8");
        }
    }

    @Test
    void badMagicHugeLengthsOutOfRangeMisalignedReadOnlyAndDisc() throws Exception {
        Random rnd = new Random(seed);
        String wBefore = w.sha256(), aBefore = a.sha256(), roBefore = ro.sha256();
        // bad request magic: the stream cannot be trusted, the server must close
        for (int i = 0; i < 20; i++) {
            try (RawClient c = client()) {
                c.go("w", i % 2 == 0, false);
                int magic;
                do {
                    magic = rnd.nextInt();
                } while (magic == NBD_REQUEST_MAGIC);
                c.out.writeInt(magic);
                c.out.write(new byte[24]);
                c.out.flush();
                assertTrue(c.closedByServer(5_000), "seed " + seed + " case " + i + ": bad magic 0x" + Integer.toHexString(magic));
            }
        }
        try (RawClient c = client()) {
            c.go("w", true, true);
            long cookie = 0;
            for (int i = 0; i < 300; i++) {
                // offsets and lengths past the end
                long off = switch (rnd.nextInt(4)) {
                    case 0 -> SIZE + rnd.nextInt(1 << 20);
                    case 1 -> -1L - rnd.nextInt(1 << 20);          // near 2^64
                    case 2 -> rnd.nextLong();
                    default -> SIZE - rnd.nextInt(4096) - 1;
                };
                int len = 1 + rnd.nextInt(8192);
                boolean past = off < 0 || off > SIZE || len > SIZE - off;
                if (!past) continue;
                int type = new int[] {NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES, NBD_CMD_BLOCK_STATUS, NBD_CMD_CACHE}[rnd.nextInt(6)];
                byte[] payload = type == NBD_CMD_WRITE ? new byte[len] : null;
                c.request(0, type, ++cookie, off, len, payload);
                RawClient.Reply r = c.reply(off, 0);
                int expected = type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
                assertEquals(expected, r.error(), "seed " + seed + " case " + i + ": " + type + " at " + Long.toUnsignedString(off) + "+" + len);
                assertEquals(cookie, r.cookie());
            }
            // huge lengths: reads over the payload limit, writes whose payload is skipped
            for (int i = 0; i < 10; i++) {
                long len = MAX_PAYLOAD + 1L + rnd.nextInt(Integer.MAX_VALUE);
                c.request(0, NBD_CMD_READ, ++cookie, 0, (int) len, null);
                assertEquals(NBD_EINVAL, c.reply(0, 0).error(), "seed " + seed + ": READ of " + len);
            }
            int big = MAX_PAYLOAD + 1 + rnd.nextInt(MAX_PAYLOAD - 1);
            c.request(0, NBD_CMD_WRITE, ++cookie, 0, big, new byte[big]);
            assertEquals(NBD_EINVAL, c.reply(0, 0).error(), "seed " + seed + ": WRITE of " + big);
            assertEquals(0, c.read(++cookie, 0, 4096).error(), "seed " + seed + ": in sync after a skipped payload");
            assertEquals(wBefore, w.sha256(), "seed " + seed + ": refused requests changed the device");
            // a WRITE over twice the limit is not read: the connection closes
            c.request(0, NBD_CMD_WRITE, ++cookie, 0, (int) (2L * MAX_PAYLOAD + 1 + rnd.nextInt(1 << 20)), null);
            assertTrue(c.closedByServer(5_000), "seed " + seed + ": closed after a WRITE over 64 MiB");
        }
        // misaligned on a 512-byte device
        try (RawClient c = client()) {
            c.go("a", false, false);
            for (int i = 0; i < 200; i++) {
                int off = rnd.nextInt(SIZE / 512) * 512;
                int len = 512 * (1 + rnd.nextInt(16));
                if (rnd.nextBoolean()) off += 1 + rnd.nextInt(511);
                else len -= 1 + rnd.nextInt(511);
                if (off + len > SIZE) continue;
                int type = new int[] {NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES, NBD_CMD_CACHE}[rnd.nextInt(5)];
                c.request(0, type, i, off, len, type == NBD_CMD_WRITE ? new byte[len] : null);
                assertEquals(NBD_EINVAL, c.reply(0, 0).error(), "seed " + seed + " case " + i + ": type " + type + " at " + off + "+" + len);
            }
            assertEquals(aBefore, a.sha256(), "seed " + seed + ": misaligned requests changed the device");
        }
        // writes to a read-only export
        try (RawClient c = client()) {
            c.go("ro", rnd.nextBoolean(), false);
            for (int i = 0; i < 100; i++) {
                int len = 1 + rnd.nextInt(65536);
                int off = rnd.nextInt(SIZE - len);
                int type = new int[] {NBD_CMD_WRITE, NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES}[rnd.nextInt(3)];
                c.request(rnd.nextBoolean() ? NBD_CMD_FLAG_FUA : 0, type, i, off, len, type == NBD_CMD_WRITE ? new byte[len] : null);
                assertEquals(NBD_EPERM, c.reply(0, 0).error(), "seed " + seed + " case " + i + ": write-side command " + type + " on a read-only export");
            }
            assertEquals(roBefore, ro.sha256(), "seed " + seed + ": a read-only export changed");
        }
        // nothing after DISC is processed
        for (int i = 0; i < 10; i++) {
            try (RawClient c = client()) {
                c.go("w", i % 2 == 0, false);
                byte[] data = new byte[4096];
                rnd.nextBytes(data);
                byte[] after = new Transcript()
                        .request(0, NBD_CMD_DISC, 1, 0, 0, null)
                        .request(0, NBD_CMD_WRITE, 2, 0, data.length, data)
                        .request(0, NBD_CMD_WRITE_ZEROES, 3, 0, SIZE, null)
                        .toByteArray();
                c.out.write(after);
                c.out.flush();
                assertTrue(c.closedByServer(5_000), "seed " + seed + ": closed after DISC");
            }
        }
        awaitIdle();
        assertEquals(wBefore, w.sha256(), "seed " + seed + ": requests after DISC changed the device");
    }

    @Test
    void disconnectsMidPayload() throws Exception {
        Random rnd = new Random(seed);
        String before = w.sha256();
        for (int i = 0; i < 100; i++) {
            RawClient c = client();
            c.go("w", rnd.nextBoolean(), false);
            int len = 1 + rnd.nextInt(1 << 20);
            byte[] partial = new byte[rnd.nextInt(len)];
            rnd.nextBytes(partial);
            c.request(0, NBD_CMD_WRITE, 1, rnd.nextInt(SIZE - len), len, partial);
            if (rnd.nextBoolean()) {
                c.socket.setSoLinger(true, 0); // reset instead of an orderly close
            }
            c.close();
        }
        awaitIdle();
        assertEquals(before, w.sha256(), "seed " + seed + ": a half-sent WRITE changed the device");
    }

    /**
     * Random requests, the spec's answer for each computed independently, and a byte-array model
     * of the export that every READ and BLOCK_STATUS is checked against.
     */
    @Test
    void randomRequestsAgainstTheSpecAndAModel() throws Exception {
        Random rnd = new Random(seed);
        byte[] model = w.content();
        for (int round = 0; round < 2; round++) {
            boolean structured = round == 0;
            try (RawClient c = client()) {
                c.go("w", structured, structured);
                for (int i = 0; i < 1500; i++) {
                    int type = rnd.nextInt(10) == 0 ? 8 + rnd.nextInt(30) : new int[] {NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM,
                            NBD_CMD_CACHE, NBD_CMD_WRITE_ZEROES, NBD_CMD_BLOCK_STATUS, NBD_CMD_READ, NBD_CMD_WRITE}[rnd.nextInt(9)];
                    int flags = 0;
                    if (rnd.nextInt(3) == 0) flags = rnd.nextInt(32);
                    if (rnd.nextInt(20) == 0) flags |= 1 << (5 + rnd.nextInt(11));
                    long off;
                    long len;
                    switch (rnd.nextInt(8)) {
                        case 0 -> {
                            off = rnd.nextLong();
                            len = rnd.nextInt(4096);
                        }
                        case 1 -> {
                            off = SIZE - rnd.nextInt(8192);
                            len = rnd.nextInt(16384);
                        }
                        case 2 -> {
                            off = type == NBD_CMD_FLUSH ? 0 : rnd.nextInt(SIZE);
                            len = type == NBD_CMD_FLUSH ? 0 : Integer.toUnsignedLong(rnd.nextInt());
                        }
                        default -> {
                            len = rnd.nextInt(8) == 0 ? 0 : 1 + rnd.nextInt(128 << 10);
                            off = rnd.nextInt((int) (SIZE - len) + 1);
                            if (type == NBD_CMD_FLUSH && rnd.nextInt(4) != 0) off = len = 0;
                        }
                    }
                    if (type == NBD_CMD_WRITE && len > (1 << 20)) len = rnd.nextInt(1 << 20); // huge writes are tested above
                    byte[] payload = null;
                    if (type == NBD_CMD_WRITE) {
                        payload = new byte[(int) len];
                        rnd.nextBytes(payload);
                    }
                    int expected = expectedError(type, flags, off, len, structured);
                    String what = "seed " + seed + " round " + round + " case " + i + ": type " + type + " flags 0x" + Integer.toHexString(flags)
                            + " at " + Long.toUnsignedString(off) + "+" + len;
                    c.request(flags, type, i, off, len, payload);
                    boolean readOk = type == NBD_CMD_READ && expected == 0;
                    RawClient.Reply r = c.reply(off, readOk ? (int) len : 0);
                    assertEquals(i, r.cookie(), what);
                    assertEquals(expected, r.error(), what + ": " + r.message());
                    if (expected != 0) continue;
                    switch (type) {
                        case NBD_CMD_READ -> assertTrue(Arrays.equals(r.data(), 0, (int) len, model, (int) off, (int) (off + len)), what + ": data differs from the model");
                        case NBD_CMD_WRITE -> System.arraycopy(payload, 0, model, (int) off, (int) len);
                        case NBD_CMD_TRIM, NBD_CMD_WRITE_ZEROES -> Arrays.fill(model, (int) off, (int) (off + len), (byte) 0);
                        case NBD_CMD_BLOCK_STATUS -> {
                            int[] d = r.descriptors();
                            long pos = off;
                            if ((flags & NBD_CMD_FLAG_REQ_ONE) != 0) assertEquals(2, d.length, what + ": REQ_ONE");
                            for (int k = 0; k < d.length; k += 2) {
                                long n = Integer.toUnsignedLong(d[k]);
                                assertTrue(n > 0, what + ": empty descriptor");
                                assertTrue(pos + n <= off + len, what + ": descriptors past the request");
                                if ((d[k + 1] & NBD_STATE_ZERO) != 0) {
                                    for (long p = pos; p < pos + n; p++) {
                                        if (model[(int) p] != 0) fail(what + ": byte " + p + " reported zero but is not");
                                    }
                                }
                                pos += n;
                            }
                            if ((flags & NBD_CMD_FLAG_REQ_ONE) == 0) assertEquals(off + len, pos, what + ": descriptors cover the request");
                        }
                        default -> {}
                    }
                }
                c.disconnect();
            }
            assertArrayEquals(model, w.content(), "seed " + seed + " round " + round + ": device differs from the model");
        }
    }

    /** The spec's answer (as this server reads it) for a request on export "w" (everything offered, minimum block 1). */
    private static int expectedError(int type, int flags, long off, long len, boolean structured) {
        boolean known = type >= NBD_CMD_READ && type <= NBD_CMD_BLOCK_STATUS && type != NBD_CMD_DISC;
        if (!known) return NBD_EINVAL;
        if ((flags & ~0x1f) != 0) return NBD_EINVAL;
        if ((flags & (NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO)) != 0 && type != NBD_CMD_WRITE_ZEROES) return NBD_EINVAL;
        if ((flags & NBD_CMD_FLAG_DF) != 0 && (type != NBD_CMD_READ || !structured)) return NBD_EINVAL;
        if ((flags & NBD_CMD_FLAG_REQ_ONE) != 0 && type != NBD_CMD_BLOCK_STATUS) return NBD_EINVAL;
        if (type == NBD_CMD_BLOCK_STATUS && !structured) return NBD_EINVAL; // no context without structured replies
        if (type == NBD_CMD_FLUSH) return off == 0 && len == 0 ? 0 : NBD_EINVAL;
        if (off < 0 || off > SIZE || len > SIZE - off) {
            return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES ? NBD_ENOSPC : NBD_EINVAL;
        }
        if (type == NBD_CMD_READ && len > MAX_PAYLOAD) return NBD_EINVAL;
        if (type == NBD_CMD_BLOCK_STATUS && len == 0) return NBD_EINVAL;
        return 0;
    }
}
