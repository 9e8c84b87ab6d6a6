package dev.cask.image;

import dev.cask.catalog.Version;
import dev.cask.common.Background;
import dev.cask.store.ChunkStore;
import dev.cask.tree.Layout;
import dev.cask.tree.PointerCache;
import dev.cask.tree.Root;
import dev.cask.tree.TreeReader;

import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Looks up, in the background, where every data chunk of a version is stored, and loads its
 * pointer chunks: the chunk store keeps those answers in memory ({@link ChunkStore#prefetch}), so
 * the first reads of a freshly opened image (a VM's boot) do not each wait for an index query. One
 * thread, prefetches of 1,024 chunks; a version whose trees were warmed before (a clone) costs
 * nothing. It never changes what a read returns, and errors are ignored (the read that needs the
 * chunk reports them). Thread-safe.
 */
final class LocationWarmer implements AutoCloseable {
    private final ChunkStore store;
    private final PointerCache pointers;

    LocationWarmer(ChunkStore store, PointerCache pointers) {
        this.store = store;
        this.pointers = pointers;
    }

    /** Tree tops whose index entries {@link #warm} looked up already (clones share them). */
    private final java.util.Set<dev.cask.store.ChunkId> warmed = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /** One background thread looks locations up, so a thousand images opened at once queue, not pile up. */
    private final ExecutorService warmer = Executors.newSingleThreadExecutor(Background.threads("cask-warm-index"));
    private static final int WARM_BATCH = 1024;
    private static final int WARM_MAX_TOPS = 100_000;
    private static final long WARM_MAX_LEAVES = 4L << 20;

    /** Warms {@code v}'s trees (see the class comment); returns at once. */
    void warm(Version v) {
        for (Layout.Extent e : Layout.decode(v.content()).extents()) {
            Root root = e.root();
            if (root.top().isZero()) continue;
            if (warmed.size() > WARM_MAX_TOPS) warmed.clear();
            if (!warmed.add(root.top())) continue;
            try {
                warmer.execute(() -> {
                    try {
                        List<dev.cask.store.ChunkId> batch = new java.util.ArrayList<>(WARM_BATCH);
                        long[] seen = {0};
                        // the first WARM_MAX_LEAVES data blocks of each extent: 16 GiB at 4 KiB, the
                        // location cache holds no more anyway (a single rejected-walk exception ends it)
                        new TreeReader(store, root, pointers).walk(0, Long.MAX_VALUE, (b, id) -> {
                            if (++seen[0] > WARM_MAX_LEAVES) throw new java.util.concurrent.CancellationException("enough");
                            batch.add(id);
                            if (batch.size() == WARM_BATCH) {
                                store.prefetch(batch);
                                batch.clear();
                            }
                        });
                        store.prefetch(batch);
                    } catch (java.util.concurrent.CancellationException enough) {
                        // warmed as far as it is worth
                    } catch (RuntimeException ignored) {
                        warmed.remove(root.top()); // e.g. the store closed meanwhile; reads report real errors
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException ignored) {
                return; // closing
            }
        }
    }

    @Override
    public void close() {
        warmer.shutdownNow();
    }
}
