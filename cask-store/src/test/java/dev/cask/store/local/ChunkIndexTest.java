package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The index's two tables (see {@link ChunkIndex}'s essay): entries answer the same wherever they
 * are, an id is never in both, and a commit rewrites pages of the recent table, not of the whole
 * index.
 */
class ChunkIndexTest {
    @TempDir
    Path dir;

    private static ChunkId randomId(Random rnd) {
        byte[] b = new byte[ChunkId.LENGTH];
        rnd.nextBytes(b);
        return ChunkId.fromBytes(b);
    }

    private static Map<ChunkId, ChunkLocation> entries(Random rnd, int n, int pack) {
        Map<ChunkId, ChunkLocation> m = new LinkedHashMap<>();
        for (int i = 0; i < n; i++) m.put(randomId(rnd), new ChunkLocation(pack, 16 + 4096L * i, 4000, i % 3 - 1));
        return m;
    }

    private static long rows(Path db, String table) throws Exception {
        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT count(*) FROM " + table)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    @Test
    void entriesAnswerTheSameInEitherTable() throws Exception {
        Path db = dir.resolve("index.db");
        Random rnd = new Random(1);
        try (ChunkIndex index = new ChunkIndex(db, 0, Long.MAX_VALUE)) {
            Map<ChunkId, ChunkLocation> old = entries(rnd, 500, 1);
            index.addAll(old.entrySet());
            index.merge(4);
            Map<ChunkId, ChunkLocation> young = entries(rnd, 500, 2);
            index.addAll(young.entrySet());
            assertEquals(500, rows(db, ChunkIndex.SETTLED));
            assertEquals(500, rows(db, ChunkIndex.RECENT));

            Map<ChunkId, ChunkLocation> all = new HashMap<>(old);
            all.putAll(young);
            assertEquals(1000, index.count());
            for (var e : all.entrySet()) assertEquals(e.getValue(), index.find(e.getKey()));
            assertEquals(all, index.locateAll(new ArrayList<>(all.keySet())));
            assertEquals(all.keySet(), index.lookupForPut(new ArrayList<>(all.keySet())).keySet());
            List<ChunkId> scanned = new ArrayList<>();
            index.forEach((id, loc) -> {
                assertEquals(all.get(id), loc);
                scanned.add(id);
            });
            assertEquals(new ArrayList<>(new java.util.TreeSet<>(all.keySet())), scanned, "one scan in id order over both tables");
            assertEquals(young.keySet(), index.entriesIn(2).keySet());

            // a collection: everything is stamped before the new epoch until a put finds it again
            long epoch = index.bumpEpoch();
            ChunkId oldHit = old.keySet().iterator().next(), youngHit = young.keySet().iterator().next();
            index.lookupForPut(List.of(oldHit, youngHit)); // dedup hits stamp, in either table
            Set<ChunkId> deleted = index.deleteStampedBefore(all.keySet(), epoch);
            assertEquals(998, deleted.size());
            assertEquals(Set.of(oldHit, youngHit), index.locateAll(new ArrayList<>(all.keySet())).keySet());

            // compaction's switch reaches both tables
            Map<ChunkId, ChunkLocation> moves = Map.of(oldHit, new ChunkLocation(9, 16, 4000), youngHit, new ChunkLocation(9, 4112, 4000));
            assertEquals(1, index.relocate(moves, 1));
            assertEquals(1, index.relocate(moves, 2));
            assertEquals(moves, index.locateAll(List.of(oldHit, youngHit)));
        }
    }

    @Test
    void anIdTheSettledTableHoldsIsStampedThereNotAddedAgain() throws Exception {
        Path db = dir.resolve("index.db");
        ChunkId id = randomId(new Random(2));
        ChunkLocation first = new ChunkLocation(1, 16, 100), second = new ChunkLocation(2, 16, 100);
        try (ChunkIndex index = new ChunkIndex(db, 0, Long.MAX_VALUE)) {
            index.addAll(List.of(Map.entry(id, first)));
            index.merge(1);
            long epoch = index.bumpEpoch();
            index.addAll(List.of(Map.entry(id, second))); // another process stored it too
            assertEquals(0, rows(db, ChunkIndex.RECENT), "not in the recent table as well");
            assertEquals(first, index.find(id), "the first location stays");
            assertEquals(Set.of(), index.deleteStampedBefore(List.of(id), epoch), "the add stamped it: a sweep keeps it");
            assertEquals(first, index.find(id));
        }
    }

    @Test
    void mergesRunByThemselvesAndLoseNothing() throws Exception {
        Path db = dir.resolve("index.db");
        Random rnd = new Random(3);
        Map<ChunkId, ChunkLocation> all = new HashMap<>();
        try (ChunkIndex index = new ChunkIndex(db, 0, 100)) {
            for (int i = 0; i < 12; i++) {
                Map<ChunkId, ChunkLocation> batch = entries(rnd, 30 + 10 * i, i + 1);
                index.addAll(batch.entrySet());
                all.putAll(batch);
                index.awaitMerges(); // a merge runs after the commit that made it due, on its own thread
                assertTrue(rows(db, ChunkIndex.RECENT) < 100, "merged once 100 rows are recent");
            }
            assertTrue(rows(db, ChunkIndex.SETTLED) > 0);
        }
        try (ChunkIndex again = new ChunkIndex(db)) {
            assertEquals(all.size(), again.count());
            assertEquals(all, again.locateAll(new ArrayList<>(all.keySet())));
        }
    }

    /**
     * A count while merges run sees each entry once: a merge moves a slice in one transaction on
     * the writer connection, and a count on that connection saw the slice's rows in both tables
     * (a dry-run gc's test read 510 chunks where the store held 389). Commits of 64 rows each, a
     * merge after every one; every count is a whole number of commits, and never more than made.
     */
    @Test
    void aCountDuringMergesSeesEachEntryOnce() throws Exception {
        Path db = dir.resolve("index.db");
        Random rnd = new Random(5);
        int batches = 300, rows = 64;
        try (ChunkIndex index = new ChunkIndex(db, 0, rows)) {
            java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
            Thread writer = Thread.ofPlatform().start(() -> {
                try {
                    for (int i = 0; i < batches; i++) index.addAll(entries(rnd, rows, i + 1).entrySet());
                    index.awaitMerges();
                } finally {
                    done.set(true);
                }
            });
            List<Long> wrong = new ArrayList<>();
            long counts = 0, wrongCounts = 0;
            while (!done.get()) {
                long n = index.count();
                counts++;
                if (n % rows != 0 || n > (long) batches * rows) {
                    wrongCounts++;
                    if (wrong.size() < 5) wrong.add(n);
                }
            }
            writer.join();
            assertEquals(0, wrongCounts, "counts that were not a whole number of 64-row commits, of " + counts + ", first: " + wrong);
            assertEquals((long) batches * rows, index.count());
            assertTrue(rows(db, ChunkIndex.SETTLED) > 0, "merges ran");
        }
    }

    /**
     * The bytes a commit writes: on the old single table, 5,000 new entries in a 400,000-entry
     * index dirtied most of its pages (a WAL the size of the index, every checkpoint); now they go
     * to the recent table and write a few hundred pages.
     */
    @Test
    void aCommitWritesTheRecentTableNotTheWholeIndex() throws Exception {
        Path db = dir.resolve("index.db");
        Path wal = dir.resolve("index.db-wal");
        Random rnd = new Random(4);
        try (ChunkIndex index = new ChunkIndex(db, 0, Long.MAX_VALUE)) {
            for (int i = 0; i < 4; i++) index.addAll(entries(rnd, 100_000, i + 1).entrySet());
            index.merge(8);
            try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db); Statement st = c.createStatement()) {
                st.execute("PRAGMA wal_checkpoint(TRUNCATE)");
            }
            assertEquals(0, Files.size(wal));
            long indexBytes = Files.size(db);
            index.addAll(entries(rnd, 5_000, 9).entrySet());
            long written = Files.size(wal);
            assertTrue(written < indexBytes / 10, "a commit of 5,000 entries wrote " + written + " bytes of WAL, the index is " + indexBytes);
            assertEquals(405_000, index.count());
            assertNull(index.find(randomId(rnd)));
        }
    }
}
