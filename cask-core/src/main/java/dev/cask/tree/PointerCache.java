package dev.cask.tree;

import dev.cask.store.ChunkId;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A bounded LRU cache of pointer chunks (immutable, so sharing them between trees and threads
 * is safe). Sizing: each entry is at most 4 KiB, so the default 16,384 entries cost at most
 * 64 MiB and map 16,384 * 128 = 2M leaves, 8 GiB of disk at 4 KiB blocks.
 * Thread-safe (one lock; lookups are short).
 */
public final class PointerCache {
    private final Map<ChunkId, byte[]> map;

    public PointerCache(int entries) {
        this.map = new LinkedHashMap<>(1024, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<ChunkId, byte[]> eldest) {
                return size() > entries;
            }
        };
    }

    public PointerCache() {
        this(16_384);
    }

    public synchronized byte[] get(ChunkId id) {
        return map.get(id);
    }

    public synchronized void put(ChunkId id, byte[] pointers) {
        map.put(id, pointers);
    }
}
