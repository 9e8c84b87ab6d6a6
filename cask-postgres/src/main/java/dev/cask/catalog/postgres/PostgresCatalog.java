package dev.cask.catalog.postgres;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Image;
import dev.cask.catalog.Names;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionDeletion;
import dev.cask.catalog.VersionKey;
import dev.cask.catalog.VersionKind;
import dev.cask.common.CaskException;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.SortedMap;
import java.util.function.Supplier;

/**
 * The catalog in PostgreSQL: what many cask nodes share. The same tables as the SQLite catalog
 * ({@link PostgresSchema}), the same contract ({@link Catalog}, checked by {@code CatalogContract}),
 * reached through the JDBC driver and a HikariCP pool of connections.
 *
 * <p><b>Transactions.</b> Every call is one transaction on one pooled connection. Reads run in
 * {@code REPEATABLE READ READ ONLY}: one snapshot, so a listing and the image it names agree, and
 * never a serialization failure. Writes run in {@code READ COMMITTED} and take row locks on the
 * {@code images} rows they depend on, which makes the image row the unit of mutual exclusion that
 * SQLite's whole-file {@code BEGIN IMMEDIATE} was:
 * <ul>
 *   <li>a transaction that changes an image (commit, delete, rename, labels, protection, version
 *       removal) first locks its row {@code FOR UPDATE}: one writer per image at a time, across
 *       every node; writers of different images run in parallel;
 *   <li>one that needs a version of another image to stay where it is (a clone's origin, a
 *       commit's parent, {@link #confirmVersion}) locks that image's row {@code FOR SHARE}: it
 *       waits for a delete or removal in flight there, and holds off the next one until it commits.
 * </ul>
 * Under {@code READ COMMITTED}, a statement after a lock sees every transaction that committed
 * before the lock was granted, so the head, the newest number and the newest time read after it
 * are the current ones; a row renamed or deleted while we waited no longer matches and reads as
 * NotFound.
 *
 * <p><b>The contract, clause by clause.</b> A head moves by compare-and-swap: under the image's
 * lock the head is compared with the expected one, the version inserted, and the head set with
 * {@code UPDATE images SET head = ? WHERE id = ? AND head = ?} (one row, or Conflict). Two
 * concurrent commits on one head: the second waits for the first's lock and then sees the moved
 * head. Names are unique among live images by the {@code UNIQUE} constraint: a create is
 * {@code INSERT ... ON CONFLICT (name) DO NOTHING}, which waits for a concurrent insert of the same
 * name and then inserts nothing, so exactly one of many concurrent creates wins. Version numbers
 * are the head plus one under the lock, and the head is never removed, so no number is used twice;
 * image ids come from an identity column and are never reused either, so an image created later
 * under an old name inherits no link. Times are epoch microseconds from this process's clock,
 * strictly increasing within an image ({@code max(now, newest + 1)} under the lock), so nodes whose
 * clocks disagree still order an image's versions correctly.
 *
 * <p><b>Fencing.</b> A commit by a lease holder ({@link #commit(String, int, NewVersion,
 * VersionKey, long)} with an epoch) reads the image's {@code leases} row {@code FOR SHARE} after
 * locking the image, in the same transaction, and refuses with Fenced (nothing changes) unless its
 * epoch is the writer's ({@link PostgresLeases#fence}): a take-over, which updates that row, waits
 * for a commit in flight, and a commit after it sees the new epoch.
 *
 * <p><b>Failures</b> ({@link PgFailures}). A transaction that fails with {@code 40001} or
 * {@code 40P01} (two nodes locking images in opposite orders: a clone's commit and its origin's
 * delete) is run again, up to {@link PgTransactions#MAX_ATTEMPTS} times with a short random back-off; so is one
 * whose connection broke before {@code COMMIT} (once: the server rolled it back, and the pool
 * hands out a fresh connection). Whatever the failure, the transaction was rolled back: no change
 * is ever half made. A connection lost during {@code COMMIT} leaves the outcome unknown, and the
 * error says so. Work that is retried runs again from the start, including the {@code inUse}
 * question of a removal, which is asked once per attempt, always inside the attempt's transaction.
 * Every error names the catalog by {@link CatalogUrl#display()}, never with its password.
 *
 * <p><b>Thread-safety.</b> Safe for any number of threads (each call borrows its own connection;
 * the pool holds at most {@link Options#maxConnections}), processes and nodes. {@link #close}
 * closes the pool; later calls fail.
 */
