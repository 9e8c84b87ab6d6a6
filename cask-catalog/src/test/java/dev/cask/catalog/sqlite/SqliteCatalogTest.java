package dev.cask.catalog.sqlite;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.CatalogContract;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.common.CaskException;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The catalog contract against SQLite, plus what only SQLite has: the file, its pragmas, its schema version, its locks. */
class SqliteCatalogTest extends CatalogContract {

    @Override
    protected Catalog newCatalog(Path dir) {
        return SqliteCatalog.open(dir.resolve("catalog.db"));
    }

    private Path db() {
        return dir.resolve("catalog.db");
    }

    private static NewVersion v(String message) {
        byte[] b = message.getBytes(StandardCharsets.UTF_8);
        return new NewVersion(message, b.length, b);
    }

    private static Connection raw(Path file) throws SQLException {
        return DriverManager.getConnection("jdbc:sqlite:" + file);
    }

    private static String rawQuery(Path file, String sql) throws SQLException {
        try (Connection c = raw(file); Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            return rs.next() ? rs.getString(1) : null;
        }
    }

    // ---- the file and its settings ----

    /** Fencing beside the local leases: their epoch 0 (and no lease) commit; any other epoch cannot be current here and changes nothing. */
    @Test
    void aCommitCarriesTheLocalLeaseEpochZero() {
        catalog.createImage("vm", v("v1"), null);
        assertEquals(2, catalog.commit("vm", 1, v("v2"), new VersionKey("vm", 1), 0).number());
        assertEquals(3, catalog.commit("vm", 2, v("v3"), new VersionKey("vm", 2), Catalog.NO_LEASE).number());
        CaskException.Fenced e = assertThrows(CaskException.Fenced.class, () -> catalog.commit("vm", 3, v("v4"), new VersionKey("vm", 3), 7));
        assertTrue(e.getMessage().contains("'vm'") && e.getMessage().contains("epoch 7"), e.getMessage());
        assertEquals(3, catalog.image("vm").head());
        assertEquals(3, catalog.versions("vm").size());
    }

    @Test
    void connectionIsDurableAndSafeForOtherProcesses() throws Exception {
        SqliteCatalog c = (SqliteCatalog) catalog;
        assertEquals("wal", c.pragma("journal_mode"));
        assertEquals("2", c.pragma("synchronous"), "synchronous=FULL");
        assertEquals("1", c.pragma("foreign_keys"));
        assertEquals(String.valueOf(SqliteCatalog.BUSY_TIMEOUT_MS), c.pragma("busy_timeout"));
        assertEquals("3", c.pragma("user_version"));
        assertEquals(db().toAbsolutePath().normalize(), c.file());
        assertEquals("wal", rawQuery(db(), "PRAGMA journal_mode"), "WAL is a property of the file");
    }

    @Test
    void newerSchemaIsRefusedNamingFileAndVersions() throws Exception {
        catalog.createImage("a", v("a"), null);
        catalog.close();
        try (Connection c = raw(db()); Statement st = c.createStatement()) {
            st.execute("PRAGMA user_version = 4");
        }
        CaskException e = assertThrows(CaskException.class, () -> SqliteCatalog.open(db()));
        String m = e.getMessage();
        assertTrue(m.contains(db().toAbsolutePath().normalize().toString()) && m.contains("schema version 4")
                && m.contains("version 3"), m);
        assertEquals("4", rawQuery(db(), "PRAGMA user_version"), "refusing must not touch the file");
    }

    /**
     * Schema 1 exactly as the first release wrote it (never edit: it stands for every catalog.db
     * made before labels), with an image, a clone and versions in it.
     */
    private static final List<String> SCHEMA_1 = List.of(
            "CREATE TABLE images (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, head INTEGER NOT NULL CHECK (head >= 1),"
                    + " created_us INTEGER NOT NULL, origin_image_id INTEGER, origin_number INTEGER,"
                    + " FOREIGN KEY (origin_image_id, origin_number) REFERENCES versions (image_id, number) ON DELETE SET NULL)",
            "CREATE TABLE versions (image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE, number INTEGER NOT NULL CHECK (number >= 1),"
                    + " parent_image_id INTEGER, parent_number INTEGER, time_us INTEGER NOT NULL, message TEXT,"
                    + " size INTEGER NOT NULL CHECK (size >= 0), content BLOB NOT NULL, PRIMARY KEY (image_id, number),"
                    + " FOREIGN KEY (parent_image_id, parent_number) REFERENCES versions (image_id, number) ON DELETE SET NULL)",
            "CREATE INDEX versions_by_time ON versions (image_id, time_us)",
            "CREATE INDEX versions_by_parent ON versions (parent_image_id, parent_number)",
            "CREATE INDEX images_by_origin ON images (origin_image_id, origin_number)",
            "INSERT INTO images VALUES (1, 'team/base', 2, 1000, NULL, NULL)",
            "INSERT INTO versions VALUES (1, 1, NULL, NULL, 1000, 'import a.raw', 3, x'616263')",
            "INSERT INTO versions VALUES (1, 2, 1, 1, 2000, 'snapshot', 3, x'646566')",
            "INSERT INTO images VALUES (2, 'team/clone', 1, 3000, 1, 1)",
            "INSERT INTO versions VALUES (2, 1, 1, 1, 3000, 'clone of team/base@1', 3, x'616263')",
            "PRAGMA user_version = 1");

