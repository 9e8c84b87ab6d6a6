package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.store.s3.S3Server;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Two {@code cask serve} nodes on one shared store (s3proxy + PostgreSQL, real processes, their
 * own state directories) and the lease of one image between them: node A serves it and a client
 * writes and flushes; A is frozen (SIGSTOP) past its lease's time to live, which the test learns
 * from the lease row, not from a clock of its own; node B then serves the image (takes the lease
 * over, with a higher epoch); A is resumed (SIGCONT): its client's next write and flush fail
 * with an NBD error, A commits nothing (every version after the first is B's), and B serves
 * what its client writes and what A's client flushed before the freeze (A's journal, copied to
 * PostgreSQL at the flush). And a node killed (kill -9) while its client writes: another node
 * serves every write the client saw flushed. And three nodes, each serving an image another node
 * created, one of them killed: a third takes its image over.
 */
class LeaseFencingTest {
    private static final String BUCKET = "cask-cli-leases";
    private static final String IMAGE = "team/vm";

    @TempDir
    Path dir;

    private static Cli.Result must(Cli cli, String... args) throws Exception {
        Cli.Result r = cli.process(null, args);
        assertEquals(0, r.code(), "cask " + String.join(" ", args) + ": " + r);
        return r;
    }

    private static byte[] random(int seed, int n) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private static String lease(PostgresServer pg, String database, String column) throws Exception {
        return lease(pg, database, IMAGE, column);
    }

    private static String lease(PostgresServer pg, String database, String image, String column) throws Exception {
        try (Connection c = pg.connect(database); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT " + column + " FROM leases WHERE image = '" + image + "'")) {
            return rs.next() ? rs.getString(1) : null;
        }
    }

    /** One test's shared store: its own database (catalog, index, leases) and prefix, on the shared PostgreSQL and s3proxy. */
    private record Store(PostgresServer pg, String database, List<String> args) {
        /** A node (its own state directory under {@code dir}) of this store: as another host would run cask. */
        Cli node(Path dir, String name, String... more) {
            List<String> all = concat(args, "--state", dir.resolve("state-" + name).toString());
            all.addAll(List.of(more));
            return new Cli(all, S3Server.shared().environment());
        }

        /** Waits until the image's lease expired by the database's clock (the row says so, not a clock of the test's). */
        void awaitExpiry(String why) throws Exception {
            awaitExpiry(IMAGE, why);
        }

        void awaitExpiry(String image, String why) throws Exception {
            long end = System.nanoTime() + 60_000_000_000L;
            while (!"t".equals(lease(pg, database, image, "expires <= now()"))) {
                if (System.nanoTime() > end) fail(why);
                Thread.sleep(100);
            }
        }
    }

    private static Store store(String name) {
        PostgresServer pg = PostgresServer.shared();
        S3Server.shared().createBucket(BUCKET);
        String database = pg.createDatabase("cli_leases_" + name);
        return new Store(pg, database, List.of("--store", "s3://" + BUCKET + "/" + name, "--catalog", pg.url(database)));
    }

