package dev.cask.catalog.postgres;

import dev.cask.common.CaskException;
import dev.cask.volume.Leases;

import java.sql.Array;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * {@link Leases} in the shared PostgreSQL catalog: one writer per image across every node, with
 * fencing. It owns the {@code leases} table ({@link PostgresSchema}, schema 2): a row per image
 * name, {@code (image, holder, epoch, expires)}, where {@code holder} names a process ({@code
 * HOST pid PID #RANDOM}, one per {@code PostgresLeases} object) and {@code expires} is a time of
 * the database's clock. Nodes never compare their own clocks with each other or with the
 * database's; each node only measures durations on its own monotonic clock.
 *
 * <p><b>Take</b> ({@link #tryTake}) is one statement, {@code INSERT ... ON CONFLICT (image) DO
 * UPDATE SET holder, epoch = leases.epoch + 1, expires = now() + ttl WHERE leases.expires <= now()
 * RETURNING epoch}: a new row starts at epoch 1; an expired one (released, or its holder stopped
 * renewing) is taken over with the next epoch; a live one returns nothing (empty). The epoch of an
 * image therefore only ever rises, and two takes of one row are serialised by its row lock.
 *
 * <p><b>Renewal.</b> One daemon thread per object renews every lease it holds every ttl/3, in one
 * statement for all of them ({@code UPDATE ... FROM unnest(images, epochs) WHERE image and epoch
 * and holder match RETURNING image}): a lease not returned was taken over (or its row changed),
 * and is lost. A renewal that fails (the database is unreachable) changes nothing; the next one
 * comes a period later, so a lease survives about two missed renewals.
 *
 * <p><b>Holder-side expiry, without trusting the round trip.</b> Each held lease keeps a deadline
 * on this process's monotonic clock: the moment the last successful renewal (or the take) was
 * <em>sent</em>, plus the ttl. The database set {@code expires = now() + ttl} with its own
 * {@code now()}, which is no earlier than that send, so (clock rates agreeing, and the database's
 * clock not jumping forward) the row cannot expire, and no other node can take the lease, before
 * the holder's deadline has passed. {@link Lease#check} is a volatile read and {@code
 * System.nanoTime()}: past the deadline the lease is lost, even when this node was frozen
 * (SIGSTOP, a long pause) and has not talked to the database since; a renewal whose answer comes
 * back late only moves the deadline to send time + ttl, which may be past already. Once lost,
 * always lost: {@link Lease#check} throws {@link CaskException.Fenced} naming the image, the epoch
 * and, once the renewal thread has looked, who holds it now. A lost lease is also expired in the
 * database at once (so the next node need not wait out a renewal that landed late).
 *
 * <p><b>Fencing at the catalog.</b> The check above guards what only this node sees (its journal);
 * what others see is guarded by the database: every head change a holder makes carries its epoch,
 * and {@link PostgresCatalog#commit} compares it with the row, share-locked, in the commit's own
 * transaction ({@link #fence}). A frozen node that wakes up between its check and its commit is
 * still refused. What is left: a node frozen between a check and the reply it sends to its own
 * client acknowledges that one request; the write is in its journal, which the next holder does not
 * read until journals are shared (issue 14 item 5).
 *
 * <p><b>Release</b> ({@link Lease#close}) keeps the row and its epoch and sets {@code expires =
 * now()}: the next take, anywhere, gets epoch + 1 at once. {@link #isHeld} is a row with {@code
 * expires > now()}.
 *
 * <p><b>Hand-over (designed, not built).</b> A cooperative, immediate hand-over for live migration
 * fits without changing the table: the source stops acknowledging writes, makes its last checkpoint
 * (or, with shared journals, its last flush), marks its lease lost locally, and runs {@code UPDATE
 * leases SET holder = DEST, epoch = epoch + 1, expires = now() + ttl WHERE image = ? AND epoch =
 * MINE RETURNING epoch}, naming the destination's holder id (which the destination told it when the
 * migration started). From that commit on, the source is fenced everywhere (its epoch is no longer
 * the row's); the destination adopts the row with a {@code claim(image, epoch)} that accepts a row
 * whose holder is its own id and whose epoch is the one handed over, without waiting for an
 * expiry, and renews it from then on. A source that dies midway leaves either its own live row
 * (the hand-over did not happen: the destination's claim fails, the lease expires as after any
 * crash) or the destination's (it happened).
 *
 * <p><b>Sizing.</b> One row per image name ever leased (about 100 bytes); one renewal statement per
 * ttl/3 per node, whatever the number of images it serves; one statement per take and release. The
 * connections are a pool of their own (two), so a busy catalog never delays a renewal.
 *
 * <p>Thread-safe. {@link #close} stops the renewals, releases every lease still held and closes the
 * pool.
 */
public final class PostgresLeases implements Leases {
    private static final System.Logger LOG = System.getLogger("cask.leases");

    /** The default time to live: a node that stops renewing loses its images after this. */
    public static final Duration DEFAULT_TTL = Duration.ofSeconds(30);
    public static final Duration MIN_TTL = Duration.ofSeconds(1);
    public static final Duration MAX_TTL = Duration.ofHours(1);

    private final String display;
    private final PgTransactions tx;
    private final Duration ttl;
    private final long ttlNanos;
    private final String holder;
    private final Map<String, Held> held = new ConcurrentHashMap<>();
    private final ScheduledExecutorService renewer;
    private volatile boolean closed;

    private PostgresLeases(CatalogUrl url, PgTransactions tx, Duration ttl, String holder) {
        this.display = url.display();
        this.tx = tx;
        this.ttl = ttl;
        this.ttlNanos = ttl.toNanos();
        this.holder = holder;
        this.renewer = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("cask-lease-renewal").unstarted(r));
        long period = Math.max(1, ttl.toMillis() / 3);
        renewer.scheduleWithFixedDelay(this::renewAll, period, period, TimeUnit.MILLISECONDS);
    }

    /**
     * Leases in the catalog at {@code url} (its schema is created or migrated as {@link
     * PostgresCatalog#open} does), with time to live {@code ttl} ({@link #MIN_TTL} to {@link
     * #MAX_TTL}; InvalidInput otherwise).
     */
    public static PostgresLeases open(CatalogUrl url, PostgresCatalog.Options options, Duration ttl) {
        Objects.requireNonNull(ttl, "ttl");
        if (ttl.compareTo(MIN_TTL) < 0 || ttl.compareTo(MAX_TTL) > 0) {
            throw new CaskException.InvalidInput("lease time to live " + dev.cask.common.Durations.format(ttl) + " is out of range (1s to 1h)");
        }
        PgTransactions tx = PgTransactions.open(url, new PostgresCatalog.Options(2, options.connectTimeout(), options.lockTimeout()), "leases in catalog");
        try {
            tx.prepare("create or check the schema", c -> PostgresSchema.prepare(c, url.display()));
            return new PostgresLeases(url, tx, ttl, holderName());
        } catch (RuntimeException e) {
            tx.close();
            throw e;
        }
    }

    private static String holderName() {
        String host;
        try {
            host = java.net.InetAddress.getLocalHost().getHostName();
        } catch (java.io.IOException e) {
            host = "unknown-host";
        }
        byte[] r = new byte[4];
        ThreadLocalRandom.current().nextBytes(r);
        return host + " pid " + ProcessHandle.current().pid() + " #" + HexFormat.of().formatHex(r);
    }

    /** This object's holder name, as the rows show it ({@code HOST pid PID #RANDOM}). */
    public String holder() {
        return holder;
    }

    public Duration ttl() {
        return ttl;
    }

    @Override
    public String where() {
        return "catalog " + display + " (table leases)";
    }

    @Override
    public Optional<Lease> tryTake(String image) {
        dev.cask.catalog.Names.check(image);
        if (closed) throw new CaskException("leases in catalog " + display + ": closed");
        long sent = System.nanoTime();
        Long epoch = tx.run("take the lease of image '" + image + "'", true, c -> {
            try (PreparedStatement st = c.prepareStatement("""
                    INSERT INTO leases (image, holder, epoch, expires) VALUES (?, ?, 1, now() + ? * interval '1 millisecond')
                    ON CONFLICT (image) DO UPDATE SET holder = EXCLUDED.holder, epoch = leases.epoch + 1, expires = EXCLUDED.expires
                    WHERE leases.expires <= now()
                    RETURNING epoch""")) {
                st.setString(1, image);
                st.setString(2, holder);
                st.setLong(3, ttl.toMillis());
                try (ResultSet rs = st.executeQuery()) {
                    return rs.next() ? rs.getLong(1) : null;
                }
            }
        });
        if (epoch == null) return Optional.empty();
        Held h = new Held(image, epoch, sent + ttlNanos);
        held.put(image, h); // replaces a lost one of ours, if any
        return Optional.of(h);
    }

    @Override
    public boolean isHeld(String image) {
        dev.cask.catalog.Names.check(image);
        return tx.run("read the lease of image '" + image + "'", false, c -> {
            try (PreparedStatement st = c.prepareStatement("SELECT 1 FROM leases WHERE image = ? AND expires > now()")) {
                st.setString(1, image);
                try (ResultSet rs = st.executeQuery()) {
                    return rs.next();
                }
            }
        });
    }

    /** Who holds the image's lease and at which epoch ({@code "HOLDER at epoch N"}), or null when no row exists. */
    public String describe(String image) {
        return tx.run("read the lease of image '" + image + "'", false, c -> describe(c, image));
    }

    private static String describe(Connection c, String image) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT holder, epoch, expires > now() FROM leases WHERE image = ?")) {
            st.setString(1, image);
            try (ResultSet rs = st.executeQuery()) {
                if (!rs.next()) return null;
                return rs.getString(1) + " at epoch " + rs.getLong(2) + (rs.getBoolean(3) ? "" : " (expired)");
            }
        }
    }

    /**
     * The fence of a commit, inside its transaction on {@code c}: the image's lease row, share-locked
     * until the commit ends (a take-over waits for it), must be at {@code epoch} (0 when there is no
     * row: an image never leased here); otherwise Fenced, and the caller's transaction rolls back.
     */
    static void fence(Connection c, String image, long epoch) throws SQLException {
        long current = 0;
        String who = null;
        try (PreparedStatement st = c.prepareStatement("SELECT epoch, holder FROM leases WHERE image = ? FOR SHARE")) {
            st.setString(1, image);
            try (ResultSet rs = st.executeQuery()) {
                if (rs.next()) {
                    current = rs.getLong(1);
                    who = rs.getString(2);
                }
            }
        }
        if (current != epoch) {
            throw new CaskException.Fenced("image '" + image + "': fenced: this writer's lease is at epoch " + epoch + ", but the image's lease is at epoch "
                    + current + (who == null ? "" : " (held by " + who + ")") + "; nothing was committed");
        }
    }

    // ---- renewal ----

    /** One round: renews every lease held; marks lost those the database no longer has as ours. */
    private void renewAll() {
        try {
            List<Held> live = new ArrayList<>();
            for (Held h : held.values()) {
                if (h.lostBecause == null && System.nanoTime() - h.deadline > 0) h.lose("its time to live ran out on this node before a renewal succeeded");
                if (h.lostBecause == null) live.add(h);
            }
            live.sort((a, b) -> a.image.compareTo(b.image)); // one lock order for every node
            if (!live.isEmpty()) renew(live);
            for (Held h : List.copyOf(held.values())) {
                if (h.lostBecause != null && held.remove(h.image, h)) forget(h);
            }
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "leases in catalog " + display + ": renewal failed (the leases are lost if none succeeds within "
                    + dev.cask.common.Durations.format(ttl) + "): " + e.getMessage());
        }
    }

    private void renew(List<Held> live) {
        long sent = System.nanoTime();
        Set<String> renewed = tx.run("renew " + live.size() + " lease" + (live.size() == 1 ? "" : "s"), true, c -> {
            // a renewal waits for a row lock (a commit's share lock) at most a third of the ttl: the next one comes then
            PostgresSchema.exec(c, "SET LOCAL lock_timeout = " + Math.max(1, ttl.toMillis() / 3));
            Array images = c.createArrayOf("text", live.stream().map(h -> h.image).toArray(String[]::new));
            Array epochs = c.createArrayOf("bigint", live.stream().map(h -> h.epoch).toArray(Long[]::new));
            try (PreparedStatement st = c.prepareStatement("""
                    UPDATE leases l SET expires = now() + ? * interval '1 millisecond'
                    FROM unnest(?::text[], ?::bigint[]) AS h(image, epoch)
                    WHERE l.image = h.image AND l.epoch = h.epoch AND l.holder = ?
                    RETURNING l.image""")) {
                st.setLong(1, ttl.toMillis());
                st.setArray(2, images);
                st.setArray(3, epochs);
                st.setString(4, holder);
                Set<String> out = new java.util.HashSet<>();
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) out.add(rs.getString(1));
                }
                return out;
            }
        });
        for (Held h : live) {
            if (renewed.contains(h.image)) h.renewed(sent + ttlNanos);
            else h.lose("the database no longer has it as this node's");
        }
    }

    /** A lost lease: learn who holds it now (for the message), and expire our row if it is still ours. */
    private void forget(Held h) {
        try {
            String now = tx.run("expire the lost lease of image '" + h.image + "'", true, c -> {
                expire(c, h);
                return describe(c, h.image);
            });
            if (now != null && !now.startsWith(holder + " ")) h.takenBy = now;
            LOG.log(System.Logger.Level.WARNING, "image '" + h.image + "': lease epoch " + h.epoch + " lost: " + h.lostBecause
                    + (h.takenBy == null ? "" : "; now held by " + h.takenBy));
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, "image '" + h.image + "': lease epoch " + h.epoch + " lost: " + h.lostBecause + " (" + e.getMessage() + ")");
        }
    }

    private void expire(Connection c, Held h) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("UPDATE leases SET expires = least(expires, now()) WHERE image = ? AND epoch = ? AND holder = ?")) {
            st.setString(1, h.image);
            st.setLong(2, h.epoch);
            st.setString(3, holder);
            st.executeUpdate();
        }
    }

    /** Tests: stop renewing, as a frozen or cut-off node would, without releasing anything. */
    void stopRenewing() {
        renewer.shutdownNow();
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        renewer.shutdownNow();
        try {
            if (advertised) {
                try {
                    tx.run("withdraw node " + holder, true, c -> {
                        try (PreparedStatement st = c.prepareStatement("DELETE FROM nodes WHERE holder = ?")) {
                            st.setString(1, holder);
                            st.executeUpdate();
                        }
                        return null;
                    });
                } catch (RuntimeException e) {
                    // a row left behind: the next client that finds its port closed removes it
                }
            }
            for (Held h : List.copyOf(held.values())) {
                try {
                    h.close();
                } catch (RuntimeException e) {
                    LOG.log(System.Logger.Level.WARNING, "image '" + h.image + "': lease not released (it expires after "
                            + dev.cask.common.Durations.format(ttl) + "): " + e.getMessage());
                }
            }
        } finally {
            tx.close();
        }
    }

    // ---- nodes: where other hosts reach this one's control endpoint ----

    private volatile boolean advertised;

    /**
     * Publishes this node's control endpoint (table {@code nodes}: this holder's name, {@code host},
     * {@code port} and the {@code token} its connections must send first), so commands on other
     * hosts reach the images it holds (snapshots, what it needs kept). Withdrawn by {@link #close}.
     */
    public void advertise(String host, int port, String token) {
        tx.run("advertise node " + holder, true, c -> {
            try (PreparedStatement st = c.prepareStatement("""
                    INSERT INTO nodes (holder, host, port, token, started_us) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (holder) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, token = EXCLUDED.token""")) {
                st.setString(1, holder);
                st.setString(2, host);
                st.setInt(3, port);
                st.setString(4, token);
                st.setLong(5, System.currentTimeMillis() * 1000);
                st.executeUpdate();
            }
            return null;
        });
        advertised = true;
    }

    /** A node's published control endpoint: its holder name, where it listens, the token its connections send first. */
    public record Node(String holder, String host, int port, String token) {}

    /** Every node's published control endpoint but this object's own (its own server is reached on this host). */
    public List<Node> nodes() {
        return tx.run("list nodes", false, c -> {
            List<Node> out = new ArrayList<>();
            try (PreparedStatement st = c.prepareStatement("SELECT holder, host, port, token FROM nodes WHERE holder <> ? ORDER BY started_us")) {
                st.setString(1, holder);
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) out.add(new Node(rs.getString(1), rs.getString(2), rs.getInt(3), rs.getString(4)));
                }
            }
            return out;
        });
    }

    /** Removes the row of a node whose endpoint refused a connection (its server stopped without withdrawing it). */
    public void forgetNode(Node node) {
        tx.run("forget node " + node.holder(), true, c -> {
            try (PreparedStatement st = c.prepareStatement("DELETE FROM nodes WHERE holder = ? AND host = ? AND port = ?")) {
                st.setString(1, node.holder());
                st.setString(2, node.host());
                st.setInt(3, node.port());
                st.executeUpdate();
            }
            return null;
        });
    }

    @Override
    public String toString() {
        return "in catalog " + display + " (table leases), time to live " + dev.cask.common.Durations.format(ttl) + ", renewed every "
                + ttl.dividedBy(3).toMillis() + " ms, holder '" + holder + "'";
    }

    /** A lease this object holds. Its state is two volatile fields: the deadline and, once lost, why. */
    private final class Held implements Lease {
        final String image;
        final long epoch;
        /** System.nanoTime() past which the lease is lost: send time of the last successful renewal + ttl. */
        volatile long deadline;
        /** Null while held; why it was lost (or "released"), never null again once set. */
        volatile String lostBecause;
        /** Who holds the image now, when the renewal thread found out. */
        volatile String takenBy;

        Held(String image, long epoch, long deadline) {
            this.image = image;
            this.epoch = epoch;
            this.deadline = deadline;
        }

        @Override
        public String image() {
            return image;
        }

        @Override
        public long epoch() {
            return epoch;
        }

        @Override
        public void check() {
            if (lostBecause == null && System.nanoTime() - deadline > 0) lose("its time to live ran out on this node before a renewal succeeded");
            String why = lostBecause;
            if (why != null) {
                String by = takenBy;
                throw new CaskException.Fenced("image '" + image + "': lease epoch " + epoch + " lost (" + why + ")"
                        + (by == null ? "" : "; now held by " + by) + "; this node changes nothing more of it");
            }
        }

        synchronized void lose(String why) {
            if (lostBecause == null) lostBecause = why;
        }

        /** A renewal sent at (deadline - ttl) succeeded; ignored once lost. */
        synchronized void renewed(long newDeadline) {
            if (lostBecause == null && newDeadline - deadline > 0) deadline = newDeadline;
        }

        @Override
        public void close() {
            boolean wasHeld;
            synchronized (this) {
                wasHeld = lostBecause == null;
                lose("released");
            }
            held.remove(image, this);
            if (!wasHeld) return;
            tx.run("release the lease of image '" + image + "'", true, c -> {
                expire(c, this);
                return null;
            });
        }

        @Override
        public String toString() {
            return "lease of '" + image + "' epoch " + epoch + " (" + holder + ")";
        }
    }
}
