package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Collection;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Consumer;

/**
 * The index of a local store: chunk id to (pack, offset, length, slot) of the record or segment
 * holding the chunk, in an SQLite file.
 *
 * <p>SQLite because several processes share a store (the CLI while {@code cask serve} runs,
 * two imports at once): its WAL mode lets them read while one writes, and its locking keeps the
 * file whole. The index is only a cache of the packs ({@code cask check --repair} rebuilds it),
 * and entries are added only after the pack bytes they point at are fsynced, so it never points
 * at data that a crash could lose. Each {@link #addAll} is durable when it returns (WAL,
 * {@code synchronous=FULL}): a version committed after a store sync needs its entries, and
 * nothing rebuilds a lost one on its own.
 *
 * <p>Schema 2 ({@code PRAGMA user_version}) added the {@code slot} column (-1: a record of its
 * own; 0 and up: the chunk's slot in a segment). An index of schema 1 (no {@code slot}) is
 * migrated when opened: {@code ALTER TABLE ... ADD COLUMN slot ... DEFAULT -1} only changes the
 * table's definition, so every old entry reads as a single record, which it is.
 *
 * <p>A process may ask for reads through a memory map ({@code mmap_size}): SQLite then reads
 * index pages from the mapped file instead of with a system call per page, which bulk lookups
 * (every block of an import or an export) feel. Writes are unchanged (WAL).
 *
 * <p><b>Damaged entries.</b> A second table, {@code damaged}, lists index entries whose copy a
 * read or {@code cask check} found corrupt: (chunk id, pack, offset, slot) of the bad copy. A row
 * counts only while the chunk's entry still points at that very copy ({@link #lookupForPut}
 * joins on all four columns), so a row left behind by a race (check marks a copy a heal has
 * just replaced) changes nothing. {@link #commit} moves a healed entry to its new copy with a
 * compare-and-swap on the bad location and deletes the row in the same transaction. The table
 * is created by {@code CREATE TABLE IF NOT EXISTS} and needs no schema bump: a cask that does
 * not know it ignores it (and dedups onto a bad copy, as casks always did), and
 * {@link #clear} empties it with the entries. See {@link Healing}.
 *
 * <p>Thread-safety: lookups borrow a connection with its prepared statement from a pool (JDBC
 * statements are single-threaded); {@link #addAll} serialises writers on its own connection.
 */
final class ChunkIndex implements AutoCloseable {
    private final Path file;
    private final String url;
    private final Connection writer;
    private final ConcurrentLinkedQueue<Reader> readers = new ConcurrentLinkedQueue<>();

    private final class Reader {
        final Connection connection;
        final PreparedStatement lookup;
        final PreparedStatement batchLookup;
        final PreparedStatement putLookup;
        final PreparedStatement batchPutLookup;

        Reader() throws SQLException {
            connection = connect();
            lookup = connection.prepareStatement("SELECT pack, offset, length, slot FROM chunks WHERE id = ?");
            batchLookup = connection.prepareStatement(inQuery(BATCH));
            putLookup = connection.prepareStatement(putQuery(1));
            batchPutLookup = connection.prepareStatement(putQuery(BATCH));
        }
    }

    /** SQLite's {@code mmap_size} for every connection (0: reads by system call). */
    private final long mapBytes;

    ChunkIndex(Path file) {
        this(file, 0);
    }

    ChunkIndex(Path file, long mapBytes) {
        this.file = file;
        this.mapBytes = mapBytes;
        this.url = "jdbc:sqlite:" + file;
        try {
            writer = connect();
            dev.cask.common.SqliteWal.enable(writer, 60_000); // BUSY at once on a new file several open together
            try (Statement st = writer.createStatement()) {
                st.execute("CREATE TABLE IF NOT EXISTS chunks (id BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
                        + " offset INTEGER NOT NULL, length INTEGER NOT NULL, slot INTEGER NOT NULL DEFAULT -1) WITHOUT ROWID");
                st.execute(DAMAGED_TABLE);
            }
            migrate();
        } catch (SQLException e) {
            throw error("open", e);
        }
    }

