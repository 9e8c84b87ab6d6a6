package dev.cask.catalog.sqlite;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Image;
import dev.cask.catalog.Names;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionDeletion;
import dev.cask.catalog.VersionKey;
import dev.cask.catalog.VersionKind;
import dev.cask.common.CaskException;
import org.sqlite.SQLiteConfig;
import org.sqlite.SQLiteErrorCode;
import org.sqlite.SQLiteException;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The catalog in one SQLite file. It owns three tables and the file's schema version:
 *
 * <pre>
 *   images   (id, name UNIQUE, head, created_us, origin_image_id, origin_number)
 *   versions (image_id, number, parent_image_id, parent_number, time_us, message, size, content)
 *            PRIMARY KEY (image_id, number)
 *   tags     (image_id, label, number) PRIMARY KEY (image_id, label)     -- schema 2
 *   versions + kind ('user' | 'auto'), protected (0 | 1)                  -- schema 3
 *   retention (prefix PRIMARY KEY, policy)                                -- schema 3
 * </pre>
 *
 * <p><b>Schema versions</b> ({@link SqliteSchema}: the tables and the migrations). A new file
 * gets schema 1 and then every migration, the same path an old file takes, so the migrations are
 * run by every test. 1 to 2 adds {@code tags}; 2 to 3 adds
 * a version's kind and protection (old versions become user versions, unprotected: nothing is
 * ever pruned that an old cask made) and the {@code retention} policies ({@link SqliteLifecycle}). A rename
 * needs no migration: every link is an image id, so renaming is one {@code UPDATE} of
 * {@code images.name} ({@link SqliteTags}).
 *
 * <p><b>Links.</b> A version's parent and an image's origin are stored as (image id, number), a
 * foreign key into {@code versions} with {@code ON DELETE SET NULL}: deleting an image deletes its
 * versions ({@code ON DELETE CASCADE}), and SQLite nulls every link that pointed at them, so a
 * clone's version 1 reports {@code parent == null} from then on. Image ids come from
 * {@code AUTOINCREMENT} and are never reused, so an image created later under the same name never
 * inherits the dead links.
 *
 * <p><b>Invariants.</b> {@code images.head} is the newest version number of the image; numbers
 * start at 1 and increase, with gaps where versions were removed ({@link #deleteVersions} never
 * removes the head, so a number is never used twice). The head moves only in {@link #commit}, inside one
 * {@code BEGIN IMMEDIATE} transaction that checks the expected head, inserts the version and
 * swaps the head ({@code UPDATE ... WHERE head = expected}). Times are epoch microseconds and
 * strictly increase within an image: a commit takes {@code max(now, newest + 1 µs)}, so two
 * commits in the same microsecond (or a clock that steps back) still order correctly and
 * {@link #versionAt} finds each version at its own time.
 *
 * <p><b>Durability.</b> WAL journal with {@code synchronous=FULL}: a commit that returned is on
 * disk and survives power loss. The schema version lives in {@code PRAGMA user_version}; a file
 * with a newer one is refused rather than misread.
 *
 * <p><b>Concurrency.</b> One JDBC connection, guarded by a lock: threads of this process take
 * turns, each call is one transaction. Other processes (or other instances on the same file)
 * are serialised by SQLite's file locks. Every transaction that writes starts with
 * {@code BEGIN IMMEDIATE}, which takes the write lock up front and waits for it (busy timeout
 * 30 s); reads run in deferred transactions on a WAL snapshot and never block writers. A
 * deferred transaction that later wants to write could fail at once with SQLITE_BUSY, which is
 * why none does.
 */
public final class SqliteCatalog implements Catalog {
    /** The schema this code reads and writes, kept in {@code PRAGMA user_version}. */
    static final int SCHEMA_VERSION = 3;
    /** How long a writer waits for another writer (thread or process) before giving up. */
    static final int BUSY_TIMEOUT_MS = 30_000;

    private static final String VERSION_COLUMNS = """
            v.kind AS kind, v.protected AS protected, v.number AS number, p.name AS parent_name, v.parent_number AS parent_number,
            v.time_us AS time_us, v.message AS message, v.size AS size, v.content AS content
            FROM versions v LEFT JOIN images p ON p.id = v.parent_image_id""";

    private static final String IMAGE_COLUMNS = """
            i.name AS name, i.head AS head, i.created_us AS created_us,
            o.name AS origin_name, i.origin_number AS origin_number
            FROM images i LEFT JOIN images o ON o.id = i.origin_image_id""";

    private final Path dbFile;
    private final Clock clock;
    private final ReentrantLock lock = new ReentrantLock();
    /** Guarded by {@link #lock}; null once closed. */
    private Connection conn;

    private SqliteCatalog(Path dbFile, Clock clock, Connection conn) {
        this.dbFile = dbFile;
        this.clock = clock;
        this.conn = conn;
    }

    /**
     * Opens the catalog in {@code dbFile}, creating the file and its schema when absent. Versions
     * are stamped by {@link dev.cask.common.Clocks#system()}: the system clock unless {@code cask.now} sets one.
     */
    public static SqliteCatalog open(Path dbFile) {
        return open(dbFile, dev.cask.common.Clocks.system());
    }

    /** As {@link #open(Path)}, with the clock that stamps versions (tests use a fake one). */
    public static SqliteCatalog open(Path dbFile, Clock clock) {
        Objects.requireNonNull(clock, "clock");
        Path file = Objects.requireNonNull(dbFile, "dbFile").toAbsolutePath().normalize();
        Path dir = file.getParent();
        if (file.toString().contains("?")) {
            throw new CaskException.InvalidInput("catalog " + file + ": the path must not contain '?'");
        }
        if (dir == null || !Files.isDirectory(dir)) {
            throw new CaskException.NotFound("catalog " + file + ": directory " + dir + " does not exist");
        }
        if (Files.isDirectory(file)) {
            throw new CaskException.InvalidInput("catalog " + file + ": is a directory, expected a SQLite file");
        }
        boolean fresh = !Files.exists(file);
        SQLiteConfig config = new SQLiteConfig();
        config.setBusyTimeout(BUSY_TIMEOUT_MS);
        config.setGetGeneratedKeys(false); // nothing asks for them; on, every INSERT also ran last_insert_rowid
        Connection c = null;
        try {
            c = config.createConnection("jdbc:sqlite:" + file);
            SqliteCatalog catalog = new SqliteCatalog(file, clock, c);
            catalog.prepare(fresh);
            return catalog;
        } catch (SQLException e) {
            closeQuietly(c);
            throw io(file, "open", e);
        } catch (RuntimeException e) {
            closeQuietly(c);
            throw e;
        }
    }

    /** Sets the connection's pragmas, then checks (or creates) the schema. */
    private void prepare(boolean fresh) throws SQLException {
        exec(conn, "PRAGMA busy_timeout = " + BUSY_TIMEOUT_MS);
        String mode = dev.cask.common.SqliteWal.enable(conn, BUSY_TIMEOUT_MS);
        if (!"wal".equalsIgnoreCase(mode)) {
            throw new CaskException("catalog " + dbFile + ": SQLite cannot use WAL journal mode here (it stayed in '"
                    + mode + "'); is the file on a network file system?");
        }
        exec(conn, "PRAGMA synchronous = FULL");
        exec(conn, "PRAGMA foreign_keys = ON");
        if (!"1".equals(queryString(conn, "PRAGMA foreign_keys"))) {
            throw new CaskException("catalog " + dbFile + ": this SQLite build cannot enforce foreign keys");
        }
        int version = checkSchemaVersion();
        if (version == SCHEMA_VERSION) return;
        // Version 0 (a new file) or an older schema: SqliteSchema creates or migrates it.
        SqliteSchema.migrate(conn, dbFile, this::checkSchemaVersion);
        if (fresh) syncDirectory();
    }

    /** The file's schema version: this one or 0 (new file); a newer or negative one is refused. */
    int checkSchemaVersion() throws SQLException {
        int version = Integer.parseInt(queryString(conn, "PRAGMA user_version"));
        if (version > SCHEMA_VERSION) {
            throw new CaskException("catalog " + dbFile + ": schema version " + version
                    + " is newer than this cask understands (version " + SCHEMA_VERSION + "); upgrade cask");
        }
        if (version < 0) {
            throw new CaskException.Corrupt("catalog " + dbFile + ": bad schema version " + version + ", expected "
                    + SCHEMA_VERSION);
        }
        return version;
    }

    /** Makes the new file's directory entry durable (SQLite syncs the directories of its journals, not of the file). */
    private void syncDirectory() {
        Path dir = dbFile.getParent();
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException e) {
            throw new CaskException.Io("catalog " + dbFile + ": cannot sync directory " + dir + ": " + e.getMessage(), e);
        }
    }

    // ---- the Catalog ----

    @Override
    public Version createImage(String name, NewVersion first, VersionKey parent) {
        Names.check(name);
        byte[] content = checkNew(name, first);
        checkKey(parent);
        return write("create image '" + name + "'", c -> {
            if (imageId(c, name) != null) throw new CaskException.Conflict("image '" + name + "' already exists");
            Long parentId = parent == null ? null : resolve(c, parent);
            long timeUs = nowMicros();
            long id;
            try (PreparedStatement st = c.prepareStatement("""
                    INSERT INTO images (name, head, created_us, origin_image_id, origin_number)
                    VALUES (?, 1, ?, ?, ?) RETURNING id""")) {
                st.setString(1, name);
                st.setLong(2, timeUs);
                setLink(st, 3, parentId, parent);
                try (ResultSet rs = st.executeQuery()) {
                    rs.next();
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
            // Names are ASCII and SQLite compares TEXT bytewise, so "p/" <= name < "p0" ('0' follows
            // '/') is exactly the names below p/, and the order is String's natural order.
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
        if (leaseEpoch != 0 && leaseEpoch != NO_LEASE) {
            // the leases beside a SQLite catalog are local file locks, whose epoch is always 0
            throw new CaskException.Fenced("image '" + name + "': a commit under lease epoch " + leaseEpoch + " is refused: catalog "
                    + dbFile + " keeps no leases, and the local leases' epoch is always 0");
        }
        if (expectedHead < 1) {
            throw new CaskException.InvalidInput("image '" + name + "': expected head " + expectedHead + " is not a version number");
        }
        byte[] content = checkNew(name, version);
        checkKey(parent);
        return write("commit to image '" + name + "'", c -> {
            long id = existingImageId(c, name);
            int head;
            long newestUs;
            int newest;
            try (PreparedStatement st = c.prepareStatement("""
                    SELECT i.head, max(v.number), max(v.time_us)
                    FROM images i JOIN versions v ON v.image_id = i.id WHERE i.id = ?""")) {
                st.setLong(1, id);
                try (ResultSet rs = st.executeQuery()) {
                    rs.next();
                    head = rs.getInt(1);
                    newest = rs.getInt(2);
                    newestUs = rs.getLong(3);
                }
            }
            if (head != expectedHead) throw headMoved(name, expectedHead, head);
            if (newest != head) {
                throw new CaskException.Corrupt("catalog " + dbFile + ": image '" + name + "' has head " + head
                        + " but its newest version is " + newest);
            }
            Long parentId = parent == null ? null : resolve(c, parent);
            int number = head + 1;
            long timeUs = Math.max(nowMicros(), newestUs + 1);
            insertVersion(c, id, number, parentId, parent, timeUs, version, content);
            try (PreparedStatement st = c.prepareStatement("UPDATE images SET head = ? WHERE id = ? AND head = ?")) {
                st.setInt(1, number);
                st.setLong(2, id);
                st.setInt(3, expectedHead);
                if (st.executeUpdate() != 1) throw headMoved(name, expectedHead, currentHead(c, id));
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
        return read("read version " + name + "@" + number, c -> {
            long id = existingImageId(c, name);
            try (PreparedStatement st = c.prepareStatement("SELECT " + VERSION_COLUMNS + " WHERE v.image_id = ? AND v.number = ?")) {
                st.setLong(1, id);
                st.setInt(2, number);
                try (ResultSet rs = st.executeQuery()) {
                    if (rs.next()) return version(name, rs);
                }
            }
            throw noSuchVersion(c, id, name, number);
        });
    }

    @Override
    public Version confirmVersion(String name, int number) {
        Names.check(name);
        return write("confirm version " + name + "@" + number, c -> {
            long id = existingImageId(c, name);
            try (PreparedStatement st = c.prepareStatement("SELECT " + VERSION_COLUMNS + " WHERE v.image_id = ? AND v.number = ?")) {
                st.setLong(1, id);
                st.setInt(2, number);
                try (ResultSet rs = st.executeQuery()) {
                    if (rs.next()) return version(name, rs);
                }
            }
            throw noSuchVersion(c, id, name, number);
        });
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
    public void deleteImage(String name, java.util.function.Supplier<java.util.Set<Integer>> inUse) {
        Names.check(name);
        Objects.requireNonNull(inUse, "inUse");
        write("delete image '" + name + "'", c -> {
            long id = existingImageId(c, name);
            java.util.Set<Integer> used = new java.util.TreeSet<>(inUse.get());
            if (!used.isEmpty()) {
                throw new CaskException.Conflict("cannot remove image '" + name + "': version" + (used.size() == 1 ? " " : "s ") + used
                        + (used.size() == 1 ? " is" : " are") + " in use (a running server exports " + (used.size() == 1 ? "it" : "them")
                        + " read-only, or has the image open); try again when the server no longer serves it");
            }
            // Versions first (the cascade would do it too); the foreign keys null every link to them.
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
            SqliteTags.rename(c, existingImageId(c, from), from, to);
            return null;
        });
    }

    @Override
    public void tag(String name, String label, int number) {
        Names.check(name);
        Names.checkLabel(label);
        write("label version " + name + "@" + number + " '" + label + "'", c -> {
            long id = existingImageId(c, name);
            resolve(c, new VersionKey(name, number));
            SqliteTags.tag(c, id, name, label, number);
            return null;
        });
    }

    @Override
    public void untag(String name, String label) {
        Names.check(name);
        write("remove label '" + label + "' of image '" + name + "'", c -> {
            SqliteTags.untag(c, existingImageId(c, name), name, label);
            return null;
        });
    }

    @Override
    public java.util.SortedMap<String, Integer> tags(String name) {
        Names.check(name);
        return read("list labels of image '" + name + "'", c -> SqliteTags.tags(c, existingImageId(c, name)));
    }

    @Override
    public void makeUserVersion(String name, int number) {
        Names.check(name);
        write("make version " + name + "@" + number + " a user version", c -> {
            long id = resolve(c, new VersionKey(name, number));
            SqliteLifecycle.makeUserVersion(c, id, number);
            return null;
        });
    }

    @Override
    public void setProtected(String name, int number, boolean on) {
        Names.check(name);
        write((on ? "protect" : "unprotect") + " version " + name + "@" + number, c -> {
            long id = resolve(c, new VersionKey(name, number));
            SqliteLifecycle.setProtected(c, id, number, on);
            return null;
        });
    }

    @Override
    public VersionDeletion deleteVersions(String name, java.util.Collection<Integer> numbers,
                                          java.util.function.Supplier<java.util.Set<Integer>> inUse) {
        Names.check(name);
        Objects.requireNonNull(inUse, "inUse");
        return write("delete versions of image '" + name + "'",
                c -> SqliteLifecycle.deleteVersions(c, existingImageId(c, name), name, numbers, inUse));
    }

    @Override
    public VersionDeletion deleteVersionsByPolicy(String name, java.util.Collection<Integer> numbers,
                                                  java.util.function.Supplier<java.util.Set<Integer>> inUse, boolean includeUser) {
        Names.check(name);
        Objects.requireNonNull(inUse, "inUse");
        return write("delete versions of image '" + name + "' by retention policy",
                c -> SqliteLifecycle.deleteVersions(c, existingImageId(c, name), name, numbers, inUse, true, includeUser));
    }

    @Override
    public void setRetention(String prefix, String policy) {
        Names.check(prefix);
        write((policy == null ? "remove" : "store") + " the retention policy of '" + prefix + "'", c -> {
            SqliteLifecycle.setRetention(c, prefix, policy);
            return null;
        });
    }

    @Override
    public java.util.SortedMap<String, String> retentionPolicies() {
        return read("list retention policies", SqliteLifecycle::retentionPolicies);
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

    /** Closes the connection; idempotent. Later calls throw. */
    @Override
    public void close() {
        lock.lock();
        try {
            if (conn == null) return;
            Connection c = conn;
            conn = null;
            try {
                c.close();
            } catch (SQLException e) {
                throw io(dbFile, "close", e);
            }
        } finally {
            lock.unlock();
        }
    }

    /** The database file. */
    public Path file() {
        return dbFile;
    }

    /** The value of a pragma on this catalog's connection (for tests). */
    String pragma(String name) {
        return read("read pragma " + name, c -> queryString(c, "PRAGMA " + name));
    }

    @Override
    public String toString() {
        return "SqliteCatalog[" + dbFile + "]";
    }

    // ---- rows ----

    private static Image image(ResultSet rs) throws SQLException {
        String origin = rs.getString("origin_name");
        return new Image(rs.getString("name"), rs.getInt("head"), instant(rs.getLong("created_us")),
                origin == null ? null : new VersionKey(origin, rs.getInt("origin_number")));
    }

    private static Version version(String image, ResultSet rs) throws SQLException {
        String parent = rs.getString("parent_name");
        byte[] content = rs.getBytes("content");
        return new Version(image, rs.getInt("number"),
                parent == null ? null : new VersionKey(parent, rs.getInt("parent_number")),
                instant(rs.getLong("time_us")), rs.getString("message"), rs.getLong("size"),
                content == null ? new byte[0] : content, // SQLite hands back a 0-byte BLOB as NULL
                VersionKind.fromWord(rs.getString("kind")), rs.getInt("protected") != 0);
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
            st.setNull(index, Types.INTEGER);
            st.setNull(index + 1, Types.INTEGER);
        } else {
            st.setLong(index, imageId);
            st.setInt(index + 1, key.number());
        }
    }

    /** The image's id, or null. */
    private static Long imageId(Connection c, String name) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT id FROM images WHERE name = ?")) {
            st.setString(1, name);
            try (ResultSet rs = st.executeQuery()) {
                return rs.next() ? rs.getLong(1) : null;
            }
        }
    }

    private static long existingImageId(Connection c, String name) throws SQLException {
        Long id = imageId(c, name);
        if (id == null) throw new CaskException.NotFound("image '" + name + "': not found");
        return id;
    }

    /** The id of the image holding {@code key}, or NotFound naming the version. */
    private static long resolve(Connection c, VersionKey key) throws SQLException {
        Long id = imageId(c, key.image());
        if (id == null) throw new CaskException.NotFound("version " + key + ": image '" + key.image() + "': not found");
        try (PreparedStatement st = c.prepareStatement("SELECT 1 FROM versions WHERE image_id = ? AND number = ?")) {
            st.setLong(1, id);
            st.setInt(2, key.number());
            try (ResultSet rs = st.executeQuery()) {
                if (rs.next()) return id;
            }
        }
        throw noSuchVersion(c, id, key.image(), key.number());
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

    private static int currentHead(Connection c, long id) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT head FROM images WHERE id = ?")) {
            st.setLong(1, id);
            try (ResultSet rs = st.executeQuery()) {
                return rs.next() ? rs.getInt(1) : 0;
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

    // ---- input checks ----

    /** Checks a version to be written; returns a private copy of its content. */
    private static byte[] checkNew(String name, NewVersion v) {
        if (v == null) throw new CaskException.InvalidInput("image '" + name + "': no version given");
        if (v.content() == null) throw new CaskException.InvalidInput("image '" + name + "': version content is null");
        if (v.size() < 0) throw new CaskException.InvalidInput("image '" + name + "': disk size " + v.size() + " is negative");
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

    /** Floor of the instant in epoch microseconds, saturating far outside the years SQLite can hold. */
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

    @FunctionalInterface
    private interface Work<T> {
        T run(Connection c) throws SQLException;
    }

    private <T> T read(String what, Work<T> work) {
        return transact(what, "BEGIN", work);
    }

    private <T> T write(String what, Work<T> work) {
        return transact(what, "BEGIN IMMEDIATE", work);
    }

    /** Runs {@code work} in one transaction on the connection, under the lock; rolls back on any failure. */
    private <T> T transact(String what, String begin, Work<T> work) {
        lock.lock();
        try {
            if (conn == null) throw new CaskException("catalog " + dbFile + ": closed");
            Connection c = conn;
            boolean done = false;
            try {
                exec(c, begin);
                T result = work.run(c);
                exec(c, "COMMIT");
                done = true;
                return result;
            } catch (SQLException e) {
                throw io(dbFile, what, e);
            } finally {
                if (!done) rollbackQuietly(c);
            }
        } finally {
            lock.unlock();
        }
    }

    static void exec(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        }
    }

    static String queryString(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            return rs.next() ? rs.getString(1) : null;
        }
    }

    /** Ends whatever transaction is open; an error here would hide the one that got us here. */
    static void rollbackQuietly(Connection c) {
        try {
            if (!c.isClosed()) exec(c, "ROLLBACK");
        } catch (SQLException ignored) {
            // No transaction was open (SQLite already rolled it back), or the connection is gone.
        }
    }

    private static void closeQuietly(Connection c) {
        if (c == null) return;
        try {
            c.close();
        } catch (SQLException ignored) {
            // Already failing with a better error.
        }
    }

    static CaskException.Io io(Path file, String what, SQLException e) {
        String hint = "";
        if (e instanceof SQLiteException se && (se.getResultCode().code & 0xff) == SQLiteErrorCode.SQLITE_BUSY.code) {
            hint = " (another process held the catalog's write lock for more than " + BUSY_TIMEOUT_MS / 1000 + " s)";
        }
        return new CaskException.Io("catalog " + file + ": " + what + ": " + e.getMessage() + hint, e);
    }
}