public final class PostgresCatalog implements Catalog {
    /**
     * How a catalog uses its server: connections in its pool, how long to wait for a connection
     * (and for the server to answer a connection attempt), and how long to wait for a row lock
     * another transaction holds (PostgreSQL's {@code lock_timeout}; SQLite's busy timeout was 30 s).
     */
    public record Options(int maxConnections, Duration connectTimeout, Duration lockTimeout) {
        public Options {
            if (maxConnections < 1) throw new CaskException.InvalidInput("catalog: pool size " + maxConnections + ", expected at least 1");
            Objects.requireNonNull(connectTimeout, "connectTimeout");
            Objects.requireNonNull(lockTimeout, "lockTimeout");
            if (connectTimeout.toMillis() < 250) {
                throw new CaskException.InvalidInput("catalog: connect timeout " + connectTimeout + ", expected at least 250 ms");
            }
            if (lockTimeout.toMillis() < 1) throw new CaskException.InvalidInput("catalog: lock timeout " + lockTimeout + ", expected at least 1 ms");
        }

        /** 8 connections, 10 s to connect, 30 s for a lock. */
        public static Options defaults() {
            return new Options(8, Duration.ofSeconds(10), Duration.ofSeconds(30));
        }

        public Options withConnectTimeout(Duration d) {
            return new Options(maxConnections, d, lockTimeout);
        }

        public Options withLockTimeout(Duration d) {
            return new Options(maxConnections, connectTimeout, d);
        }
    }

    static final String VERSION_COLUMNS = """
            v.kind AS kind, v.protected AS protected, v.number AS number, p.name AS parent_name, v.parent_number AS parent_number,
            v.time_us AS time_us, v.message AS message, v.size AS size, v.content AS content
            FROM versions v LEFT JOIN images p ON p.id = v.parent_image_id""";

    private static final String IMAGE_COLUMNS = """
            i.name AS name, i.head AS head, i.created_us AS created_us,
            o.name AS origin_name, i.origin_number AS origin_number
            FROM images i LEFT JOIN images o ON o.id = i.origin_image_id""";

    private final String display;
    private final Clock clock;
    private final PgTransactions tx;

    private PostgresCatalog(CatalogUrl url, Clock clock, PgTransactions tx) {
        this.display = url.display();
        this.clock = clock;
        this.tx = tx;
    }

    /** Opens the catalog at {@code url} ({@link CatalogUrl}), creating its tables when the schema is empty. */
    public static PostgresCatalog open(String url) {
        return open(CatalogUrl.parse(url), Options.defaults(), dev.cask.common.Clocks.system());
    }

    /**
     * Opens the catalog at {@code url}: connects (failing at once, with the reason, when the
     * server cannot be reached or refuses the login), checks the server, and creates or checks the
     * schema. Versions are stamped by {@code clock}.
     */
    public static PostgresCatalog open(CatalogUrl url, Options options, Clock clock) {
        Objects.requireNonNull(clock, "clock");
        PgTransactions tx = PgTransactions.open(url, options);
        try {
            tx.prepare("create or check the schema", c -> PostgresSchema.prepare(c, url.display()));
            return new PostgresCatalog(url, clock, tx);
        } catch (RuntimeException e) {
            tx.close();
            throw e;
        }
    }

    // ---- the Catalog ----

    @Override
    public Version createImage(String name, NewVersion first, VersionKey parent) {
        Names.check(name);
        byte[] content = checkNew(name, first);
        checkKey(parent);
        return write("create image '" + name + "'", c -> {
            Long parentId = parent == null ? null : shareVersion(c, parent);
            long timeUs = nowMicros();
            long id;
            try (PreparedStatement st = c.prepareStatement("""
                    INSERT INTO images (name, head, created_us, origin_image_id, origin_number)
                    VALUES (?, 1, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id""")) {
                st.setString(1, name);
                st.setLong(2, timeUs);
                setLink(st, 3, parentId, parent);
                try (ResultSet rs = st.executeQuery()) {
                    if (!rs.next()) throw new CaskException.Conflict("image '" + name + "' already exists");
                    id = rs.getLong(1);
                }
            }
            insertVersion(c, id, 1, parentId, parent, timeUs, first, content);
            return new Version(name, 1, parent, instant(timeUs), first.message(), first.size(), content, first.kind(), false);
        });
    }