    private static void signal(Server s, String sig) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + sig, Long.toString(s.process.pid())).inheritIO().start();
        assertEquals(0, kill.waitFor(), "kill -" + sig);
    }

    @Test
    void aFrozenNodeLosesItsImageToAnotherAndChangesNothingWhenItWakes() throws Exception {
        Store store = store("fencing");
        PostgresServer pg = store.pg();
        String database = store.database();
        Cli nodeA = store.node(dir, "a");
        Cli nodeB = store.node(dir, "b");
        must(nodeA, "init");
        must(nodeA, "create", IMAGE, "4M");

        Cli.Result malformed = nodeA.run("serve", "--lease-ttl", "soon");
        assertEquals(2, malformed.code(), "a malformed --lease-ttl is a usage error: " + malformed);
        assertTrue(malformed.err().contains("--lease-ttl"), malformed.err());
        assertEquals(2, nodeA.run("serve", "--lease-ttl", "100ms").code(), "an out-of-range --lease-ttl is a usage error");
        Cli local = new Cli(dir.resolve("local"));
        assertEquals(2, local.run("serve", "--lease-ttl", "10s").code(), "--lease-ttl with a local store is a usage error");

        byte[] a1 = random(1, 64 << 10);
        byte[] a2 = random(2, 64 << 10);
        byte[] b1 = random(3, 64 << 10);
        String[] serve = {"--lease-ttl", "2s", "--gc-interval", "0", "--checkpoint-interval", "0", "--no-warmup"};
        try (Server a = new Server(nodeA, serve); Server b = new Server(nodeB, serve)) {
            assertTrue(a.log.toString().contains("leases: in catalog"), a.log.toString());
            NbdClient clientA = new NbdClient(a.port, IMAGE);
            clientA.write(0, a1);
            clientA.flush();
            long epochA = Long.parseLong(lease(pg, database, "epoch"));
            signal(a, "STOP");
            try {
                store.awaitExpiry("the lease of a frozen node never expired");
                try (NbdClient clientB = new NbdClient(b.port, IMAGE)) {
                    long epochB = Long.parseLong(lease(pg, database, "epoch"));
                    assertTrue(epochB > epochA, "take-over epoch " + epochB + " after " + epochA);
                    // what A's client flushed is in no version yet (no checkpoint ran), only in A's journal: B replays its shared copy
                    assertArrayEquals(a1, clientB.read(0, a1.length), "A's flushed write is served by B");
                    signal(a, "CONT");
                    // A wakes up: nothing it is sent is acknowledged
                    IOException e = assertThrows(IOException.class, () -> {
                        clientA.write(1 << 20, a2);
                        clientA.flush();
                    });
                    assertTrue(e.getMessage().contains("NBD error"), e.toString());
                    clientA.close();

                    clientB.write(2 << 20, b1);
                    clientB.flush();
                    assertArrayEquals(b1, clientB.read(2 << 20, b1.length));
                    assertArrayEquals(new byte[a2.length], clientB.read(1 << 20, a2.length), "A's write after the take-over is nowhere");
                }
            } finally {
                signal(a, "CONT");
            }
            assertEquals(0, a.stop("TERM"), a.log.toString());
            String logA = a.log.toString();
            assertTrue(logA.contains("lease epoch " + epochA + " lost"), logA);
            assertEquals(0, b.stop("TERM"), b.log.toString());
        }

        // every version after the first (create) is B's: A committed nothing
        JsonNode log = new ObjectMapper().readTree(must(nodeB, "log", IMAGE, "--json").out());
        assertEquals(2, log.size(), log.toString());
        Path back = dir.resolve("back.raw");
        must(nodeB, "export", IMAGE, back.toString());
        byte[] disk = Files.readAllBytes(back);
        assertArrayEquals(a1, Arrays.copyOfRange(disk, 0, a1.length), "A's flushed write is in the head");
        assertArrayEquals(b1, Arrays.copyOfRange(disk, 2 << 20, (2 << 20) + b1.length), "B's write is in the head");
        assertArrayEquals(new byte[a2.length], Arrays.copyOfRange(disk, 1 << 20, (1 << 20) + a2.length), "A's late write is not");
    }

    @Test
    void aNodeKilledMidWriteLosesNothingFlushedAnotherNodeServesIt() throws Exception {
        Store store = store("killed");
        Cli nodeA = store.node(dir, "a");
        Cli nodeB = store.node(dir, "b");
        must(nodeA, "init");
        int blocks = 256;
        int bs = 64 << 10;
        must(nodeA, "create", IMAGE, Long.toString((long) blocks * bs));
        String[] serve = {"--lease-ttl", "2s", "--gc-interval", "0", "--checkpoint-interval", "0", "--no-warmup"};
        java.util.concurrent.atomic.AtomicInteger flushedUpTo = new java.util.concurrent.atomic.AtomicInteger(-1);
        java.util.concurrent.atomic.AtomicInteger written = new java.util.concurrent.atomic.AtomicInteger(-1);
        try (Server a = new Server(nodeA, serve)) {
            NbdClient client = new NbdClient(a.port, IMAGE);
            Thread writer = Thread.ofPlatform().start(() -> {
                try {
                    for (int i = 0; i < blocks; i++) {
                        client.write((long) i * bs, random(100 + i, bs));
                        written.set(i);
                        if (i % 4 == 3) {
                            client.flush();
                            flushedUpTo.set(i);
                        }
                    }
                } catch (IOException e) {
                    // the node died under it
                }
            });
            long end = System.nanoTime() + 60_000_000_000L;
            while (flushedUpTo.get() < 40 && System.nanoTime() < end && writer.isAlive()) Thread.sleep(5);
            a.kill();
            writer.join();
            client.close();
        }
        int flushed = flushedUpTo.get();
        assertTrue(flushed >= 40 && flushed < blocks - 1, "the node died mid-write: flushed up to block " + flushed + ", written " + written.get());
        store.awaitExpiry("the lease of a killed node never expired"); // then B takes the image over
        try (Server b = new Server(nodeB, serve)) {
            NbdClient client = new NbdClient(b.port, IMAGE);
            for (int i = 0; i < blocks; i++) {
                byte[] got = client.read((long) i * bs, bs);
                if (i <= flushed) {
                    assertArrayEquals(random(100 + i, bs), got, "block " + i + " was flushed before the kill");
                } else {
                    for (int k = 0; k < bs; k += 4096) { // unflushed: lost or kept, 4 KiB block by block, never torn
                        byte[] part = Arrays.copyOfRange(got, k, k + 4096);
                        boolean old = Arrays.equals(part, new byte[4096]);
                        boolean now = Arrays.equals(part, Arrays.copyOfRange(random(100 + i, bs), k, k + 4096));
                        assertTrue(old || now, "block " + i + " at " + k + " is neither its old nor its new content");
                    }
                }
            }
            client.close();
            assertEquals(0, b.stop("TERM"), b.log.toString());
        }
        Path back = dir.resolve("back.raw");
        must(nodeB, "export", IMAGE, back.toString());
        byte[] disk = Files.readAllBytes(back);
        for (int i = 0; i <= flushed; i++) {
            assertArrayEquals(random(100 + i, bs), Arrays.copyOfRange(disk, i * bs, (i + 1) * bs), "block " + i + " is in the head B committed");
        }
        try (Connection c = store.pg().connect(store.database()); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT count(*) FROM journal_ranges")) {
            rs.next();
            assertEquals(0, rs.getInt(1), "B closed the image: its journal, shared copy included, is gone");
        }
    }

    @Test
    void aCommandOnAnotherHostReachesTheNodeThatServesTheImage() throws Exception {
        Store store = store("reach");
        Cli nodeA = store.node(dir, "a");
        Cli hostB = store.node(dir, "b"); // no server of its own
        must(nodeA, "init");
        must(nodeA, "create", IMAGE, "4M");
        must(nodeA, "create", "team/ro", "4M");
        Path ro = dir.resolve("ro.raw");
        Files.write(ro, random(12, 4 << 20));
        must(nodeA, "import", "--as-version", ro.toString(), "team/ro");
        byte[] w = random(11, 64 << 10);
        String[] serve = {"--gc-interval", "0", "--checkpoint-interval", "0", "--no-warmup"};
        try (Server a = new Server(nodeA, serve)) {
            assertTrue(a.log.toString().contains("control: other nodes reach this one at 127.0.0.1:"), a.log.toString());
            NbdClient client = new NbdClient(a.port, IMAGE);
            client.write(0, w); // in A's volume only: no checkpoint yet
            Cli.Result snap = must(hostB, "snapshot", IMAGE, "-m", "from another host");
            assertTrue(snap.out().startsWith(IMAGE + " version 2"), snap.out());
            JsonNode log = new ObjectMapper().readTree(must(hostB, "log", IMAGE, "--json").out());
            assertEquals(2, log.size(), log.toString());
            Path back = dir.resolve("back.raw");
            must(hostB, "export", IMAGE + "@2", back.toString());
            assertArrayEquals(w, Arrays.copyOf(Files.readAllBytes(back), w.length), "the version A made for B holds A's client's write");
            // what A needs kept is asked of A: version 1 of team/ro, which a client of A reads read-only
            NbdClient old = new NbdClient(a.port, "team/ro@1");
            assertArrayEquals(new byte[w.length], old.read(0, w.length));
            Cli.Result rm = hostB.process(null, "rm", "team/ro@1");
            assertEquals(1, rm.code(), rm.toString());
            assertTrue(rm.err().contains("in use"), rm.err());
            old.close();
            must(hostB, "rm", "team/ro@1"); // nobody reads it now
            client.close();
            assertEquals(0, a.stop("TERM"), a.log.toString());
        }
        try (Connection c = store.pg().connect(store.database()); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT count(*) FROM nodes")) {
            rs.next();
            assertEquals(0, rs.getInt(1), "a stopped node withdraws its endpoint");
        }
        Cli.Result none = hostB.process(null, "snapshot", IMAGE, "-m", "nobody serves it");
        assertEquals(0, none.code(), none.toString()); // no node to ask: the snapshot is made here
    }

    @Test
    void threeNodesServeImagesCreatedOnOthersAndOneTakesOverAKilledNodesImage() throws Exception {
        Store store = store("three");
        Cli[] nodes = {store.node(dir, "a"), store.node(dir, "b"), store.node(dir, "c")};
        String[] images = {"team/one", "team/two", "team/three"};
        must(nodes[0], "init");
        for (int k = 0; k < 3; k++) must(nodes[k], "create", images[k], "4M"); // each created on another host
        String[] serve = {"--lease-ttl", "2s", "--gc-interval", "0", "--checkpoint-interval", "0", "--no-warmup"};
        byte[][] writes = {random(31, 64 << 10), random(32, 64 << 10), random(33, 64 << 10)};
        try (Server a = new Server(nodes[0], serve); Server b = new Server(nodes[1], serve); Server c = new Server(nodes[2], serve)) {
            Server[] servers = {a, b, c};
            NbdClient[] clients = new NbdClient[3];
            for (int k = 0; k < 3; k++) { // node k serves the image node k+1 created
                clients[k] = new NbdClient(servers[k].port, images[(k + 1) % 3]);
                clients[k].write(0, writes[k]);
                clients[k].flush();
            }
            // one writer per image across the nodes: C cannot open the image A serves
            IOException held = assertThrows(IOException.class, () -> new NbdClient(c.port, images[1]).close());
            assertTrue(held.getMessage().contains(images[1]), held.toString());
            for (int k = 0; k < 3; k++) {
                assertArrayEquals(writes[k], clients[k].read(0, writes[k].length), "node " + k + " serves its client's write");
            }
            a.kill(); // A dies with its client's flushed write in no version yet
            clients[0].close();
            store.awaitExpiry(images[1], "the lease of a killed node never expired");
            try (NbdClient taken = new NbdClient(c.port, images[1])) {
                assertArrayEquals(writes[0], taken.read(0, writes[0].length), "C serves what A's client flushed");
            }
            for (int k = 1; k < 3; k++) clients[k].close();
            assertEquals(0, b.stop("TERM"), b.log.toString());
            assertEquals(0, c.stop("TERM"), c.log.toString());
        }
        for (int k = 0; k < 3; k++) { // every head holds its write, exported from another host
            Path back = dir.resolve("three-" + k + ".raw");
            must(nodes[(k + 2) % 3], "export", images[(k + 1) % 3], back.toString());
            assertArrayEquals(writes[k], Arrays.copyOf(Files.readAllBytes(back), writes[k].length), images[(k + 1) % 3]);
        }
    }

    private static List<String> concat(List<String> a, String... b) {
        List<String> out = new java.util.ArrayList<>(a);
        out.addAll(List.of(b));
        return out;
    }
}
