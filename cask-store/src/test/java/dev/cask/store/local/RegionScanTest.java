package dev.cask.store.local;

import dev.cask.common.Pacer;
import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An incremental sweep scans only the index's recent table for the entries written since the
 * previous collection's scan when that collection found them all there and nothing can have put
 * one into the settled table since (schema 5's {@code gc.moved}), and both tables when a merge, a
 * compaction switch or a heal may have: either way it frees every unreachable chunk written since.
 * A pack still written to is read only from where the previous scan had seen its entries to.
 */
class RegionScanTest {
    @TempDir
    Path dir;

    private final Random rnd = new Random(11);
    private final Set<ChunkId> live = new HashSet<>();

    private List<ChunkId> putSome(LocalChunkStore store, int n) {
        List<ChunkId> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            byte[] b = new byte[4096];
            rnd.nextBytes(b);
            out.add(store.put(b));
        }
        store.sync();
        return out;
    }

    /** One collection whose reachable chunks are {@link #live}; returns whether its sweep scanned the recent table only. */
    private boolean collect(LocalChunkStore store, List<ChunkId> expectFreed) {
        return collect(store, List.of(), expectFreed).scannedRecentOnly();
    }

    /**
     * One collection whose reachable chunks are {@link #live}, given {@code gone} as the chunks of
     * trees no version holds any more (what the collector passes); returns its sweep, closed.
     */
    private LocalSweep collect(LocalChunkStore store, List<ChunkId> gone, List<ChunkId> expectFreed) {
        try (ChunkDeleter.Sweep sweep = store.begin(m -> {})) {
            ChunkDeleter.Deleted d = sweep.memo() == null
                    ? sweep.sweep(live::contains, Pacer.unpaced(), () -> {})
                    : sweep.sweepChanged(gone, live::contains, Pacer.unpaced(), () -> {});
            assertEquals(new HashSet<>(expectFreed), d.ids(), "the unreachable chunks written since the last collection are freed");
            sweep.complete(new byte[0]);
            return (LocalSweep) sweep;
        }
    }

    /** A store whose index merges only when a test says so (the test JVM's {@code cask.index.merge-rows} merges every 64 new entries). */
    private LocalChunkStore open() {
        return open(64 << 20);
    }

    private LocalChunkStore open(long packLimit) {
        String before = System.getProperty("cask.index.merge-rows");
        System.setProperty("cask.index.merge-rows", Long.toString(1L << 40));
        try {
            return LocalChunkStore.open(dir, new LocalChunkStore.Options(3, packLimit, false));
        } finally {
            if (before == null) System.clearProperty("cask.index.merge-rows");
            else System.setProperty("cask.index.merge-rows", before);
        }
    }

    @Test
    void theRecentTableAloneIsScannedUntilAMergeMovesEntries() {
        try (LocalChunkStore store = open()) {
            live.addAll(putSome(store, 50));
            assertFalse(collect(store, List.of()), "the first collection sweeps in full");
            List<ChunkId> dead = putSome(store, 20);
            assertFalse(collect(store, dead), "after a full sweep, whose scan did not count the settled table's changes");
            for (int round = 0; round < 3; round++) {
                live.addAll(putSome(store, 10));
                dead = putSome(store, 20);
                assertTrue(collect(store, dead), "round " + round + ": nothing moved into the settled table since the last collection");
            }
            dead = putSome(store, 20);
            live.addAll(putSome(store, 10));
            store.index().merge(4); // the entries written since move into the settled table
            assertFalse(collect(store, dead), "a merge since the last collection: both tables scanned, and what it moved is freed");
            // the pack still written to holds settled entries now, all below where the next scan starts in it
            dead = putSome(store, 5);
            assertTrue(collect(store, dead), "the open pack's settled entries were all seen by the last scan");
            for (ChunkId id : live) assertNotNull(store.locate(id), "a reachable chunk keeps its entry");
        }
    }

    /**
     * Settled entries in a pack still written to lie below where the next scan starts in it, so
     * they do not keep the scans on both tables; a compaction switch (or a heal) that points
     * settled entries elsewhere counts as a change.
     */
    @Test
    void settledEntriesOfAnOpenPackDoNotButSwitchesDoMakeBothTablesScanned() {
        try (LocalChunkStore store = open(64 << 10)) { // about 15 chunks a pack
            live.addAll(putSome(store, 30));
            collect(store, List.of());
            collect(store, List.of());
            assertTrue(collect(store, List.of()), "nothing changed");
            store.index().merge(1);
            int open = store.packIds().getLast();
            assertFalse(collect(store, List.of()), "a merge");
            assertTrue(collect(store, List.of()), "pack " + open + ", still written to, holds settled entries, all seen");
            live.addAll(putSome(store, 40)); // pack "open" is sealed, later ones take the new chunks
            assertTrue(store.packIds().getLast() > open + 1);
            assertTrue(collect(store, List.of()), "every entry written since is in the recent table");
            ChunkId one = null;
            for (ChunkId id : live) if (store.locate(id).pack() == 1) one = id;
            ChunkLocation at = store.locate(one);
            assertEquals(1, store.index().relocate(java.util.Map.of(one, at), at.pack()));
            assertFalse(collect(store, List.of()), "a switch of a settled entry since the last collection");
            store.index().relocate(java.util.Map.of(one, at), at.pack() + 1);
            assertTrue(collect(store, List.of()), "a switch that changed nothing is not counted");
        }
    }

    /**
     * A pack still written to is read by each collection only from where the last one's scan had
     * seen its entries to: the entries written since, not the whole pack again (an hourly
     * collection of a server read every entry of its 256 MiB pack each time, 125,000 of them by the
     * time it was full). What was indexed after a scan, though written to the pack before it, is
     * freed by the next one.
     */
    @Test
    void aPackStillWrittenToIsReadOnlyFromWhereTheLastScanSawItTo() {
        try (LocalChunkStore store = open()) {
            live.addAll(putSome(store, 50));
            collect(store, List.of());
            int pack = store.packIds().getLast();
            for (int round = 0; round < 4; round++) {
                live.addAll(putSome(store, 10));
                List<ChunkId> dead = putSome(store, 20);
                LocalSweep s = collect(store, List.of(), dead);
                assertEquals(30, s.regionEntries(), "round " + round + ": the entries written to pack " + pack + " since the last collection");
            }
            assertEquals(pack, store.packIds().getLast(), "one pack took every chunk");
            // more than the write buffer, so that most of it reaches the pack file before the scan, unindexed
            List<ChunkId> unindexed = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                byte[] b = new byte[4096];
                rnd.nextBytes(b);
                unindexed.add(store.put(b));
            }
            collect(store, List.of(), List.of());
            store.sync();
            LocalSweep s = collect(store, List.of(), unindexed);
            assertEquals(300, s.regionEntries(), "the entries indexed after the last scan");
        }
    }

    /**
     * The live bytes an incremental sweep tells compaction about a pack are what the pack's entries
     * point at, also for a pack that several collections saw while it was written to, each reading
     * only its new entries, and chunks in it freed after its scans had passed them.
     */
    @Test
    void livePacksBytesStayExactWhileAPackIsReadInParts() {
        try (LocalChunkStore store = open(256 << 10)) { // about 60 chunks a pack
            live.addAll(putSome(store, 20));
            collect(store, List.of());
            List<ChunkId> gone = new ArrayList<>();
            for (int round = 0; round < 12; round++) {
                List<ChunkId> kept = putSome(store, 8);
                live.addAll(kept);
                List<ChunkId> dead = putSome(store, 4);
                List<ChunkId> expect = new ArrayList<>(dead);
                expect.addAll(gone);
                LocalSweep s = collect(store, gone, expect);
                for (int p : s.survey().sealed()) {
                    long exact = 0;
                    for (ChunkLocation loc : store.index().entriesIn(p).values()) exact += loc.length();
                    assertEquals(exact, (long) s.survey().live().getOrDefault(p, 0L), "round " + round + ": live bytes of sealed pack " + p);
                }
                gone = new ArrayList<>(kept.subList(0, 3)); // freed next round, after this scan passed them
                live.removeAll(gone);
            }
            assertTrue(store.packIds().size() >= 3, "packs were sealed while collections ran: " + store.packIds());
        }
    }

    @Test
    void aStateOfFormatOneScansBothTables() {
        GcState one = GcState.decode(java.util.HexFormat.of().parseHex(GoldenFormatTest.GC_STATE));
        assertEquals(-1, one.moved(), "a state from before schema 5 does not know the settled table's changes");
    }
}
