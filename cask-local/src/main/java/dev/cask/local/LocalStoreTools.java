package dev.cask.local;

import dev.cask.store.ScanSink;
import dev.cask.image.GarbageCollector;
import dev.cask.image.StoreCapabilities;
import dev.cask.catalog.Catalog;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.store.local.PackFormat;
import dev.cask.volume.JournalStore;

import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Consumer;

/**
 * The {@link StoreCapabilities} of a local store ({@link LocalChunkStore}): every one of them,
 * answered from its packs and index. Part of the local composition ({@link LocalImages}); the
 * image layer reaches it only through the capability interfaces. Thread-safe as the store is.
 */
final class LocalStoreTools implements StoreCapabilities.Counts, StoreCapabilities.StoredSizes, StoreCapabilities.Checks,
        StoreCapabilities.Repairs, StoreCapabilities.Collecting {
    private final LocalChunkStore store;
    /** What the last collection of this process marked (a server's next one marks by difference from it). */
    private final GarbageCollector.Memory marks = new GarbageCollector.Memory();

    LocalStoreTools(LocalChunkStore store) {
        this.store = store;
    }

    LocalChunkStore store() {
        return store;
    }

    @Override
    public long storedBytes() {
        return store.storedBytes();
    }

    @Override
    public long chunkCount() {
        return store.chunkCount();
    }

    @Override
    public int packCount() {
        return store.packIds().size();
    }

    @Override
    public long fixedOverheadBytes() {
        return (long) PackFormat.PACK_HEADER * packCount();
    }

    /** Looks each id up in the index; a segment's length is shared by the chunks the index places in it. */
    @Override
    public Map<ChunkId, Long> storedBytes(Collection<ChunkId> ids) {
        Map<ChunkId, Long> out = new HashMap<>(ids.size() * 2);
        Map<Long, Integer> segmentChunks = new HashMap<>();
        Map<ChunkId, ChunkLocation> inSegments = new HashMap<>();
        for (ChunkId id : ids) {
            ChunkLocation loc = store.locate(id);
            if (loc == null) continue;
            if (loc.inSegment()) {
                inSegments.put(id, loc);
                segmentChunks.put(key(loc), 0);
            } else {
                out.put(id, (long) loc.length());
            }
        }
        if (!inSegments.isEmpty()) {
            store.forEachIndexEntry((id, loc) -> {
                if (loc.inSegment()) segmentChunks.computeIfPresent(key(loc), (k, n) -> n + 1);
            });
            for (Map.Entry<ChunkId, ChunkLocation> e : inSegments.entrySet()) {
                int n = Math.max(1, segmentChunks.get(key(e.getValue())));
                out.put(e.getKey(), (long) e.getValue().length() / n);
            }
        }
        return out;
    }

    private static long key(ChunkLocation loc) {
        return ((long) loc.pack() << 40) ^ loc.offset();
    }

    @Override
    public List<Integer> packIds() {
        return store.packIds();
    }

    @Override
    public void scanPack(int id, ScanSink sink, Progress progress) {
        store.scanPack(id, sink, progress);
    }

    @Override
    public void forEachIndexEntry(BiConsumer<ChunkId, ChunkLocation> sink) {
        store.forEachIndexEntry(sink);
    }

    @Override
    public ChunkLocation locate(ChunkId id) {
        return store.locate(id);
    }

    @Override
    public CaskException entryFault(ChunkId id, ChunkLocation loc, boolean deep) {
        return store.entryFault(id, loc, deep);
    }

    @Override
    public void checked(ChunkId id, ChunkLocation loc, CaskException fault) {
        store.checked(id, loc, fault);
    }

    @Override
    public List<Map.Entry<ChunkId, ChunkLocation>> damageMarks() {
        return store.damageMarks();
    }

    @Override
    public long rebuildIndex(Consumer<String> problems, Progress progress) {
        return store.rebuildIndex(problems, progress);
    }

    @Override
    public List<String> cutOnOpen() {
        return store.cutOnOpen();
    }

    @Override
    public GarbageCollector collector(Catalog catalog, JournalStore journals) {
        return new GarbageCollector(catalog, store, store, this, journals).remembering(marks);
    }
}
