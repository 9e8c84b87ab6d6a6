package dev.cask.tree;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import dev.cask.store.ChunkId;

/**
 * A bounded cache of pointer chunks (immutable, so sharing them between trees and threads is
 * safe). Sizing: each entry is at most 4 KiB, so the default 16,384 entries cost at most 64 MiB
 * and map 16,384 * 128 = 2M leaves, 8 GiB of disk at 4 KiB blocks.
 *
 * <p>Every read of a served disk looks up one pointer chunk per tree level, from every client
 * thread at once, so lookups take no lock: Caffeine's frequency-aware eviction, with its upkeep
 * run in the calling thread (as the chunk store's caches do). A synchronized LRU map, which
 * reordered its list on every lookup, was a few percent of a random read's CPU. Thread-safe.
 */
public final class PointerCache {
    private final Cache<ChunkId, byte[]> map;

    public PointerCache(int entries) {
        this.map = Caffeine.newBuilder().executor(Runnable::run).maximumSize(entries).build();
    }

    public PointerCache() {
        this(16_384);
    }

    public byte[] get(ChunkId id) {
        return map.getIfPresent(id);
    }

    public void put(ChunkId id, byte[] pointers) {
        map.put(id, pointers);
    }
}