    @Override
    public Optional<Image> findImage(String name) {
        Names.check(name);
        return read("find image '" + name + "'", c -> {
            try (PreparedStatement st = c.prepareStatement("SELECT " + IMAGE_COLUMNS + " WHERE i.name = ?")) {
                st.setString(1, name);
                try (ResultSet rs = st.executeQuery()) {
                    return rs.next() ? Optional.of(image(rs)) : Optional.<Image>empty();
                }
            }
        });
    }

    @Override
    public List<Image> listImages(String prefix) {
        String p = prefix == null ? "" : prefix;
        if (!p.isEmpty()) Names.check(p);
        return read("list images '" + p + "'", c -> {
            // Names are ASCII in the "C" collation: "p/" <= name < "p0" ('0' follows '/') is
            // exactly the names below p/, and ORDER BY is String's natural order.
            String sql = p.isEmpty()
                    ? "SELECT " + IMAGE_COLUMNS + " ORDER BY i.name"
                    : "SELECT " + IMAGE_COLUMNS + " WHERE i.name = ? OR (i.name >= ? AND i.name < ?) ORDER BY i.name";
            try (PreparedStatement st = c.prepareStatement(sql)) {
                if (!p.isEmpty()) {
                    st.setString(1, p);
                    st.setString(2, p + "/");
                    st.setString(3, p + "0");
                }
                List<Image> images = new ArrayList<>();
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) images.add(image(rs));
                }
                return images;
            }
        });
    }

    @Override
    public Version commit(String name, int expectedHead, NewVersion version, VersionKey parent, long leaseEpoch) {
        Names.check(name);
        if (expectedHead < 1) {
            throw new CaskException.InvalidInput("image '" + name + "': expected head " + expectedHead + " is not a version number");
        }
        byte[] content = checkNew(name, version);
        checkKey(parent);
        return write("commit to image '" + name + "'", c -> {
            Locked image = lockImage(c, name);
            if (leaseEpoch != NO_LEASE) PostgresLeases.fence(c, name, leaseEpoch);
            if (image.head != expectedHead) throw headMoved(name, expectedHead, image.head);
            int newest;
            long newestUs;
            try (PreparedStatement st = c.prepareStatement("SELECT max(number), max(time_us) FROM versions WHERE image_id = ?")) {
                st.setLong(1, image.id);
                try (ResultSet rs = st.executeQuery()) {
                    rs.next();
                    newest = rs.getInt(1);
                    newestUs = rs.getLong(2);
                }
            }
            if (newest != image.head) {
                throw new CaskException.Corrupt("catalog " + display + ": image '" + name + "' has head " + image.head
                        + " but its newest version is " + newest);
            }
            Long parentId = parent == null ? null : parent.image().equals(name) ? existingVersion(c, image.id, parent) : shareVersion(c, parent);
            int number = image.head + 1;
            long timeUs = Math.max(nowMicros(), newestUs + 1);
            insertVersion(c, image.id, number, parentId, parent, timeUs, version, content);
            try (PreparedStatement st = c.prepareStatement("UPDATE images SET head = ? WHERE id = ? AND head = ?")) {
                st.setInt(1, number);
                st.setLong(2, image.id);
                st.setInt(3, expectedHead);
                if (st.executeUpdate() != 1) throw headMoved(name, expectedHead, -1); // cannot happen under the lock
            }
            return new Version(name, number, parent, instant(timeUs), version.message(), version.size(), content, version.kind(), false);
        });
    }

    @Override
    public List<Version> versions(String name) {
        Names.check(name);
        return read("list versions of image '" + name + "'", c -> {
            long id = existingImageId(c, name);
            try (PreparedStatement st = c.prepareStatement("SELECT " + VERSION_COLUMNS + " WHERE v.image_id = ? ORDER BY v.number")) {
                st.setLong(1, id);
                List<Version> versions = new ArrayList<>();
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) versions.add(version(name, rs));
                }
                return versions;
            }
        });
    }

    @Override
    public Version version(String name, int number) {
        Names.check(name);
        return read("read version " + name + "@" + number, c -> readVersion(c, existingImageId(c, name), name, number));
    }

    @Override
    public Version confirmVersion(String name, int number) {
        Names.check(name);
        return write("confirm version " + name + "@" + number, c -> {
            long id = shareImage(c, name);
            return readVersion(c, id, name, number);
        });
    }

    private static Version readVersion(Connection c, long id, String name, int number) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT " + VERSION_COLUMNS + " WHERE v.image_id = ? AND v.number = ?")) {
            st.setLong(1, id);
            st.setInt(2, number);
            try (ResultSet rs = st.executeQuery()) {
                if (rs.next()) return version(name, rs);
            }
        }
        throw noSuchVersion(c, id, name, number);
    }

    @Override
    public Version versionAt(String name, Instant time) {
        Names.check(name);
        Objects.requireNonNull(time, "time");
        return read("find the version of image '" + name + "' at " + time, c -> {
            long id = existingImageId(c, name);
            try (PreparedStatement st = c.prepareStatement("SELECT " + VERSION_COLUMNS
                    + " WHERE v.image_id = ? AND v.time_us <= ? ORDER BY v.time_us DESC, v.number DESC LIMIT 1")) {
                st.setLong(1, id);
                st.setLong(2, micros(time));
                try (ResultSet rs = st.executeQuery()) {
                    if (rs.next()) return version(name, rs);
                }
            }
            try (PreparedStatement st = c.prepareStatement("SELECT min(time_us) FROM versions WHERE image_id = ?")) {
                st.setLong(1, id);
                try (ResultSet rs = st.executeQuery()) {
                    rs.next();
                    throw new CaskException.NotFound("image '" + name + "' has no version at or before " + time
                            + " (its first version is from " + instant(rs.getLong(1)) + ")");
                }
            }
        });
    }

    @Override
    public void deleteImage(String name, Supplier<Set<Integer>> inUse) {
        Names.check(name);
        Objects.requireNonNull(inUse, "inUse");
        write("delete image '" + name + "'", c -> {
            long id = lockImage(c, name).id;
            Set<Integer> used = new java.util.TreeSet<>(inUse.get());
            if (!used.isEmpty()) {
                throw new CaskException.Conflict("cannot remove image '" + name + "': version" + (used.size() == 1 ? " " : "s ") + used
                        + (used.size() == 1 ? " is" : " are") + " in use (a running server exports " + (used.size() == 1 ? "it" : "them")
                        + " read-only, or has the image open); try again when the server no longer serves it");
            }
            // Versions first; the foreign keys null every link to them (clones' origins, parents).
            try (PreparedStatement st = c.prepareStatement("DELETE FROM versions WHERE image_id = ?")) {
                st.setLong(1, id);
                st.executeUpdate();
            }
            try (PreparedStatement st = c.prepareStatement("DELETE FROM images WHERE id = ?")) {
                st.setLong(1, id);
                st.executeUpdate();
            }
            return null;
        });
    }

    @Override
    public void renameImage(String from, String to) {
        Names.check(from);
        Names.check(to);
        write("rename image '" + from + "' to '" + to + "'", c -> {
            long id = lockImage(c, from).id;
            PostgresLifecycle.rename(c, id, from, to);
            return null;
        });
    }

    @Override
    public void tag(String name, String label, int number) {
        Names.check(name);
        Names.checkLabel(label);
        write("label version " + name + "@" + number + " '" + label + "'", c -> {
            long id = lockImage(c, name).id;
            existingVersion(c, id, new VersionKey(name, number));
            PostgresLifecycle.tag(c, id, name, label, number);
            return null;
        });
    }

    @Override
    public void untag(String name, String label) {
        Names.check(name);
        write("remove label '" + label + "' of image '" + name + "'", c -> {
            PostgresLifecycle.untag(c, lockImage(c, name).id, name, label);
            return null;
        });
    }

    @Override
    public SortedMap<String, Integer> tags(String name) {
        Names.check(name);
        return read("list labels of image '" + name + "'", c -> PostgresLifecycle.tags(c, existingImageId(c, name)));
    }

    @Override
    public void makeUserVersion(String name, int number) {
        Names.check(name);
        write("make version " + name + "@" + number + " a user version", c -> {
            long id = lockImage(c, name).id;
            existingVersion(c, id, new VersionKey(name, number));
            PostgresLifecycle.makeUserVersion(c, id, number);
            return null;
        });
    }

    @Override
    public void setProtected(String name, int number, boolean on) {
        Names.check(name);
        write((on ? "protect" : "unprotect") + " version " + name + "@" + number, c -> {
            long id = lockImage(c, name).id;
            existingVersion(c, id, new VersionKey(name, number));
            PostgresLifecycle.setProtected(c, id, number, on);
            return null;
        });
    }

    @Override
    public VersionDeletion deleteVersions(String name, Collection<Integer> numbers, Supplier<Set<Integer>> inUse) {
        Names.check(name);
        Objects.requireNonNull(inUse, "inUse");
        Objects.requireNonNull(numbers, "numbers");
        return write("delete versions of image '" + name + "'", c -> {
            Locked image = lockImage(c, name);
            return PostgresLifecycle.deleteVersions(c, image.id, image.head, numbers, inUse, false, true);
        });
    }

    @Override
    public VersionDeletion deleteVersionsByPolicy(String name, Collection<Integer> numbers, Supplier<Set<Integer>> inUse,
                                                  boolean includeUser) {
        Names.check(name);
        Objects.requireNonNull(inUse, "inUse");
        Objects.requireNonNull(numbers, "numbers");
        return write("delete versions of image '" + name + "' by retention policy", c -> {
            Locked image = lockImage(c, name);
            return PostgresLifecycle.deleteVersions(c, image.id, image.head, numbers, inUse, true, includeUser);
        });
    }

    @Override
    public void setRetention(String prefix, String policy) {
        Names.check(prefix);
        if (policy != null && policy.indexOf('\0') >= 0) {
            throw new CaskException.InvalidInput("retention policy of '" + prefix + "': contains a NUL character");
        }
        write((policy == null ? "remove" : "store") + " the retention policy of '" + prefix + "'", c -> {
            PostgresLifecycle.setRetention(c, prefix, policy);
            return null;
        });
    }

    @Override
    public SortedMap<String, String> retentionPolicies() {
        return read("list retention policies", PostgresLifecycle::retentionPolicies);
    }

    @Override
    public List<Version> allVersions() {
        return read("list all versions", c -> {
            try (PreparedStatement st = c.prepareStatement("SELECT i.name AS image, " + VERSION_COLUMNS
                    + " JOIN images i ON i.id = v.image_id ORDER BY i.name, v.number")) {
                List<Version> versions = new ArrayList<>();
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) versions.add(version(rs.getString("image"), rs));
                }
                return versions;
            }
        });
    }

    /** Closes the pool and its connections; idempotent. Later calls throw. */
    @Override
    public void close() {
        tx.close();
    }

    /** Where the catalog is, as it may be shown: never with the password. */
    public String url() {
        return display;
    }

    @Override
    public String toString() {
        return "PostgresCatalog[" + display + "]";
    }

    // ---- rows and locks ----

    private record Locked(long id, int head) {}

    /** Locks image {@code name}'s row for the rest of the transaction (the image's one writer); NotFound when there is none. */
    private static Locked lockImage(Connection c, String name) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT id, head FROM images WHERE name = ? FOR UPDATE")) {
            st.setString(1, name);
            try (ResultSet rs = st.executeQuery()) {
                if (!rs.next()) throw new CaskException.NotFound("image '" + name + "': not found");
                return new Locked(rs.getLong(1), rs.getInt(2));
            }
        }
    }

    /** Share-locks image {@code name}'s row (no removal there until we commit); its id, or NotFound. */
    private static long shareImage(Connection c, String name) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT id FROM images WHERE name = ? FOR SHARE")) {
            st.setString(1, name);
            try (ResultSet rs = st.executeQuery()) {
                if (!rs.next()) throw new CaskException.NotFound("image '" + name + "': not found");
                return rs.getLong(1);
            }
        }
    }

    /** Share-locks the image holding {@code key} and checks the version exists; the image's id, or NotFound naming the version. */
    private static long shareVersion(Connection c, VersionKey key) throws SQLException {
        long id;
        try {
            id = shareImage(c, key.image());
        } catch (CaskException.NotFound e) {
            throw new CaskException.NotFound("version " + key + ": image '" + key.image() + "': not found");
        }
        return existingVersion(c, id, key);
    }

    /** {@code id} when image {@code id} has version {@code key.number()}, else NotFound naming it. */
    private static long existingVersion(Connection c, long id, VersionKey key) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT 1 FROM versions WHERE image_id = ? AND number = ?")) {
            st.setLong(1, id);
            st.setInt(2, key.number());
            try (ResultSet rs = st.executeQuery()) {
                if (rs.next()) return id;
            }
        }
        throw noSuchVersion(c, id, key.image(), key.number());
    }

    private static long existingImageId(Connection c, String name) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT id FROM images WHERE name = ?")) {
            st.setString(1, name);
            try (ResultSet rs = st.executeQuery()) {
                if (rs.next()) return rs.getLong(1);
            }
        }
        throw new CaskException.NotFound("image '" + name + "': not found");
    }

    private static CaskException.NotFound noSuchVersion(Connection c, long id, String name, int number) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT min(number), max(number) FROM versions WHERE image_id = ?")) {
            st.setLong(1, id);
            try (ResultSet rs = st.executeQuery()) {
                rs.next();
                return new CaskException.NotFound("image '" + name + "' has no version " + number
                        + " (versions " + rs.getInt(1) + "-" + rs.getInt(2) + ")");
            }
        }
    }

    private static CaskException.Conflict headMoved(String name, int expected, int actual) {
        if (actual > expected) {
            return new CaskException.Conflict("image '" + name + "': head moved from " + expected + " to " + actual
                    + " (someone else committed); retry");
        }
        return new CaskException.Conflict("image '" + name + "': expected head " + expected + ", but the head is " + actual);
    }

    private static Image image(ResultSet rs) throws SQLException {
        String origin = rs.getString("origin_name");
        return new Image(rs.getString("name"), rs.getInt("head"), instant(rs.getLong("created_us")),
                origin == null ? null : new VersionKey(origin, rs.getInt("origin_number")));
    }

    private static Version version(String image, ResultSet rs) throws SQLException {
        String parent = rs.getString("parent_name");
        return new Version(image, rs.getInt("number"),
                parent == null ? null : new VersionKey(parent, rs.getInt("parent_number")),
                instant(rs.getLong("time_us")), rs.getString("message"), rs.getLong("size"), rs.getBytes("content"),
                VersionKind.fromWord(rs.getString("kind")), rs.getBoolean("protected"));
    }

    private static void insertVersion(Connection c, long imageId, int number, Long parentId, VersionKey parent,
                                      long timeUs, NewVersion v, byte[] content) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("""
                INSERT INTO versions (image_id, number, parent_image_id, parent_number, time_us, message, size, content, kind)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""")) {
            st.setLong(1, imageId);
            st.setInt(2, number);
            setLink(st, 3, parentId, parent);
            st.setLong(5, timeUs);
            if (v.message() == null) st.setNull(6, Types.VARCHAR);
            else st.setString(6, v.message());
            st.setLong(7, v.size());
            st.setBytes(8, content);
            st.setString(9, v.kind().word());
            st.executeUpdate();
        }
    }

    private static void setLink(PreparedStatement st, int index, Long imageId, VersionKey key) throws SQLException {
        if (imageId == null) {
            st.setNull(index, Types.BIGINT);
            st.setNull(index + 1, Types.INTEGER);
        } else {
            st.setLong(index, imageId);
            st.setInt(index + 1, key.number());
        }
    }

    // ---- input checks ----

    /** Checks a version to be written; returns a private copy of its content. */
    private static byte[] checkNew(String name, NewVersion v) {
        if (v == null) throw new CaskException.InvalidInput("image '" + name + "': no version given");
        if (v.content() == null) throw new CaskException.InvalidInput("image '" + name + "': version content is null");
        if (v.size() < 0) throw new CaskException.InvalidInput("image '" + name + "': disk size " + v.size() + " is negative");
        if (v.message() != null && v.message().indexOf('\0') >= 0) {
            // PostgreSQL's text cannot hold U+0000; refuse it here rather than fail in the driver.
            throw new CaskException.InvalidInput("image '" + name + "': version message contains a NUL character (at "
                    + v.message().indexOf('\0') + ")");
        }
        return v.content().clone();
    }

    private static void checkKey(VersionKey key) {
        if (key == null) return;
        Names.check(key.image());
        if (key.number() < 1) throw new CaskException.InvalidInput("version " + key + ": version numbers start at 1");
    }

    // ---- time: epoch microseconds ----

    private long nowMicros() {
        return micros(clock.instant());
    }

    /** Floor of the instant in epoch microseconds, saturating far outside the years a bigint of microseconds holds. */
    static long micros(Instant t) {
        long s = t.getEpochSecond();
        if (s >= Long.MAX_VALUE / 1_000_000 - 1) return Long.MAX_VALUE;
        if (s <= Long.MIN_VALUE / 1_000_000 + 1) return Long.MIN_VALUE;
        return s * 1_000_000 + t.getNano() / 1_000;
    }

    static Instant instant(long micros) {
        return Instant.ofEpochSecond(Math.floorDiv(micros, 1_000_000), Math.floorMod(micros, 1_000_000) * 1_000L);
    }

    // ---- transactions ----

    private <T> T read(String what, PgTransactions.Work<T> work) {
        return tx.run(what, false, work);
    }

    private <T> T write(String what, PgTransactions.Work<T> work) {
        return tx.run(what, true, work);
    }
}
