package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.common.Pacer;
import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkDeleter.Compacted;
import dev.cask.store.ChunkDeleter.Deleted;
import dev.cask.store.ChunkDeleter.Recompressed;
import dev.cask.store.ChunkId;

import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * One collection's hold on a local store, from {@link GcEpochs#begin} to {@link #close}: its
 * epoch, its sweep (full, {@link #sweep}, or incremental, {@link #sweepChanged}: which entries
 * are candidates and why deleting them is safe is {@link GcEpochs}'s essay), what the sweep learnt
 * for the compaction after it (the packs' live bytes, the deleted locations to punch, the
 * segments' chunk counts), and what it leaves the next collection ({@link #complete}). Holds
 * {@code gc.lock} until closed. Not thread-safe: one collection's thread uses it.
 */
final class LocalSweep implements ChunkDeleter.Sweep {
    private final LocalChunkStore store;
    private final long epoch;
    private final FileChannel lockChannel;
    private final ReentrantLock local;
    private final Map<ChunkId, ChunkLocation> candidates = new HashMap<>();
    private final GcEpochs.Previous previous;
    /** What this collection's sweep, once it ran to its end, leaves the next one; null until then. */
    private GcState next;

    LocalSweep(LocalChunkStore store, long epoch, GcEpochs.Previous previous, FileChannel lockChannel, ReentrantLock local) {
        this.store = store;
        this.epoch = epoch;
        this.previous = previous;
        this.lockChannel = lockChannel;
        this.local = local;
    }

    @Override
    public long epoch() {
        return epoch;
    }

    @Override
    public void forEachCandidate(Consumer<ChunkId> sink) {
        store.index().forEachStampedBefore(epoch, (id, loc) -> {
            candidates.put(id, loc);
            sink.accept(id);
        });
    }

    @Override
    public Deleted delete(Collection<ChunkId> ids) {
        return delete(ids, Pacer.unpaced());
    }

    @Override
    public Deleted delete(Collection<ChunkId> ids, Pacer pacer) {
        List<ChunkId> list = new ArrayList<>(ids);
        Set<ChunkId> deleted = new HashSet<>();
        for (int from = 0; from < list.size(); from += 4096) { // short write transactions: puts wait less
            if (from > 0) {
                try {
                    pacer.step();
                } catch (Pacer.Stopped stop) {
                    store.forget(deleted); // what is deleted stays deleted: no cached location may outlive it
                    throw stop;
                }
            }
            deleted.addAll(store.index().deleteStampedBefore(list.subList(from, Math.min(list.size(), from + 4096)), epoch));
        }
        store.forget(deleted);
        long bytes = 0;
        Set<Long> segments = new HashSet<>();
        for (ChunkId id : deleted) {
            ChunkLocation loc = candidates.get(id);
            if (loc == null) continue;
            if (loc.inSegment()) segments.add(loc.unit());
            else bytes += loc.length();
        }
        if (!segments.isEmpty()) {
            Map<Long, Integer> lengths = new HashMap<>();
            for (ChunkId id : deleted) {
                ChunkLocation loc = candidates.get(id);
                if (loc != null && loc.inSegment()) lengths.put(loc.unit(), loc.length());
            }
            long[] seen = {0};
            store.index().forEach((id, loc) -> {
                if ((++seen[0] & 4095) == 0) pacer.check(); // the deleted ids are forgotten already
                if (loc.inSegment()) segments.remove(loc.unit()); // still holds a live chunk
            });
            for (long k : segments) bytes += lengths.get(k);
        }
        return new Deleted(deleted, bytes);
    }

    /** What the incremental sweep's scan of the entries written since the previous collection saw; null until one ran. */
    private ChunkIndex.RegionScan scan;

    /** Whether this collection's incremental sweep scanned only the index's recent table (see {@link ChunkIndex#forEachStampedIn}). */
    boolean scannedRecentOnly() {
        return scan != null && scan.recentOnly();
    }

    /** How many entries this collection's incremental sweep's scan handed over (0 before one ran, and for a full sweep). */
    int regionEntries() {
        return regionEntries;
    }

    private int regionEntries;

    /** What this collection's sweep tells compaction: the packs whose live bytes it knows, and those bytes; null before a sweep. */
    Compactor.Survey survey() {
        return survey;
    }

    /** Chunks per segment (by {@link ChunkLocation#unit}) read from headers by the sweep, for the punching after it. */
    private final Map<Long, Integer> segmentChunks = new HashMap<>();

    /** What the one-pass {@link #sweep} learnt about the sealed packs, for {@link #compact}; null until then. */
    private Compactor.Survey survey;

    /** The packs sealed when the sweep began and where the entries it deleted pointed: what {@link #compact} punches ({@link HolePuncher}); null until a sweep ran. */
    private record Punchable(Set<Integer> sealed, Collection<ChunkLocation> deleted) {}

    private Punchable punchable;

    /**
     * One scan of the index (a snapshot) decides the candidates and, for the packs sealed when
     * it began, how many bytes stay live; then the deletes, {@link #SWEEP_ROWS} per transaction, each testing
     * the stamp again. A candidate a put stamped meanwhile is not deleted and counts as live.
     */
    @Override
    public Deleted sweep(java.util.function.Predicate<ChunkId> reachable, Pacer pacer, Runnable chosen) {
        Set<Integer> sealed = Compactor.sealedPacks(store); // before the scan: the scan sees every entry they will ever have
        int highest = highestPack();
        // the unreachable entries as two lists, in the scan's order (a HashMap of them and a
        // sort afterwards were a fifth of a big sweep's time)
        List<ChunkId> list = new ArrayList<>();
        List<ChunkLocation> locations = new ArrayList<>();
        Map<Integer, Long> live = new HashMap<>();
        Set<Long> liveSegments = new HashSet<>();
        List<ChunkId> kept = new ArrayList<>();
        Map<Integer, Long> ends = new HashMap<>();
        long[] seen = {0};
        store.index().forEachStamped((id, loc, stamp) -> {
            if ((++seen[0] & 4095) == 0) pacer.check(); // a stop need not wait for a scan of a big index
            if (!sealed.contains(loc.pack())) ends.merge(loc.pack(), loc.offset() + loc.length(), Math::max);
            boolean unreachable = !reachable.test(id); // once per entry: the scan's hot path
            if (stamp < epoch && unreachable) {
                list.add(id);
                locations.add(loc);
            } else {
                if (unreachable) kept.add(id); // stamped by a put since the epoch was raised: the next collection looks again
                countLive(loc, sealed, live, liveSegments);
            }
        });
        // in key order (forEachStamped's order, as SQLite compares blobs), so each transaction's
        // deletes are neighbours in the index and dirty few of its pages (4096 ids spread over the
        // whole key space dirtied nearly every leaf page, each written to the WAL again per transaction)
        chosen.run();
        Map<ChunkId, ChunkLocation> deletedAt = deleteInKeyOrder(list, pacer);
        Set<ChunkId> deleted = deletedAt.keySet();
        for (int i = 0; i < list.size(); i++) if (!deleted.contains(list.get(i))) countLive(locations.get(i), sealed, live, liveSegments);
        long bytes = 0;
        Set<Long> freedSegments = new HashSet<>();
        for (int i = 0; i < list.size(); i++) {
            if (!deleted.contains(list.get(i))) continue;
            ChunkLocation loc = locations.get(i);
            if (!loc.inSegment()) bytes += loc.length();
            else if (!liveSegments.contains(loc.unit()) && freedSegments.add(loc.unit())) bytes += loc.length();
        }
        survey = new Compactor.Survey(sealed, live);
        punchable = new Punchable(sealed, deletedAt.values());
        kept.addAll(list);
        next = nextState(sealed, highest, live, ends, kept, deleted, null, null);
        return new Deleted(deleted, bytes);
    }

    /**
     * Deletes those of {@code ids} (in key order) still stamped before the epoch, {@link #SWEEP_ROWS}
     * a transaction with {@code pacer}'s step before each; returns them with the locations they had.
     *
     * <p>The deleted ids stay in this process's cache of index answers, as they always stayed in
     * other processes' caches (a sweep cannot reach those): nothing reads a chunk no version
     * reaches, no put trusts the cache, and a read through a stale answer is safe (see
     * {@link GcEpochs}, "Caches"). Dropping them one by one was 0.10-0.16 s of a daily
     * collection's 2 s (Caffeine's upkeep after each of ~90,000 invalidations); they age out of
     * the cache like any entry nobody reads.
     */
    private Map<ChunkId, ChunkLocation> deleteInKeyOrder(List<ChunkId> ids, Pacer pacer) {
        Map<ChunkId, ChunkLocation> deleted = new HashMap<>();
        int rows = pacer.rest() == 0 ? UNPACED_SWEEP_ROWS : SWEEP_ROWS;
        for (int from = 0; from < ids.size(); from += rows) {
            pacer.step();
            deleted.putAll(store.index().deleteStampedBeforeLocated(ids.subList(from, Math.min(ids.size(), from + rows)), epoch));
        }
        return deleted;
    }

    /**
     * The state for the next collection: the packs as they were when this sweep began, the sealed
     * ones' live bytes, the open ones' with how far this scan (or an earlier one) saw their
     * entries ({@code ends}: the end of the furthest entry seen in each), the unreachable entries
     * kept, and the settled table's change count in the snapshot of this sweep's scan when every
     * entry the next sweep must look at was in the recent table then (-1 otherwise, and after a
     * full sweep, whose scan does not read it). That holds when every open pack was among those
     * this incremental scan covered ({@code previous}'s, or above its highest), and the scan saw
     * no settled entry in a pack above {@code highest} (the open packs' settled entries it saw lie
     * below where the next scan starts in them). Then the next scan of the recent table alone hands
     * over all of those entries, and the live bytes come out exact. An open pack no scan covered
     * (which a sweep from a complete collection's state does not meet) is scanned in full next time.
     */
    private GcState nextState(Set<Integer> sealed, int highest, Map<Integer, Long> live, Map<Integer, Long> ends, List<ChunkId> unreachable,
                              Set<ChunkId> deleted, ChunkIndex.RegionScan scan, GcState previous) {
        Map<Integer, GcState.Open> open = new HashMap<>();
        boolean inRecent = scan != null && highest >= previous.highest();
        for (int p : store.packIds()) {
            if (p > highest || sealed.contains(p)) continue;
            GcState.Open before = previous == null ? null : previous.open().get(p);
            if (previous != null && p <= previous.highest() && before == null) {
                open.put(p, GcState.Open.UNSEEN);
                inRecent = false;
            } else {
                long to = Math.max(before == null ? 0 : before.scannedTo(), ends.getOrDefault(p, 0L));
                open.put(p, new GcState.Open(to, live.getOrDefault(p, 0L)));
            }
        }
        Map<Integer, Long> sealedLive = new HashMap<>();
        for (int p : sealed) sealedLive.put(p, live.getOrDefault(p, 0L));
        List<ChunkId> kept = new ArrayList<>();
        for (ChunkId id : unreachable) if (!deleted.contains(id)) kept.add(id);
        if (inRecent) for (int p : scan.settledPacks()) inRecent &= p <= highest;
        return new GcState(highest, open, sealedLive, kept, inRecent ? scan.moved() : -1);
    }

    @Override
    public byte[] memo() {
        return previous == null ? null : previous.memo();
    }

    /**
     * The incremental sweep (see the class essay, "Incremental sweeps"): the candidates are the
     * caller's, the previous sweep's deferred chunks, and every entry in a pack above the previous
     * sweep's highest, or in one it saw open at or after where its scan had seen that pack's
     * entries to. Live bytes: a pack sealed then keeps the previous figure less what this sweep
     * deleted in it; a pack open then keeps its figure for the entries below that point less what
     * this sweep deleted there, plus the entries this scan saw in it that survive; a pack written
     * since is counted from its entries.
     */
    @Override
    public Deleted sweepChanged(Collection<ChunkId> given, java.util.function.Predicate<ChunkId> reachable, Pacer pacer, Runnable chosen) {
        if (previous == null) throw new IllegalStateException("no previous collection to sweep incrementally from");
        GcState prev = previous.state();
        Set<Integer> sealed = Compactor.sealedPacks(store); // before the scan: it sees every entry these packs will ever have
        int highest = highestPack();
        Set<ChunkId> chosenIds = new HashSet<>();
        List<ChunkId> list = new ArrayList<>();
        // entries written since the previous sweep's scan: all of them are looked at, and they
        // tell the live bytes of their packs exactly
        List<ChunkId> regionIds = new ArrayList<>();
        List<ChunkLocation> regionLocations = new ArrayList<>();
        Map<Integer, Long> from = new HashMap<>();
        for (var e : prev.open().entrySet()) from.put(e.getKey(), e.getValue().scannedTo());
        Map<Integer, Long> ends = new HashMap<>();
        long[] seen = {0};
        scan = store.index().forEachStampedIn(prev.highest(), from, prev.moved(), (id, loc, stamp) -> {
            if ((++seen[0] & 4095) == 0) pacer.check();
            regionIds.add(id);
            regionLocations.add(loc);
            ends.merge(loc.pack(), loc.offset() + loc.length(), Math::max);
            if (!reachable.test(id) && chosenIds.add(id)) list.add(id);
        });
        regionEntries = regionIds.size();
        for (ChunkId id : given) if (!reachable.test(id) && chosenIds.add(id)) list.add(id);
        for (ChunkId id : prev.deferred()) if (!reachable.test(id) && chosenIds.add(id)) list.add(id);
        java.util.Collections.sort(list); // key order: each transaction's deletes are neighbours in the index
        chosen.run();
        Map<ChunkId, ChunkLocation> deleted = deleteInKeyOrder(list, pacer);
        // the previous figures, for the entries no scan of this sweep saw, less this sweep's deletes
        // among them (a segment in proportion)
        Map<Integer, Long> before = new HashMap<>(prev.live());
        for (var e : prev.open().entrySet()) before.put(e.getKey(), e.getValue().live());
        long bytes = 0;
        for (ChunkLocation loc : deleted.values()) {
            long share = loc.inSegment() ? loc.length() / chunksInSegment(loc) : loc.length();
            bytes += share;
            GcState.Open was = prev.open().get(loc.pack());
            if (prev.live().containsKey(loc.pack()) || (was != null && loc.offset() < was.scannedTo())) before.merge(loc.pack(), -share, Long::sum);
        }
        // plus the surviving entries this scan saw
        Map<Integer, Long> live = new HashMap<>();
        Set<Long> liveSegments = new HashSet<>();
        for (int i = 0; i < regionIds.size(); i++) {
            if (!deleted.containsKey(regionIds.get(i))) countLive(regionLocations.get(i), sealed, live, liveSegments);
        }
        for (var e : before.entrySet()) live.merge(e.getKey(), Math.max(0, e.getValue()), Long::sum);
        Set<Integer> known = new HashSet<>();
        for (int p : sealed) if (prev.live().containsKey(p) || prev.open().containsKey(p) || p > prev.highest()) known.add(p);
        Set<ChunkId> deletedIds = deleted.keySet();
        survey = new Compactor.Survey(known, live);
        punchable = new Punchable(sealed, deleted.values());
        next = nextState(known, highest, live, ends, list, deletedIds, scan, prev);
        return new Deleted(deletedIds, bytes);
    }

    /**
     * The number of chunks in the segment at {@code loc}, read from its header once (kept in
     * {@link #segmentChunks} for the punching); when the header cannot be read,
     * {@code Integer.MAX_VALUE} (a share of 0: the estimate errs towards live).
     */
    private int chunksInSegment(ChunkLocation loc) {
        Integer n = segmentChunks.get(loc.unit());
        if (n == null) {
            try {
                n = store.segmentChunks(loc);
            } catch (CaskException e) {
                return Integer.MAX_VALUE;
            }
            segmentChunks.put(loc.unit(), n);
        }
        return Math.max(1, n);
    }

    private int highestPack() {
        List<Integer> packs = store.packIds();
        return packs.isEmpty() ? 0 : packs.getLast();
    }

    @Override
    public void complete(byte[] memo) {
        if (next == null || memo == null) return;
        store.index().putGcState(epoch, memo, next.encode());
    }

    /** Adds the entry's record (or its segment, once) to its pack's live bytes, sealed or not (see {@code Compactor.Survey}). */
    private static void countLive(ChunkLocation loc, Set<Integer> sealed, Map<Integer, Long> live, Set<Long> liveSegments) {
        boolean first = !loc.inSegment() || liveSegments.add(loc.unit());
        if (first) live.merge(loc.pack(), (long) loc.length(), Long::sum);
    }

    @Override
    public Compacted compact(double threshold, dev.cask.common.Progress progress) {
        return compact(threshold, progress, Pacer.unpaced());
    }

    @Override
    public Compacted compact(double threshold, dev.cask.common.Progress progress, Pacer pacer) {
        HolePuncher.Result holes = punchable == null ? HolePuncher.Result.NONE
                : new HolePuncher(store, pacer, segmentChunks).punch(punchable.deleted(), punchable.sealed(), progress); // first: what it gives back, compaction need not copy
        Compactor.Result r = new Compactor(store, pacer).run(threshold, progress, survey);
        return new Compacted(r.packsRewritten(), r.packsDeleted(), r.chunksCopied(), r.bytesBefore(), r.bytesAfter(), r.packsDamaged(),
                holes.packs(), holes.bytesPunched());
    }

    @Override
    public Recompressed recompress(dev.cask.common.Progress progress, Pacer pacer) {
        Recompressor.Result r = new Recompressor(store, pacer).run(progress);
        return new Recompressed(r.packsRead(), r.packsWritten(), r.chunks(), r.bytesBefore(), r.bytesAfter());
    }

    @Override
    public void close() {
        GcEpochs.release(lockChannel, true, local);
    }

    /**
     * Deletes per transaction in a sweep. The ids go in key order, so a transaction touches a
     * narrow range of the index and stays short (tens of milliseconds) while puts wait for it;
     * each commit fsyncs the WAL, so fewer, larger ones make a sweep of 100,000 entries a few
     * fsyncs rather than 25.
     */
    static final int SWEEP_ROWS = 16384;

    /**
     * Deletes per transaction in a sweep nobody paces ({@code cask gc}, a server's gc asked for
     * through its control socket): a sweep's deletes are spread over the whole key space, so 16,384
     * of them already dirty most of the index's pages, and every transaction writes those pages to
     * the WAL and back into the index again. One transaction for up to a million deletes writes each
     * page once (25,000 deletes in a 1M-entry index: 0.37 s instead of 0.46 s; 90,000: 0.55 s instead
     * of 0.65 s, measured with python3's sqlite3); puts wait for it a little longer, the VMs' writes
     * not at all (they go to journals).
     */
    static final int UNPACED_SWEEP_ROWS = 1 << 20;
}