    @Test
    void schema1CatalogOpensAndGainsLabels() throws Exception {
        catalog.close();
        Path old = dir.resolve("old.db");
        try (Connection c = raw(old); Statement st = c.createStatement()) {
            for (String sql : SCHEMA_1) st.execute(sql);
        }
        try (SqliteCatalog c = SqliteCatalog.open(old)) {
            assertEquals("3", c.pragma("user_version"));
            assertEquals(2, c.image("team/base").head());
            assertEquals("snapshot", c.version("team/base", 2).message());
            assertEquals(new VersionKey("team/base", 1), c.image("team/clone").origin());
            assertTrue(c.tags("team/base").isEmpty());
            c.tag("team/base", "release", 1);
            assertEquals(Map.of("release", 1), c.tags("team/base"));
            c.renameImage("team/base", "team/gold");
            assertEquals(new VersionKey("team/gold", 1), c.image("team/clone").origin(), "links follow a rename");
            assertEquals(Map.of("release", 1), c.tags("team/gold"));
        }
        assertEquals("3", rawQuery(old, "PRAGMA user_version"));
    }

    @Test
    void schema2CatalogOpensAndGainsKindsProtectionAndRetention() throws Exception {
        catalog.close();
        Path old = dir.resolve("old2.db");
        try (Connection c = raw(old); Statement st = c.createStatement()) {
            for (String sql : SCHEMA_1) if (!sql.startsWith("PRAGMA")) st.execute(sql);
            st.execute("""
                    CREATE TABLE tags (image_id INTEGER NOT NULL, label TEXT NOT NULL, number INTEGER NOT NULL,
                      PRIMARY KEY (image_id, label),
                      FOREIGN KEY (image_id, number) REFERENCES versions (image_id, number) ON DELETE CASCADE) WITHOUT ROWID""");
            st.execute("INSERT INTO tags VALUES (1, 'release', 2)");
            st.execute("PRAGMA user_version = 2");
        }
        try (SqliteCatalog c = SqliteCatalog.open(old)) {
            assertEquals("3", c.pragma("user_version"));
            assertEquals(List.of(dev.cask.catalog.VersionKind.USER, dev.cask.catalog.VersionKind.USER),
                    c.versions("team/base").stream().map(Version::kind).toList(), "an old cask's versions are user versions");
            assertFalse(c.version("team/base", 1).isProtected());
            assertEquals(Map.of("release", 2), c.tags("team/base"));
            assertTrue(c.retentionPolicies().isEmpty());
            c.setProtected("team/base", 1, true);
            c.setRetention("team", "keep-last=1");
            assertTrue(c.version("team/base", 1).isProtected());
        }
        assertEquals("3", rawQuery(old, "PRAGMA user_version"));
    }

    @Test
    void foreignSqliteFileIsRefused() throws Exception {
        Path other = dir.resolve("other.db");
        try (Connection c = raw(other); Statement st = c.createStatement()) {
            st.execute("CREATE TABLE notes (x TEXT)");
        }
        CaskException e = assertThrows(CaskException.InvalidInput.class, () -> SqliteCatalog.open(other));
        assertTrue(e.getMessage().contains(other.toString()) && e.getMessage().contains("notes"), e.getMessage());
    }

    @Test
    void fileThatIsNotSqliteIsAnIoErrorNamingIt() throws IOException {
        Path junk = dir.resolve("junk.db");
        byte[] bytes = new byte[8192];
        new Random(7).nextBytes(bytes);
        Files.write(junk, bytes);
        CaskException.Io e = assertThrows(CaskException.Io.class, () -> SqliteCatalog.open(junk));
        assertTrue(e.getMessage().contains(junk.toString()), e.getMessage());
    }

