package dev.cask.catalog.postgres;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.common.CaskException;
import dev.cask.volume.Leases;
import dev.cask.volume.LeasesContract;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The leases contract on {@link PostgresLeases} against a real PostgreSQL ({@link
 * PostgresServer}): two objects on one schema are two nodes; a frozen node is one whose renewal
 * thread stopped. A ttl of one second keeps the take-overs short. Then the fence at the catalog:
 * a commit under a stale epoch is refused and changes nothing, also when the stale holder's own
 * check would have passed (a node that wakes up between its check and its commit).
 */
class PostgresLeasesTest extends LeasesContract {
    private static final Duration TTL = Duration.ofSeconds(1);
    private static PostgresServer server;
    private static String database;
    private static final AtomicInteger SCHEMAS = new AtomicInteger();
    private final Map<Path, CatalogUrl> urls = new ConcurrentHashMap<>();

    @BeforeAll
    static void database() {
        server = PostgresServer.shared();
        database = server.createDatabase("leases_test");
    }

    private CatalogUrl url(Path dir) {
        return urls.computeIfAbsent(dir, d -> {
            String schema = "l" + SCHEMAS.incrementAndGet();
            server.execute(database, "CREATE SCHEMA " + schema);
            return CatalogUrl.parse(server.url(database)).with("currentSchema", schema);
        });
    }

    @Override
    protected Leases newLeases(Path dir) {
        return PostgresLeases.open(url(dir), PostgresCatalog.Options.defaults(), TTL);
    }

    @Override
    protected boolean freeze(Leases node) {
        ((PostgresLeases) node).stopRenewing();
        return true;
    }

    @Override
    protected boolean epochsRise() {
        return true;
    }

    private static NewVersion v(String message) {
        byte[] b = message.getBytes(StandardCharsets.UTF_8);
        return new NewVersion(message, b.length, b);
    }

    private String query(String sql) throws Exception {
        try (Connection c = server.connect(database); Statement st = c.createStatement()) {
            st.execute("SET search_path = " + url(dir).parameters().get("currentSchema"));
            try (ResultSet rs = st.executeQuery(sql)) {
                return rs.next() ? rs.getString(1) : null;
            }
        }
    }

    @Test
    void aRenewedLeaseOutlivesItsTtl() throws Exception {
        Leases a = node();
        Leases b = node();
        Leases.Lease held = a.tryTake("vm").orElseThrow();
        // several ttls pass: the renewals keep it (a wait, not a timing assertion: the lease must
        // still be held however long the pause, as long as the renewals run)
        Thread.sleep(TTL.toMillis() * 3);
        held.check();
        assertTrue(b.tryTake("vm").isEmpty());
        assertEquals(String.valueOf(held.epoch()), query("SELECT epoch FROM leases WHERE image = 'vm'"));
        assertEquals("t", query("SELECT expires > now() FROM leases WHERE image = 'vm'"));
        held.close();
        assertEquals("f", query("SELECT expires > now() FROM leases WHERE image = 'vm'"));
        assertEquals(String.valueOf(held.epoch()), query("SELECT epoch FROM leases WHERE image = 'vm'"), "a release keeps the epoch");
    }

