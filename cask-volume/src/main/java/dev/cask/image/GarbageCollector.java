package dev.cask.image;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Version;
import dev.cask.common.Pacer;
import dev.cask.common.Progress;
import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkIdSet;
import dev.cask.store.ChunkStore;
import dev.cask.store.ChunkLocation;
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
 * <p><b>Marking by difference.</b> What a mark computes is a function of the set of tree roots
 * alone (trees are immutable), so a process that collects again and again (a server) keeps the
 * last mark's result as {@link ReferenceCounts}: for each (chunk, level) the number of roots and
 * of counted pointer-chunk slots that name it. The next mark diffs the catalog's roots against the
 * remembered ones and only reads the pointer chunks whose count went from 0 to more (their children
 * are counted) or to 0 (their children taken off): a checkpoint's few new pointer chunks and a
 * removed version's own ones, not every tree again. Levels go top down, so a count is final
 * before its pointer chunk is looked at. The chunks whose counts went to 0 are exactly those the
 * removed trees held and nothing holds now: the incremental sweep's candidates, without a walk.
 * A count that would go below 0, or a removed tree's pointer chunk that cannot be read, throws the
 * remembered counts away and the mark starts from nothing; so does {@code cask gc --full}, a dry
 * run, a new process, and a store with more than {@link #REMEMBER_MAX} pairs. Safety does not
 * rest on it: the sweep deletes only what this mark does not reach, and tests compare it with a
 * mark from nothing after every collection (GcModelTest).
 *
 * <p><b>Space.</b> GC deletes index entries; the pack bytes they pointed at come back when
 * compaction ({@code Compactor}, run after the sweep under the same collection) rewrites the pack. {@link Result#bytesFreed} counts the records (and segments all of
 * whose chunks are now gone) that no entry points at any more. With {@link #recompress}, the
 * store then rewrites its cold packs with look-alike chunks together ({@code Recompressor}), under
 * the same collection: nothing else moves entries meanwhile.
 *
 * <p><b>Crash.</b> Every step is a transaction on its own: a killed GC leaves some entries deleted
 * (all of them unreachable) and the epoch raised; the next run starts again from (1).
 *
 * <p>Memory: one table slot per reachable (chunk, level) pair (about 80 bytes each,
 * {@link ReferenceCounts}), kept between runs by a server. Not thread-safe: one run per object.
 */
public final class GarbageCollector {
    /** What a run did (or, dry, would do). */
    public record Result(boolean dryRun, long epoch, boolean incremental, boolean markedByDifference, long versions, long chunksMarked, long pointerReads,
                         long chunksFreed, long bytesFreed, ChunkDeleter.Compacted compacted, ChunkDeleter.Recompressed recompressed,
                         double seconds, Phases phases) {
        /** A run that recompressed nothing. */
        public Result(boolean dryRun, long epoch, boolean incremental, boolean markedByDifference, long versions, long chunksMarked, long pointerReads,
                      long chunksFreed, long bytesFreed, ChunkDeleter.Compacted compacted, double seconds, Phases phases) {
            this(dryRun, epoch, incremental, markedByDifference, versions, chunksMarked, pointerReads, chunksFreed, bytesFreed, compacted,
                    ChunkDeleter.Recompressed.NONE, seconds, phases);
        }

        /**
         * The result as named numbers, in the order {@code cask gc --json} prints them (seconds
         * rounded to milliseconds): what the command prints and what a server's control socket
         * sends back for a gc it ran ({@code ControlServer}).
         */
        public java.util.LinkedHashMap<String, Object> fields() {
            java.util.LinkedHashMap<String, Object> m = new java.util.LinkedHashMap<>();
            m.put("dry_run", dryRun);
            m.put("epoch", epoch);
            m.put("mark", markedByDifference ? "difference" : "full");
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
            m.put("packs_punched", compacted.packsPunched());
            m.put("bytes_punched", compacted.bytesPunched());
            m.put("packs_recompressed", recompressed.packsRead());
            m.put("chunks_recompressed", recompressed.chunks());
            m.put("recompress_bytes_before", recompressed.bytesBefore());
            m.put("recompress_bytes_after", recompressed.bytesAfter());
            m.put("seconds", millis(seconds));
            m.put("wait_seconds", millis(phases.waitSeconds()));
            m.put("mark_seconds", millis(phases.markSeconds()));
            m.put("sweep_seconds", millis(phases.sweepSeconds()));
            m.put("compact_seconds", millis(phases.compactSeconds()));
            m.put("rest_seconds", millis(phases.restSeconds()));
            return m;
        }

        private static double millis(double s) {
            return Math.round(s * 1000) / 1000.0;
        }
    }

    /** Seconds per phase: waiting for another collection and older writers, mark, sweep (scan and deletes), compaction; and of all of them, resting (a paced run). */
    public record Phases(double waitSeconds, double markSeconds, double sweepSeconds, double compactSeconds, double restSeconds) {}

    private final Catalog catalog;
    private final ChunkStore store;
    /** Deletion (only here) and the index as a dry run reads it. */
    private final ChunkDeleter deleter;
    private final StoreCapabilities.Checks index;
    private final dev.cask.volume.JournalStore journals;
    private long pointerReads;
    /** Test hook: runs after the sweep chose its candidates, before it deletes them (a race with the sweep is made there). */
    private Runnable beforeSweep = () -> {};

    /**
     * A collector of {@code store}, deleting through {@code deleter} (the same store's deletion),
     * whose dry run reads the store's index through {@code index}; keeps what {@code journals} name.
     */
    public GarbageCollector(Catalog catalog, ChunkStore store, ChunkDeleter deleter, StoreCapabilities.Checks index,
                            dev.cask.volume.JournalStore journals) {
        this.catalog = catalog;
        this.store = store;
        this.deleter = deleter;
        this.index = index;
        this.journals = journals;
    }

    private double compactThreshold = ChunkDeleter.DEFAULT_COMPACT_THRESHOLD;

    /** Packs with at least this share of garbage are rewritten after the sweep; above 1: no compaction. */
    public GarbageCollector compactThreshold(double t) {
        this.compactThreshold = t;
        return this;
    }

    private boolean recompress;

    /**
     * After compaction, also recompresses the cold packs (sealed packs no recompression wrote):
     * look-alike chunks together, at a stronger zstd level ({@code ChunkDeleter.Sweep#recompress}).
     */
    public GarbageCollector recompress(boolean r) {
        this.recompress = r;
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
            long versions = mark(progress, true);
            long t1 = System.nanoTime();
            Map<ChunkId, ChunkLocation> garbage = new HashMap<>();
            Set<Long> liveSegments = new HashSet<>();
            index.forEachIndexEntry((id, loc) -> {
                if (!marked(id)) garbage.put(id, loc);
                else if (loc.inSegment()) liveSegments.add(key(loc));
            });
            long bytes = freedBytes(garbage.values(), liveSegments);
            return new Result(true, deleter.gcEpoch(), false, false, versions, refs.size(), pointerReads, garbage.size(), bytes,
                    ChunkDeleter.Compacted.NONE, seconds(t0), new Phases(0, (t1 - t0) / 1e9, seconds(t1), 0, pacer.restedSeconds()));
        }
        try (ChunkDeleter.Sweep sweep = deleter.begin(who, waiting, pacer)) {
            long tMark = System.nanoTime();
            long versions = mark(progress, false);
            long tSweep = System.nanoTime();
            progress.startItems("sweep", 1);
            byte[] previous = full ? null : sweep.memo();
            List<ChunkId> gone = gone(previous);
            ChunkDeleter.Deleted d = gone == null ? sweep.sweep(this::marked, pacer, beforeSweep)
                    : sweep.sweepChanged(gone, this::marked, pacer, beforeSweep);
            long freed = d.ids().size();
            long bytes = d.bytes();
            progress.advance(1);
            progress.done();
            long tCompact = System.nanoTime();
            ChunkDeleter.Compacted compacted = compactThreshold > 1 ? ChunkDeleter.Compacted.NONE
                    : sweep.compact(compactThreshold, progress, pacer);
            ChunkDeleter.Recompressed recompressed = recompress ? sweep.recompress(progress, pacer) : ChunkDeleter.Recompressed.NONE;
            sweep.complete(formatOneChunks ? null : memo());
            return new Result(false, sweep.epoch(), gone != null, byDifference, versions, refs.size(), pointerReads, freed, bytes, compacted,
                    recompressed, seconds(t0),
                    new Phases((tMark - t0) / 1e9, (tSweep - tMark) / 1e9, (tCompact - tSweep) / 1e9, seconds(tCompact), pacer.restedSeconds()));
        }
    }

    /**
     * Marks every chunk every version reaches, and the chunks format 1 journals name (an older
     * cask's crashed volumes' flushed writes, in no version until the image is opened and the
     * journal upgraded); returns the number of versions. By difference from what the previous run
     * of this process marked when it {@linkplain #remembering remembers} one (and the counts hold
     * up), else from nothing: the same code, whose every root is then new.
     */
    private long mark(Progress progress, boolean dryRun) {
        List<Version> all = catalog.allVersions();
        progress.startItems("mark", all.size());
        Map<TreeRoot, Integer> now = new HashMap<>();
        for (Version v : all) {
            for (Layout.Extent e : Layout.decode(v.content()).extents()) now.merge(new TreeRoot(e.root().top(), e.root().depth()), 1, Integer::sum);
        }
        journals.forEachFormatOneChunk(id -> {
            formatOneChunks = true;
            now.merge(new TreeRoot(id, 0), 1, Integer::sum);
        });
        roots.addAll(now.keySet());
        Marked before = memory == null || dryRun || full ? null : memory.getAndSet(null);
        if (before != null) {
            refs = before.refs();
            try {
                change(before.roots(), now);
                byDifference = true;
                previousRoots = before.roots().keySet();
            } catch (dev.cask.common.CaskException.NotFound | dev.cask.common.CaskException.Corrupt | IllegalStateException e) {
                // a pointer chunk of a removed tree cannot be read, or the counts do not add up: from nothing
                refs = null;
                dropped.clear();
                droppedSeen = new ChunkIdSet();
            }
        }
        if (refs == null) {
            refs = new ReferenceCounts();
            change(Map.of(), now); // a pointer chunk that cannot be read stops the collection: nothing is swept
        }
        progress.advance(all.size());
        progress.done();
        if (memory != null && !dryRun && refs.size() <= REMEMBER_MAX) memory.set(new Marked(now, refs));
        return all.size();
    }

    /**
     * Turns the counts of the trees of {@code before} into those of {@code after} (both: root to
     * how many versions have it). Level by level from the top: a pair's count changes only through
     * roots at its level and the pointer chunks one level up, so once the level above is done its
     * count is final; then each pointer chunk whose count went from 0 to more has its children
     * counted, and each that went to 0 has them taken off (one read per such pointer chunk, with
     * one {@link ChunkStore#getAll} per {@link #READ_BATCH}). Pairs whose count went to 0 are
     * remembered in {@link #dropped}: the chunks no longer reached, if no other level reaches them.
     */
    private void change(Map<TreeRoot, Integer> before, Map<TreeRoot, Integer> after) {
        Map<Integer, Map<ChunkId, Integer>> touched = new HashMap<>();
        byte[] b = new byte[ChunkId.LENGTH];
        Set<TreeRoot> all = new HashSet<>(before.keySet());
        all.addAll(after.keySet());
        for (TreeRoot r : all) {
            int d = after.getOrDefault(r, 0) - before.getOrDefault(r, 0);
            if (d == 0) continue;
            r.top().copyTo(b, 0);
            count(b, 0, r.depth(), d, touched);
        }
        int top = touched.keySet().stream().mapToInt(Integer::intValue).max().orElse(0);
        for (int level = top; level > 0; level--) {
            Map<ChunkId, Integer> pointers = touched.remove(level);
            if (pointers == null) continue;
            List<ChunkId> grew = new ArrayList<>();
            List<ChunkId> went = new ArrayList<>();
            for (var e : pointers.entrySet()) {
                e.getKey().copyTo(b, 0);
                int n = refs.count(b, 0, level);
                if (e.getValue() == 0 && n > 0) grew.add(e.getKey());
                else if (e.getValue() > 0 && n == 0) went.add(e.getKey());
            }
            children(grew, level - 1, 1, touched);
            children(went, level - 1, -1, touched);
        }
    }

    /** Adds {@code delta} to the count of every child (every non-hole slot) of each of {@code pointers}. */
    private void children(List<ChunkId> pointers, int childLevel, int delta, Map<Integer, Map<ChunkId, Integer>> touched) {
        forEachSlot(pointers, (p, s) -> count(p, s, childLevel, delta, touched));
    }

    /** Where a child id lies: {@code src[off, off+32)}. */
    private interface Slot {
        void at(byte[] src, int off);
    }

    /**
     * Calls {@code slot} for every 32-byte slot of each of {@code pointers}, read (verified) with one
     * {@link ChunkStore#getAll} per {@link #READ_BATCH}, the pacer stepping after each; a missing or
     * corrupt pointer chunk throws.
     */
    private void forEachSlot(List<ChunkId> pointers, Slot slot) {
        for (int from = 0; from < pointers.size(); from += READ_BATCH) {
            List<ChunkId> batch = pointers.subList(from, Math.min(pointers.size(), from + READ_BATCH));
            store.getAll(batch, (i, p, off, len) -> {
                for (int s = off; s + ChunkId.LENGTH <= off + len; s += ChunkId.LENGTH) slot.at(p, s);
            }, ChunkStore.Reading.STREAM);
            pointerReads += batch.size();
            pacer.step();
        }
    }

    private void count(byte[] src, int off, int level, int delta, Map<Integer, Map<ChunkId, Integer>> touched) {
        if (java.util.Arrays.equals(src, off, off + ChunkId.LENGTH, ZERO, 0, ChunkId.LENGTH)) return; // a hole
        int was = refs.add(src, off, level, delta);
        if (level > 0) {
            Map<ChunkId, Integer> m = touched.computeIfAbsent(level, k -> new HashMap<>());
            ChunkId id = ChunkId.fromBytes(src, off);
            m.putIfAbsent(id, was); // the count before this run's first change
        }
        if (was + delta == 0 && droppedSeen.add(src, off)) dropped.add(ChunkId.fromBytes(src, off));
    }

    /**
     * What a process's collections keep between runs: the roots the last mark counted and the
     * counts it left. Held by the store's tools of a long-running process (a server); taken by a
     * run for its mark, and set again when the mark is done (a run whose mark failed leaves none).
     */
    record Marked(Map<TreeRoot, Integer> roots, ReferenceCounts refs) {}

    /**
     * Where a process keeps what its last collection marked ({@link Marked}), for the next one to
     * mark by difference; opaque to its holder (the store's tools). Thread-safe.
     */
    public static final class Memory {
        final java.util.concurrent.atomic.AtomicReference<Marked> last = new java.util.concurrent.atomic.AtomicReference<>();

        /** Nothing marked yet: the first collection marks from nothing. */
        public Memory() {}
    }

    /** At most this many (chunk, level) pairs are remembered between runs (about 80 bytes each); a bigger store marks from nothing each time. */
    static final int REMEMBER_MAX = Integer.getInteger("cask.gc.remember.pairs", 2_000_000);

    private java.util.concurrent.atomic.AtomicReference<Marked> memory;

    /** Marks by difference from what the previous run that shared {@code memory} marked, and leaves its own there. */
    public GarbageCollector remembering(Memory memory) {
        this.memory = memory.last;
        return this;
    }

    /** The counts of this run's mark. */
    private ReferenceCounts refs;
    /** Whether this run marked by difference from the previous one's counts. */
    private boolean byDifference;
    /** The roots the previous run counted, when this one marked by difference. */
    private Set<TreeRoot> previousRoots;
    /** Chunks whose count at some level went to 0 in this run's mark (see {@link #change}). */
    private final List<ChunkId> dropped = new ArrayList<>();
    private ChunkIdSet droppedSeen = new ChunkIdSet();

    /** Whether the chunk is reached by what this run marked. */
    private boolean marked(ChunkId id) {
        return refs.reached(id);
    }

    /**
     * The candidates an incremental sweep needs after a complete collection that left
     * {@code memo}: the chunks of the trees of its roots that nothing reaches now. The chunks this
     * mark dropped when it marked by difference from those same roots; else a walk of the removed
     * trees ({@link #unmarkedBelow}). Null when there is no such memo or the walk fails.
     */
    private List<ChunkId> gone(byte[] memo) {
        List<TreeRoot> before = memo == null ? null : memoRoots(memo);
        if (before == null) return null;
        List<TreeRoot> removed = new ArrayList<>();
        for (TreeRoot r : before) if (!roots.contains(r)) removed.add(r);
        if (byDifference && previousRoots.equals(new HashSet<>(before))) {
            List<ChunkId> out = new ArrayList<>();
            for (ChunkId id : dropped) if (!refs.reached(id)) out.add(id);
            return out;
        }
        return unmarkedBelow(removed);
    }

    /** The roots in a previous run's {@code memo} (see {@link #memo()}); null when the bytes are not a memo. */
    private static List<TreeRoot> memoRoots(byte[] memo) {
        if (memo.length % (1 + ChunkId.LENGTH) != 0) return null;
        List<TreeRoot> out = new ArrayList<>();
        for (int off = 0; off < memo.length; off += 1 + ChunkId.LENGTH) {
            TreeRoot r = new TreeRoot(ChunkId.fromBytes(memo, off + 1), memo[off]);
            if (r.depth() < 0 || r.depth() > MAX_DEPTH) return null;
            out.add(r);
        }
        return out;
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

    /** Deeper than any tree cask writes (a 1 MiB pointer chunk holds 32,768 ids). */
    private static final int MAX_DEPTH = 16;

    /**
     * The chunks in the trees of {@code removed} that this run did not mark: walked from each
     * root down through unmarked pointer chunks only (a marked pointer chunk's whole subtree is
     * marked), breadth first as {@link #mark} does, each pointer chunk read once. These are the
     * chunks the previous run reached that nothing reaches now (see {@code ChunkDeleter.Sweep#sweepChanged}).
     * Null when a pointer chunk cannot be read (missing or corrupt): the caller then sweeps in full.
     */
    private List<ChunkId> unmarkedBelow(List<TreeRoot> removed) {
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
                forEachSlot(pointers, (p, s) -> below(p, s, childLevel, seen, out, levels));
            }
        } catch (dev.cask.common.CaskException.NotFound | dev.cask.common.CaskException.Corrupt e) {
            return null;
        }
        return out;
    }

    private void below(byte[] src, int off, int level, ChunkIdSet seen, List<ChunkId> out, Map<Integer, List<ChunkId>> levels) {
        if (java.util.Arrays.equals(src, off, off + ChunkId.LENGTH, ZERO, 0, ChunkId.LENGTH)) return; // a hole
        if (refs.reached(src, off)) return;
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

    private static final byte[] ZERO = new byte[ChunkId.LENGTH];

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
