package dev.cask.catalog.postgres;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.CatalogContract;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.common.CaskException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The catalog contract against a real PostgreSQL ({@link PostgresServer}), plus what only
 * PostgreSQL has: its schema version, several processes and pools on one database, deadlocks
 * that are retried, connections the server kills, lock waits that time out, URLs with passwords.
 *
 * <p>The class has its own database; each test its own schema in it ({@code ?currentSchema=}),
 * created empty, so {@code newCatalog} is a fresh catalog and {@code reopen} another pool on the
 * same one (what another node is).
 */
class PostgresCatalogTest extends CatalogContract {
    private static PostgresServer server;
    private static String database;
    private static final AtomicInteger SCHEMAS = new AtomicInteger();
    private final Map<Path, CatalogUrl> urls = new ConcurrentHashMap<>();

    @BeforeAll
    static void database() {
        server = PostgresServer.shared();
        database = server.createDatabase("catalog_test");
    }

    @Override
    protected Catalog newCatalog(Path dir) {
        CatalogUrl url = urls.computeIfAbsent(dir, d -> {
            String schema = "t" + SCHEMAS.incrementAndGet();
            server.execute(database, "CREATE SCHEMA " + schema);
            return CatalogUrl.parse(server.url(database)).with("currentSchema", schema);
        });
        return open(url);
    }

    private static PostgresCatalog open(CatalogUrl url) {
        return PostgresCatalog.open(url, PostgresCatalog.Options.defaults(), Clock.systemUTC());
    }

    private CatalogUrl url() {
        return urls.get(dir);
    }

    private String schema() {
        return url().parameters().get("currentSchema");
    }

    private static NewVersion v(String message) {
        byte[] b = message.getBytes(StandardCharsets.UTF_8);
        return new NewVersion(message, b.length, b);
    }

    private String query(String sql) throws Exception {
        try (Connection c = server.connect(database); Statement st = c.createStatement()) {
            st.execute("SET search_path = " + schema());
            try (ResultSet rs = st.executeQuery(sql)) {
                return rs.next() ? rs.getString(1) : null;
            }
        }
    }

    // ---- schema ----

    @Test
    void schemaIsCreatedOnceAndVersioned() throws Exception {
        assertEquals("4", query("SELECT version FROM cask_schema"));
        assertEquals("1", query("SELECT count(*) FROM cask_schema"));
        assertEquals("images, journal_ranges, leases, nodes, retention, tags, versions", query("SELECT string_agg(tablename, ', ' ORDER BY tablename)"
                + " FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'cask_schema'"));
        catalog.createImage("a", v("a"), null);
        // opening again (a restart, another node) keeps what is there
        catalog.close();
        Catalog again = track(open(url()));
        assertEquals(1, again.image("a").head());
        assertEquals("1", query("SELECT count(*) FROM cask_schema"));
    }

    @Test
    void nodesOpeningANewCatalogAtOnceCreateItOnce() throws Exception {
        String schema = "fresh" + SCHEMAS.incrementAndGet();
        server.execute(database, "CREATE SCHEMA " + schema);
        CatalogUrl fresh = CatalogUrl.parse(server.url(database)).with("currentSchema", schema);
        int nodes = 4;
        CyclicBarrier start = new CyclicBarrier(nodes);
        List<Catalog> opened = new java.util.concurrent.CopyOnWriteArrayList<>();
        runAll(nodes, t -> {
            start.await();
            opened.add(track(open(fresh)));
        });
        assertEquals(nodes, opened.size());
        opened.get(0).createImage("shared", v("one"), null);
        for (Catalog c : opened) assertEquals(1, c.image("shared").head());
    }

