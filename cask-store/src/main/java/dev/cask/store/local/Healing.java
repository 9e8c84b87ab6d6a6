package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiPredicate;

/**
 * Healing: a chunk whose stored copy is corrupt gets a new copy when its bytes arrive again (an
 * import, a checkpoint of a live volume's writes, a pointer chunk written again), and the index
 * entry moves to the new copy. The bad copy becomes garbage that nothing points at, which
 * {@code cask check} reports as a note with reclaimable bytes, not a failure.
 *
 * <p><b>How a put learns that a copy is bad.</b> Puts deduplicate by index lookup and never read
 * the copy they dedup onto: reading every dedup hit would cost a pack read and a CRC per block of
 * an import that mostly dedups, to find damage that is rare. Instead damage is <em>recorded</em>
 * where it is found, and every read finds it (invariant 1: every read checks the bytes): a
 * {@code get}, a bulk read (export, a VM's read through {@code serve}) or {@code cask check} that
 * finds the copy an index entry points at corrupt adds a row (chunk id, pack, offset, slot) to the
 * index's {@code damaged} table ({@link #markCorrupt}). The table lives in {@code index.db}, so
 * every process sharing the store sees it at its next put: a damaged chunk found by {@code check}
 * in one process is healed by the checkpoint of a server running in another. A put looks the
 * damaged table up in the same query as the entry ({@link ChunkIndex#lookupForPut}: a primary-key
 * probe into an empty or tiny table per entry found) and treats a chunk whose entry points at a
 * marked copy as absent: it writes a new copy exactly like a new chunk (same record or segment
 * rules), remembering which bad location it replaces ({@link #replacing}). Damage nobody has read
 * yet is not healed: the first read fails (with an error naming the chunk, never wrong bytes) and
 * marks it, and from then on the next arrival heals it; {@code cask check} finds it for everyone.
 *
 * <p><b>Verified before it counts.</b> The new copy's bytes hash to the id (the id was computed
 * from them) and its CRC is computed fresh. At the sync that indexes it, after the pack is
 * fsynced, the new copy is read back and checked like any read, and rehashed
 * ({@link #commit}'s {@code verified}); only then does the index entry move. A copy that fails
 * (the disk that corrupted the first copy corrupted this one too) is dropped: the entry keeps
 * pointing at the marked copy, and the next arrival tries again.
 *
 * <p><b>Races.</b> The entry moves by compare-and-swap on the bad location, in the transaction
 * that removes its damaged row ({@link ChunkIndex#commit}). Two processes healing the same chunk
 * both write a copy; the first sync moves the entry, the second finds it moved and its copy is
 * garbage (as when two processes store the same new chunk). A mark made by a check that read the
 * bad copy just before a heal moved the entry names a location the entry no longer has, and a
 * put ignores it (the lookup joins on the location). A reader racing a heal reads either the bad
 * copy (an error, as before the heal) or the new one: a reader in the healing process finds the
 * new copy in {@code pending} at once, and {@code LocalChunkStore#get} whose cached location
 * fails asks the index again, so a server sees a heal another process made without a restart.
 *
 * <p><b>Garbage collection.</b> The bad copy is unreferenced once the entry moves: like any copy
 * the index does not point at, it is reclaimable, and never a root (no version references a
 * location, only ids). A GC that sweeps it must drop its damaged row too (none is left once the
 * heal commits).
 *
 * <p>Thread-safe: {@link #replacing} is a concurrent map, written under the store's writer lock
 * together with {@code pending}; the index serialises its own writes.
 */
final class Healing {
    private final ChunkIndex index;
    /** Chunks whose new copy is pending: id -> the bad location it replaces. */
    private final Map<ChunkId, ChunkLocation> replacing = new ConcurrentHashMap<>();
    /** Marks this process has already written, so a failing read repeated by a VM costs no index write. */
    private final Set<String> marked = ConcurrentHashMap.newKeySet();

    Healing(ChunkIndex index) {
        this.index = index;
    }

