package dev.cask.store;

import java.util.Collection;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Deletion of chunks, kept apart from {@link ChunkStore} on purpose: only garbage collection
 * holds one. A store that can delete (the local store) implements both; decorators and readers
 * see only {@link ChunkStore} and so cannot delete by mistake.
 *
 * <p>Contract: a chunk is deleted only inside a {@link Sweep}, only if it is still stamped
 * before the collection's epoch at the moment of deletion (checked atomically with the delete),
 * and a put that finds a chunk (a dedup hit) stamps it with the current epoch or, if the chunk
 * is gone, stores it again. What makes that enough is written in {@code GcEpochs}.
 */
public interface ChunkDeleter {
    /**
     * Starts a collection: waits while another collection runs on the store (telling
     * {@code waiting} why), raises the store's GC epoch to a new G durably, then waits until every
     * writer session that was open at that moment has ended (telling {@code waiting} about each).
     * When it returns, every version such a session will ever commit is in the catalog.
     */
    Sweep begin(Consumer<String> waiting);

    /**
     * As {@link #begin(Consumer)}, for a collection that may be asked to stop: {@code pacer}
     * ends the waits ({@link dev.cask.common.Pacer.Stopped}); {@code who} says what the
     * collection is (a second one that waits names it: {@code cask serve (background gc)}).
     */
    default Sweep begin(String who, Consumer<String> waiting, dev.cask.common.Pacer pacer) {
        pacer.check();
        return begin(waiting);
    }

    /** The store's current GC epoch (a dry run reports it). */
    long gcEpoch();

    /**
     * What a delete did: the ids deleted, and the stored bytes (records, and segments all of whose
     * chunks are now gone) that no index entry points at any more: what compaction can give back.
     */
    record Deleted(Set<ChunkId> ids, long bytes) {}

    /** One collection; close it to let the next one start. */
    interface Sweep extends AutoCloseable {
        /** G: chunks stamped at or after it are never deleted by this collection. */
        long epoch();

        /** Calls {@code sink} for every chunk stamped before {@link #epoch}: the candidates. */
        void forEachCandidate(Consumer<ChunkId> sink);

        /** Deletes those of {@code ids} still stamped before {@link #epoch}. */
        Deleted delete(Collection<ChunkId> ids);

        /**
         * As {@link #delete(Collection)}, with {@code pacer}'s step between transactions: a stop
         * leaves the transactions done so far done (each deleted only unreachable chunks).
         */
        default Deleted delete(Collection<ChunkId> ids, dev.cask.common.Pacer pacer) {
            pacer.step();
            return delete(ids);
        }

        /**
         * The sweep in one call: deletes every chunk stamped before {@link #epoch} that
         * {@code reachable} does not accept (the stamp tested again in each delete's transaction,
         * as {@link #delete} does), with {@code pacer}'s step between transactions. The default
         * is {@link #forEachCandidate} then {@link #delete}; a store may do it in one pass over its
         * index and keep what it learnt about its packs for {@link #compact}. {@code chosen} runs
         * once the chunks to delete are chosen, before the first delete.
         */
        default Deleted sweep(java.util.function.Predicate<ChunkId> reachable, dev.cask.common.Pacer pacer, Runnable chosen) {
            java.util.List<ChunkId> unreachable = new java.util.ArrayList<>();
            forEachCandidate(id -> {
                if (!reachable.test(id)) unreachable.add(id);
            });
            chosen.run();
            return delete(unreachable, pacer);
        }

        /**
         * What the previous collection left for this one through {@link #complete}, when an
         * incremental sweep ({@link #sweepChanged}) may follow it: the previous collection ran to
         * its end, nothing else deleted chunks since, and the store kept track of what was indexed
         * since. Null otherwise: then only the full {@link #sweep} is allowed.
         */
        default byte[] memo() {
            return null;
        }

        /**
         * An incremental sweep, allowed only when {@link #memo} is not null: as {@link #sweep}, but it
         * looks only at {@code candidates} and at what the store knows changed since the previous
         * collection (chunks indexed since, and those it found unreachable but had to keep).
         * The caller MUST pass every chunk that a version of the previous collection reached and
         * no version reaches now (its collector walks the trees of the versions gone since, see
         * {@code GarbageCollector}); with that, it deletes every chunk the full sweep would, at a
         * cost that follows what changed, not the size of the store. Same stamp rule, same
         * {@code chosen} hook.
         */
        default Deleted sweepChanged(java.util.Collection<ChunkId> candidates, java.util.function.Predicate<ChunkId> reachable,
                                     dev.cask.common.Pacer pacer, Runnable chosen) {
            throw new UnsupportedOperationException("this store sweeps only in full");
        }

        /**
         * Ends a collection whose sweep ran to its end: keeps {@code memo} (the collector's note of
         * what it marked) for the next collection's {@link #memo}, with what the store needs for an
         * incremental sweep then. A collection that never calls it leaves the next one a full sweep.
         */
        default void complete(byte[] memo) {}

        /**
         * Gives back the bytes of deleted chunks: rewrites, worst first, the packs at least
         * {@code threshold} of whose bytes no index entry points at (see {@code Compactor}). Crash-safe
         * and resumable; never touches a pack a writer may still append to.
         */
        Compacted compact(double threshold, dev.cask.common.Progress progress);

        /** As {@link #compact(double, dev.cask.common.Progress)}, paced, and stoppable between batches of copies. */
        default Compacted compact(double threshold, dev.cask.common.Progress progress, dev.cask.common.Pacer pacer) {
            pacer.step();
            return compact(threshold, progress);
        }

        /**
         * Rewrites the live chunks of cold packs (sealed packs no recompression wrote) with chunks
         * that look alike next to each other, at a stronger compression than the write path uses,
         * and deletes the old packs (see {@code Recompressor}). Same crash order and safety as
         * {@link #compact}: copies durable first, entries switched, old packs deleted; a crash or
         * a stop leaves every chunk readable, and the next run carries on. MUST NOT change what any
         * chunk id reads as. A store that cannot recompress returns {@link Recompressed#NONE}.
         */
        default Recompressed recompress(dev.cask.common.Progress progress, dev.cask.common.Pacer pacer) {
            return Recompressed.NONE;
        }

        @Override
        void close();
    }

    /**
     * What a recompression did: packs read (and deleted), packs written, chunks copied, the bytes
     * the old packs occupied and the bytes their copies hold.
     */
    record Recompressed(int packsRead, int packsWritten, long chunks, long bytesBefore, long bytesAfter) {
        public static final Recompressed NONE = new Recompressed(0, 0, 0, 0, 0);
    }

    /**
     * What compaction did: packs rewritten (live chunks copied), packs deleted whole, the bytes
     * those packs held before and their copies hold now, packs left as they were because a
     * live chunk in them is damaged (a read of it failed its checks; {@code cask check} names it),
     * and packs whose dead stretches were punched out in place, with the bytes that gave back.
     */
    record Compacted(int packsRewritten, int packsDeleted, long chunksCopied, long bytesBefore, long bytesAfter, int packsDamaged,
                     int packsPunched, long bytesPunched) {
        public static final Compacted NONE = new Compacted(0, 0, 0, 0, 0, 0, 0, 0);
    }

    /** The default share of garbage in a pack above which compaction rewrites it (see {@code Compactor}). */
    double DEFAULT_COMPACT_THRESHOLD = 0.10;
}