    @Test
    void aSchema1CatalogIsMigratedToLeases() throws Exception {
        catalog.createImage("a", v("a"), null);
        catalog.close();
        server.execute(database, "DROP TABLE " + schema() + ".leases");
        server.execute(database, "DROP TABLE " + schema() + ".journal_ranges");
        server.execute(database, "DROP TABLE " + schema() + ".nodes");
        server.execute(database, "UPDATE " + schema() + ".cask_schema SET version = 1");
        Catalog again = track(open(url()));
        assertEquals("4", query("SELECT version FROM cask_schema"));
        assertEquals("0", query("SELECT count(*) FROM leases"));
        assertEquals("0", query("SELECT count(*) FROM journal_ranges"));
        assertEquals(1, again.image("a").head());
        assertEquals(2, again.commit("a", 1, v("a2"), new VersionKey("a", 1), 0).number());
    }

    @Test
    void aSchema2CatalogIsMigratedToSharedJournals() throws Exception {
        catalog.createImage("a", v("a"), null);
        catalog.close();
        server.execute(database, "DROP TABLE " + schema() + ".journal_ranges");
        server.execute(database, "DROP TABLE " + schema() + ".nodes");
        server.execute(database, "UPDATE " + schema() + ".cask_schema SET version = 2");
        Catalog again = track(open(url()));
        assertEquals("4", query("SELECT version FROM cask_schema"));
        assertEquals("0", query("SELECT count(*) FROM nodes"));
        assertEquals("0", query("SELECT count(*) FROM journal_ranges"));
        assertEquals("e", query("SELECT attstorage FROM pg_attribute WHERE attrelid = 'journal_ranges'::regclass AND attname = 'data'"),
                "journal data is stored without compression");
        assertEquals(1, again.image("a").head());
    }

    @Test
    void newerSchemaIsRefusedNamingTheCatalogAndVersions() throws Exception {
        catalog.createImage("a", v("a"), null);
        catalog.close();
        server.execute(database, "UPDATE " + schema() + ".cask_schema SET version = 5");
        CaskException e = assertThrows(CaskException.class, () -> open(url()));
        String m = e.getMessage();
        assertTrue(m.contains(url().display()) && m.contains("schema version 5") && m.contains("version 4"), m);
        assertFalse(m.contains(server.password()), m);
        assertEquals("5", query("SELECT version FROM cask_schema"), "refusing must not touch the catalog");
    }

    @Test
    void aSchemaOfSomethingElseIsRefused() {
        String schema = "other" + SCHEMAS.incrementAndGet();
        server.execute(database, "CREATE SCHEMA " + schema);
        server.execute(database, "CREATE TABLE " + schema + ".notes (x text)");
        CatalogUrl other = CatalogUrl.parse(server.url(database)).with("currentSchema", schema);
        CaskException e = assertThrows(CaskException.InvalidInput.class, () -> open(other));
        assertTrue(e.getMessage().contains("notes") && e.getMessage().contains(schema) && e.getMessage().contains("not a cask catalog"),
                e.getMessage());
    }

    @Test
    void aMissingSchemaIsNotFoundNamingTheSearchPath() {
        CatalogUrl missing = CatalogUrl.parse(server.url(database)).with("currentSchema", "nowhere");
        CaskException e = assertThrows(CaskException.NotFound.class, () -> open(missing));
        assertTrue(e.getMessage().contains("nowhere") && e.getMessage().contains("CREATE SCHEMA"), e.getMessage());
    }

    // ---- connecting, and what errors show ----

    @Test
    void aWrongPasswordIsAClearErrorThatNeverShowsAPassword() {
        String bad = "postgresql://" + PostgresServer.SUPERUSER + ":not-the-S3cret@127.0.0.1:" + server.port() + "/" + database;
        CaskException e = assertThrows(CaskException.Io.class, () -> PostgresCatalog.open(bad));
        String m = e.getMessage();
        assertTrue(m.startsWith("catalog postgresql://" + PostgresServer.SUPERUSER + "@127.0.0.1:" + server.port() + "/" + database + ": cannot connect"), m);
        assertTrue(m.contains("password authentication failed") && m.contains("check the user and password"), m);
        assertFalse(m.contains("not-the-S3cret") || m.contains(server.password()), m);
        assertFalse(m.contains("\n"), "one line: " + m);
    }