    @Test
    void aCommitUnderAStaleEpochIsFencedAndChangesNothing() throws Exception {
        try (PostgresCatalog catalog = PostgresCatalog.open(url(dir), PostgresCatalog.Options.defaults(), Clock.systemUTC())) {
            catalog.createImage("team/vm", v("v1"), null);
            // no lease was ever taken on it: epoch 0 (the local leases' epoch) and no lease commit
            assertEquals(2, catalog.commit("team/vm", 1, v("v2"), new VersionKey("team/vm", 1), 0).number());
            assertEquals(3, catalog.commit("team/vm", 2, v("v3"), new VersionKey("team/vm", 2), Catalog.NO_LEASE).number());

            Leases a = node();
            Leases b = node();
            Leases.Lease old = a.tryTake("team/vm").orElseThrow();
            assertEquals(4, catalog.commit("team/vm", 3, v("v4 by a"), new VersionKey("team/vm", 3), old.epoch()).number());
            ((PostgresLeases) a).stopRenewing(); // a freezes
            Leases.Lease taken = null;
            while (taken == null) { // the take-over, once the database's clock says the row expired
                taken = b.tryTake("team/vm").orElse(null);
                if (taken == null) Thread.sleep(50);
            }
            assertTrue(taken.epoch() > old.epoch());
            List<Version> before = catalog.versions("team/vm");

            // a wakes up and commits without checking: the catalog refuses it
            CaskException.Fenced e = assertThrows(CaskException.Fenced.class,
                    () -> catalog.commit("team/vm", 4, v("v5 by a"), new VersionKey("team/vm", 4), old.epoch()));
            String m = e.getMessage();
            assertTrue(m.contains("team/vm") && m.contains("epoch " + old.epoch()) && m.contains("epoch " + taken.epoch()), m);
            // nor can a writer without the lease row's epoch: 0 once the image has been leased
            assertThrows(CaskException.Fenced.class, () -> catalog.commit("team/vm", 4, v("v5 by a local lease"), new VersionKey("team/vm", 4), 0));
            assertEquals(4, catalog.image("team/vm").head(), "nothing changed");
            assertEquals(before.size(), catalog.versions("team/vm").size(), "nothing changed");

            // the new holder commits
            assertEquals(5, catalog.commit("team/vm", 4, v("v5 by b"), new VersionKey("team/vm", 4), taken.epoch()).number());
            taken.close();
            // after a release, the old epoch is still stale
            assertThrows(CaskException.Fenced.class, () -> catalog.commit("team/vm", 5, v("v6 by b after release"), new VersionKey("team/vm", 5), old.epoch()));
            assertEquals(5, catalog.image("team/vm").head());
        }
    }

    /**
     * The fence's lock: a commit in flight holds the lease row FOR SHARE (here a transaction of the
     * test's own, as the catalog's commit does after its check), and a take-over of the expired row
     * waits for it to end (seen in pg_stat_activity, not timed), so the new holder reads every head
     * that commit moved.
     */
    @Test
    void aTakeOverWaitsForACommitInFlight() throws Exception {
        Leases a = node();
        Leases b = node();
        Leases.Lease old = a.tryTake("vm").orElseThrow();
        ((PostgresLeases) a).stopRenewing();
        while (!"t".equals(query("SELECT expires <= now() FROM leases WHERE image = 'vm'"))) Thread.sleep(50);
        try (Connection c = server.connect(database); Statement st = c.createStatement()) {
            c.setAutoCommit(false);
            st.execute("SET search_path = " + url(dir).parameters().get("currentSchema"));
            try (ResultSet rs = st.executeQuery("SELECT epoch FROM leases WHERE image = 'vm' FOR SHARE")) {
                assertTrue(rs.next());
                assertEquals(old.epoch(), rs.getLong(1));
            }
            var take = java.util.concurrent.CompletableFuture.supplyAsync(() -> b.tryTake("vm"));
            long end = System.nanoTime() + 60_000_000_000L;
            while (!"1".equals(query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO leases%'"))) {
                assertTrue(System.nanoTime() < end, "the take-over never waited for the share lock");
                assertTrue(!take.isDone(), "the take-over did not wait for the commit in flight: " + take.getNow(null));
                Thread.sleep(20);
            }
            assertTrue(!take.isDone());
            c.commit();
            Leases.Lease taken = take.get().orElseThrow();
            assertEquals(old.epoch() + 1, taken.epoch());
        }
    }

    @Test
    void aTtlOutOfRangeIsRefused() {
        assertThrows(CaskException.InvalidInput.class, () -> PostgresLeases.open(url(dir), PostgresCatalog.Options.defaults(), Duration.ofMillis(500)));
        assertThrows(CaskException.InvalidInput.class, () -> PostgresLeases.open(url(dir), PostgresCatalog.Options.defaults(), Duration.ofHours(2)));
    }
}
