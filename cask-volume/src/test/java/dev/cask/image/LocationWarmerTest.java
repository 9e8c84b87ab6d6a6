package dev.cask.image;

import dev.cask.catalog.Version;
import dev.cask.catalog.sqlite.SqliteCatalog;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.tree.PointerCache;
import dev.cask.volume.FileLeases;
import dev.cask.volume.LocalJournals;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link LocationWarmer}: a version's first warm looks up every data chunk; the next version of
 * the same image (one block written) looks up only the subtree that changed, and a clone nothing.
 * Before subtrees were remembered, every open of a new version walked and prefetched every leaf
 * again (the first assertion on the second version failed with all 4,096).
 */
class LocationWarmerTest {
    @TempDir
    Path dir;

    /** Counts the ids handed to prefetch. */
    static final class Counting extends ImagePartsTest.Forwarding {
        final AtomicLong prefetched = new AtomicLong();
        final Set<ChunkId> seen = ConcurrentHashMap.newKeySet();

        Counting(ChunkStore inner) {
            super(inner);
        }

        @Override
        public void prefetch(java.util.Collection<ChunkId> ids) {
            prefetched.addAndGet(ids.size());
            seen.addAll(ids);
        }
    }

    @Test
    void warmsOnlySubtreesNotWarmedBefore() throws Exception {
        int blocks = 4096; // 16 MiB of 4 KiB blocks: 32 pointer chunks of 128 leaves under one top
        byte[] disk = new byte[blocks * 4096];
        new Random(5).nextBytes(disk);
        Counting store = new Counting(LocalChunkStore.open(dir.resolve("chunks"), LocalChunkStore.Options.defaults()));
        Path state = dir.resolve("state");
        try (Images images = new Images(new ImageParts(store, SqliteCatalog.open(dir.resolve("catalog.db")), new LocalJournals(state),
                new FileLeases(state), "test://store", List.of()));
             LocationWarmer warmer = new LocationWarmer(store, new PointerCache())) {
            images.importStream(new ByteArrayInputStream(disk), "vm", 4096, Progress.NONE);
            Version first = images.resolve("vm");
            warmer.warm(first);
            warmer.awaitIdle();
            assertEquals(blocks, store.prefetched.get(), "a first warm looks up every data chunk");

            byte[] patch = new byte[4096];
            new Random(6).nextBytes(patch);
            try (Volume v = images.openVolume("vm")) {
                v.write(1000L * 4096, patch, 0, patch.length, false); // one block, in the 8th subtree
                v.flush();
            }
            Version second = images.resolve("vm");
            assertTrue(second.number() > first.number());
            store.prefetched.set(0);
            store.seen.clear();
            warmer.warm(second);
            warmer.awaitIdle();
            assertEquals(128, store.prefetched.get(), "only the subtree holding the written block is looked up again");
            assertTrue(store.seen.contains(ChunkId.of(patch)), "the new block is among them");

            store.prefetched.set(0);
            warmer.warm(first); // an older version: every subtree warmed already
            warmer.warm(second);
            warmer.awaitIdle();
            assertEquals(0, store.prefetched.get());
        }
    }
}
