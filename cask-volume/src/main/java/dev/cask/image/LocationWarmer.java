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
 * thread, prefetches of 1,024 chunks.
 *
 * <p>Subtrees, not trees: a pointer chunk names its whole subtree (ids are hashes of contents), so
 * a subtree warmed once is skipped when it turns up again, in a clone or in the next version of
 * the same image, whose trees share all but the paths to the blocks written since. A server opens
 * an image at every first connect and after every checkpoint the top is new: walking every leaf
 * again each time (up to millions per image) cost a served store tens of seconds of CPU an hour
 * beside its clients (lifecycle-bench, session 13). The set of warmed pointer chunks is bounded
 * ({@link #WARM_MAX_POINTERS}, then forgotten and started again); the store's location cache is
 * bounded too, so a subtree warmed long ago may have been evicted since: its first reads ask the
 * index, as they would without warming. It never changes what a read returns, and errors are
 * ignored (the read that needs the chunk reports them). Thread-safe.
 */
final class LocationWarmer implements AutoCloseable {
    private final ChunkStore store;
    private final PointerCache pointers;

    LocationWarmer(ChunkStore store, PointerCache pointers) {
        this.store = store;
        this.pointers = pointers;
    }

    /** Pointer chunks whose subtrees {@link #warm} looked up already (clones and later versions share them). */
    private final java.util.Set<dev.cask.store.ChunkId> warmed = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /** One background thread looks locations up, so a thousand images opened at once queue, not pile up. */
    private final ExecutorService warmer = Executors.newSingleThreadExecutor(Background.threads("cask-warm-index"));
    private static final int WARM_BATCH = 1024;
    /** Pointer chunks remembered as warmed (about 100 bytes each; 200,000 cover 25 million blocks). */
    static final int WARM_MAX_POINTERS = 200_000;
    private static final long WARM_MAX_LEAVES = 4L << 20;

    /** Warms {@code v}'s trees (see the class comment); returns at once. */
    void warm(Version v) {
        for (Layout.Extent e : Layout.decode(v.content()).extents()) {
            Root root = e.root();
            if (root.top().isZero()) continue;
            if (root.depth() == 0 || warmed.contains(root.top())) continue;
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
                        }, (level, first, id) -> {
                            if (warmed.size() >= WARM_MAX_POINTERS) warmed.clear();
                            return warmed.add(id); // a subtree warmed before is skipped
                        });
                        store.prefetch(batch);
                    } catch (java.util.concurrent.CancellationException enough) {
                        // warmed as far as it is worth (the subtree it stopped in counts as warmed)
                    } catch (RuntimeException ignored) {
                        warmed.clear(); // e.g. the store closed meanwhile: what was marked warmed may not be; reads report real errors
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException ignored) {
                return; // closing
            }
        }
    }

    /** Waits until every warm asked for before has run (tests). */
    void awaitIdle() throws InterruptedException, java.util.concurrent.ExecutionException {
        warmer.submit(() -> {}).get();
    }

    @Override
    public void close() {
        warmer.shutdownNow();
    }
}
