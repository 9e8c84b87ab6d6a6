package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.common.Pacer;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Compaction: packs that hold garbage (records and segments no index entry points at, after
 * {@code cask gc}) are rewritten, worst first: their live chunks are copied into this process's
 * pack and the pack is deleted. Runs only inside a garbage collection ({@code ChunkDeleter.Sweep}),
 * so two never run at once, after that collection punched out what its sweep left dead
 * ({@link HolePuncher}): a pack's size here is what it occupies, its file size less its punched
 * bytes, so compaction copies only for the garbage punching cannot give back.
 *
 * <p><b>Crash order.</b> For each pack P: (1) in batches of up to {@link #BATCH_BYTES} of plain
 * bytes, the live chunks' plain bytes are read (verified) and appended to this process's pack,
 * which is flushed and fsynced; (2) once every live chunk of P has its copy, the index entries
 * that still point into P are switched to the copies, in key order, {@link #SWITCH_ROWS} a
 * transaction, each durable (synchronous=FULL) before it returns. When every entry is switched,
 * (3) P is deleted and the directory fsynced. A crash before (2) leaves copies nothing points at
 * (garbage for the next run; a torn tail is cut when the store opens) and P whole; a crash
 * between two switch transactions leaves P with fewer entries pointing into it (more of it is
 * garbage: the next run copies the rest); a crash between (2) and (3) leaves P with no entry
 * pointing into it, which the next run deletes without copying anything. So a run is resumable
 * and a kill -9 at any point loses nothing; a {@link Pacer} may stop it between batches, between
 * switch transactions and between packs for the same reason. A full disk fails (1): the write
 * path cuts its pack back to the last
 * whole record, nothing of that batch is switched, P stays.
 *
 * <p><b>Which packs.</b> Never a pack a writer may still append to or whose chunks are not all
 * indexed yet: a pack with a {@code .open} marker, or whose lock another process holds (a writer
 * keeps both until the sync that indexes the pack's chunks), or shorter than a pack header (a
 * writer that has created but not locked it yet). A run locks the packs it chose (at most
 * {@link #MAX_PACKS_PER_RUN}) before it reads their entries in one scan of the index, and holds
 * each lock until the pack is deleted: a pack's creator indexes all its chunks before it lets go
 * of the lock, so the scan sees every entry the pack will ever have. Never the highest-numbered pack, so a pack number is never used twice (new
 * packs are numbered one past the highest): a location a reader cached can only ever mean the pack
 * it was read from. Readers: a process that has P open keeps reading it after the unlink (Linux);
 * one that opens P after it is gone finds it missing and asks the index again, which points at the
 * copy ({@code LocalChunkStore.get}).
 *
 * <p><b>Threshold.</b> A pack is a candidate when at least {@link #DEFAULT_THRESHOLD} of its bytes
 * are garbage. Rewriting a pack with garbage fraction t writes (1 - t) of a pack to give back t:
 * (1 - t) / t bytes written per byte freed (t = 0.1: 9; 0.25: 3; 0.5: 1). With every pack below t
 * the store holds at most live / (1 - t) bytes: the target of 1.10 x live bytes needs
 * t of about 0.09, so the default is 0.10 (1.11 x at worst, and less in practice since packs that
 * rm and prune empty go to 0 live bytes and cost no copying at all). Candidates are rewritten
 * worst first only while the store's garbage is above {@link #ALLOWANCE} x t of its bytes
 * ({@link #withinAllowance}): after a run the store holds at most 1 / (1 - 0.08) = 1.087 x live,
 * or no pack is a candidate any more. The allowance was t / 2 (1.05 x) until the lifecycle bench
 * with a gc every 6 simulated hours showed what it costs: each gc found the store just above 5 %
 * and copied 200 MB out of a pack with 20 % garbage (4 bytes copied per byte given back, 2 s a
 * gc); at 0.8 t a gc compacts every other time and takes packs with more garbage in them.
 */
final class Compactor {
    static final double DEFAULT_THRESHOLD = 0.10;

    /** What a run did. */
    record Result(int packsRewritten, int packsDeleted, long chunksCopied, long bytesBefore, long bytesAfter, int packsDamaged) {}

    /**
     * Plain bytes of live chunks copied per batch: each batch is appended, fsynced and switched in
     * the index on its own, so memory stays bounded, the store's lock is held for one batch's
     * compression at a time, and a paced run rests (or stops) between batches.
     */
    static final int BATCH_BYTES = 8 << 20;

    /** {@link #BATCH_BYTES}, unless the system property {@code cask.compact.batch} says otherwise (tests: many batches per pack). */
    private static int batchBytes() {
        return Math.max(1, Integer.getInteger("cask.compact.batch", BATCH_BYTES));
    }

    private final int batchBytes = batchBytes();

    /** Index entries switched per transaction (in key order). */
    static final int SWITCH_ROWS = 16384;

    /** Chunks asked for per {@code getAll} while copying (a batch takes as many of those as its bytes allow). */
    private static final int READ_AHEAD = 256;

    private final LocalChunkStore store;
    private final Pacer pacer;

    Compactor(LocalChunkStore store) {
        this(store, Pacer.unpaced());
    }

    Compactor(LocalChunkStore store, Pacer pacer) {
        this.store = store;
        this.pacer = pacer;
    }

    /**
     * What a sweep's scan of the index learnt: the packs that were sealed when it began (see
     * {@link #sealedPacks}) and the bytes in each that an entry still points at (records, and each
     * segment once); also, for the packs still written to that it saw entries of, their bytes so
     * far (their garbage counts against the allowance; they are never candidates). Entries only ever leave a sealed pack (deletes, heals, compaction), so its
     * live bytes can only have fallen since: a pack judged by the survey is never taken for
     * emptier than it is.
     */
    record Survey(Set<Integer> sealed, Map<Integer, Long> live) {}

    /**
     * The packs no writer may still add entries to: not the highest, not this store's own, and
     * neither marked {@code .open} nor locked by another process (the test {@link #lock} makes,
     * the lock let go at once). A creator indexes every chunk of its pack before it unlocks it, so
     * a scan of the index begun after this sees every entry these packs will ever have.
     */
    static Set<Integer> sealedPacks(LocalChunkStore store) {
        List<Integer> packs = store.packIds();
        Set<Integer> sealed = new HashSet<>();
        if (packs.isEmpty()) return sealed;
        int highest = packs.getLast();
        for (int p : packs) {
            if (p == highest || store.ownsPack(p)) continue;
            FileChannel ch = lock(store, p);
            if (ch == null) continue;
            sealed.add(p);
            try {
                ch.close();
            } catch (IOException ignored) {
                // releases the lock
            }
        }
        return sealed;
    }

    Result run(double threshold, Progress progress) {
        return run(threshold, progress, null);
    }

    /** As {@link #run(double, Progress)}; with a {@code survey} from the sweep, the live bytes per pack come from it instead of one more scan of the index. */
    Result run(double threshold, Progress progress, Survey survey) {
        List<Integer> packs = store.packIds();
        if (packs.size() < 2) return new Result(0, 0, 0, 0, 0, 0);
        int highest = packs.getLast();
        Map<Integer, Long> live;
        if (survey != null) {
            live = survey.live();
        } else {
            // live bytes per pack: records, and each segment once however many of its chunks are live
            live = new HashMap<>();
            Set<Long> segmentsSeen = new HashSet<>();
            long[] seen = {0};
            Map<Integer, Long> l = live;
            store.index().forEach((id, loc) -> {
                if ((++seen[0] & 4095) == 0) pacer.check(); // a scan of a big index takes a while: a stop need not wait for it
                if (loc.inSegment() && !segmentsSeen.add(loc.unit())) return;
                l.merge(loc.pack(), (long) loc.length(), Long::sum);
            });
        }
        List<Candidate> candidates = new ArrayList<>();
        long total = 0;
        long garbageTotal = 0;
        for (int p : packs) {
            long size;
            try {
                size = store.occupiedBytes(p); // punched stretches hold nothing
            } catch (IOException e) {
                continue; // gone meanwhile
            }
            total += size;
            boolean figure = survey == null || survey.sealed().contains(p) || live.containsKey(p);
            long garbage = figure ? Math.max(0, size - PackFormat.PACK_HEADER - live.getOrDefault(p, 0L)) : 0;
            // the garbage of packs still written to counts against the allowance too: it cannot be
            // given back yet, so the sealed ones make room for it (else the store drifts past 1.10 x)
            garbageTotal += garbage;
            if (p == highest || store.ownsPack(p) || (survey != null && !survey.sealed().contains(p))) continue;
            if (size >= PackFormat.PACK_HEADER && garbage >= threshold * size) candidates.add(new Candidate(p, size, garbage));
        }
        candidates.sort(Comparator.comparingDouble((Candidate c) -> -(double) c.garbage() / c.size()));
        candidates = withinAllowance(candidates, threshold, total, garbageTotal);
        if (candidates.size() > MAX_PACKS_PER_RUN) candidates = new ArrayList<>(candidates.subList(0, MAX_PACKS_PER_RUN));
        if (candidates.isEmpty()) return new Result(0, 0, 0, 0, 0, 0);
        // lock the chosen packs first, then read their entries in one more scan of the index (it has
        // no index by pack: one scan per pack would cost packs x entries). Only a pack's creator adds
        // entries into it, and it indexes them all before it lets go of the pack's lock: with the
        // lock held here, the scan sees every entry the pack will ever have
        Map<Integer, FileChannel> locked = new HashMap<>();
        try {
            return compact(candidates, locked, progress);
        } finally {
            for (FileChannel ch : locked.values()) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // releases the lock
                }
            }
        }
    }

    /**
     * The candidates (worst first) worth rewriting: those with no live bytes (deleting them copies
     * nothing), then, worst first, while the garbage left in the store is above
     * {@link #ALLOWANCE} x {@code threshold} of its pack bytes. Rewriting the last few candidates just above the
     * threshold would copy nine bytes per byte given back; leaving them while the store as a
     * whole holds little garbage keeps each collection short, and their garbage only grows until
     * a later one takes them at a better ratio (restic's prune leaves up to 5 % unused for the
     * same reason).
     */
    static List<Candidate> withinAllowance(List<Candidate> worstFirst, double threshold, long total, long garbageTotal) {
        List<Candidate> chosen = new ArrayList<>();
        double allowance = threshold * ALLOWANCE;
        for (Candidate c : worstFirst) {
            boolean empty = c.garbage() >= c.size() - PackFormat.PACK_HEADER;
            if (!empty && garbageTotal <= allowance * total) continue;
            chosen.add(c);
            garbageTotal -= c.garbage();
            total -= c.garbage();
        }
        return chosen;
    }

    /** The share of the threshold the store's garbage may reach before candidates that are not empty are rewritten. */
    static final double ALLOWANCE = 0.8;

    /** At most this many packs per run (each held open and locked while the run lasts); the next run takes the rest. */
    static final int MAX_PACKS_PER_RUN = 256;

    record Candidate(int pack, long size, long garbage) {}

    private Result compact(List<Candidate> all, Map<Integer, FileChannel> locked, Progress progress) {
        List<Candidate> candidates = new ArrayList<>();
        for (Candidate c : all) {
            FileChannel ch = lock(c.pack());
            if (ch == null) continue;
            locked.put(c.pack(), ch);
            candidates.add(c);
        }
        Set<Integer> chosen = locked.keySet();
        pacer.check();
        Map<Integer, Map<ChunkId, ChunkLocation>> found = store.index().entriesIn(chosen);
        progress.startItems("compact", candidates.size());
        int rewritten = 0;
        int deleted = 0;
        long copied = 0;
        long before = 0;
        long after = 0;
        int damaged = 0;
        for (Candidate c : candidates) {
            pacer.step();
            long[] moved = rewrite(c.pack(), found.getOrDefault(c.pack(), Map.of())); // in pack order
            try {
                locked.remove(c.pack()).close();
            } catch (IOException ignored) {
                // releases the lock of a deleted pack
            }
            if (moved == DAMAGED) {
                damaged++;
            } else if (moved != null) {
                before += c.size();
                after += moved[1];
                copied += moved[0];
                if (moved[0] == 0) deleted++;
                else rewritten++;
            }
            progress.advance(1);
        }
        progress.done();
        return new Result(rewritten, deleted, copied, before, after, damaged);
    }

    /** Pack {@code p} opened and locked, or null when a writer may still use it (see the class comment). */
    private FileChannel lock(int p) {
        return lock(store, p);
    }

    static FileChannel lock(LocalChunkStore store, int p) {
        FileChannel ch = null;
        try {
            ch = FileChannel.open(store.packPath(p), StandardOpenOption.READ, StandardOpenOption.WRITE);
            FileLock lock;
            try {
                lock = ch.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null; // another store object of this JVM writes it
            }
            if (lock != null && !Files.exists(PackRecovery.markerPath(store.packDir(), p)) && ch.size() >= PackFormat.PACK_HEADER) {
                FileChannel locked = ch;
                ch = null;
                return locked;
            }
            return null;
        } catch (IOException e) {
            return null; // gone meanwhile
        } finally {
            if (ch != null) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // releases the lock
                }
            }
        }
    }

    /**
     * The stored record or segment of {@code unit} (the live entries into one place of pack
     * {@code p}), to be copied byte for byte: when its CRC holds and every chunk in it is live
     * (a segment with dead chunks is recompressed with the live ones only). Null otherwise,
     * also when it fails its checks: the copy through {@code getAll} then says what is wrong and
     * marks the copy damaged.
     */
    private LocalChunkStore.Verbatim verbatim(int p, List<Map.Entry<ChunkId, ChunkLocation>> unit) {
        ChunkLocation loc = unit.getFirst().getValue();
        try {
            byte[] stored = store.readStored(p, loc.offset(), loc.length());
            String what = "pack " + p + " offset " + loc.offset();
            if (!loc.inSegment()) {
                PackFormat.Record r = PackFormat.decodeRecord(what, stored, 0, stored.length);
                if (!r.id().equals(unit.getFirst().getKey())) return null;
                return new LocalChunkStore.Verbatim(stored, new ChunkId[]{r.id()}, new int[]{-1});
            }
            PackFormat.Segment seg = PackFormat.decodeSegment(what, stored, 0, stored.length);
            if (seg.count() != unit.size()) return null;
            ChunkId[] ids = new ChunkId[unit.size()];
            int[] slots = new int[unit.size()];
            for (int k = 0; k < unit.size(); k++) {
                var e = unit.get(k);
                int slot = e.getValue().slot();
                if (slot < 0 || slot >= seg.count() || !seg.ids()[slot].equals(e.getKey())) return null;
                ids[k] = e.getKey();
                slots[k] = slot;
            }
            return new LocalChunkStore.Verbatim(stored, ids, slots);
        } catch (CaskException e) {
            return null;
        }
    }

    /**
     * Points the index entries of {@code moves} (chunks of pack {@code p}, each to its copy) that
     * still point into {@code p} at the copies: in key order, {@link #SWITCH_ROWS} a transaction,
     * each a narrow range of the index (a batch's entries, spread over the whole key space, dirtied
     * most of the index's pages per transaction), with {@code pacer}'s step between transactions
     * (what is switched is switched, the rest stays in {@code p}). An entry another process healed
     * meanwhile has left {@code p} by itself; one that still points into {@code p} after its
     * transaction fails the switch (the pack is then left in place).
     */
    static void switchEntries(LocalChunkStore store, Pacer pacer, int p, Map<ChunkId, ChunkLocation> moves) {
        List<ChunkId> keys = new ArrayList<>(moves.keySet());
        java.util.Collections.sort(keys);
        for (int from = 0; from < keys.size(); from += SWITCH_ROWS) {
            if (from > 0) pacer.step();
            List<ChunkId> ids = keys.subList(from, Math.min(keys.size(), from + SWITCH_ROWS));
            Map<ChunkId, ChunkLocation> part = new java.util.LinkedHashMap<>();
            for (ChunkId id : ids) part.put(id, moves.get(id));
            int switched = store.index().relocate(part, p);
            if (switched != part.size() && store.index().locateAll(ids).values().stream().anyMatch(l -> l.pack() == p)) {
                throw new CaskException.Io("pack " + p + ": " + switched + " of " + part.size()
                        + " entries switched to their copies; the pack is left in place", null);
            }
            store.forget(ids);
        }
    }

    /** Deletes pack {@code p}, which no index entry points into any more, with its marker and holes file, then fsyncs the pack directory. */
    static void deletePack(LocalChunkStore store, int p) throws IOException {
        Files.delete(store.packPath(p));
        Files.deleteIfExists(PackRecovery.markerPath(store.packDir(), p));
        Files.deleteIfExists(PackHoles.path(store.packDir(), p));
        LocalChunkStore.fsyncDirectory(store.packDir());
        store.dropPack(p);
    }

    /** What {@link #rewrite} returns for a pack it left because a live chunk in it is damaged. */
    private static final long[] DAMAGED = new long[0];

    /**
     * Rewrites pack {@code p}, which the caller holds locked. Returns {chunks copied, bytes of the
     * copies}; null when the pack was gone; {@link #DAMAGED} when a live chunk in it failed its
     * checks: the pack stays as it is (its chunk is marked damaged by the read, so the next put of
     * those bytes heals it, and a later run rewrites the pack).
     */
    private long[] rewrite(int p, Map<ChunkId, ChunkLocation> entries) {
        Path path = store.packPath(p);
        try {
            long[] bytes = {0};
            // the live chunks by stored unit (a record, or a segment with the entries into it), in pack order
            List<List<Map.Entry<ChunkId, ChunkLocation>>> units = new ArrayList<>();
            for (var e : entries.entrySet()) {
                List<Map.Entry<ChunkId, ChunkLocation>> last = units.isEmpty() ? null : units.getLast();
                if (last != null && e.getValue().inSegment() && last.getFirst().getValue().offset() == e.getValue().offset()) last.add(e);
                else units.add(new ArrayList<>(List.of(e)));
            }
            Map<ChunkId, ChunkLocation> moved = new HashMap<>();
            for (int u = 0; u < units.size(); ) {
                if (u > 0) pacer.step(); // between batches: copies not switched yet are garbage, P stays whole
                List<LocalChunkStore.Verbatim> verbatim = new ArrayList<>();
                List<ChunkId> ids = new ArrayList<>();
                long batch = 0;
                while (u < units.size() && batch < batchBytes) {
                    List<Map.Entry<ChunkId, ChunkLocation>> unit = units.get(u++);
                    LocalChunkStore.Verbatim v = verbatim(p, unit);
                    if (v != null) {
                        verbatim.add(v);
                        batch += v.bytes().length;
                    } else {
                        for (var e : unit) ids.add(e.getKey());
                        batch += unit.getFirst().getValue().length();
                    }
                }
                List<byte[]> plains = new ArrayList<>();
                try {
                    for (int from = 0; from < ids.size(); from += READ_AHEAD) {
                        // in pack order, READ_AHEAD at a time: the store reads neighbouring records and whole segments at once
                        List<ChunkId> part = ids.subList(from, Math.min(ids.size(), from + READ_AHEAD));
                        byte[][] got = new byte[part.size()][];
                        store.getAll(part, (i, data, off, len) -> got[i] = java.util.Arrays.copyOfRange(data, off, off + len),
                                dev.cask.store.ChunkStore.Reading.STREAM); // verified, and a bad copy is marked damaged
                        plains.addAll(List.of(got));
                    }
                } catch (CaskException.Corrupt e) {
                    return DAMAGED;
                }
                Map<ChunkId, ChunkLocation> copies = new HashMap<>();
                if (!verbatim.isEmpty()) copies.putAll(store.appendVerbatim(verbatim)); // fsynced when it returns
                if (!ids.isEmpty()) copies.putAll(store.appendCopies(ids, plains)); // likewise
                Set<Long> segs = new HashSet<>();
                for (ChunkLocation l : copies.values()) {
                    if (!l.inSegment()) bytes[0] += l.length();
                    else if (segs.add(l.unit())) bytes[0] += l.length();
                }
                moved.putAll(copies);
            }
            // the switch, once every live chunk of P has its copy
            switchEntries(store, pacer, p, moved);
            synchronized (store) {
                store.releaseSealed(); // a copies' pack filled meanwhile (its entries are indexed now); not a pack with unsynced chunks
            }
            deletePack(store, p);
            return new long[]{entries.size(), bytes[0]};
        } catch (java.nio.file.NoSuchFileException gone) {
            return null;
        } catch (IOException e) {
            throw new CaskException.Io("pack " + p + ": compaction failed: " + e.getMessage(), e);
        }
    }
}
