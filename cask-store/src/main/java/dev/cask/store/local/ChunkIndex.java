package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Collection;
import java.util.List;
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
 * table's definition, so every old entry reads as a single record, which it is. Schema 3 added
 * {@code chunks.epoch} (the GC epoch an entry was last stored or deduplicated in; old entries read
 * as epoch 0) and the one-row table {@code gc} with the store's GC epoch: see {@link GcEpochs}.
 * Every put stamps what it stores or finds ({@link #lookupForPut}, {@link #commit}); a sweep
 * deletes only entries stamped before its epoch ({@link #deleteStampedBefore}).
 *
 * <p><b>Two tables</b> (schema 4). Chunk ids are random, so a commit of k new entries into one
 * B-tree of N entries dirties about min(k, N / 64) pages: once the index outgrows a few hundred
 * thousand entries every checkpoint rewrote the whole index into the WAL and back (a 66k-row
 * commit: 0.16 s at 66k entries, 0.74 s and 82 MiB of WAL at 1.6 M; after 8 GiB of unique
 * writes a server's WAL was 109 MiB, the index's size, and 14 MiB now), and at tens of millions
 * of entries about one 4 KiB page per new chunk. New entries therefore go to a small
 * {@code recent} table, and a merge moves them into the settled {@code chunks} table in key
 * order, in slices of the key space, when the recent table has grown to about
 * sqrt(settled entries x 65,536) ({@link #mergeIfDue}, on a thread of its own after the commit
 * that made it due). An id is in at most one table: an add
 * checks the settled table in the same statement, a merge moves rows in one transaction per
 * slice, and every other statement (lookups, stamps, a sweep's deletes, compaction's switch,
 * heals, scans) reads or changes both tables in one statement or transaction, so GC stamps and
 * the rules of {@link GcEpochs} see one row per chunk as before. An older cask refuses the index
 * (schema 4), since it would not see the recent table.
 *
 * <p><b>Settled changes</b> (schema 5). {@code gc.moved} counts the transactions that put an
 * entry into the settled table or point one of its entries elsewhere (a merge slice that moved
 * rows, a compaction switch, a heal), each in its own transaction. An incremental sweep scans
 * for the entries of the packs written since the previous collection ({@link #forEachStampedIn});
 * when that collection's scan found all of them in the recent table and the count has not
 * changed since, they are all still there, and the sweep scans only that one. A cask that reads
 * schema 4 refuses a schema-5 index: it would merge without counting, and a sweep would miss
 * what it moved.
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
 * statements are single-threaded); {@link #addAll} serialises writers on its own connection, which
 * merges share slice by slice. Everything that only reads (counts, scans, the epoch) does so on a
 * connection other than the writer's: on the writer's it would see another thread's open
 * transaction. {@link #close} lets a running merge finish first.
 */
final class ChunkIndex implements AutoCloseable {
    private final Path file;
    private final String url;
    private final Connection writer;
    private final ConcurrentLinkedQueue<Reader> readers = new ConcurrentLinkedQueue<>();

    private final class Reader {
        final Connection connection;
        final PreparedStatement lookup;
        /** Prepared statements by SQL text (a batched query has one text per batch size). */
        private final java.util.Map<String, PreparedStatement> statements = new java.util.HashMap<>();

        Reader() throws SQLException {
            connection = connect();
            lookup = connection.prepareStatement(both("SELECT pack, offset, length, slot FROM %s WHERE id = ?1"));
        }

        PreparedStatement statement(String sql) throws SQLException {
            PreparedStatement st = statements.get(sql);
            if (st == null) {
                st = connection.prepareStatement(sql);
                statements.put(sql, st);
            }
            return st;
        }
    }

    /** SQLite's {@code mmap_size} for every connection (0: reads by system call). */
    private final long mapBytes;

    ChunkIndex(Path file) {
        this(file, 0);
    }

    /** The writer connection's page cache, in SQLite's negative-KiB form. */
    private static final int WRITER_CACHE_KIB = -(64 << 10);

    ChunkIndex(Path file, long mapBytes) {
        this(file, mapBytes, Long.getLong("cask.index.merge-rows", 0));
    }

    /**
     * @param mergeRows 0: merge the recent table when {@link #mergeIfDue} finds it due; N > 0:
     *                  whenever N rows are recent, in 4 slices ({@code -Dcask.index.merge-rows=N}:
     *                  the tests make merges frequent with it)
     */
    ChunkIndex(Path file, long mapBytes, long mergeRows) {
        this.file = file;
        this.mapBytes = mapBytes;
        this.mergeRows = mergeRows;
        this.url = "jdbc:sqlite:" + file;
        try {
            writer = connect();
            try (Statement st = writer.createStatement()) {
                // pages the writer keeps between transactions (grown as used, up to this; SQLite's
                // default of 2 MiB holds a twentieth of a 40 MiB index). Alone it changed little for
                // a sweep's or compaction's 100,000s of deletes and updates: what made those cheap
                // is doing them in key order (LocalSweep.SWEEP_ROWS, Compactor.SWITCH_ROWS)
                st.execute("PRAGMA cache_size=" + WRITER_CACHE_KIB);
            }
            dev.cask.common.SqliteWal.enable(writer, 60_000); // BUSY at once on a new file several open together
            try (Statement st = writer.createStatement()) {
                st.execute("CREATE TABLE IF NOT EXISTS chunks (id BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
                        + " offset INTEGER NOT NULL, length INTEGER NOT NULL, slot INTEGER NOT NULL DEFAULT -1) WITHOUT ROWID");
                st.execute(DAMAGED_TABLE);
                st.execute(GC_STATE_TABLE);
                st.execute(RECOMPRESSED_TABLE);
            }
            migrate();
        } catch (SQLException e) {
            throw error("open", e);
        }
    }

    static final int SCHEMA = 5;

    /** Copies found corrupt that their chunk's entry points at (see the class essay); not part of the schema number. */
    static final String DAMAGED_TABLE = "CREATE TABLE IF NOT EXISTS damaged (id BLOB NOT NULL, pack INTEGER NOT NULL,"
            + " offset INTEGER NOT NULL, slot INTEGER NOT NULL, found_us INTEGER NOT NULL,"
            + " PRIMARY KEY (id, pack, offset, slot)) WITHOUT ROWID";

    /**
     * What the last complete collection left for the next one (see {@code GcEpochs}: an
     * incremental sweep); at most one row, stamped with the epoch of that collection, taken out by
     * the next {@link #bumpEpoch} and emptied by {@link #clear}. Not part of the schema number: a
     * cask that does not know it raises the epoch without taking the row, and a row whose epoch
     * is not the epoch the next collection finds is ignored.
     */
    static final String GC_STATE_TABLE = "CREATE TABLE IF NOT EXISTS gc_state (one INTEGER PRIMARY KEY CHECK (one = 1),"
            + " epoch INTEGER NOT NULL, memo BLOB NOT NULL, state BLOB NOT NULL)";

    /**
     * The packs a recompression wrote ({@link Recompressor}): their chunks are already in
     * look-alike order at the cold level, so the next recompression leaves them. Not part of the
     * schema number: a cask that does not know it ignores it (and recompresses nothing). A row of
     * a pack deleted since is harmless: pack numbers are never used twice.
     */
    static final String RECOMPRESSED_TABLE = "CREATE TABLE IF NOT EXISTS recompressed (pack INTEGER PRIMARY KEY)";

    /** The packs {@link #markRecompressed} recorded. */
    java.util.Set<Integer> recompressedPacks() {
        java.util.Set<Integer> out = new java.util.HashSet<>();
        try (Connection c = connect(); Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT pack FROM recompressed")) {
            while (rs.next()) out.add(rs.getInt(1));
        } catch (SQLException e) {
            throw error("reading the recompressed packs", e);
        }
        return out;
    }

    /** Records that a recompression wrote {@code packs} (durable when it returns). */
    synchronized void markRecompressed(java.util.Collection<Integer> packs) {
        if (packs.isEmpty()) return;
        try (Statement st = writer.createStatement()) {
            st.execute("BEGIN IMMEDIATE");
            try (PreparedStatement in = writer.prepareStatement("INSERT OR IGNORE INTO recompressed (pack) VALUES (?)")) {
                for (int p : packs) {
                    in.setInt(1, p);
                    in.executeUpdate();
                }
                st.execute("COMMIT");
            } catch (SQLException e) {
                rollback(st, e);
                throw e;
            }
        } catch (SQLException e) {
            throw error("recording recompressed packs " + packs, e);
        }
    }

    /**
     * Brings an index of schema 1 (no slot column), 2 (no epochs), 3 (no recent table) or 4 (no
     * {@code gc.moved}) to schema 5; several processes may race here. Schema 3 adds
     * {@code chunks.epoch} (every old entry reads as stamped in epoch 0) and the one-row table
     * {@code gc} holding the store's GC epoch (see {@link GcEpochs}); schema 5 adds
     * {@code gc.moved} (0).
     */
    private void migrate() throws SQLException {
        try (Statement st = writer.createStatement()) {
            if (schema(st) == SCHEMA) return; // the usual case: no write lock needed (a schema-5 index has every column and table)
            st.execute("BEGIN IMMEDIATE"); // one migrating process at a time; the others then see the column
            try {
                int version = schema(st);
                if (version > SCHEMA) {
                    throw new SQLException("index schema " + version + ", this cask reads schema " + SCHEMA + " (upgrade cask)");
                }
                if (!hasColumn(st, "chunks", "slot")) st.execute("ALTER TABLE chunks ADD COLUMN slot INTEGER NOT NULL DEFAULT -1");
                if (!hasColumn(st, "chunks", "epoch")) st.execute("ALTER TABLE chunks ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0");
                st.execute("CREATE TABLE IF NOT EXISTS gc (one INTEGER PRIMARY KEY CHECK (one = 1), epoch INTEGER NOT NULL)");
                st.execute("INSERT OR IGNORE INTO gc (one, epoch) VALUES (1, 1)");
                if (!hasColumn(st, "gc", "moved")) st.execute("ALTER TABLE gc ADD COLUMN moved INTEGER NOT NULL DEFAULT 0");
                st.execute(RECENT_TABLE);
                if (version != SCHEMA) st.execute("PRAGMA user_version=" + SCHEMA);
                st.execute("COMMIT");
            } catch (SQLException e) {
                rollback(st, e);
                throw e;
            }
        }
    }

    // ---------------------------------------------------------------- the two tables (see the class essay)

    /** The settled table: entries a merge moved there (and every entry of an index made before schema 4). */
    static final String SETTLED = "chunks";
    /** The recent table: entries added since a merge last moved them (schema 4). */
    static final String RECENT = "recent";

    private static final String RECENT_TABLE = "CREATE TABLE IF NOT EXISTS " + RECENT + " (id BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
            + " offset INTEGER NOT NULL, length INTEGER NOT NULL, slot INTEGER NOT NULL DEFAULT -1, epoch INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID";

    /** {@code select} (%s for the table) over the recent table, then the settled one; each id is in at most one of them. */
    private static String both(String select) {
        return select.formatted(RECENT) + " UNION ALL " + select.formatted(SETTLED);
    }

    /** "?1,?2,...,?n": numbered, so that both arms of a {@link #both} query bind the same ids. */
    private static String params(int n) {
        StringBuilder b = new StringBuilder(n * 5);
        for (int i = 1; i <= n; i++) b.append(i == 1 ? "?" : ",?").append(i);
        return b.toString();
    }

    /** Rows of the settled table per 4 KiB page, for its size estimated from the file's page count (64-77 measured). */
    private static final long ROWS_PER_PAGE = 64;
    /** The recent table is never merged below this many rows (a checkpoint of 512 MiB of 4 KiB blocks adds 131,072). */
    private static final long MERGE_MIN_ROWS = 131_072;
    /** Pages of the settled table a merge transaction rewrites at most (8 MiB): how long another writer may wait for one. */
    private static final long SLICE_PAGES = 2048;
    /** See the constructor. */
    private final long mergeRows;

    /** Set while a merge is queued or running on {@link #merger}: commits then queue none. */
    private final java.util.concurrent.atomic.AtomicBoolean merging = new java.util.concurrent.atomic.AtomicBoolean();
    /**
     * The thread merges run on, after the commit that made one due has returned (see {@link #commit}).
     * A platform thread at nice 10, as a checkpoint's storing threads ({@link dev.cask.common.Background}):
     * SQLite's calls would pin a virtual thread's carrier, which serves clients, and a merge is
     * work nobody waits for (in a first probe at nice 0, reads right after a sustained write, beside
     * its deferred merge, ran 5-8 % slower than before).
     */
    private final java.util.concurrent.ExecutorService merger = java.util.concurrent.Executors.newSingleThreadExecutor(
            dev.cask.common.Background.threads("cask-index-merge"));
    private boolean closed;

    /**
     * After a commit that added entries: merges the recent table into the settled one when it
     * holds at least {@code max(131,072, sqrt(settled rows x 65,536))} rows, in slices of the key
     * space each committed on its own. A commit rewrites about every page of the recent table
     * (random keys) and a merge about every page of the settled one, so with R recent rows at
     * most and N settled rows a checkpoint of k rows costs about R + N k / R pages: least near
     * R = sqrt(N k), with k about 65,536 (256 MiB of 4 KiB blocks). One thread of a process merges
     * at a time; another process may merge the same slices meanwhile (each slice is one
     * transaction that moves what is still there, so nothing is moved twice or lost). Runs on
     * {@link #merger}; a failure is logged, and the next commit tries again.
     */
    private void mergeIfDue() {
        try {
            long recent, pages;
            synchronized (this) {
                if (closed) return;
                try (Statement st = writer.createStatement()) {
                    recent = longOf(st, "SELECT count(*) FROM " + RECENT);
                    pages = longOf(st, "PRAGMA page_count");
                } catch (SQLException e) {
                    throw error("counting recent entries", e);
                }
            }
            long settled = Math.max(0, pages * ROWS_PER_PAGE - recent);
            long due = mergeRows > 0 ? mergeRows : Math.max(MERGE_MIN_ROWS, (long) Math.sqrt(settled * 65536.0));
            if (recent < due) return;
            int slices = mergeRows > 0 ? 4 : (int) Math.min(1 << 16, Math.max(1, Long.highestOneBit(Math.max(1, pages / SLICE_PAGES)) * 2));
            merge(slices);
        } catch (CaskException e) { // the commits stand: a merge only moves entries, and the next commit tries again
            System.getLogger("cask.store").log(System.Logger.Level.WARNING, e.getMessage());
        } finally {
            merging.set(false);
        }
    }

    /** Waits until no merge is queued or running (tests: a merge runs after the commit that made it due has returned). */
    void awaitMerges() {
        try {
            merger.submit(() -> { }).get();
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.RejectedExecutionException e) {
            throw new IllegalStateException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Moves every recent entry to the settled table, in {@code slices} (a power of two) transactions by id range. */
    void merge(int slices) {
        int bits = Integer.numberOfTrailingZeros(slices);
        for (int i = 0; i < slices; i++) {
            byte[] low = i == 0 ? null : prefix((long) i << (64 - bits));
            byte[] high = i == slices - 1 ? null : prefix((long) (i + 1) << (64 - bits));
            synchronized (this) {
                if (closed) return;
                mergeSlice(low, high);
            }
        }
    }

    private static byte[] prefix(long v) {
        return java.nio.ByteBuffer.allocate(8).putLong(v).array();
    }

    /**
     * One transaction: the recent entries with {@code low <= id < high} (null: unbounded) move to
     * the settled table, stamps and all, in id order. A settled entry of the same id (none, as
     * long as every writer keeps the tables apart) keeps its location and takes the newer stamp.
     */
    private void mergeSlice(byte[] low, byte[] high) {
        String range = (low == null ? "true" : "id >= ?1") + (high == null ? "" : " AND id < ?2");
        try (Statement st = writer.createStatement();
             PreparedStatement move = writer.prepareStatement("INSERT INTO " + SETTLED + " (id, pack, offset, length, slot, epoch)"
                     + " SELECT id, pack, offset, length, slot, epoch FROM " + RECENT + " WHERE " + range + " ORDER BY id"
                     + " ON CONFLICT(id) DO UPDATE SET epoch = max(epoch, excluded.epoch)");
             PreparedStatement drop = writer.prepareStatement("DELETE FROM " + RECENT + " WHERE " + range)) {
            st.execute("BEGIN IMMEDIATE");
            try {
                int moved = 0;
                for (PreparedStatement p : List.of(move, drop)) {
                    if (low != null) p.setBytes(1, low);
                    if (high != null) p.setBytes(2, high);
                    int n = p.executeUpdate();
                    if (p == move) moved = n;
                }
                if (moved > 0) st.execute(MOVED);
                st.execute("COMMIT");
            } catch (SQLException e) {
                rollback(st, e);
                throw e;
            }
        } catch (SQLException e) {
            throw error("merging recent entries", e);
        }
    }

    private static long longOf(Statement st, String sql) throws SQLException {
        try (ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /** Rolls back after {@code cause}; a rollback that fails too (SQLite already rolled back, the disk is full) is added to it, never hides it. */
    private static void rollback(Statement st, SQLException cause) {
        try {
            st.execute("ROLLBACK");
        } catch (SQLException e) {
            cause.addSuppressed(e);
        }
    }

    private static int schema(Statement st) throws SQLException {
        try (ResultSet rs = st.executeQuery("PRAGMA user_version")) {
            return rs.next() ? rs.getInt(1) : 0;
        }
    }

    private static boolean hasColumn(Statement st, String table, String column) throws SQLException {
        try (ResultSet rs = st.executeQuery("PRAGMA table_info(" + table + ")")) {
            while (rs.next()) if (rs.getString("name").equals(column)) return true;
        }
        return false;
    }

    private Connection connect() throws SQLException {
        // no generated keys: with them on (the driver's default) every executeUpdate of an INSERT
        // ran a regular expression over the SQL (an eighth of a sweep's CPU in a profile) and every
        // INSERT a second query (last_insert_rowid); nothing here asks for generated keys
        org.sqlite.SQLiteConfig config = new org.sqlite.SQLiteConfig();
        config.setGetGeneratedKeys(false);
        Connection c = config.createConnection(url);
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

    /** Ids looked up ({@link #find}, {@link #locateAll}, {@link #lookupForPut}) since this index opened. */
    long lookups() {
        return lookups.sum();
    }

    /** The location of {@code id}, or null. */
    ChunkLocation find(ChunkId id) {
        lookups.increment();
        return onReader(() -> "lookup of chunk " + id, r -> {
            r.lookup.setBytes(1, id.toBytes());
            try (ResultSet rs = r.lookup.executeQuery()) {
                return rs.next() ? new ChunkLocation(rs.getInt(1), rs.getLong(2), rs.getInt(3), rs.getInt(4)) : null;
            }
        });
    }

    private static final int BATCH = 128;

    /** One row of a batched query. */
    private interface Row {
        void accept(ResultSet rs) throws SQLException;
    }

    /**
     * Runs {@code query(n)} (a SELECT whose n parameters are ids) over {@code ids}, 128 ids per
     * query, on a pooled reader connection whose prepared statements are kept; calls {@code row}
     * for every row. {@code before}, when not null, runs first on the same connection.
     */
    private void batched(java.util.List<ChunkId> ids, java.util.function.IntFunction<String> query, Row before, Row row) {
        lookups.add(ids.size());
        onReader(() -> "lookup of " + ids.size() + " chunks", r -> {
            if (before != null) {
                try (Statement st = r.connection.createStatement(); ResultSet rs = st.executeQuery("SELECT epoch FROM gc")) {
                    rs.next();
                    before.accept(rs);
                }
            }
            for (int from = 0; from < ids.size(); from += BATCH) {
                int n = Math.min(BATCH, ids.size() - from);
                PreparedStatement st = r.statement(query.apply(n));
                for (int i = 0; i < n; i++) st.setBytes(i + 1, ids.get(from + i).toBytes());
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) row.accept(rs);
                }
            }
            return null;
        });
    }

    /** The locations of those of {@code ids} the index holds, one query per 128 ids. */
    java.util.Map<ChunkId, ChunkLocation> locateAll(java.util.List<ChunkId> ids) {
        java.util.Map<ChunkId, ChunkLocation> found = new java.util.HashMap<>();
        if (ids.isEmpty()) return found;
        batched(ids, ChunkIndex::inQuery, null,
                rs -> found.put(ChunkId.fromBytes(rs.getBytes(1)), new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5))));
        return found;
    }

    private static String inQuery(int n) {
        return both("SELECT id, pack, offset, length, slot FROM %s WHERE id IN (" + params(n) + ")");
    }

    /** What {@link #lookupForPut} found for a chunk: its entry, and whether the copy it points at is marked damaged. */
    record PutLookup(ChunkLocation location, boolean damaged) {}

    private static String putQuery(int n) {
        return "SELECT c.id, c.pack, c.offset, c.length, c.slot, c.epoch, EXISTS (SELECT 1 FROM damaged d WHERE d.id = c.id"
                + " AND d.pack = c.pack AND d.offset = c.offset AND d.slot = c.slot) FROM ("
                + both("SELECT id, pack, offset, length, slot, epoch FROM %s WHERE id IN (" + params(n) + ")") + ") c";
    }

    /**
     * The dedup check of a put: the entries of those of {@code ids} the index holds, each with
     * whether its copy is marked damaged (a put stores a damaged chunk again: see {@link Healing}).
     * A healthy entry is a dedup hit only once it is stamped with the current GC epoch: an entry
     * stamped earlier is stamped in one write transaction that also confirms it still exists (a
     * sweep may have deleted it since any earlier look, and then it is left out: absent). Entries
     * already stamped in the current epoch cost one read. See {@link GcEpochs} for why this is what
     * makes a dedup hit safe. One query per 128 ids; the damaged table is probed by primary key per
     * entry found (it is empty or tiny).
     */
    java.util.Map<ChunkId, PutLookup> lookupForPut(java.util.List<ChunkId> ids) {
        java.util.Map<ChunkId, PutLookup> found = new java.util.HashMap<>();
        if (ids.isEmpty()) return found;
        long[] current = new long[1];
        java.util.Map<ChunkId, ChunkLocation> stale = new java.util.HashMap<>();
        batched(ids, ChunkIndex::putQuery, rs -> current[0] = rs.getLong(1), rs -> {
            ChunkId id = ChunkId.fromBytes(rs.getBytes(1));
            ChunkLocation loc = new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5));
            boolean damaged = rs.getBoolean(7);
            // a damaged copy is stored again, and the heal stamps the entry then
            if (damaged || rs.getLong(6) >= current[0]) found.put(id, new PutLookup(loc, damaged));
            else stale.put(id, loc);
        });
        if (!stale.isEmpty()) {
            for (ChunkId id : stamp(new java.util.ArrayList<>(stale.keySet()))) found.put(id, new PutLookup(stale.get(id), false));
        }
        return found;
    }

    /** Stamps {@code ids} with the current epoch in one write transaction; returns those that still exist. */
    private synchronized java.util.Set<ChunkId> stamp(java.util.List<ChunkId> ids) {
        java.util.Set<ChunkId> present = new java.util.HashSet<>();
        try (Statement st = writer.createStatement()) {
            st.execute("BEGIN IMMEDIATE");
            try (PreparedStatement upRecent = writer.prepareStatement(STAMP.formatted(RECENT));
                 PreparedStatement upSettled = writer.prepareStatement(STAMP.formatted(SETTLED));
                 PreparedStatement has = writer.prepareStatement(both("SELECT 1 FROM %s WHERE id = ?1"))) {
                for (ChunkId id : ids) {
                    upRecent.setBytes(1, id.toBytes());
                    upSettled.setBytes(1, id.toBytes());
                    if (upRecent.executeUpdate() == 1 || upSettled.executeUpdate() == 1) {
                        present.add(id);
                        continue;
                    }
                    has.setBytes(1, id.toBytes());
                    try (ResultSet rs = has.executeQuery()) {
                        if (rs.next()) present.add(id); // stamped by another process meanwhile
                    }
                }
                st.execute("COMMIT");
            } catch (SQLException e) {
                rollback(st, e);
                throw e;
            }
        } catch (SQLException e) {
            throw error("stamping " + ids.size() + " chunks", e);
        }
        return present;
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

    /** Forgets every mark on a copy in pack {@code pack} (compaction deleted it). */
    synchronized void unmarkPack(int pack) {
        try (PreparedStatement st = writer.prepareStatement("DELETE FROM damaged WHERE pack = ?")) {
            st.setInt(1, pack);
            st.executeUpdate();
        } catch (SQLException e) {
            throw error("clearing the damage marks of pack " + pack, e);
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

    // ---------------------------------------------------------------- GC epochs (see GcEpochs)

    /** The store's current GC epoch. */
    long epoch() {
        return onReader(() -> "reading the GC epoch", r -> {
            try (Statement st = r.connection.createStatement()) {
                return longOf(st, "SELECT epoch FROM gc");
            }
        });
    }

    /** Raises the GC epoch by one, durably (every connection commits with synchronous=FULL); returns the new epoch. */
    long bumpEpoch() {
        return bumpEpochTakingState().epoch();
    }

    /**
     * A raised epoch and what the previous collection left in {@code gc_state} (null parts when
     * nothing, or a row of another epoch than the one raised from).
     */
    record Bumped(long epoch, byte[] memo, byte[] state) {}

    /**
     * Raises the GC epoch by one and takes the {@code gc_state} row out, in one transaction, durably:
     * a collection that dies after this leaves no state behind, so the next one sweeps in full.
     */
    synchronized Bumped bumpEpochTakingState() {
        try (Statement st = writer.createStatement()) {
            st.execute("BEGIN IMMEDIATE");
            try {
                byte[] memo = null;
                byte[] state = null;
                try (ResultSet rs = st.executeQuery("SELECT s.memo, s.state FROM gc_state s, gc WHERE s.epoch = gc.epoch")) {
                    if (rs.next()) {
                        memo = rs.getBytes(1);
                        state = rs.getBytes(2);
                    }
                }
                st.execute("DELETE FROM gc_state");
                st.execute("UPDATE gc SET epoch = epoch + 1");
                long e = longOf(st, "SELECT epoch FROM gc");
                st.execute("COMMIT");
                return new Bumped(e, memo, state);
            } catch (SQLException ex) {
                rollback(st, ex);
                throw ex;
            }
        } catch (SQLException e) {
            throw error("raising the GC epoch", e);
        }
    }

    /**
     * Leaves {@code memo} and {@code state} for the next collection, stamped with {@code epoch}
     * (the collection's): written only if the store's epoch is still {@code epoch}, durably.
     */
    synchronized void putGcState(long epoch, byte[] memo, byte[] state) {
        try (PreparedStatement st = writer.prepareStatement(
                "INSERT OR REPLACE INTO gc_state (one, epoch, memo, state) SELECT 1, ?, ?, ? FROM gc WHERE gc.epoch = ?")) {
            st.setLong(1, epoch);
            st.setBytes(2, memo);
            st.setBytes(3, state);
            st.setLong(4, epoch);
            st.executeUpdate();
        } catch (SQLException e) {
            throw error("keeping the gc state", e);
        }
    }

    /** An index entry with its GC stamp, as {@link #forEachStamped} reports it. */
    interface StampedSink {
        void entry(ChunkId id, ChunkLocation loc, long epoch);
    }

    /**
     * Calls {@code sink} with every entry, its location and its stamp, in id order (the table's
     * own order: SQLite sorts nothing), in one read transaction (a snapshot).
     */
    void forEachStamped(StampedSink sink) {
        try (Connection c = connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery(both("SELECT id, pack, offset, length, slot, epoch FROM %s") + " ORDER BY 1")) {
            while (rs.next()) {
                sink.entry(ChunkId.fromBytes(rs.getBytes(1)), new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5)), rs.getLong(6));
            }
        } catch (SQLException e) {
            throw error("scan", e);
        }
    }

    /** Calls {@code sink} with every entry stamped before epoch {@code before}, with its location. */
    void forEachStampedBefore(long before, java.util.function.BiConsumer<ChunkId, ChunkLocation> sink) {
        try (Connection c = connect(); PreparedStatement st = c.prepareStatement(both("SELECT id, pack, offset, length, slot FROM %s WHERE epoch < ?1"))) {
            st.setLong(1, before);
            try (ResultSet rs = st.executeQuery()) {
                while (rs.next()) {
                    sink.accept(ChunkId.fromBytes(rs.getBytes(1)), new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5)));
                }
            }
        } catch (SQLException e) {
            throw error("scan of epochs before " + before, e);
        }
    }

    /**
     * What {@link #forEachStampedIn} saw: the settled table's change count ({@code gc.moved}) in
     * its snapshot, whether it scanned the recent table only, and the packs of the settled entries
     * it handed over (none when it scanned the recent table only).
     */
    record RegionScan(long moved, boolean recentOnly, java.util.Set<Integer> settledPacks) {}

    /**
     * Calls {@code sink} with every entry in a pack numbered above {@code above}, or in a pack
     * {@code from} lists at an offset at or after the one it gives, its location and its stamp,
     * in no particular order, in one read transaction: the entries written since a collection that
     * saw {@code above} as the highest pack, {@code from}'s packs as the ones still written to and
     * their entries up to those offsets. SQLite hands over only the matching rows, unsorted
     * (sorting a day's 200,000 of them was a third of the scan), but finds them by a scan of the
     * table (there is no index by pack). When {@code sinceMoved} is not negative (that collection
     * saw no settled entry in packs above the highest, and read this change count in the same
     * snapshot) and the count is still that, every entry asked for is in the recent table (a new
     * entry goes there, and only a merge, a compaction switch or a heal puts one into the settled
     * table, each counted), so only the recent table is scanned, and it hands over the same
     * entries: a fraction of the index (a daily collection's scan of both tables of a 500,000-entry
     * index took 0.21-0.26 s).
     */
    RegionScan forEachStampedIn(int above, java.util.Map<Integer, Long> from, long sinceMoved, StampedSink sink) {
        StringBuilder where = new StringBuilder("pack > ").append(above);
        for (var e : new java.util.TreeMap<>(from).entrySet()) {
            where.append(" OR (pack = ").append((int) e.getKey()).append(" AND offset >= ").append((long) e.getValue()).append(')');
        }
        try (Connection c = connect(); Statement st = c.createStatement()) {
            st.execute("BEGIN"); // one snapshot for the count and the scan
            try {
                long moved = longOf(st, "SELECT moved FROM gc");
                boolean recentOnly = sinceMoved >= 0 && moved == sinceMoved;
                String select = "SELECT id, pack, offset, length, slot, epoch, %d FROM %s WHERE " + where;
                String sql = select.formatted(0, RECENT) + (recentOnly ? "" : " UNION ALL " + select.formatted(1, SETTLED));
                java.util.Set<Integer> settledPacks = new java.util.HashSet<>();
                try (ResultSet rs = st.executeQuery(sql)) {
                    while (rs.next()) {
                        int pack = rs.getInt(2);
                        if (rs.getInt(7) == 1) settledPacks.add(pack);
                        sink.entry(ChunkId.fromBytes(rs.getBytes(1)), new ChunkLocation(pack, rs.getLong(3), rs.getInt(4), rs.getInt(5)), rs.getLong(6));
                    }
                }
                st.execute("COMMIT");
                return new RegionScan(moved, recentOnly, settledPacks);
            } catch (SQLException | RuntimeException e) {
                try {
                    st.execute("ROLLBACK");
                } catch (SQLException ignored) {
                    // the connection closes next
                }
                throw e;
            }
        } catch (SQLException e) {
            throw error("scan of packs " + where, e);
        }
    }

    /**
     * Deletes the entries of {@code ids} that are still stamped before epoch {@code before}, and
     * the damage marks of the chunks deleted, in one write transaction; returns the ids deleted.
     * The stamp test is made in the same transaction as the delete, so a dedup hit that stamped a
     * chunk after the sweep chose it keeps it.
     */
    synchronized java.util.Set<ChunkId> deleteStampedBefore(Collection<ChunkId> ids, long before) {
        return deleteStampedBeforeLocated(ids, before).keySet();
    }

    /** As {@link #deleteStampedBefore}, with the location each deleted entry had. */
    synchronized java.util.Map<ChunkId, ChunkLocation> deleteStampedBeforeLocated(Collection<ChunkId> ids, long before) {
        java.util.Map<ChunkId, ChunkLocation> deleted = new java.util.HashMap<>();
        if (ids.isEmpty()) return deleted;
        try (Statement st = writer.createStatement()) {
            st.execute("BEGIN IMMEDIATE");
            try (PreparedStatement delRecent = writer.prepareStatement(DELETE_LISTED.formatted(RECENT));
                 PreparedStatement delSettled = writer.prepareStatement(DELETE_LISTED.formatted(SETTLED));
                 PreparedStatement unmark = writer.prepareStatement("DELETE FROM damaged WHERE id = ?")) {
                boolean anyDamaged;
                try (ResultSet rs = st.executeQuery("SELECT EXISTS (SELECT 1 FROM damaged)")) {
                    anyDamaged = rs.next() && rs.getInt(1) == 1;
                }
                byte[] listed = concatenated(ids);
                for (PreparedStatement del : List.of(delRecent, delSettled)) {
                    del.setBytes(1, listed);
                    del.setInt(2, ids.size());
                    del.setLong(3, before);
                    try (ResultSet rs = del.executeQuery()) {
                        while (rs.next()) {
                            deleted.put(ChunkId.fromBytes(rs.getBytes(1), 0), new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5)));
                        }
                    }
                }
                if (anyDamaged) {
                    for (ChunkId id : deleted.keySet()) {
                        unmark.setBytes(1, id.toBytes());
                        unmark.executeUpdate();
                    }
                }
                st.execute("COMMIT");
            } catch (SQLException e) {
                rollback(st, e);
                throw e;
            }
        } catch (SQLException e) {
            throw error("deleting " + ids.size() + " entries", e);
        }
        return deleted;
    }

    /**
     * Deletes the entries whose ids ?1 lists (32 bytes each, ?2 of them) if stamped before ?3, in
     * one statement: SQLite splits the list and deletes in key order (an IN list is sorted), with
     * no call from Java per entry (the driver's work per call was a fifth of a sweep's CPU).
     */
    private static final String DELETE_LISTED = """
            WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?2)
            DELETE FROM %s WHERE id IN (SELECT substr(?1, i * 32 + 1, 32) FROM k) AND epoch < ?3 RETURNING id, pack, offset, length, slot""";

    private static byte[] concatenated(Collection<ChunkId> ids) {
        byte[] b = new byte[ids.size() * ChunkId.LENGTH];
        int off = 0;
        for (ChunkId id : ids) {
            id.copyTo(b, off);
            off += ChunkId.LENGTH;
        }
        return b;
    }

    /**
     * Compaction's index switch: points each of {@code moves} at its new location if it still points
     * into pack {@code from}, in one transaction made durable before it returns (the old pack is
     * deleted after it, so a power cut must not take the switch back). Returns the number of
     * entries switched.
     */
    synchronized int relocate(java.util.Map<ChunkId, ChunkLocation> moves, int from) {
        if (moves.isEmpty()) return 0;
        try (Statement st = writer.createStatement()) {
            st.execute("BEGIN IMMEDIATE");
            int n = 0;
            try (PreparedStatement upRecent = writer.prepareStatement(RELOCATE_LISTED.formatted(RECENT, RECENT, RECENT));
                 PreparedStatement upSettled = writer.prepareStatement(RELOCATE_LISTED.formatted(SETTLED, SETTLED, SETTLED))) {
                StringBuilder json = new StringBuilder(moves.size() * 100).append('[');
                for (var e : new java.util.TreeMap<>(moves).entrySet()) { // in key order: neighbouring updates touch the same pages
                    ChunkLocation l = e.getValue();
                    if (json.length() > 1) json.append(',');
                    json.append("[\"").append(e.getKey().hex()).append("\",").append(l.pack()).append(',').append(l.offset())
                            .append(',').append(l.length()).append(',').append(l.slot()).append(']');
                }
                String listed = json.append(']').toString();
                for (PreparedStatement up : List.of(upRecent, upSettled)) {
                    up.setString(1, listed);
                    up.setInt(2, from);
                    int changed = up.executeUpdate();
                    if (up == upSettled && changed > 0) st.execute(MOVED);
                    n += changed;
                }
                st.execute("COMMIT");
            } catch (SQLException ex) {
                rollback(st, ex);
                throw ex;
            }
            return n;
        } catch (SQLException e) {
            throw error("switching " + moves.size() + " entries from pack " + from, e);
        }
    }

    /**
     * Points the entries ?1 lists (a JSON array of [hex id, pack, offset, length, slot], in key
     * order) that still point into pack ?2 at their new locations, in one statement: no call from
     * Java per entry.
     */
    private static final String RELOCATE_LISTED = """
            UPDATE %s SET pack = m.p, offset = m.o, length = m.l, slot = m.s
            FROM (SELECT unhex(value ->> 0) AS id, value ->> 1 AS p, value ->> 2 AS o, value ->> 3 AS l, value ->> 4 AS s
                  FROM json_each(?1)) AS m
            WHERE %s.id = m.id AND %s.pack = ?2""";

    /** The entries pointing into pack {@code pack}, in pack order (offset, then slot). */
    java.util.Map<ChunkId, ChunkLocation> entriesIn(int pack) {
        return entriesIn(java.util.Set.of(pack)).getOrDefault(pack, new java.util.LinkedHashMap<>());
    }

    /**
     * The entries pointing into each of {@code packs}, each pack's in pack order (offset, then
     * slot), from one read transaction (a snapshot). One scan of the whole table (there is no
     * index by pack), but SQLite hands over only the matching rows: compaction wants the entries
     * of a few packs, and making every entry of the store an object in Java cost more than the scan.
     */
    java.util.Map<Integer, java.util.Map<ChunkId, ChunkLocation>> entriesIn(java.util.Set<Integer> packs) {
        java.util.Map<Integer, java.util.Map<ChunkId, ChunkLocation>> out = new java.util.HashMap<>();
        if (packs.isEmpty()) return out;
        String in = packList(packs);
        try (Connection c = connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery(both("SELECT id, pack, offset, length, slot FROM %s WHERE pack IN (" + in + ")") + " ORDER BY 2, 3, 5")) {
            while (rs.next()) {
                ChunkLocation loc = new ChunkLocation(rs.getInt(2), rs.getLong(3), rs.getInt(4), rs.getInt(5));
                out.computeIfAbsent(loc.pack(), k -> new java.util.LinkedHashMap<>()).put(ChunkId.fromBytes(rs.getBytes(1)), loc);
            }
        } catch (SQLException e) {
            throw error("entries of packs " + in, e);
        }
        return out;
    }

    /** Pack numbers as SQL list items, ascending ("3,7,12"): integers, nothing to quote. */
    private static String packList(java.util.Collection<Integer> packs) {
        StringBuilder in = new StringBuilder();
        for (int pack : new java.util.TreeSet<>(packs)) in.append(in.isEmpty() ? "" : ",").append(pack);
        return in.toString();
    }

    /** Adds entries in one transaction; an id already present keeps its first location. */
    void addAll(Collection<java.util.Map.Entry<ChunkId, ChunkLocation>> entries) {
        commit(entries, java.util.Map.of());
    }

    /**
     * A new entry, into the recent table, stamped with the current GC epoch; an id already in the
     * recent table keeps its location and is stamped (see {@link GcEpochs}); an id the settled table
     * holds is not inserted (0 rows changed: the caller stamps it there with {@link #STAMP}).
     */
    private static final String ADD = "INSERT INTO " + RECENT + "(id, pack, offset, length, slot, epoch) SELECT ?1, ?2, ?3, ?4, ?5, (SELECT epoch FROM gc)"
            + " WHERE NOT EXISTS (SELECT 1 FROM " + SETTLED + " WHERE id = ?1) ON CONFLICT(id) DO UPDATE SET epoch = max(epoch, excluded.epoch)";

    /**
     * Counts a change to the settled table's locations (a merge moved entries into it, compaction
     * or a heal pointed entries of it elsewhere), in the transaction that made it: a collection
     * that sees the count unchanged since the previous one scanned knows that every entry written
     * since is still in the recent table ({@link #forEachStampedIn}).
     */
    private static final String MOVED = "UPDATE gc SET moved = moved + 1";

    /** Stamps entry ?1 of table %s with the current GC epoch if it is stamped earlier. */
    private static final String STAMP = "UPDATE %s SET epoch = (SELECT epoch FROM gc) WHERE id = ?1 AND epoch < (SELECT epoch FROM gc)";

    /** A heal's compare-and-swap in table %s: the entry moves to the new copy only if it still points at the bad one. */
    private static final String MOVE = "UPDATE %s SET pack = ?, offset = ?, length = ?, slot = ?,"
            + " epoch = (SELECT epoch FROM gc) WHERE id = ? AND pack = ? AND offset = ? AND slot = ?";

    private static void bind(PreparedStatement st, byte[] id, ChunkLocation loc) throws SQLException {
        st.setBytes(1, id);
        st.setInt(2, loc.pack());
        st.setLong(3, loc.offset());
        st.setInt(4, loc.length());
        st.setInt(5, loc.slot());
    }

    /**
     * Adds {@code entries} and applies {@code heals} (id -> {bad location, new location}), in one
     * transaction. A new entry is stamped with the current GC epoch; an id already present keeps
     * its first location but is stamped too (another process stored it first: this put is a dedup
     * hit). A heal moves the entry only if it still points at the bad copy (compare-and-swap:
     * another process may have healed it first, and then its copy stays), stamps it, and removes
     * that copy's damaged row; an entry gone meanwhile (a repair or a sweep dropped it) is added.
     * Returns the ids whose entry now points at the new copy.
     *
     * <p>A merge the commit makes due ({@link #mergeIfDue}) runs afterwards on its own thread, not
     * in the caller's: the caller is a store's sync, which a checkpoint waits for, and a merge of a
     * 512 MiB checkpoint's 131,072 entries took 0.3-0.8 s of the 1.2-1.7 s such a sync spent in
     * the index (write-bench's sustained write, 2 cores). The merge then runs beside the next
     * checkpoint's hashing and compression instead of before it. A commit meanwhile waits for the
     * merge's current slice at most (8 MiB of pages: {@link #SLICE_PAGES}), as it would for another
     * process's merge.
     */
    java.util.Set<ChunkId> commit(Collection<java.util.Map.Entry<ChunkId, ChunkLocation>> entries,
                                  java.util.Map<ChunkId, ChunkLocation[]> heals) {
        java.util.Set<ChunkId> healed = commitNow(entries, heals);
        if (!entries.isEmpty() && merging.compareAndSet(false, true)) {
            try {
                merger.execute(this::mergeIfDue);
            } catch (java.util.concurrent.RejectedExecutionException e) { // closing: the next process merges
                merging.set(false);
            }
        }
        return healed;
    }

    private synchronized java.util.Set<ChunkId> commitNow(Collection<java.util.Map.Entry<ChunkId, ChunkLocation>> entries,
                                                          java.util.Map<ChunkId, ChunkLocation[]> heals) {
        java.util.Set<ChunkId> healed = new java.util.HashSet<>();
        if (entries.isEmpty() && heals.isEmpty()) return healed;
        try {
            writer.setAutoCommit(false);
            try (PreparedStatement ins = writer.prepareStatement(ADD);
                 PreparedStatement stampSettled = writer.prepareStatement(STAMP.formatted(SETTLED));
                 PreparedStatement moveRecent = writer.prepareStatement(MOVE.formatted(RECENT));
                 PreparedStatement moveSettled = writer.prepareStatement(MOVE.formatted(SETTLED));
                 PreparedStatement where = writer.prepareStatement(both("SELECT pack, offset, slot FROM %s WHERE id = ?1"));
                 PreparedStatement unmark = writer.prepareStatement("DELETE FROM damaged WHERE id = ? AND pack = ? AND offset = ? AND slot = ?");
                 PreparedStatement bump = writer.prepareStatement(MOVED)) {
                java.util.List<byte[]> ids = new java.util.ArrayList<>(entries.size());
                for (var e : entries) {
                    byte[] id = e.getKey().toBytes();
                    ids.add(id);
                    bind(ins, id, e.getValue());
                    ins.addBatch();
                }
                if (!entries.isEmpty()) {
                    int[] changed = ins.executeBatch();
                    for (int i = 0; i < changed.length; i++) {
                        if (changed[i] == 0) stampSettled(stampSettled, ids.get(i)); // the settled table holds it: a dedup hit there
                    }
                }
                for (var h : heals.entrySet()) {
                    byte[] id = h.getKey().toBytes();
                    ChunkLocation bad = h.getValue()[0], good = h.getValue()[1];
                    int moved = 0;
                    for (PreparedStatement move : List.of(moveRecent, moveSettled)) {
                        move.setInt(1, good.pack());
                        move.setLong(2, good.offset());
                        move.setInt(3, good.length());
                        move.setInt(4, good.slot());
                        move.setBytes(5, id);
                        move.setInt(6, bad.pack());
                        move.setLong(7, bad.offset());
                        move.setInt(8, bad.slot());
                        int changed = move.executeUpdate();
                        if (move == moveSettled && changed > 0) bump.executeUpdate();
                        moved += changed;
                    }
                    if (moved > 0) {
                        healed.add(h.getKey());
                    } else {
                        bind(ins, id, good); // gone meanwhile: added; moved by another heal: stamped where it is
                        if (ins.executeUpdate() == 0) stampSettled(stampSettled, id);
                        where.setBytes(1, id);
                        try (ResultSet rs = where.executeQuery()) {
                            if (rs.next() && rs.getInt(1) == good.pack() && rs.getLong(2) == good.offset() && rs.getInt(3) == good.slot()) healed.add(h.getKey());
                        }
                    }
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

    private static void stampSettled(PreparedStatement stampSettled, byte[] id) throws SQLException {
        stampSettled.setBytes(1, id);
        stampSettled.executeUpdate();
    }

    /** Removes every entry (used before a rebuild from the packs). */
    synchronized void clear() {
        try (Statement st = writer.createStatement()) {
            st.execute("DELETE FROM " + SETTLED);
            st.execute("DELETE FROM " + RECENT);
            st.execute("DELETE FROM damaged");
            st.execute("DELETE FROM gc_state"); // entries come back from the packs: what a collection left no longer holds
        } catch (SQLException e) {
            throw error("clear", e);
        }
    }

    /** Calls {@code sink} for every entry, in id order. */
    void forEach(java.util.function.BiConsumer<ChunkId, ChunkLocation> sink) {
        try (Connection c = connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery(both("SELECT id, pack, offset, length, slot FROM %s") + " ORDER BY 1")) {
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
        return onReader(() -> "lookup of pack " + pack + " past offset " + offset, r -> {
            try (PreparedStatement st = r.connection.prepareStatement("SELECT min(o) FROM (" + both("SELECT min(offset) AS o FROM %s WHERE pack = ?1 AND offset >= ?2") + ")")) {
                st.setInt(1, pack);
                st.setLong(2, offset);
                try (ResultSet rs = st.executeQuery()) {
                    rs.next();
                    long v = rs.getLong(1);
                    return rs.wasNull() ? -1 : v;
                }
            }
        });
    }

    long count() {
        return onReader(() -> "count", r -> {
            try (Statement st = r.connection.createStatement()) {
                return longOf(st, "SELECT (SELECT count(*) FROM " + SETTLED + ") + (SELECT count(*) FROM " + RECENT + ")");
            }
        });
    }

    /** Queries on a pooled reader connection and its prepared statements. */
    private interface ReaderCall<T> {
        T on(Reader r) throws SQLException;
    }

    /**
     * Runs {@code call} on a pooled reader connection (a new one when all are in use): it sees
     * what was committed, never the open transaction of the writer connection (a merge slice
     * between its insert and its delete, on another thread, made {@link #count} see those rows in
     * both tables), and it waits for no writer. {@code what} names the query in an error.
     */
    private <T> T onReader(java.util.function.Supplier<String> what, ReaderCall<T> call) {
        Reader r = readers.poll();
        try {
            if (r == null) r = new Reader();
            return call.on(r);
        } catch (SQLException e) {
            throw error(what.get(), e);
        } finally {
            if (r != null) readers.add(r);
        }
    }

    /** Lets a running merge finish (a command's last commit may have made one due), then closes the connections. */
    @Override
    public void close() {
        merger.close();
        synchronized (this) {
            closeConnections();
        }
    }

    private void closeConnections() {
        closed = true;
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
