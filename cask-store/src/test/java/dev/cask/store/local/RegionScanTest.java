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
 * An incremental sweep scans only the index's recent table for the entries of the packs written
 * since the previous collection when that collection found them all there and nothing can have
 * put one into the settled table since (schema 5's {@code gc.moved}), and both tables when a
 * merge, a compaction switch or a heal may have, or while a pack still written to holds settled
 * entries: either way it frees every unreachable chunk written since.
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
        try (ChunkDeleter.Sweep sweep = store.begin(m -> {})) {
            ChunkDeleter.Deleted d = sweep.memo() == null
                    ? sweep.sweep(live::contains, Pacer.unpaced(), () -> {})
                    : sweep.sweepChanged(List.of(), live::contains, Pacer.unpaced(), () -> {});
            assertEquals(new HashSet<>(expectFreed), d.ids(), "the unreachable chunks written since the last collection are freed");
            sweep.complete(new byte[0]);
            return ((LocalSweep) sweep).scannedRecentOnly();
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
            // the pack still written to holds settled entries now: every scan must see them (their live bytes count)
            dead = putSome(store, 5);
            assertFalse(collect(store, dead), "the open pack holds settled entries");
            for (ChunkId id : live) assertNotNull(store.locate(id), "a reachable chunk keeps its entry");
        }
    }

    /**
     * Settled entries in a pack still written to keep the scans on both tables until the pack is
     * sealed and scanned once more; a compaction switch (or a heal) that points settled entries
     * elsewhere counts as a change.
     */
    @Test
    void settledEntriesOfAnOpenPackAndSwitchesKeepBothTablesScanned() {
        try (LocalChunkStore store = open(64 << 10)) { // about 15 chunks a pack
            live.addAll(putSome(store, 30));
            collect(store, List.of());
            collect(store, List.of());
            assertTrue(collect(store, List.of()), "nothing changed");
            store.index().merge(1);
            int open = store.packIds().getLast();
            assertFalse(collect(store, List.of()), "a merge");
            assertFalse(collect(store, List.of()), "pack " + open + ", still written to, holds settled entries");
            live.addAll(putSome(store, 40)); // pack "open" is sealed, later ones take the new chunks
            assertTrue(store.packIds().getLast() > open + 1);
            assertFalse(collect(store, List.of()), "pack " + open + " is looked at once more, now sealed");
            assertTrue(collect(store, List.of()), "every pack written since is in the recent table");
            ChunkId one = null;
            for (ChunkId id : live) if (store.locate(id).pack() == 1) one = id;
            ChunkLocation at = store.locate(one);
            assertEquals(1, store.index().relocate(java.util.Map.of(one, at), at.pack()));
            assertFalse(collect(store, List.of()), "a switch of a settled entry since the last collection");
            store.index().relocate(java.util.Map.of(one, at), at.pack() + 1);
            assertTrue(collect(store, List.of()), "a switch that changed nothing is not counted");
        }
    }

    @Test
    void aStateOfFormatOneScansBothTables() {
        GcState one = GcState.decode(java.util.HexFormat.of().parseHex(GoldenFormatTest.GC_STATE));
        assertEquals(-1, one.moved(), "a state from before schema 5 does not know the settled table's changes");
    }
}
