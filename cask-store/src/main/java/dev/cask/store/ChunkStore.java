package dev.cask.store;

import java.util.function.Consumer;

/**
 * Where chunks live. A chunk is an immutable byte string of at most {@link #MAX_CHUNK} bytes,
 * named by its {@link ChunkId} (SHA-256 of the bytes).
 *
 * <p>Contract, for every implementation and decorator (checked by {@code ChunkStoreContract}):
 * <ul>
 *   <li>{@link #put} MUST be idempotent: putting the same bytes twice returns the same id and
 *       stores them at most once (per process; two processes racing may both store a copy,
 *       which garbage collection reclaims). It MUST reject chunks over {@link #MAX_CHUNK}.
 *   <li>After {@link #put} returns, {@link #get} and {@link #contains} in this process see the
 *       chunk. Other processes see it after {@link #sync} returns.
 *   <li>{@link #get} MUST return exactly the bytes that were put, or throw. It MUST verify the
 *       bytes before returning them (a record checksum and the id in the record, or the hash):
 *       corrupt data throws {@link dev.cask.common.CaskException.Corrupt} naming the chunk, a
 *       missing chunk throws {@link dev.cask.common.CaskException.NotFound} naming it. Never wrong bytes.
 *   <li>Healing: once a {@link #get} or {@link #getAll} of this store found a chunk's stored copy
 *       corrupt, the next {@link #put} or {@link #putAll} of the same bytes MUST store them again
 *       (not take the damaged copy as a dedup hit), so that reads return them from then on. A
 *       damaged copy no read has found yet may still be taken as a hit.
 *   <li>{@link #sync} is the durability barrier: every chunk put before it started survives a
 *       crash or power loss once it returns.
 *   <li>{@link #put} and {@link #putAll} MUST NOT keep a reference to the caller's array after
 *       they return (callers recycle their buffers); {@link #get} returns an array the caller owns.
 *   <li>No chunk is ever changed. Deletion is not here: only garbage collection deletes.
 *   <li>All methods are safe to call from many threads at once.
 * </ul>
 */
public interface ChunkStore extends AutoCloseable {
    int MAX_CHUNK = 1 << 20;

    /** Stores {@code data[off, off+len)} and returns its id. */
    ChunkId put(byte[] data, int off, int len);

    default ChunkId put(byte[] data) {
        return put(data, 0, data.length);
    }

    /**
     * Puts the chunks {@code data[offsets[i], offsets[i] + length)} and returns their ids, in
     * order. Same contract as calling {@link #put} for each; implementations may look up and
     * write them together (an importer's batch of blocks).
     */
    default ChunkId[] putAll(byte[] data, int[] offsets, int length) {
        ChunkId[] ids = new ChunkId[offsets.length];
        for (int i = 0; i < offsets.length; i++) ids[i] = put(data, offsets[i], length);
        return ids;
    }

    /** How the chunks of one {@link #putAll} batch are likely to be read back. */
    enum Access {
        /** In order, most of them (an imported disk: boots and exports read it in runs). */
        SEQUENTIAL,
        /** One by one (a running VM's writes, folded in by a checkpoint, read back at random). */
        RANDOM
    }

    /**
     * {@link #putAll}, with a hint a store MAY use to group the chunks (see {@code LocalChunkStore}'s
     * segments): it changes nothing a {@link #get} returns. {@link #putAll} without a hint means
     * {@link Access#SEQUENTIAL}.
     */
    default ChunkId[] putAll(byte[] data, int[] offsets, int length, Access access) {
        return putAll(data, offsets, length);
    }

    /**
     * A hint that {@link #get} will soon be called for these chunks (a large read walking a
     * tree): an implementation may look them up together. It MUST NOT change any outcome.
     */
    default void prefetch(java.util.Collection<ChunkId> ids) {}

    /** The verified bytes of the chunk. */
    byte[] get(ChunkId id);

    /**
     * {@link #get}, its bytes lent to {@code sink} as chunk 0 for the call only (see {@link
     * ChunkSink}): an implementation may hand over a buffer it reuses, so that a read of one chunk
     * makes no array of its own. The same bytes and the same errors as {@link #get}; an error
     * {@code sink} throws is passed on as it is.
     */
    default void get(ChunkId id, ChunkSink sink) {
        byte[] data = get(id);
        sink.chunk(0, data, 0, data.length);
    }

    /** Receives the chunks of {@link #getAll}. */
    @FunctionalInterface
    interface ChunkSink {
        /**
         * The verified bytes {@code data[off, off+len)} of chunk {@code ids.get(index)}. The array
         * is lent for the call only: the sink MUST NOT change it or keep it.
         */
        void chunk(int index, byte[] data, int off, int len);
    }

    /**
     * Reads the chunks {@code ids} (a large read walking a tree; ids may repeat): calls
     * {@code sink} once for every index of the list, in the calling thread, in any order. The
     * same checks and failures as {@link #get} (it stops at the first failure); an implementation
     * may look the chunks up together and read neighbouring records in one go. The default calls
     * {@link #get} for each.
     */
    default void getAll(java.util.List<ChunkId> ids, ChunkSink sink) {
        for (int i = 0; i < ids.size(); i++) {
            byte[] data = get(ids.get(i));
            sink.chunk(i, data, 0, data.length);
        }
    }

    /** Who reads the chunks of a {@link #getAll}: a hint for the store's caches. */
    enum Reading {
        /** One pass over a whole disk (export): nothing is likely to be read again soon. */
        STREAM,
        /** A large read of a live disk (an NBD client's): its neighbours and the same blocks may be read again. */
        LIVE
    }

    /**
     * {@link #getAll}, saying who reads. The same checks, results and failures whatever
     * {@code reading} says; a store MAY keep what helps the reads that follow a
     * {@link Reading#LIVE} read. The default calls {@link #getAll(java.util.List, ChunkSink)}.
     */
    default void getAll(java.util.List<ChunkId> ids, ChunkSink sink, Reading reading) {
        getAll(ids, sink);
    }

    boolean contains(ChunkId id);

    /** A writer session; see {@link #session}. Closing it twice is harmless. */
    interface Session extends AutoCloseable {
        /**
         * Called right before the commit the session is for: throws {@link dev.cask.common.CaskException.Io}
         * when the session no longer holds its registration (a shared store's session whose
         * connection to its database was lost: a collection may have gone on without waiting for
         * it), so that nothing is committed that a collection could not see. Returns at once when
         * all is well; by default always.
         */
        default void check() {}

        @Override
        void close();
    }

    /**
     * Opens a writer session: one operation that puts chunks and then commits a version that
     * references them (an import, a checkpoint). Garbage collection waits, before it marks, for
     * every session that was open when it raised its epoch, so the version such a session commits
     * is in the catalog when it is read (see {@code GcEpochs}). Every put whose chunk a version will
     * reference MUST happen inside a session that stays open until that version is committed or
     * abandoned; a version made only from another version's chunks (clone, rollback) needs none,
     * since its commit names that version as its parent and fails if it is gone. MUST be cheap (a
     * file created and locked). The default registers nothing: a store that never deletes.
     */
    default Session session(String what) {
        return () -> {};
    }

    /** Calls {@code sink} once for every chunk id the store holds (visible to this process). */
    void list(Consumer<ChunkId> sink);

    /** Durability barrier; see the class contract. */
    void sync();

    @Override
    void close();
}
