package dev.cask.store.cache;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.function.Consumer;

/**
 * A node's local chunk cache in front of a store (copy-on-read): every chunk a {@link #get} or
 * {@link #getAll} returns from the wrapped store is also written to a {@link DiskChunkCache} on
 * this node's disk, and the next read of it is served from there, verified, instead of from the
 * wrapped store (a ranged GET from S3 for {@code S3ChunkStore}). Everything else is forwarded.
 *
 * <p>What it owns: the wrapped store and the cache; {@link #close} closes both.
 *
 * <p>What is cached: only what reads returned. Puts are forwarded and not kept: they come from
 * imports and checkpoints, which this node has just written (a served image's recent writes are
 * in its journal and in memory), and an import of a large disk would otherwise push the working
 * set of the served images out of the cache. {@link #contains}, {@link #put}, {@link #putAll},
 * {@link #list}, {@link #sync} and {@link #session} always ask the wrapped store: a copy in the
 * cache is never taken as proof that the store holds a chunk (garbage collection may have
 * deleted it there since), so deduplication and healing are exactly the wrapped store's.
 *
 * <p>Contract ({@link ChunkStore}): kept, because the cache returns only bytes that hash to the
 * id asked for (it verifies every read, and a damaged copy is deleted and read from the wrapped
 * store instead: never wrong bytes), and it gets them only from the wrapped store's verified reads.
 * Errors are the wrapped store's (NotFound, Corrupt naming the chunk); the cache itself never
 * fails a read: a cache file it cannot read or write (a full disk) just makes that read go to the
 * wrapped store. A chunk read from the cache after the wrapped store lost it (garbage collected)
 * still returns its right bytes.
 *
 * <p>Durability: the cache is never needed for it ({@link #sync} is the wrapped store's), so cache
 * files are never fsynced; see {@link DiskChunkCache} for why a crash cannot make one serve wrong
 * bytes, for the on-disk layout, the bound and the sizing arithmetic.
 *
 * <p>Thread-safety: as the wrapped store's; the cache is safe from many threads at once.
 */
public final class CachingChunkStore implements ChunkStore {
    private final ChunkStore store;
    private final DiskChunkCache cache;

    public CachingChunkStore(ChunkStore store, DiskChunkCache cache) {
        this.store = store;
        this.cache = cache;
    }

    /** The wrapped store. */
    public ChunkStore wrapped() {
        return store;
    }

    public DiskChunkCache cache() {
        return cache;
    }

    @Override
    public ChunkId put(byte[] data, int off, int len) {
        return store.put(data, off, len);
    }

    @Override
    public ChunkId[] putAll(byte[] data, int[] offsets, int length) {
        return store.putAll(data, offsets, length);
    }

    @Override
    public ChunkId[] putAll(byte[] data, int[] offsets, int length, Access access) {
        return store.putAll(data, offsets, length, access);
    }

    /** Forwards the ids the cache does not hold. */
    @Override
    public void prefetch(Collection<ChunkId> ids) {
        List<ChunkId> missing = new ArrayList<>(ids.size());
        for (ChunkId id : ids) if (!cache.holds(id)) missing.add(id);
        if (!missing.isEmpty()) store.prefetch(missing);
    }

    @Override
    public byte[] get(ChunkId id) {
        byte[] data = cache.read(id);
        if (data != null) return data;
        data = store.get(id);
        cache.keep(id, data, 0, data.length);
        return data;
    }

    @Override
    public void getAll(List<ChunkId> ids, ChunkSink sink) {
        getAll(ids, sink, null);
    }

    /**
     * Answers the indexes whose chunks the cache holds from it, then reads the others from the
     * wrapped store in one {@code getAll} (with the same {@code reading}), keeping a copy of each.
     */
    @Override
    public void getAll(List<ChunkId> ids, ChunkSink sink, Reading reading) {
        List<ChunkId> missed = null;
        int[] missedAt = null;
        for (int i = 0; i < ids.size(); i++) {
            ChunkId id = ids.get(i);
            byte[] data = cache.read(id);
            if (data != null) {
                sink.chunk(i, data, 0, data.length);
                continue;
            }
            if (missed == null) {
                missed = new ArrayList<>();
                missedAt = new int[ids.size() - i];
            }
            missedAt[missed.size()] = i;
            missed.add(id);
        }
        if (missed == null) return;
        List<ChunkId> fromStore = missed;
        int[] at = missedAt;
        ChunkSink keeping = (j, data, off, len) -> {
            cache.keep(fromStore.get(j), data, off, len);
            sink.chunk(at[j], data, off, len);
        };
        if (reading == null) store.getAll(fromStore, keeping);
        else store.getAll(fromStore, keeping, reading);
    }

    @Override
    public boolean contains(ChunkId id) {
        return store.contains(id);
    }

    @Override
    public Session session(String what) {
        return store.session(what);
    }

    @Override
    public void list(Consumer<ChunkId> sink) {
        store.list(sink);
    }

    @Override
    public void sync() {
        store.sync();
    }

    @Override
    public void close() {
        try {
            store.close();
        } finally {
            cache.close();
        }
    }

    @Override
    public String toString() {
        return store + " with " + cache;
    }
}