    /** What a put should do with each of a batch's ids the index knows. */
    record Lookup(Set<ChunkId> healthy, Map<ChunkId, ChunkLocation> damaged) {
        boolean isHit(ChunkId id) {
            return healthy.contains(id);
        }
    }

    /** Looks the ids up for a put: healthy entries are dedup hits; damaged ones must be stored again. */
    Lookup lookup(List<ChunkId> ids) {
        Map<ChunkId, ChunkIndex.PutLookup> found = index.lookupForPut(ids);
        Set<ChunkId> healthy = new java.util.HashSet<>();
        Map<ChunkId, ChunkLocation> damaged = new HashMap<>();
        for (var e : found.entrySet()) {
            if (e.getValue().damaged()) damaged.put(e.getKey(), e.getValue().location());
            else healthy.add(e.getKey());
        }
        return new Lookup(healthy, damaged);
    }

    /**
     * A read found these copies (chunk id, location) corrupt: records them, so the next put of
     * the same bytes writes a new copy. A failure to record is added to {@code failure} as
     * suppressed: the read's own error is what the caller must see.
     */
    void markCorrupt(List<Map.Entry<ChunkId, ChunkLocation>> copies, CaskException failure) {
        List<Map.Entry<ChunkId, ChunkLocation>> fresh = new ArrayList<>();
        for (var c : copies) if (marked.add(key(c.getKey(), c.getValue()))) fresh.add(c);
        if (fresh.isEmpty()) return;
        try {
            index.markDamaged(fresh);
        } catch (CaskException e) {
            for (var c : fresh) marked.remove(key(c.getKey(), c.getValue()));
            failure.addSuppressed(e);
        }
    }

    private static String key(ChunkId id, ChunkLocation loc) {
        return id.hex() + " " + loc.pack() + " " + loc.offset() + " " + loc.slot();
    }

    /** A check read the copy and found it good: a mark on it is stale (a pack put back from a backup). */
    void markGood(ChunkId id, ChunkLocation loc) {
        index.unmarkDamaged(id, loc);
        marked.remove(key(id, loc));
    }

    /** Every marked copy: (id, pack, offset, slot; length 0). */
    List<Map.Entry<ChunkId, ChunkLocation>> marks() {
        return index.damaged();
    }

    /** A new copy of {@code id} is pending and replaces the copy at {@code bad}; caller holds the store's writer lock. */
    void replaces(ChunkId id, ChunkLocation bad) {
        replacing.put(id, bad);
    }

    /** The bad location a pending new copy of {@code id} replaces, or null. */
    ChunkLocation replaced(ChunkId id) {
        return replacing.get(id);
    }

    /** The pending chunks were lost (a failed fsync): no heal is under way any more. */
    void forget() {
        replacing.clear();
    }

    /**
     * Indexes the synced {@code entries}: new chunks are added, new copies of damaged chunks that
     * pass {@code verified} (read back and rehashed) replace their bad copies. Returns the
     * entries for the caller's location cache: the new chunks (a copy another process indexed
     * first is as good) and the heals that moved their entry; a heal refused or lost to another
     * process's is left out (its entry points elsewhere).
     */
    List<Map.Entry<ChunkId, ChunkLocation>> commit(List<Map.Entry<ChunkId, ChunkLocation>> entries,
                                                   BiPredicate<ChunkId, ChunkLocation> verified) {
        List<Map.Entry<ChunkId, ChunkLocation>> fresh = new ArrayList<>(entries.size());
        Map<ChunkId, ChunkLocation[]> heals = new HashMap<>();
        for (var e : entries) {
            ChunkLocation bad = replacing.remove(e.getKey());
            if (bad == null) fresh.add(e);
            else if (verified.test(e.getKey(), e.getValue())) heals.put(e.getKey(), new ChunkLocation[]{bad, e.getValue()});
        }
        Set<ChunkId> healed = index.commit(fresh, heals);
        List<Map.Entry<ChunkId, ChunkLocation>> now = new ArrayList<>(fresh);
        for (var h : heals.entrySet()) if (healed.contains(h.getKey())) now.add(Map.entry(h.getKey(), h.getValue()[1]));
        return now;
    }
}
