package dev.cask.server.nbd;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static dev.cask.server.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Clients that stop halfway cannot hurt the others (issue 10, item 2): hundreds of writers that
 * announce a 32 MiB WRITE and send one byte (or a few KiB) while normal clients, RawClient and
 * qemu-io, write and read 32 MiB requests and get their data back; stalled clients closed after
 * the request timeout, giving back their buffers; idle clients left alone; TCP keepalive; the
 * connection limit.
 */
class NbdStallTest {
    private static final int MiB = 1 << 20;

    private MemoryResolver resolver;
    private MemoryDevice disk;
    private NbdServer server;
    private final List<RawClient> clients = new ArrayList<>();

    @BeforeEach
    void setUp() {
        disk = new MemoryDevice(128L * MiB);
        resolver = new MemoryResolver().add("disk", disk, false, "");
    }

    @AfterEach
    void tearDown() {
        for (RawClient c : clients) c.close();
        if (server != null) server.close();
        assertEquals(0, resolver.held(), "every opened export was released");
    }

    private void start(NbdServer.Options options) {
        server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), resolver, options);
    }

    private RawClient connect(boolean structured) throws IOException {
        RawClient c = new RawClient(server.port());
        clients.add(c);
        c.go("disk", structured, false);
        return c;
    }

    /** A client that announces a WRITE of {@code length} bytes and sends only {@code sent} of them. */
    private RawClient stalledWriter(long offset, int length, int sent) throws IOException {
        RawClient c = connect(false);
        c.out.writeInt(NBD_REQUEST_MAGIC);
        c.out.writeShort(0);
        c.out.writeShort(NBD_CMD_WRITE);
        c.out.writeLong(1);
        c.out.writeLong(offset);
        c.out.writeInt(length);
        c.out.write(new byte[sent]);
        c.out.flush();
        return c;
    }

    private static byte[] random(int length, long seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** Writes 32 MiB at {@code offset} and reads it back, as one client would. */
    private void writeAndReadBack(boolean structured, long offset, long seed) throws IOException {
        RawClient c = connect(structured);
        byte[] data = random(32 * MiB, seed);
        assertEquals(0, c.write(10, offset, data, 0).error(), "32 MiB WRITE at " + offset);
        RawClient.Reply r = c.read(11, offset, data.length);
        assertEquals(0, r.error(), "32 MiB READ at " + offset + ": " + r.message());
        assertArrayEquals(data, r.data(), "data read back at " + offset);
    }

    private static void await(CompletableFuture<?> f, String what) throws Exception {
        try {
            f.get(5, TimeUnit.MINUTES); // a hang detector, not a speed limit
        } catch (TimeoutException e) {
            fail(what + " did not finish: starved by the stalled clients");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Error err) throw err;
            throw e;
        }
    }

    @Test
    void stalledWritersDoNotStarveOtherClients() throws Exception {
        // a request timeout far longer than the test: nothing here is rescued by it
        start(NbdServer.Options.defaults().withRequestTimeout(Duration.ofHours(1)).withBufferBudgetBytes(64L * MiB));
        int stalled = 300;
        int feeding = 20; // these sent the first 20 KiB of their payload, so they hold one piece each
        for (int i = 0; i < stalled; i++) stalledWriter(0, 32 * MiB, 1);
        for (int i = 0; i < feeding; i++) stalledWriter(0, 32 * MiB, 20 << 10);
        String uri = "nbd://127.0.0.1:" + server.port() + "/disk";

        CompletableFuture<?> structured = CompletableFuture.runAsync(() -> run(() -> writeAndReadBack(true, 0, 1)));
        CompletableFuture<?> simple = CompletableFuture.runAsync(() -> run(() -> writeAndReadBack(false, 32L * MiB, 2)));
        CompletableFuture<?> qemu = CompletableFuture.runAsync(() -> Tools.qemuIo(uri,
                "write -P 0x5c 64M 32M", "read -P 0x5c 64M 32M", "write -P 0x3a 100M 20M", "read -P 0x3a 100M 20M"));
        await(structured, "a client with structured replies writing and reading 32 MiB");
        await(simple, "a client with simple replies writing and reading 32 MiB");
        await(qemu, "qemu-io writing and reading 32 MiB");

        // the stalled writers are all still there: the others got through beside them, not after them
        assertTrue(server.connectionCount() >= stalled + feeding,
                server.connectionCount() + " connections open, expected the " + (stalled + feeding) + " stalled writers among them");
        // and they hold no more than a piece each for the ones that sent something, nothing for the others
        assertTrue(server.bufferBytesInUse() <= (long) feeding * NbdConnection.PIECE,
                server.bufferBytesInUse() + " bytes of large buffers held by stalled writers, expected at most " + feeding + " pieces");
        byte[] check = new byte[MiB];
        disk.read(64L * MiB, check, 0, check.length);
        byte[] expected = new byte[MiB];
        Arrays.fill(expected, (byte) 0x5c);
        assertArrayEquals(expected, check, "qemu-io's data on the device");
    }

    @Test
    void clientsStalledMidRequestAreClosedAfterTheTimeoutAndGiveBackTheirBuffers() throws Exception {
        start(NbdServer.Options.defaults().withRequestTimeout(Duration.ofMillis(1500)).withBufferBudgetBytes(64L * MiB));
        try (LogCapture log = new LogCapture()) {
            List<RawClient> stalled = new ArrayList<>();
            for (int i = 0; i < 10; i++) stalled.add(stalledWriter(0, 32 * MiB, 1));
            for (int i = 0; i < 10; i++) stalled.add(stalledWriter(0, 32 * MiB, 100 << 10));
            for (int i = 0; i < 5; i++) stalled.add(stalledWriter(0, 512 << 10, 1)); // a single-piece WRITE
            // a client that sends large READs and never takes the replies
            RawClient deaf = new RawClient(server.port());
            clients.add(deaf);
            deaf.socket.setReceiveBufferSize(64 << 10);
            deaf.go("disk", true, false);
            assertEquals(0, deaf.write(100, 0, random(32 * MiB, 3), 0).error(), "data to read (holes would make tiny replies)");
            for (int i = 0; i < 8; i++) deaf.request(0, NBD_CMD_READ, i, 0, 32 * MiB, null);
            // a client half way through a request header
            RawClient header = connect(false);
            header.out.writeInt(NBD_REQUEST_MAGIC);
            header.out.flush();
            stalled.add(header);
            // an idle client: waiting between requests is not a stall
            RawClient idle = connect(true);

            for (RawClient c : stalled) assertTrue(c.closedByServer(60_000), "a stalled client was closed by the server");
            // reading would take the replies (and so end the stall): wait for the server's verdict first
            String deafPort = "127.0.0.1:" + deaf.socket.getLocalPort() + ")";
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (log.matching(deafPort, "took no reply bytes").isEmpty() && System.nanoTime() < until) Thread.sleep(10);
            assertTrue(deaf.closedByServer(60_000), "the client that took no replies was closed by the server");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (server.bufferBytesInUse() > 0 && System.nanoTime() < deadline) Thread.sleep(10);
            assertEquals(0, server.bufferBytesInUse(), "buffers of the closed connections were given back");

            byte[] data = random(3 * MiB, 7);
            assertEquals(0, idle.write(1, 5L * MiB, data, 0).error(), "the idle client still writes");
            assertArrayEquals(data, idle.read(2, 5L * MiB, data.length).data(), "and reads back");

            int port = stalled.getFirst().socket.getLocalPort();
            List<String> lines = log.matching("WARNING", "127.0.0.1:" + port + ")", "request timeout", "closing the connection");
            assertEquals(1, lines.size(), "one line names the first stalled client and what it stalled in: " + log.lines());
            assertTrue(lines.getFirst().contains("payload of WRITE of 33554432 bytes"), lines.getFirst());
            assertEquals(1, log.matching("WARNING", deafPort, "took no reply bytes").size(),
                    "one line names the client that stopped taking replies: " + log.lines());
        }
    }

    @Test
    void connectionsPastTheLimitAreRefused() throws Exception {
        start(NbdServer.Options.defaults().withMaxConnections(3));
        try (LogCapture log = new LogCapture()) {
            List<RawClient> three = new ArrayList<>();
            for (int i = 0; i < 3; i++) three.add(connect(true));
            String uri = "nbd://127.0.0.1:" + server.port() + "/disk";
            Tools.Result refused = Tools.exec("nbdinfo", "--size", uri);
            assertTrue(refused.exit() != 0, "nbdinfo connecting past the limit fails: " + refused.all());
            RawClient fourth = new RawClient(server.port());
            clients.add(fourth);
            assertTrue(fourth.closedByServer(30_000), "the fourth connection is closed at once");
            assertFalse(log.matching("WARNING", "refused nbd client", "the limit is 3").isEmpty(), "a log line says why: " + log.lines());

            three.getFirst().disconnect();
            assertTrue(three.getFirst().closedByServer(30_000));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (server.connectionCount() > 2 && System.nanoTime() < deadline) Thread.sleep(10);
            assertEquals(String.valueOf(128L * MiB), Tools.run("nbdinfo", "--size", uri).trim(), "a place is free again");
            assertEquals(0, three.get(1).read(1, 0, 4096).error(), "the clients within the limit were never disturbed");
        }
    }

    @Test
    void tcpConnectionsUseKeepalive() throws Exception {
        start(NbdServer.Options.defaults());
        RawClient c = connect(true);
        int clientPort = c.socket.getLocalPort();
        // /proc/net/tcp: "sl local rem st tx:rx tr:when ..."; tr 2 is the keepalive timer, 1 the
        // retransmit timer (a reply not yet acknowledged: wait for the client's ACK)
        String timer = null;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        do {
            if (timer != null) Thread.sleep(20);
            timer = serverSocketTimer(server.port(), clientPort);
        } while (timer != null && timer.startsWith("01") && System.nanoTime() < deadline);
        assertTrue(timer != null, "the server's end of the connection is in /proc/net/tcp");
        assertEquals("02", timer.substring(0, timer.indexOf(':')), "the server's socket runs the keepalive timer (tr:when " + timer + ")");
    }

    /** The tr:when field of the server's end of a loopback connection in /proc/net/tcp(6), or null. */
    private static String serverSocketTimer(int serverPort, int clientPort) throws IOException {
        for (String file : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
            Path p = Path.of(file);
            if (!Files.exists(p)) continue;
            for (String line : Files.readAllLines(p)) {
                String[] f = line.trim().split("\\s+");
                if (f.length < 6 || !f[1].contains(":")) continue;
                int local = Integer.parseInt(f[1].substring(f[1].indexOf(':') + 1), 16);
                int remote = Integer.parseInt(f[2].substring(f[2].indexOf(':') + 1), 16);
                if (local == serverPort && remote == clientPort) return f[5];
            }
        }
        return null;
    }

    private interface IoAction {
        void run() throws IOException;
    }

    private static void run(IoAction a) {
        try {
            a.run();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
