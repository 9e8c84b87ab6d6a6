package dev.cask.catalog.postgres;

import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.common.CaskException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The catalog when its server goes away: stopped, or crashed in the middle of commits
 * ({@code pg_ctl stop -m immediate}: no shutdown checkpoint, crash recovery on the next start).
 * A server of its own, so the other test classes keep theirs.
 */
class PostgresServerLossTest {
    private static PostgresServer server;
    private static String database;

    @BeforeAll
    static void start() {
        server = PostgresServer.start();
        database = server.createDatabase("loss");
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static PostgresCatalog open(String schema) {
        server.execute(database, "CREATE SCHEMA " + schema);
        CatalogUrl url = CatalogUrl.parse(server.url(database)).with("currentSchema", schema);
        return PostgresCatalog.open(url, PostgresCatalog.Options.defaults().withConnectTimeout(Duration.ofSeconds(1)), Clock.systemUTC());
    }

    private static NewVersion v(String message) {
        byte[] b = message.getBytes(StandardCharsets.UTF_8);
        return new NewVersion(message, b.length, b);
    }

    @Test
    void aStoppedServerIsAClearErrorAndAfterItsRestartTheSameCatalogWorksAgain() {
        try (PostgresCatalog catalog = open("stopped")) {
            catalog.createImage("vm", v("v1"), null);
            catalog.commit("vm", 1, v("v2"), new VersionKey("vm", 1));
            server.crash();
            try {
                for (Runnable call : List.<Runnable>of(
                        () -> catalog.commit("vm", 2, v("v3"), new VersionKey("vm", 2)),
                        () -> catalog.image("vm"),
                        () -> catalog.createImage("other", v("o"), null))) {
                    CaskException e = assertThrows(CaskException.Io.class, call::run);
                    String m = e.getMessage();
                    assertTrue(m.startsWith("catalog " + catalog.url() + ": "), m);
                    assertTrue(m.contains("cannot reach the server, nothing was changed"), m);
                    assertFalse(m.contains(server.password()), m);
                    assertFalse(m.contains("\n"), "one line: " + m);
                }
            } finally {
                server.restart();
            }
            // The pool makes connections again once the server is back; its reconnect back-off
            // (HikariCP's, at most 5 s between tries) may fail a call or two first.
            assertEquals(2, untilReachable(() -> catalog.image("vm").head()), "the failed commit changed nothing");
            assertEquals(3, catalog.commit("vm", 2, v("v3"), new VersionKey("vm", 2)).number());
            assertTrue(catalog.findImage("other").isEmpty());
        }
    }

    /** {@code call}'s result once the catalog reaches its server again (at most 60 s). */
    private static <T> T untilReachable(java.util.function.Supplier<T> call) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            try {
                return call.get();
            } catch (CaskException.Io e) {
                if (!e.getMessage().contains("cannot reach the server") || System.nanoTime() > deadline) throw e;
            }
        }
    }

    @Test
    void aServerCrashInTheMiddleOfCommitsLeavesAWholeHistoryWithEveryAcknowledgedCommit() throws Exception {
        try (PostgresCatalog catalog = open("crashed")) {
            catalog.createImage("vm", v("start"), null);
            int threads = 4;
            Set<String> acknowledged = ConcurrentHashMap.newKeySet();
            Set<String> unknown = ConcurrentHashMap.newKeySet();
            List<String> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
            AtomicInteger acks = new AtomicInteger();
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            List<Future<?>> futures = new ArrayList<>();
            try {
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    futures.add(pool.submit(() -> {
                        // commit until the catalog fails (the crash), for at most 10,000 tries
                        for (int n = 0; n < 10_000; n++) {
                            String message = "t" + id + "-" + n;
                            try {
                                int head = catalog.image("vm").head();
                                catalog.commit("vm", head, v(message), new VersionKey("vm", head));
                                acknowledged.add(message);
                                acks.incrementAndGet();
                            } catch (CaskException.Conflict lost) {
                                // another thread won this head
                            } catch (CaskException.Io e) {
                                errors.add(e.getMessage());
                                if (e.getMessage().contains("may or may not")) unknown.add(message);
                                return;
                            }
                        }
                    }));
                }
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (acks.get() < 40 && System.nanoTime() < deadline) Thread.sleep(5);
                assertTrue(acks.get() >= 40, "commits ran");
                server.crash();
                for (Future<?> f : futures) f.get(60, TimeUnit.SECONDS);
            } finally {
                pool.shutdownNow();
                server.restart();
            }
            assertEquals(threads, errors.size(), "every thread stopped at an error: " + errors);
            for (String m : errors) {
                assertTrue(m.startsWith("catalog " + catalog.url() + ": "), m);
                assertFalse(m.contains(server.password()), m);
            }
            // The history is whole: 1..n, each the child of the one before, times increasing, content intact.
            List<Version> vs = untilReachable(() -> catalog.versions("vm"));
            assertEquals(vs.size(), catalog.image("vm").head());
            List<String> messages = new ArrayList<>();
            for (int i = 0; i < vs.size(); i++) {
                Version v = vs.get(i);
                assertEquals(i + 1, v.number());
                assertArrayEquals(v.message().getBytes(StandardCharsets.UTF_8), v.content(), "content of " + v.key());
                if (i == 0) continue;
                assertEquals(new VersionKey("vm", i), v.parent());
                assertTrue(v.time().isAfter(vs.get(i - 1).time()));
                messages.add(v.message());
            }
            // every acknowledged commit is there; anything else there was one whose outcome was reported unknown
            assertTrue(messages.containsAll(acknowledged), "lost acknowledged commits");
            for (String m : messages) assertTrue(acknowledged.contains(m) || unknown.contains(m), "unexplained version " + m);
            assertEquals(messages.size(), Set.copyOf(messages).size(), "no commit landed twice");
            // and the catalog works again
            int head = vs.size();
            assertEquals(head + 1, catalog.commit("vm", head, v("after"), new VersionKey("vm", head)).number());
        }
    }
}