    @Test
    void aMissingDatabaseIsAClearError() {
        CaskException e = assertThrows(CaskException.Io.class,
                () -> open(CatalogUrl.parse(server.url("no_such_db"))));
        assertTrue(e.getMessage().contains("no_such_db") && e.getMessage().contains("createdb"), e.getMessage());
        assertFalse(e.getMessage().contains(server.password()), e.getMessage());
    }

    @Test
    void errorsAfterOpeningNameTheCatalogWithoutItsPassword() {
        CaskException e = assertThrows(CaskException.NotFound.class, () -> catalog.version("nope", 1));
        assertFalse(e.getMessage().contains(server.password()));
        assertFalse(catalog.toString().contains(server.password()), catalog.toString());
        assertEquals(url().display(), ((PostgresCatalog) catalog).url());
        catalog.close();
        CaskException closed = assertThrows(CaskException.class, () -> catalog.listImages(""));
        assertTrue(closed.getMessage().contains("closed") && closed.getMessage().contains(url().display()), closed.getMessage());
    }

    @Test
    void aMessageWithANulCharacterIsRefusedAndChangesNothing() {
        catalog.createImage("a", v("a"), null);
        CaskException e = assertThrows(CaskException.InvalidInput.class,
                () -> catalog.commit("a", 1, new NewVersion("bad\0message", 1, new byte[] {1}), null));
        assertTrue(e.getMessage().contains("'a'") && e.getMessage().contains("NUL"), e.getMessage());
        assertEquals(1, catalog.image("a").head());
    }

    // ---- several processes ----