    static final int SCHEMA = 2;

    /** Copies found corrupt that their chunk's entry points at (see the class essay); not part of the schema number. */
    static final String DAMAGED_TABLE = "CREATE TABLE IF NOT EXISTS damaged (id BLOB NOT NULL, pack INTEGER NOT NULL,"
            + " offset INTEGER NOT NULL, slot INTEGER NOT NULL, found_us INTEGER NOT NULL,"
            + " PRIMARY KEY (id, pack, offset, slot)) WITHOUT ROWID";

    /** Brings a schema-1 index (no slot column) to schema 2; several processes may race here. */
    private void migrate() throws SQLException {
        try (Statement st = writer.createStatement()) {
            if (schema(st) == SCHEMA && hasSlot(st)) return; // the usual case: no write lock needed
            st.execute("BEGIN IMMEDIATE"); // one migrating process at a time; the others then see the column
            try {
                int version = schema(st);
                if (version > SCHEMA) {
                    throw new SQLException("index schema " + version + ", this cask reads schema " + SCHEMA + " (upgrade cask)");
                }
                if (!hasSlot(st)) st.execute("ALTER TABLE chunks ADD COLUMN slot INTEGER NOT NULL DEFAULT -1");
                if (version != SCHEMA) st.execute("PRAGMA user_version=" + SCHEMA);
                st.execute("COMMIT");
            } catch (SQLException e) {
                st.execute("ROLLBACK");
                throw e;
            }
        }
    }

    private static int schema(Statement st) throws SQLException {
        try (ResultSet rs = st.executeQuery("PRAGMA user_version")) {
            return rs.next() ? rs.getInt(1) : 0;
        }
    }

    private static boolean hasSlot(Statement st) throws SQLException {
        try (ResultSet rs = st.executeQuery("PRAGMA table_info(chunks)")) {
            while (rs.next()) if (rs.getString("name").equals("slot")) return true;
        }
        return false;
    }

    private Connection connect() throws SQLException {
        Connection c = DriverManager.getConnection(url);
        try (Statement st = c.createStatement()) {
            st.execute("PRAGMA busy_timeout=60000");
            // FULL: a commit fsyncs the WAL. NORMAL left the entries of a sync in an unsynced WAL
            // while the catalog (FULL) committed a version that needs them: after a power cut the
            // version's chunks were "not in store" until check --repair (PowerCutRegressionTest)
            st.execute("PRAGMA synchronous=FULL");
            if (mapBytes > 0) st.execute("PRAGMA mmap_size=" + mapBytes);
        }
        return c;
    }

    private CaskException error(String what, SQLException e) {
        return new CaskException.Io("index " + file + ": " + what + " failed: " + e.getMessage(), e);
    }

    private final java.util.concurrent.atomic.LongAdder lookups = new java.util.concurrent.atomic.LongAdder();

    /** Ids looked up ({@link #find}, {@link #findAll}, {@link #locateAll}) since this index opened. */
    long lookups() {
        return lookups.sum();
    }

    /** The location of {@code id}, or null. */
    ChunkLocation find(ChunkId id) {
        lookups.increment();
        Reader r = readers.poll();
        try {
            if (r == null) r = new Reader();
            r.lookup.setBytes(1, id.toBytes());
            try (ResultSet rs = r.lookup.executeQuery()) {
                return rs.next() ? new ChunkLocation(rs.getInt(1), rs.getLong(2), rs.getInt(3), rs.getInt(4)) : null;
            }
        } catch (SQLException e) {
            throw error("lookup of chunk " + id, e);
        } finally {
            if (r != null) readers.add(r);
        }
    }

    private static final int BATCH = 128;

    /** Which of {@code ids} the index holds: one query per 128 ids instead of one per id. */
    java.util.Set<ChunkId> findAll(java.util.List<ChunkId> ids) {
        return locateAll(ids).keySet();
    }