    @Test
    void missingDirectoryIsNotFound() {
        Path file = dir.resolve("no/such/dir/catalog.db");
        CaskException.NotFound e = assertThrows(CaskException.NotFound.class, () -> SqliteCatalog.open(file));
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    }

    @Test
    void closedCatalogRefusesCalls() {
        catalog.close();
        CaskException e = assertThrows(CaskException.class, () -> catalog.listImages(""));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    @Test
    void manyHandlesOpeningOneNewFileAtOnceCreateTheSchemaOnce() throws Exception {
        Path file = dir.resolve("fresh.db");
        int threads = 6;
        CyclicBarrier start = new CyclicBarrier(threads);
        List<SqliteCatalog> handles = java.util.Collections.synchronizedList(new ArrayList<>());
        try {
            runAll(threads, t -> {
                start.await();
                handles.add(SqliteCatalog.open(file));
            });
            handles.getFirst().createImage("x", v("x"), null);
            for (SqliteCatalog h : handles) assertEquals(1, h.image("x").head());
        } finally {
            for (SqliteCatalog h : handles) h.close();
        }
    }

    // ---- several writers on one file ----

    @Test
    void twoInstancesOnOneFileExactlyOneWinsPerHead() throws Exception {
        SqliteCatalog a = (SqliteCatalog) catalog;
        SqliteCatalog b = (SqliteCatalog) track(SqliteCatalog.open(db()));
        a.createImage("vm", v("v1"), null);
        int threads = 8;
        for (int round = 0; round < 20; round++) {
            int head = b.image("vm").head();
            assertEquals(round + 1, head);
            CyclicBarrier start = new CyclicBarrier(threads);
            AtomicInteger wins = new AtomicInteger();
            AtomicInteger conflicts = new AtomicInteger();
            runAll(threads, t -> {
                SqliteCatalog mine = t % 2 == 0 ? a : b;
                start.await();
                try {
                    mine.commit("vm", head, v("round " + head + " thread " + t), new VersionKey("vm", head));
                    wins.incrementAndGet();
                } catch (CaskException.Conflict lost) {
                    conflicts.incrementAndGet();
                }
                // Anything else (an Io carrying SQLITE_BUSY) fails the test through runAll.
            });
            assertEquals(1, wins.get(), "round " + round);
            assertEquals(threads - 1, conflicts.get(), "round " + round);
        }
        assertEquals(21, a.versions("vm").size());
    }

    @Test
    void twoInstancesRetryingLoseNoCommit() throws Exception {
        SqliteCatalog a = (SqliteCatalog) catalog;
        SqliteCatalog b = (SqliteCatalog) track(SqliteCatalog.open(db()));
        a.createImage("vm", v("v1"), null);
        int wins = 25;
        runAll(4, t -> CommitWorker.commitLoop(t % 2 == 0 ? a : b, "vm", "w" + t, wins));
        checkHistory(a.versions("vm"), Map.of("w0", wins, "w1", wins, "w2", wins, "w3", wins));
    }

    @Test
    void writerWaitsForAnotherProcessesWriteLockInsteadOfFailing() throws Exception {
        catalog.createImage("vm", v("v1"), null);
        CountDownLatch locked = new CountDownLatch(1);
        long holdMs = 1500;
        Thread holder = new Thread(() -> {
            try (Connection c = raw(db()); Statement st = c.createStatement()) {
                st.execute("BEGIN IMMEDIATE");
                locked.countDown();
                Thread.sleep(holdMs);
                st.execute("COMMIT");
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        holder.start();
        assertTrue(locked.await(10, TimeUnit.SECONDS));
        long t0 = System.nanoTime();
        assertEquals(1, catalog.image("vm").head(), "readers are not blocked by a writer in WAL mode");
        long readMs = (System.nanoTime() - t0) / 1_000_000;
        Version v2 = catalog.commit("vm", 1, v("v2"), new VersionKey("vm", 1));
        long waitedMs = (System.nanoTime() - t0) / 1_000_000;
        holder.join();
        assertEquals(2, v2.number());
        assertTrue(readMs < holdMs / 2, "read took " + readMs + " ms");
        assertTrue(waitedMs >= holdMs / 2, "commit returned after " + waitedMs + " ms while the lock was held for " + holdMs);
    }

    @Test
    void processesOnOneFileLoseNoCommit() throws Exception {
        catalog.createImage("vm", v("v1"), null);
        int wins = 30;
        Path startFile = dir.resolve("start");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<Process> children = new ArrayList<>();
        try {
            for (String worker : List.of("p1", "p2")) {
                Path out = dir.resolve(worker + ".out");
                Path err = dir.resolve(worker + ".err");
                children.add(new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED",
                        "-cp", System.getProperty("java.class.path"), CommitWorker.class.getName(),
                        db().toString(), "vm", worker, String.valueOf(wins), startFile.toString())
                        .redirectOutput(out.toFile()).redirectError(err.toFile()).start());
            }
            for (String worker : List.of("p1", "p2")) waitForLine(dir.resolve(worker + ".out"), "ready", children);
            Files.writeString(startFile, "go");
            CommitWorker.commitLoop((SqliteCatalog) catalog, "vm", "here", wins);
            for (int i = 0; i < children.size(); i++) {
                Process p = children.get(i);
                assertTrue(p.waitFor(120, TimeUnit.SECONDS), "worker " + i + " did not finish");
                String name = "p" + (i + 1);
                assertEquals(0, p.exitValue(), name + " failed: " + Files.readString(dir.resolve(name + ".err")));
            }
        } finally {
            for (Process p : children) p.destroyForcibly();
        }
        checkHistory(catalog.versions("vm"), Map.of("p1", wins, "p2", wins, "here", wins));
    }

    private static void waitForLine(Path file, String line, List<Process> children) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!(Files.exists(file) && Files.readString(file).contains(line))) {
            for (Process p : children) {
                if (!p.isAlive()) throw new AssertionError("worker exited early with " + p.exitValue());
            }
            if (System.nanoTime() > deadline) throw new AssertionError("no '" + line + "' in " + file);
            Thread.sleep(20);
        }
    }

    /** Versions 1..n, each the child of the one before, with times increasing and {@code wins} commits per worker. */
    private static void checkHistory(List<Version> vs, Map<String, Integer> wins) {
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

    // ---- time ----

    @Test
    void timesIncreaseEvenWhenTheClockStandsStillOrStepsBack() {
        catalog.close();
        Instant t = Instant.parse("2030-01-01T00:00:00.000000500Z");
        AtomicLong step = new AtomicLong();
        Clock backwards = new Clock() {
            @Override public ZoneOffset getZone() { return ZoneOffset.UTC; }
            @Override public Clock withZone(java.time.ZoneId zone) { return this; }
            @Override public Instant instant() {
                long s = step.getAndIncrement();
                return s < 3 ? t : t.minusSeconds(s);
            }
        };
        SqliteCatalog c = (SqliteCatalog) track(SqliteCatalog.open(db(), backwards));
        List<Version> vs = new ArrayList<>();
        vs.add(c.createImage("a", v("v1"), null));
        for (int n = 2; n <= 6; n++) vs.add(c.commit("a", n - 1, v("v" + n), new VersionKey("a", n - 1)));
        assertEquals(Instant.parse("2030-01-01T00:00:00Z"), vs.getFirst().time(), "times are kept in microseconds");
        for (int i = 1; i < vs.size(); i++) {
            assertEquals(vs.get(i - 1).time().plusNanos(1000), vs.get(i).time(), "version " + (i + 1));
        }
        for (Version x : vs) assertEquals(x.number(), c.versionAt("a", x.time().plusNanos(999)).number());
        assertThrows(CaskException.NotFound.class, () -> c.versionAt("a", t.minusNanos(1000)));
        assertEquals(1, c.versionAt("a", t).number(), "sub-microsecond part of the query time is floored");
    }

    @Test
    void microsecondConversionFloorsAndRoundTrips() {
        for (long us : new long[] {0, 1, -1, 1_000_000, -1_000_001, 1_900_000_000_123_456L, -62_000_000_000_000_000L}) {
            assertEquals(us, SqliteCatalog.micros(SqliteCatalog.instant(us)), "us " + us);
        }
        assertEquals(-1, SqliteCatalog.micros(Instant.EPOCH.minusNanos(1)));
        assertEquals(0, SqliteCatalog.micros(Instant.EPOCH.plusNanos(999)));
        assertEquals(Long.MAX_VALUE, SqliteCatalog.micros(Instant.MAX));
        assertEquals(Long.MIN_VALUE, SqliteCatalog.micros(Instant.MIN));
    }

    @Test
    void versionAtFarFutureAndPastTimes() {
        catalog.createImage("a", v("v1"), null);
        assertEquals(1, catalog.versionAt("a", Instant.MAX).number());
        assertThrows(CaskException.NotFound.class, () -> catalog.versionAt("a", Instant.MIN));
    }
}
