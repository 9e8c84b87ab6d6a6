package dev.cask.image;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Version;
import dev.cask.common.Pacer;
import dev.cask.common.Progress;
import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkIdSet;
import dev.cask.store.ChunkStore;
import dev.cask.store.local.ChunkLocation;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.tree.Layout;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Garbage collection ({@code cask gc}): frees the index entries of every chunk no version
 * reaches, while servers and other commands keep writing the store.
 *
 * <p><b>Order.</b> (1) {@link ChunkDeleter#begin}: one collection at a time, the store's GC epoch
 * raised to G, and every writer session open at that moment waited for; (2) mark: every version
 * in the catalog, read once after (1) (heads, the bases of open volumes and of crashed volumes'
 * journals are versions; a version removal must keep a journal's base, see the lifecycle docs);
 * (the chunks a format 1 journal of an older cask names are marked too: they are a crashed
 * volume's flushed writes, in no version until the image is opened and the journal upgraded);
 * (3) sweep: the entries stamped before G that are not marked are deleted, the stamp tested again
 * in the delete's transaction. Why that never deletes a chunk a concurrent import, checkpoint or
 * dedup hit is about to reference is written in {@code GcEpochs}, next to the stamps.
 *
 * <p><b>Marking by tree.</b> A subtree whose top is marked already is not entered again, so a
 * thousand clones of one image cost one image's pointer chunks plus one top each; data chunks
 * (the leaves) are never read, only pointer chunks, each at most once. A pointer chunk that
 * cannot be read (missing or corrupt) stops the collection before anything is deleted: what is
 * below it is unknown, so nothing may be swept.
 *
 * <p><b>Space.</b> GC deletes index entries; the pack bytes they pointed at come back when
 * compaction ({@code Compactor}, run after the sweep under the same collection) rewrites the pack. {@link Result#bytesFreed} counts the records (and segments all of
 * whose chunks are now gone) that no entry points at any more.
 *
 * <p><b>Crash.</b> Every step is a transaction on its own: a killed GC leaves some entries deleted
 * (all of them unreachable) and the epoch raised; the next run starts again from (1).
 *
 * <p>Memory: one set entry per reachable chunk (32 to 128 bytes each, {@link ChunkIdSet}). Not thread-safe: one run per object.
 */
public final class GarbageCollector {
    /** What a run did (or, dry, would do). */
    public record Result(boolean dryRun, long epoch, boolean incremental, long versions, long chunksMarked, long pointerReads,
                         long chunksFreed, long bytesFreed, ChunkDeleter.Compacted compacted, double seconds, Phases phases) {
        /**
         * The result as named numbers, in the order {@code cask gc --json} prints them (seconds
         * rounded to milliseconds): what the command prints and what a server's control socket
         * sends back for a gc it ran ({@code ControlServer}).
         */
        public java.util.LinkedHashMap<String, Object> fields() {
            java.util.LinkedHashMap<String, Object> m = new java.util.LinkedHashMap<>();
            m.put("dry_run", dryRun);
            m.put("epoch", epoch);
            m.put("sweep", incremental ? "incremental" : "full");
            m.put("versions", versions);
            m.put("chunks_marked", chunksMarked);
            m.put("pointer_chunks_read", pointerReads);
            m.put("chunks_freed", chunksFreed);
            m.put("bytes_freed", bytesFreed);
            m.put("packs_rewritten", compacted.packsRewritten());
            m.put("packs_deleted", compacted.packsDeleted());
            m.put("chunks_copied", compacted.chunksCopied());
            m.put("pack_bytes_before", compacted.bytesBefore());
            m.put("pack_bytes_after", compacted.bytesAfter());
            m.put("packs_damaged", compacted.packsDamaged());
            m.put("seconds", millis(seconds));
            m.put("wait_seconds", millis(phases.waitSeconds()));
            m.put("mark_seconds", millis(phases.markSeconds()));
            m.put("sweep_seconds", millis(phases.sweepSeconds()));
            m.put("compact_seconds", millis(phases.compactSeconds()));
            return m;
        }

        private static double millis(double s) {
            return Math.round(s * 1000) / 1000.0;
        }
    }

    /** Seconds per phase: waiting for another collection and older writers, mark, sweep (scan and deletes), compaction. */
    public record Phases(double waitSeconds, double markSeconds, double sweepSeconds, double compactSeconds) {}

    private final Catalog catalog;
    private final ChunkStore store;
    private final LocalChunkStore local;
    private final dev.cask.volume.JournalStore journals;
    private final ChunkIdSet marked = new ChunkIdSet();
    private long pointerReads;
    /** Test hook: runs after the sweep chose its candidates, before it deletes them (a race with the sweep is made there). */
    private Runnable beforeSweep = () -> {};

    /** A collector of a local store whose journals are in its own {@code journals} directory. */
    public GarbageCollector(Catalog catalog, LocalChunkStore store) {
        this(catalog, store, new dev.cask.volume.LocalJournals(store.dir().resolve(LocalImages.JOURNALS_DIR)));
    }

    /** A collector of {@code store}, keeping the chunks that format 1 journals in {@code journals} name. */
    public GarbageCollector(Catalog catalog, LocalChunkStore store, dev.cask.volume.JournalStore journals) {
        this.catalog = catalog;
        this.store = store;
        this.local = store;
        this.journals = journals;
    }

    private double compactThreshold = ChunkDeleter.DEFAULT_COMPACT_THRESHOLD;

    /** Packs with at least this share of garbage are rewritten after the sweep; above 1: no compaction. */
    public GarbageCollector compactThreshold(double t) {
        this.compactThreshold = t;
        return this;
    }

    GarbageCollector beforeSweep(Runnable r) {
        this.beforeSweep = r;
        return this;
    }

    private String who = "cask gc";
    private Pacer pacer = Pacer.unpaced();

    /**
     * Runs paced by {@code pacer} and stoppable through it (a server's background collection):
     * it steps after each pointer chunk read, each transaction of deletes and each batch of
     * copies, and a stop ends the run there with {@link Pacer.Stopped} (see {@code Compactor}:
     * stopping between steps is as safe as a crash there). {@code who} names the collection to a
     * second one that waits for it.
     */
    public GarbageCollector paced(String who, Pacer pacer) {
        this.who = who;
        this.pacer = pacer;
        return this;
    }

    /** Runs one collection; {@code waiting} hears why it waits (another GC, writers). */
    public Result run(boolean dryRun, Consumer<String> waiting, Progress progress) {
        long t0 = System.nanoTime();
        if (dryRun) {
            long versions = mark(progress);
            long t1 = System.nanoTime();
            Map<ChunkId, ChunkLocation> garbage = new HashMap<>();
            Set<Long> liveSegments = new HashSet<>();
            local.forEachIndexEntry((id, loc) -> {
                if (!marked.contains(id)) garbage.put(id, loc);
                else if (loc.inSegment()) liveSegments.add(key(loc));
            });
            long bytes = freedBytes(garbage.values(), liveSegments);
            return new Result(true, local.gcEpoch(), false, versions, marked.size(), pointerReads, garbage.size(), bytes,
                    ChunkDeleter.Compacted.NONE, seconds(t0), new Phases(0, (t1 - t0) / 1e9, seconds(t1), 0));
        }
        try (ChunkDeleter.Sweep sweep = local.begin(who, waiting, pacer)) {
            long tMark = System.nanoTime();
            long versions = mark(progress);
            long tSweep = System.nanoTime();
            progress.startItems("sweep", 1);
            byte[] previous = full ? null : sweep.memo();
            List<ChunkId> gone = previous == null ? null : unmarkedBelow(removedRoots(previous));
            ChunkDeleter.Deleted d = gone == null ? sweep.sweep(marked::contains, pacer, beforeSweep)
                    : sweep.sweepChanged(gone, marked::contains, pacer, beforeSweep);
            long freed = d.ids().size();
            long bytes = d.bytes();
            progress.advance(1);
            progress.done();
            long tCompact = System.nanoTime();
            ChunkDeleter.Compacted compacted = compactThreshold > 1 ? ChunkDeleter.Compacted.NONE
                    : sweep.compact(compactThreshold, progress, pacer);
            sweep.complete(formatOneChunks ? null : memo());
            return new Result(false, sweep.epoch(), gone != null, versions, marked.size(), pointerReads, freed, bytes, compacted, seconds(t0),
                    new Phases((tMark - t0) / 1e9, (tSweep - tMark) / 1e9, (tCompact - tSweep) / 1e9, seconds(tCompact)));
        }
    }

    /**
     * Marks every chunk every version reaches, and the chunks format 1 journals name (an older
     * cask's crashed volumes' flushed writes, in no version until the image is opened and the
     * journal upgraded); returns the number of versions.
     *
     * <p>Breadth first, one tree level at a time across all versions: the pointer chunks of a
     * level not entered yet are read with one {@link ChunkStore#getAll} per {@link #READ_BATCH}
     * (the store asks its index about many at once and reads neighbouring records together)
     * instead of one get each. A chunk is entered as a pointer chunk once ({@link #entered}),
     * whatever it was seen as before: the same bytes can be a data block of one disk and a
     * pointer chunk of another tree, and only a pointer chunk's children need marking.
     */
    private long mark(Progress progress) {
        List<Version> all = catalog.allVersions();
        progress.startItems("mark", all.size());
        Map<Integer, List<ChunkId>> levels = new HashMap<>();
        for (Version v : all) {
            for (Layout.Extent e : Layout.decode(v.content()).extents()) {
                reach(e.root().top(), e.root().depth(), levels);
                roots.add(new TreeRoot(e.root().top(), e.root().depth()));
            }
            progress.advance(1);
        }
        journals.forEachFormatOneChunk(id -> {
            formatOneChunks = true;
            reach(id, 0, levels);
        });
        progress.done();
        int top = levels.keySet().stream().mapToInt(Integer::intValue).max().orElse(0);
        for (int level = top; level > 0; level--) {
            List<ChunkId> pointers = levels.remove(level);
            if (pointers == null) continue;
            int childLevel = level - 1;
            for (int from = 0; from < pointers.size(); from += READ_BATCH) {
                List<ChunkId> batch = pointers.subList(from, Math.min(pointers.size(), from + READ_BATCH));
                // verified; a missing or corrupt pointer chunk throws: nothing is swept
                store.getAll(batch, (i, p, off, len) -> {
                    for (int s = off; s + ChunkId.LENGTH <= off + len; s += ChunkId.LENGTH) reach(p, s, childLevel, levels);
                }, ChunkStore.Reading.STREAM);
                pointerReads += batch.size();
                pacer.step();
            }
        }
        return all.size();
    }

    /** The top of a tree and its depth (0: the top is a data chunk). */
    private record TreeRoot(ChunkId top, int depth) {}

    /** The roots of every tree this run marked (each once). */
    private final Set<TreeRoot> roots = new HashSet<>();
    /** Whether format 1 journals named chunks: they are in no tree, so this run leaves no memo (the next sweeps in full). */
    private boolean formatOneChunks;

    /** The memo this run leaves the next: its tree roots, 33 bytes each (depth, top), in no particular order. */
    private byte[] memo() {
        byte[] m = new byte[roots.size() * (1 + ChunkId.LENGTH)];
        int off = 0;
        for (TreeRoot r : roots) {
            m[off] = (byte) r.depth();
            r.top().copyTo(m, off + 1);
            off += 1 + ChunkId.LENGTH;
        }
        return m;
    }

    /** The roots in the previous run's {@code memo} that no version has now; null when the memo is not one. */
    private List<TreeRoot> removedRoots(byte[] memo) {
        if (memo.length % (1 + ChunkId.LENGTH) != 0) return null;
        List<TreeRoot> removed = new ArrayList<>();
        for (int off = 0; off < memo.length; off += 1 + ChunkId.LENGTH) {
            TreeRoot r = new TreeRoot(ChunkId.fromBytes(memo, off + 1), memo[off]);
            if (r.depth() < 0 || r.depth() > MAX_DEPTH) return null;
            if (!roots.contains(r)) removed.add(r);
        }
        return removed;
    }

    /** Deeper than any tree cask writes (a 1 MiB pointer chunk holds 32,768 ids). */
    private static final int MAX_DEPTH = 16;

    /**
     * The chunks in the trees of {@code removed} that this run did not mark: walked from each
     * root down through unmarked pointer chunks only (a marked pointer chunk's whole subtree is
     * marked), breadth first as {@link #mark} does, each pointer chunk read once. These are the
     * chunks the previous run reached that nothing reaches now (see {@code ChunkDeleter.Sweep#sweepChanged}).
     * Null when {@code removed} is null or a pointer chunk cannot be read (missing or corrupt): the
     * caller then sweeps in full.
     */
    private List<ChunkId> unmarkedBelow(List<TreeRoot> removed) {
        if (removed == null) return null;
        List<ChunkId> out = new ArrayList<>();
        ChunkIdSet seen = new ChunkIdSet();
        Map<Integer, List<ChunkId>> levels = new HashMap<>();
        byte[] b = new byte[ChunkId.LENGTH];
        for (TreeRoot r : removed) {
            r.top().copyTo(b, 0);
            below(b, 0, r.depth(), seen, out, levels);
        }
        int top = levels.keySet().stream().mapToInt(Integer::intValue).max().orElse(0);
        try {
            for (int level = top; level > 0; level--) {
                List<ChunkId> pointers = levels.remove(level);
                if (pointers == null) continue;
                int childLevel = level - 1;
                for (int from = 0; from < pointers.size(); from += READ_BATCH) {
                    List<ChunkId> batch = pointers.subList(from, Math.min(pointers.size(), from + READ_BATCH));
                    store.getAll(batch, (i, p, off, len) -> {
                        for (int s = off; s + ChunkId.LENGTH <= off + len; s += ChunkId.LENGTH) below(p, s, childLevel, seen, out, levels);
                    }, ChunkStore.Reading.STREAM);
                    pointerReads += batch.size();
                    pacer.step();
                }
            }
        } catch (dev.cask.common.CaskException.NotFound | dev.cask.common.CaskException.Corrupt e) {
            return null;
        }
        return out;
    }

    private void below(byte[] src, int off, int level, ChunkIdSet seen, List<ChunkId> out, Map<Integer, List<ChunkId>> levels) {
        if (java.util.Arrays.equals(src, off, off + ChunkId.LENGTH, ZERO, 0, ChunkId.LENGTH)) return; // a hole
        if (marked.contains(src, off)) return;
        boolean first = seen.add(src, off);
        if (first) out.add(ChunkId.fromBytes(src, off));
        // as in mark: the same bytes can be a data block of one tree and a pointer chunk of another
        if (level > 0 && walked.add(src, off)) levels.computeIfAbsent(level, k -> new ArrayList<>()).add(ChunkId.fromBytes(src, off));
    }

    /** Pointer chunks of removed trees whose children are queued ({@link #unmarkedBelow}). */
    private final ChunkIdSet walked = new ChunkIdSet();

    private boolean full;

    /** Sweeps the whole index even when the previous collection left what an incremental sweep needs ({@code cask gc --full}). */
    public GarbageCollector full(boolean full) {
        this.full = full;
        return this;
    }

    /** Pointer chunks read per {@link ChunkStore#getAll} while marking. */
    static final int READ_BATCH = 2048;

    /** Pointer chunks whose children are marked (or queued to be); a subset of {@link #marked}. */
    private final ChunkIdSet entered = new ChunkIdSet();

    private static final byte[] ZERO = new byte[ChunkId.LENGTH];

    private void reach(ChunkId id, int level, Map<Integer, List<ChunkId>> levels) {
        byte[] b = new byte[ChunkId.LENGTH];
        id.copyTo(b, 0);
        reach(b, 0, level, levels);
    }

    /**
     * Marks the id in {@code src[off, off+32)}, and queues it to be read when it is a pointer
     * chunk not entered yet (a subtree marked already is not entered again).
     */
    private void reach(byte[] src, int off, int level, Map<Integer, List<ChunkId>> levels) {
        if (java.util.Arrays.equals(src, off, off + ChunkId.LENGTH, ZERO, 0, ChunkId.LENGTH)) return; // a hole
        marked.add(src, off);
        if (level > 0 && entered.add(src, off)) levels.computeIfAbsent(level, k -> new ArrayList<>()).add(ChunkId.fromBytes(src, off));
    }

    /** Records, and segments none of whose chunks is live. */
    private static long freedBytes(java.util.Collection<ChunkLocation> garbage, Set<Long> liveSegments) {
        long bytes = 0;
        Map<Long, Integer> segments = new HashMap<>();
        for (ChunkLocation loc : garbage) {
            if (!loc.inSegment()) bytes += loc.length();
            else if (!liveSegments.contains(key(loc))) segments.put(key(loc), loc.length());
        }
        for (int len : segments.values()) bytes += len;
        return bytes;
    }

    private static long key(ChunkLocation loc) {
        return ((long) loc.pack() << 40) ^ loc.offset();
    }

    private static double seconds(long t0) {
        return (System.nanoTime() - t0) / 1e9;
    }
}