    /** The locations of those of {@code ids} the index holds, one query per 128 ids. */
    java.util.Map<ChunkId, ChunkLocation> locateAll(java.util.List<ChunkId> ids) {
        java.util.Map<ChunkId, ChunkLocation> found = new java.util.HashMap<>();
        if (ids.isEmpty()) return found;
        lookups.add(ids.size());
        Reader r = readers.poll();
        try {
            if (r == null) r = new Reader();
            for (int from = 0; from < ids.size(); from += BATCH) {
                int n = Math.min(BATCH, ids.size() - from);
                PreparedStatement st = n == BATCH ? r.batchLookup : r.connection.prepareStatement(inQuery(n));
                try {
                    for (int i = 0; i < n; i++) st.setBytes(i + 1, ids.get(from + i).toBytes());
                    try (ResultSet rs = st.executeQuery()) {
                        while (rs.next()) found.put(ChunkId.fromBytes(rs.getBytes(1)), new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5)));
                    }
                } finally {
                    if (st != r.batchLookup) st.close();
                }
            }
            return found;
        } catch (SQLException e) {
            throw error("lookup of " + ids.size() + " chunks", e);
        } finally {
            if (r != null) readers.add(r);
        }
    }

    private static String inQuery(int n) {
        return "SELECT id, pack, offset, length, slot FROM chunks WHERE id IN (" + "?,".repeat(n - 1) + "?)";
    }

    /** What {@link #lookupForPut} found for a chunk: its entry, and whether the copy it points at is marked damaged. */
    record PutLookup(ChunkLocation location, boolean damaged) {}

    private static String putQuery(int n) {
        return "SELECT c.id, c.pack, c.offset, c.length, c.slot, EXISTS (SELECT 1 FROM damaged d WHERE d.id = c.id"
                + " AND d.pack = c.pack AND d.offset = c.offset AND d.slot = c.slot) FROM chunks c WHERE c.id IN ("
                + "?,".repeat(n - 1) + "?)";
    }

    /**
     * The entries of those of {@code ids} the index holds, each with whether its copy is marked
     * damaged: what a put needs to decide between a dedup hit and a new copy. One query per 128
     * ids; the damaged table is probed by primary key per entry found (it is empty or tiny).
     */
    java.util.Map<ChunkId, PutLookup> lookupForPut(java.util.List<ChunkId> ids) {
        java.util.Map<ChunkId, PutLookup> found = new java.util.HashMap<>();
        if (ids.isEmpty()) return found;
        lookups.add(ids.size());
        Reader r = readers.poll();
        try {
            if (r == null) r = new Reader();
            for (int from = 0; from < ids.size(); from += BATCH) {
                int n = Math.min(BATCH, ids.size() - from);
                PreparedStatement st = n == BATCH ? r.batchPutLookup : n == 1 ? r.putLookup : r.connection.prepareStatement(putQuery(n));
                try {
                    for (int i = 0; i < n; i++) st.setBytes(i + 1, ids.get(from + i).toBytes());
                    try (ResultSet rs = st.executeQuery()) {
                        while (rs.next()) {
                            found.put(ChunkId.fromBytes(rs.getBytes(1)),
                                    new PutLookup(new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5)), rs.getBoolean(6)));
                        }
                    }
                } finally {
                    if (st != r.batchPutLookup && st != r.putLookup) st.close();
                }
            }
            return found;
        } catch (SQLException e) {
            throw error("lookup of " + ids.size() + " chunks", e);
        } finally {
            if (r != null) readers.add(r);
        }
    }

    /** Records that these copies (chunk id, location) are corrupt, in one transaction (idempotent). */
    synchronized void markDamaged(Collection<java.util.Map.Entry<ChunkId, ChunkLocation>> copies) {
        if (copies.isEmpty()) return;
        try {
            writer.setAutoCommit(false);
            try (PreparedStatement st = writer.prepareStatement("INSERT OR IGNORE INTO damaged(id, pack, offset, slot, found_us) VALUES (?, ?, ?, ?, ?)")) {
                long now = System.currentTimeMillis() * 1000;
                for (var c : copies) {
                    st.setBytes(1, c.getKey().toBytes());
                    st.setInt(2, c.getValue().pack());
                    st.setLong(3, c.getValue().offset());
                    st.setInt(4, c.getValue().slot());
                    st.setLong(5, now);
                    st.addBatch();
                }
                st.executeBatch();
                writer.commit();
            } catch (SQLException e) {
                writer.rollback();
                throw e;
            } finally {
                writer.setAutoCommit(true);
            }
        } catch (SQLException e) {
            var first = copies.iterator().next();
            throw error("marking chunk " + first.getKey().shortHex() + " (" + first.getValue() + ")"
                    + (copies.size() > 1 ? " and " + (copies.size() - 1) + " more" : "") + " damaged", e);
        }
    }

    /** Forgets the mark on the copy of {@code id} at {@code loc} (a check found it good, or nothing points at it). */
    synchronized void unmarkDamaged(ChunkId id, ChunkLocation loc) {
        try (PreparedStatement st = writer.prepareStatement("DELETE FROM damaged WHERE id = ? AND pack = ? AND offset = ? AND slot = ?")) {
            st.setBytes(1, id.toBytes());
            st.setInt(2, loc.pack());
            st.setLong(3, loc.offset());
            st.setInt(4, loc.slot());
            st.executeUpdate();
        } catch (SQLException e) {
            throw error("clearing the damage mark of chunk " + id.shortHex() + " (" + loc + ")", e);
        }
    }

    /** Every row of the damaged table (for check), as (id, location of the bad copy; length unknown: 0). */
    java.util.List<java.util.Map.Entry<ChunkId, ChunkLocation>> damaged() {
        java.util.List<java.util.Map.Entry<ChunkId, ChunkLocation>> out = new java.util.ArrayList<>();
        try (Connection c = connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT id, pack, offset, slot FROM damaged ORDER BY id")) {
            while (rs.next()) out.add(java.util.Map.entry(ChunkId.fromBytes(rs.getBytes(1)), new ChunkLocation(rs.getInt(2), rs.getLong(3), 0, rs.getInt(4))));
        } catch (SQLException e) {
            throw error("scan of damaged entries", e);
        }
        return out;
    }

    /** Adds entries in one transaction; an id already present keeps its first location. */
    void addAll(Collection<java.util.Map.Entry<ChunkId, ChunkLocation>> entries) {
        commit(entries, java.util.Map.of());
    }

    /**
     * Adds {@code entries} (an id already present keeps its first location) and applies
     * {@code heals} (id -> {bad location, new location}), in one transaction. A heal moves the
     * entry only if it still points at the bad copy (compare-and-swap: another process may have
     * healed it first, and then its copy stays) and removes that copy's damaged row; an entry
     * gone meanwhile (a repair dropped it) is added. Returns the ids whose entry now points at
     * the new copy.
     */
    synchronized java.util.Set<ChunkId> commit(Collection<java.util.Map.Entry<ChunkId, ChunkLocation>> entries,
                                               java.util.Map<ChunkId, ChunkLocation[]> heals) {
        java.util.Set<ChunkId> healed = new java.util.HashSet<>();
        if (entries.isEmpty() && heals.isEmpty()) return healed;
        try {
            writer.setAutoCommit(false);
            try (PreparedStatement ins = writer.prepareStatement("INSERT OR IGNORE INTO chunks(id, pack, offset, length, slot) VALUES (?, ?, ?, ?, ?)");
                 PreparedStatement move = writer.prepareStatement("UPDATE chunks SET pack = ?, offset = ?, length = ?, slot = ?"
                         + " WHERE id = ? AND pack = ? AND offset = ? AND slot = ?");
                 PreparedStatement unmark = writer.prepareStatement("DELETE FROM damaged WHERE id = ? AND pack = ? AND offset = ? AND slot = ?")) {
                for (var e : entries) {
                    ins.setBytes(1, e.getKey().toBytes());
                    ins.setInt(2, e.getValue().pack());
                    ins.setLong(3, e.getValue().offset());
                    ins.setInt(4, e.getValue().length());
                    ins.setInt(5, e.getValue().slot());
                    ins.addBatch();
                }
                if (!entries.isEmpty()) ins.executeBatch();
                for (var h : heals.entrySet()) {
                    byte[] id = h.getKey().toBytes();
                    ChunkLocation bad = h.getValue()[0], good = h.getValue()[1];
                    move.setInt(1, good.pack());
                    move.setLong(2, good.offset());
                    move.setInt(3, good.length());
                    move.setInt(4, good.slot());
                    move.setBytes(5, id);
                    move.setInt(6, bad.pack());
                    move.setLong(7, bad.offset());
                    move.setInt(8, bad.slot());
                    int moved = move.executeUpdate();
                    if (moved == 0) {
                        ins.setBytes(1, id);
                        ins.setInt(2, good.pack());
                        ins.setLong(3, good.offset());
                        ins.setInt(4, good.length());
                        ins.setInt(5, good.slot());
                        moved = ins.executeUpdate();
                    }
                    if (moved > 0) healed.add(h.getKey());
                    unmark.setBytes(1, id);
                    unmark.setInt(2, bad.pack());
                    unmark.setLong(3, bad.offset());
                    unmark.setInt(4, bad.slot());
                    unmark.executeUpdate();
                }
                writer.commit();
            } catch (SQLException e) {
                writer.rollback();
                throw e;
            } finally {
                writer.setAutoCommit(true);
            }
        } catch (SQLException e) {
            throw error("adding " + entries.size() + " entries and healing " + heals.size(), e);
        }
        return healed;
    }

    /** Removes every entry (used before a rebuild from the packs). */
    synchronized void clear() {
        try (Statement st = writer.createStatement()) {
            st.execute("DELETE FROM chunks");
            st.execute("DELETE FROM damaged");
        } catch (SQLException e) {
            throw error("clear", e);
        }
    }

    /** Calls {@code sink} for every entry, in id order. */
    void forEach(java.util.function.BiConsumer<ChunkId, ChunkLocation> sink) {
        try (Connection c = connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT id, pack, offset, length, slot FROM chunks ORDER BY id")) {
            while (rs.next()) {
                sink.accept(ChunkId.fromBytes(rs.getBytes(1)), new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5)));
            }
        } catch (SQLException e) {
            throw error("scan", e);
        }
    }

    void forEachId(Consumer<ChunkId> sink) {
        forEach((id, loc) -> sink.accept(id));
    }

    /**
     * The lowest offset at or after {@code offset} in pack {@code pack} that an entry points at,
     * or -1. A scan of the whole table (there is no index by pack): only for recovery after a crash.
     */
    long firstEntryAtOrAfter(int pack, long offset) {
        try (PreparedStatement st = writer.prepareStatement("SELECT min(offset) FROM chunks WHERE pack = ? AND offset >= ?")) {
            st.setInt(1, pack);
            st.setLong(2, offset);
            try (ResultSet rs = st.executeQuery()) {
                rs.next();
                long v = rs.getLong(1);
                return rs.wasNull() ? -1 : v;
            }
        } catch (SQLException e) {
            throw error("lookup of pack " + pack + " past offset " + offset, e);
        }
    }

    long count() {
        try (Statement st = writer.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM chunks")) {
            rs.next();
            return rs.getLong(1);
        } catch (SQLException e) {
            throw error("count", e);
        }
    }

    @Override
    public synchronized void close() {
        Reader r;
        while ((r = readers.poll()) != null) {
            try {
                r.connection.close();
            } catch (SQLException ignored) {
                // closing: nothing left to protect
            }
        }
        try {
            writer.close();
        } catch (SQLException ignored) {
            // closing
        }
    }
}
