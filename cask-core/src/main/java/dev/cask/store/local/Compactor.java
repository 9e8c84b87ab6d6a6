package dev.cask.store.local;

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
 * so two never run at once.
 *
 * <p><b>Crash order.</b> For each pack P, in batches of up to {@link #BATCH_BYTES} of plain
 * bytes: (1) the batch's live chunks' plain bytes are read (verified) and appended to this
 * process's pack, which is flushed and fsynced; (2) the index entries of the batch that still
 * point into P are switched to the copies in one transaction, durable (synchronous=FULL) before it
 * returns. When every batch is switched, (3) P is deleted and the directory fsynced. A crash before
 * a batch's (2) leaves copies nothing points at (garbage for the next run; a torn tail is cut when
 * the store opens); a crash between batches leaves P with fewer entries pointing into it (more of
 * it is garbage: the next run copies the rest); a crash between (2) and (3) leaves P with no entry
 * pointing into it, which the next run deletes without copying anything. So a run is resumable and
 * a kill -9 at any point loses nothing; a {@link Pacer} may stop it between batches and between
 * packs for the same reason. A full disk fails (1): the write path cuts its pack back to the last
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
 * <p><b>Threshold.</b> A pack is rewritten when at least {@link #DEFAULT_THRESHOLD} of its bytes
 * are garbage. Rewriting a pack with garbage fraction t writes (1 - t) of a pack to give back t:
 * (1 - t) / t bytes written per byte freed (t = 0.1: 9; 0.25: 3; 0.5: 1). With every pack below t
 * the store holds at most live / (1 - t) bytes: the target of 1.10 x live bytes needs
 * t of about 0.09, so the default is 0.10 (1.11 x at worst, and less in practice since packs that
 * rm and prune empty go to 0 live bytes and cost no copying at all).
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

    private final LocalChunkStore store;
    private final Pacer pacer;

    Compactor(LocalChunkStore store) {
        this(store, Pacer.unpaced());
    }

    Compactor(LocalChunkStore store, Pacer pacer) {
        this.store = store;
        this.pacer = pacer;
    }

    Result run(double threshold, Progress progress) {
        List<Integer> packs = store.packIds();
        if (packs.size() < 2) return new Result(0, 0, 0, 0, 0, 0);
        int highest = packs.getLast();
        // live bytes per pack: records, and each segment once however many of its chunks are live
        Map<Integer, Long> live = new HashMap<>();
        Set<Long> segmentsSeen = new HashSet<>();
        long[] seen = {0};
        store.index().forEach((id, loc) -> {
            if ((++seen[0] & 4095) == 0) pacer.check(); // a scan of a big index takes a while: a stop need not wait for it
            if (loc.inSegment() && !segmentsSeen.add(((long) loc.pack() << 40) ^ loc.offset())) return;
            live.merge(loc.pack(), (long) loc.length(), Long::sum);
        });
        List<Candidate> candidates = new ArrayList<>();
        for (int p : packs) {
            if (p == highest || store.ownsPack(p)) continue;
            long size;
            try {
                size = Files.size(store.packPath(p));
            } catch (IOException e) {
                continue; // gone meanwhile
            }
            long garbage = size - PackFormat.PACK_HEADER - live.getOrDefault(p, 0L);
            if (size >= PackFormat.PACK_HEADER && garbage >= threshold * size) candidates.add(new Candidate(p, size, garbage));
        }
        candidates.sort(Comparator.comparingDouble((Candidate c) -> -(double) c.garbage() / c.size()));
        if (candidates.size() > MAX_PACKS_PER_RUN) candidates = new ArrayList<>(candidates.subList(0, MAX_PACKS_PER_RUN));
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

    /** At most this many packs per run (each held open and locked while the run lasts); the next run takes the rest. */
    static final int MAX_PACKS_PER_RUN = 256;

    private record Candidate(int pack, long size, long garbage) {}

    private Result compact(List<Candidate> all, Map<Integer, FileChannel> locked, Progress progress) {
        List<Candidate> candidates = new ArrayList<>();
        for (Candidate c : all) {
            FileChannel ch = lock(c.pack());
            if (ch == null) continue;
            locked.put(c.pack(), ch);
            candidates.add(c);
        }
        Set<Integer> chosen = locked.keySet();
        Map<Integer, List<Map.Entry<ChunkId, ChunkLocation>>> found = new HashMap<>();
        long[] seen = {0};
        store.index().forEach((id, loc) -> {
            if ((++seen[0] & 4095) == 0) pacer.check();
            if (chosen.contains(loc.pack())) found.computeIfAbsent(loc.pack(), k -> new ArrayList<>()).add(Map.entry(id, loc));
        });
        progress.startItems("compact", candidates.size());
        int rewritten = 0;
        int deleted = 0;
        long copied = 0;
        long before = 0;
        long after = 0;
        int damaged = 0;
        for (Candidate c : candidates) {
            pacer.step();
            List<Map.Entry<ChunkId, ChunkLocation>> es = found.getOrDefault(c.pack(), List.of());
            es = new ArrayList<>(es);
            es.sort(Comparator.comparingLong((Map.Entry<ChunkId, ChunkLocation> e) -> e.getValue().offset()).thenComparingInt(e -> e.getValue().slot()));
            Map<ChunkId, ChunkLocation> entries = new java.util.LinkedHashMap<>();
            for (var e : es) entries.put(e.getKey(), e.getValue());
            long[] moved = rewrite(c.pack(), entries);
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
            long bytes = 0;
            List<ChunkId> all = new ArrayList<>(entries.keySet());
            for (int from = 0; from < all.size(); ) {
                if (from > 0) pacer.step(); // between batches: what is switched is switched, the rest stays in P
                List<ChunkId> ids = new ArrayList<>();
                List<byte[]> plains = new ArrayList<>();
                long plainBytes = 0;
                try {
                    while (from < all.size() && plainBytes < batchBytes) {
                        ChunkId id = all.get(from++);
                        byte[] plain = store.get(id); // verified, and a bad copy is marked damaged
                        ids.add(id);
                        plains.add(plain);
                        plainBytes += plain.length;
                    }
                } catch (CaskException.Corrupt e) {
                    return DAMAGED;
                }
                Map<ChunkId, ChunkLocation> copies = store.appendCopies(ids, plains);
                for (ChunkLocation l : copies.values()) bytes += l.inSegment() ? 0 : l.length();
                Set<Long> segs = new HashSet<>();
                for (ChunkLocation l : copies.values()) if (l.inSegment() && segs.add(((long) l.pack() << 40) ^ l.offset())) bytes += l.length();
                int switched = store.index().relocate(copies, p);
                // fewer: another process healed some chunk meanwhile (its entry left P by itself);
                // fine as long as none of the batch's entries still points into P
                if (switched != copies.size() && store.index().locateAll(ids).values().stream().anyMatch(l -> l.pack() == p)) {
                    throw new CaskException.Io("pack " + p + ": " + switched + " of " + copies.size()
                            + " entries switched to their copies; the pack is left in place", null);
                }
                synchronized (store) {
                    store.releaseSealed();
                }
                store.forget(ids);
            }
            Files.delete(path);
            Files.deleteIfExists(PackRecovery.markerPath(store.packDir(), p));
            LocalChunkStore.fsyncDirectory(store.packDir());
            store.dropPack(p);
            return new long[]{entries.size(), bytes};
        } catch (java.nio.file.NoSuchFileException gone) {
            return null;
        } catch (IOException e) {
            throw new CaskException.Io("pack " + p + ": compaction failed: " + e.getMessage(), e);
        }
    }
}