    @Test
    void commitsFromSeveralProcessesLoseNothing() throws Exception {
        catalog.createImage("vm", v("v1"), null);
        int wins = 15;
        Path startFile = dir.resolve("start");
        List<Process> children = new java.util.ArrayList<>();
        try {
            for (String worker : List.of("p1", "p2")) {
                // the URL (with its password) goes through the environment, not the command line
                ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        "-cp", System.getProperty("java.class.path"), PgCommitWorker.class.getName(),
                        "vm", worker, String.valueOf(wins), startFile.toString())
                        .redirectOutput(dir.resolve(worker + ".out").toFile()).redirectError(dir.resolve(worker + ".err").toFile());
                pb.environment().put("CASK_CATALOG", server.url(database) + "?currentSchema=" + schema());
                children.add(pb.start());
            }
            for (String worker : List.of("p1", "p2")) waitForLine(dir.resolve(worker + ".out"), "ready", children);
            java.nio.file.Files.writeString(startFile, "go");
            PgCommitWorker.commitLoop(catalog, "vm", "here", wins);
            for (int i = 0; i < children.size(); i++) {
                Process p = children.get(i);
                assertTrue(p.waitFor(120, TimeUnit.SECONDS), "worker " + i + " did not finish");
                String name = "p" + (i + 1);
                assertEquals(0, p.exitValue(), name + " failed: " + java.nio.file.Files.readString(dir.resolve(name + ".err")));
            }
        } finally {
            for (Process p : children) p.destroyForcibly();
        }
        checkHistory(catalog.versions("vm"), Map.of("p1", wins, "p2", wins, "here", wins));
    }

    private static void waitForLine(Path file, String line, List<Process> children) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!(java.nio.file.Files.exists(file) && java.nio.file.Files.readString(file).contains(line))) {
            for (Process p : children) {
                if (!p.isAlive()) throw new AssertionError("worker exited early with " + p.exitValue());
            }
            if (System.nanoTime() > deadline) throw new AssertionError("no '" + line + "' in " + file);
            Thread.sleep(20);
        }
    }

    /** Versions 1..n, each the child of the one before, with times increasing and {@code wins} commits per worker. */
    static void checkHistory(List<Version> vs, Map<String, Integer> wins) {
        int total = wins.values().stream().mapToInt(Integer::intValue).sum();
        assertEquals(1 + total, vs.size());
        Map<String, Integer> counted = new HashMap<>();
        for (int i = 0; i < vs.size(); i++) {
            Version v = vs.get(i);
            assertEquals(i + 1, v.number());
            if (i == 0) continue;
            assertEquals(new VersionKey(v.image(), i), v.parent(), "parent of " + v.key());
            assertTrue(v.time().isAfter(vs.get(i - 1).time()), "time of " + v.key());
            counted.merge(v.message().split(" ")[0], 1, Integer::sum);
        }
        assertEquals(wins, counted);
    }

    // ---- what PostgreSQL adds: deadlocks, killed connections, lock waits ----

    @Test
    void aDeadlockIsRetriedAndTheCommitLandsOnce() throws Exception {
        Version b1 = catalog.createImage("b", v("b1"), null);
        catalog.createImage("a", v("a1"), null);
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try (Connection raw = server.connect(database); Statement st = raw.createStatement()) {
            st.execute("SET search_path = " + schema());
            st.execute("SET deadlock_timeout = '60s'"); // the catalog's side (the default 1 s) detects the deadlock, so it is the one aborted
            raw.setAutoCommit(false);
            st.execute("SELECT 1 FROM images WHERE name = 'b' FOR UPDATE");
            // commit to a, naming b@1 as parent: locks a, then waits for b
            Future<Version> commit = pool.submit(() -> catalog.commit("a", 1, v("a2 from b"), b1.key()));
            waitForLockWait();
            // now take a: a deadlock, which the server resolves by aborting the catalog's transaction
            st.execute("SELECT 1 FROM images WHERE name = 'a' FOR UPDATE");
            assertFalse(commit.isDone(), "the catalog's retry waits for this transaction");
            raw.commit();
            Version a2 = commit.get(30, TimeUnit.SECONDS);
            assertEquals(2, a2.number());
            assertEquals(b1.key(), a2.parent());
        } finally {
            pool.shutdownNow();
        }
        assertEquals(2, catalog.versions("a").size(), "one commit, not two");
        assertEquals(2, catalog.image("a").head());
    }

    /** Waits until some backend of the test database waits for a row lock. */
    private void waitForLockWait() throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!"t".equals(query("SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()"
                + " AND wait_event_type = 'Lock' AND application_name = 'cask'"))) {
            if (System.nanoTime() > deadline) throw new AssertionError("the catalog never waited for the lock");
            Thread.sleep(10);
        }
    }

    @Test
    void aConnectionTheServerKillsMidTransactionIsRetriedWithNothingHalfDone() throws Exception {
        catalog.createImage("vm", v("v1"), null);
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try (Connection raw = server.connect(database); Statement st = raw.createStatement()) {
            st.execute("SET search_path = " + schema());
            raw.setAutoCommit(false);
            st.execute("SELECT 1 FROM images WHERE name = 'vm' FOR UPDATE");
            Future<Version> commit = pool.submit(() -> catalog.commit("vm", 1, v("v2"), new VersionKey("vm", 1)));
            waitForLockWait();
            // an administrator (or a failover) ends the catalog's session in the middle of its transaction
            assertEquals("1", query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database()"
                    + " AND wait_event_type = 'Lock' AND application_name = 'cask'"));
            waitForLockWait(); // the retry, on a new connection, waits again
            raw.commit();
            assertEquals(2, commit.get(30, TimeUnit.SECONDS).number());
        } finally {
            pool.shutdownNow();
        }
        List<Version> vs = catalog.versions("vm");
        assertEquals(2, vs.size());
        assertEquals("v2", vs.get(1).message());
        // the pool replaced the dead connection: everything keeps working
        assertEquals(3, catalog.commit("vm", 2, v("v3"), new VersionKey("vm", 2)).number());
    }

    @Test
    void idleConnectionsTheServerKilledAreReplaced() throws Exception {
        catalog.createImage("vm", v("v1"), null);
        Catalog other = track(reopen(dir));
        assertEquals(1, other.image("vm").head());
        assertTrue(Integer.parseInt(query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                + " WHERE datname = current_database() AND application_name = 'cask'")) >= 2);
        assertEquals(2, catalog.commit("vm", 1, v("v2"), new VersionKey("vm", 1)).number());
        assertEquals(2, other.image("vm").head());
    }

    @Test
    void aLockHeldTooLongIsAClearErrorAndChangesNothing() throws Exception {
        catalog.createImage("vm", v("v1"), null);
        PostgresCatalog impatient = (PostgresCatalog) track(PostgresCatalog.open(url(),
                PostgresCatalog.Options.defaults().withLockTimeout(Duration.ofMillis(300)), Clock.systemUTC()));
        try (Connection raw = server.connect(database); Statement st = raw.createStatement()) {
            st.execute("SET search_path = " + schema());
            raw.setAutoCommit(false);
            st.execute("SELECT 1 FROM images WHERE name = 'vm' FOR UPDATE");
            CaskException e = assertThrows(CaskException.Io.class, () -> impatient.commit("vm", 1, v("v2"), null));
            String m = e.getMessage();
            assertTrue(m.contains(url().display()) && m.contains("image 'vm'") && m.contains("0.3 s") && m.contains("nothing was changed"), m);
            assertEquals(1, impatient.image("vm").head(), "readers are not blocked by the writer");
            raw.rollback();
        }
        assertEquals(1, catalog.versions("vm").size());
        assertEquals(2, impatient.commit("vm", 1, v("v2"), null).number());
    }

    @Test
    void writersOfDifferentImagesDoNotWaitForEachOther() throws Exception {
        catalog.createImage("a", v("a1"), null);
        catalog.createImage("b", v("b1"), null);
        try (Connection raw = server.connect(database); Statement st = raw.createStatement()) {
            st.execute("SET search_path = " + schema());
            raw.setAutoCommit(false);
            st.execute("SELECT 1 FROM images WHERE name = 'a' FOR UPDATE");
            // with a held, b commits (a lock timeout of 30 s would fail the test's 10 s wait below)
            ExecutorService pool = Executors.newSingleThreadExecutor();
            try {
                Future<Version> b2 = pool.submit(() -> catalog.commit("b", 1, v("b2"), null));
                assertEquals(2, b2.get(10, TimeUnit.SECONDS).number());
            } finally {
                pool.shutdownNow();
            }
            raw.rollback();
        }
    }

    @Test
    void deleteOfAnImageWaitsForACloneBeingMadeOfItAndTheCloneKeepsItsContent() throws Exception {
        catalog.createImage("base", v("base1"), null);
        CountDownLatch asked = new CountDownLatch(1);
        CountDownLatch answer = new CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<?> delete = pool.submit(() -> {
                catalog.deleteImage("base", () -> {
                    asked.countDown();
                    try {
                        answer.await();
                    } catch (InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                    return java.util.Set.of();
                });
                return null;
            });
            assertTrue(asked.await(30, TimeUnit.SECONDS));
            Catalog other = track(reopen(dir));
            Future<Version> clone = pool.submit(() -> other.createImage("clone", v("clone of base@1"), new VersionKey("base", 1)));
            waitForLockWait();
            assertFalse(clone.isDone());
            answer.countDown();
            delete.get(30, TimeUnit.SECONDS);
            java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
                    () -> clone.get(30, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof CaskException.NotFound && e.getCause().getMessage().contains("'base'"), e.toString());
        } finally {
            pool.shutdownNow();
        }
        assertEquals(List.of(), catalog.listImages(""));
    }
}
