package dev.cask.store.s3;

import dev.cask.common.CaskException;
import dev.cask.common.Pacer;
import dev.cask.common.Progress;
import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkId;
import dev.cask.store.postgres.PostgresChunkIndex;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Garbage collection's deletion on a store on S3 (issue 14 item 9): the {@link ChunkDeleter} of an
 * {@link S3ChunkStore}, which only {@code GarbageCollector} holds, with the local store's safety
 * rule ({@code GcEpochs}) carried over to many nodes:
 * <ol>
 *   <li>every put stamps its entry with the epoch, a dedup hit confirms its entry in a write
 *       transaction (the index, {@link PostgresChunkIndex#lookupForPut});
 *   <li>writers register: an import's or checkpoint's {@link S3ChunkStore#session} is a
 *       session-level advisory lock in PostgreSQL held by a connection of its own, taken before the
 *       session's row is committed, and let go when the session ends or its connection does (a
 *       killed node's connection closes with it);
 *   <li>a collection takes the store's gc lock (one collection at a time, on any node), raises the
 *       epoch to G, waits for every session whose row it then sees, marks from the catalog, and
 *       deletes only entries still stamped before G, tested in the delete's own statement.
 * </ol>
 * The proof is {@code GcEpochs}', with PostgreSQL's transactions and advisory locks for SQLite's
 * and {@code fcntl}'s. What it adds to trust: a node whose connection to PostgreSQL is cut while
 * the node goes on (a network partition, not a crash) loses its sessions' locks; a collection may
 * then go on while that node still puts chunks of a version it has not committed. So every writer
 * checks its session right before its commit ({@code Session.check}: the connection still answers,
 * so it still holds the lock) and commits nothing when it does not; only a connection lost between
 * that check and the commit, with a whole collection in between, is not covered. A frozen
 * (SIGSTOP) node keeps its connections, so collections wait for it.
 *
 * <p><b>What it frees.</b> Index entries (the sweep), then whole pack objects no entry points into
 * ({@link #compact}: the pack's row is deleted first, in a statement that checks that still no
 * entry points into it, then the object; a crash in between leaks the object, never loses a chunk).
 * Packs at least the threshold of whose bytes are garbage are rewritten first ({@link Sweep#compact}:
 * live records and segments copied byte for byte into a new object, entries moved by
 * compare-and-swap), so their old objects are dead too. A reader on another node holding a stale
 * location into a deleted object gets 404, reads the index again and finds the chunk where it is
 * now. A segment with live and dead chunks is copied whole (its dead chunks' bytes stay until it
 * is all dead). Last, what crashes leaked: packs a writer began and uploaded (or not) but never
 * sealed because it died (each pack row names its writer, whose advisory lock is free once the
 * writer's process or connection is gone), and pack objects no row names. Sweeps are always full (no memo of the previous collection: a collection may run
 * on any node).
 *
 * <p>Thread-safe as the index is; one {@link Sweep} per collection.
 */
public final class S3Collection implements ChunkDeleter {
    private final S3ChunkStore store;
    private final PostgresChunkIndex index;

    public S3Collection(S3ChunkStore store) {
        this.store = store;
        this.index = store.index();
    }

    @Override
    public long gcEpoch() {
        return index.epoch();
    }

    @Override
    public Sweep begin(Consumer<String> waiting) {
        return begin("cask gc", waiting, Pacer.unpaced());
    }

    @Override
    public Sweep begin(String who, Consumer<String> waiting, Pacer pacer) {
        pacer.check();
        PostgresChunkIndex.GcLock lock = index.lockGc(waiting, () -> pacer.waitFor(100));
        boolean ok = false;
        try {
            long epoch = index.bumpEpoch();
            lock.awaitSessions(waiting, () -> pacer.waitFor(100));
            ok = true;
            return new S3Sweep(epoch, lock);
        } finally {
            if (!ok) lock.close();
        }
    }

    /** One collection on the store, holding its gc lock until closed. */
    private final class S3Sweep implements Sweep {
        private final long epoch;
        private final PostgresChunkIndex.GcLock lock;

        S3Sweep(long epoch, PostgresChunkIndex.GcLock lock) {
            this.epoch = epoch;
            this.lock = lock;
        }

        @Override
        public long epoch() {
            return epoch;
        }

        @Override
        public void forEachCandidate(Consumer<ChunkId> sink) {
            index.forEachStampedBefore(epoch, sink);
        }

        /** Deletes in batches of {@value PostgresChunkIndex#BATCH}; the bytes are the stored bytes of the chunks deleted, as {@code du} counts them. */
        @Override
        public Deleted delete(Collection<ChunkId> ids) {
            return delete(ids, Pacer.unpaced());
        }

        @Override
        public Deleted delete(Collection<ChunkId> ids, Pacer pacer) {
            List<ChunkId> all = new ArrayList<>(ids);
            Set<ChunkId> deleted = new java.util.HashSet<>();
            long bytes = 0;
            for (int from = 0; from < all.size(); from += PostgresChunkIndex.BATCH) {
                pacer.step();
                List<ChunkId> part = all.subList(from, Math.min(all.size(), from + PostgresChunkIndex.BATCH));
                Map<ChunkId, Long> sizes = index.storedBytes(part);
                Set<ChunkId> gone = index.deleteStampedBefore(part, epoch);
                for (ChunkId id : gone) bytes += sizes.getOrDefault(id, 0L);
                deleted.addAll(gone);
            }
            return new Deleted(deleted, bytes);
        }

        @Override
        public Compacted compact(double threshold, Progress progress) {
            return compact(threshold, progress, Pacer.unpaced());
        }

        /**
         * Rewrites the packs at least {@code threshold} of whose bytes no entry points into, most
         * garbage first: each one's live records and segments, checked (magic, lengths, CRC32C),
         * are copied byte for byte into a new pack object, which is PUT whole; then one transaction
         * seals the new pack and moves each entry by compare-and-swap. A pack with a damaged live
         * unit is left as it is (counted in {@code packsDamaged}). Then every pack no entry points
         * into any more (these, and packs all garbage) is forgotten and its object deleted. A crash
         * anywhere leaves the old pack and its entries, or the new one and its entries, plus at most
         * a leaked object: never an entry naming a missing object.
         */
        @Override
        public Compacted compact(double threshold, Progress progress, Pacer pacer) {
            int rewritten = 0;
            int damaged = 0;
            long copied = 0;
            long before = 0;
            long after = 0;
            if (threshold <= 1) {
                List<PostgresChunkIndex.PackUse> worst = new ArrayList<>();
                for (PostgresChunkIndex.PackUse u : index.packUse()) if (u.garbage() >= threshold && u.garbage() > 0) worst.add(u);
                worst.sort(java.util.Comparator.comparingDouble(PostgresChunkIndex.PackUse::garbage).reversed());
                progress.startItems("compact packs", worst.size());
                for (PostgresChunkIndex.PackUse u : worst) {
                    pacer.step();
                    Rewrite r = rewrite(u.pack());
                    if (r == null) {
                        damaged++;
                    } else if (r.moved() > 0) {
                        rewritten++;
                        copied += r.moved();
                        before += u.pack().bytes();
                        after += r.bytes();
                    }
                    progress.advance(1);
                }
                progress.done();
            }
            List<PostgresChunkIndex.Pack> dead = index.deadPacks();
            progress.startItems("delete dead packs", dead.size());
            int deleted = 0;
            for (PostgresChunkIndex.Pack p : dead) {
                pacer.step();
                if (index.dropDeadPack(p.id())) {
                    try {
                        store.objects().delete(p.objectKey());
                    } catch (CaskException e) {
                        // the row is gone: the object is leaked bytes, never a missing chunk
                        System.getLogger("cask.gc").log(System.Logger.Level.WARNING, "gc: pack " + p.id() + " forgotten, but its object "
                                + store.url().objectUrl(p.objectKey()) + " was not deleted: " + e.getMessage());
                        continue;
                    }
                    deleted++;
                    before += p.bytes();
                }
                progress.advance(1);
            }
            progress.done();
            Leaked leaked = deleteLeaked(pacer);
            return new Compacted(rewritten, deleted + leaked.objects(), copied, before + leaked.bytes(), after, damaged, 0, 0);
        }

        /** What {@link #deleteLeaked} deleted: packs (rows or objects) and the objects' bytes. */
        private record Leaked(int objects, long bytes) {}

        /**
         * Deletes what crashes leaked: first the packs whose writer is gone before it sealed them
         * ({@link PostgresChunkIndex#abandonedPacks}: their object, if it was uploaded, then their
         * row, so a crash in between leaves the row for the next collection); then the pack objects
         * no row names (a collection killed between forgetting a pack and deleting its object). The
         * bucket is listed before the rows are read: a row is inserted before its object is
         * uploaded, so every object listed whose row exists is seen with it. Only keys of the pack
         * form are touched.
         */
        private Leaked deleteLeaked(Pacer pacer) {
            int objects = 0;
            long bytes = 0;
            for (PostgresChunkIndex.Pack p : index.abandonedPacks()) {
                pacer.step();
                long size = store.objects().size(p.objectKey());
                if (size >= 0) store.objects().delete(p.objectKey());
                if (index.dropAbandonedPack(p.id())) {
                    objects++;
                    bytes += Math.max(0, size);
                }
            }
            String packs = store.url().key("packs/");
            java.util.SortedMap<String, Long> listed = store.objects().list(packs);
            Set<String> named = new java.util.HashSet<>();
            for (PostgresChunkIndex.Pack p : index.packs()) named.add(p.objectKey());
            for (var e : listed.entrySet()) {
                if (named.contains(e.getKey()) || !e.getKey().substring(packs.length()).matches("\\d{8,}\\.pack")) continue;
                pacer.step();
                store.objects().delete(e.getKey());
                objects++;
                bytes += e.getValue();
            }
            return new Leaked(objects, bytes);
        }

        /** What one rewrite did: entries moved, and the new pack's bytes. */
        private record Rewrite(long moved, long bytes) {}

        /** Copies pack {@code p}'s live units into a new pack and moves their entries; null when a live unit is damaged. */
        private Rewrite rewrite(PostgresChunkIndex.Pack p) {
            List<java.util.Map.Entry<ChunkId, dev.cask.store.ChunkLocation>> entries = index.entriesIn(p.id());
            if (entries.isEmpty()) return new Rewrite(0, 0);
            byte[] all = store.objects().get(p.objectKey(), () -> "pack " + p.id());
            java.io.ByteArrayOutputStream units = new java.io.ByteArrayOutputStream();
            java.util.Map<Long, Long> newOffset = new java.util.HashMap<>(); // old offset -> offset in the new pack
            for (var e : entries) {
                dev.cask.store.ChunkLocation loc = e.getValue();
                if (newOffset.containsKey(loc.offset())) continue;
                if (loc.offset() + loc.length() > all.length) return null;
                String what = "pack " + p.id() + " at offset " + loc.offset();
                try {
                    if (loc.inSegment()) dev.cask.store.local.PackFormat.decodeSegment(what, all, (int) loc.offset(), loc.length());
                    else dev.cask.store.local.PackFormat.decodeRecord(what, all, (int) loc.offset(), loc.length());
                } catch (CaskException.Corrupt bad) {
                    return null; // never copy bad bytes: the pack stays, `cask check` names it, a put heals it
                }
                newOffset.put(loc.offset(), (long) dev.cask.store.local.PackFormat.PACK_HEADER + units.size());
                units.write(all, (int) loc.offset(), loc.length());
            }
            int id = index.beginPack(store.url()::packKey);
            byte[] header = dev.cask.store.local.PackFormat.encodePackHeader(id);
            byte[] pack = new byte[header.length + units.size()];
            System.arraycopy(header, 0, pack, 0, header.length);
            System.arraycopy(units.toByteArray(), 0, pack, header.length, units.size());
            store.objects().put(store.url().packKey(id), pack, pack.length);
            java.util.Map<ChunkId, dev.cask.store.ChunkLocation[]> moves = new java.util.HashMap<>();
            for (var e : entries) {
                dev.cask.store.ChunkLocation from = e.getValue();
                moves.put(e.getKey(), new dev.cask.store.ChunkLocation[]{from,
                        new dev.cask.store.ChunkLocation(id, newOffset.get(from.offset()), from.length(), from.slot())});
            }
            return new Rewrite(index.commitMoves(id, pack.length, moves).size(), pack.length);
        }

        @Override
        public void close() {
            lock.close();
        }
    }
}
