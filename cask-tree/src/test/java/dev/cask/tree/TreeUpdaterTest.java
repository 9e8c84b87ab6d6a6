package dev.cask.tree;

import dev.cask.store.ChunkId;
import dev.cask.store.local.LocalChunkStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Random;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Copy-on-write updates give exactly the tree a fresh build of the same leaves gives (same top
 * id), for sparse and dense changes, holes punched, and huge sparse disks. Seeded (-Dcask.seed).
 */
class TreeUpdaterTest {
    @TempDir
    Path dir;

    @Test
    void updatedTreesEqualFreshlyBuiltOnes() {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        try (LocalChunkStore store = LocalChunkStore.open(dir.resolve("s"), LocalChunkStore.Options.defaults())) {
            PointerCache cache = new PointerCache();
            ChunkId[] pool = new ChunkId[16];
            for (int i = 0; i < pool.length; i++) pool[i] = store.put(new byte[]{(byte) i, 1, 2, 3});
            for (int iter = 0; iter < 60; iter++) {
                long size = rnd.nextInt(4) == 0 ? (2L << 40) : 4096L * (1 + rnd.nextInt(40_000));
                long blocks = Root.blocks(size, 4096);
                TreeMap<Long, ChunkId> content = new TreeMap<>();
                int n = rnd.nextInt(300);
                for (int i = 0; i < n; i++) content.put(Math.floorMod(rnd.nextLong(), blocks), pool[rnd.nextInt(pool.length)]);
                Root before = build(store, content, size);
                TreeMap<Long, ChunkId> changes = new TreeMap<>();
                int k = rnd.nextInt(200);
                for (int i = 0; i < k; i++) {
                    long b = Math.floorMod(rnd.nextLong(), blocks);
                    Long existing = content.ceilingKey(b);
                    if (rnd.nextBoolean() && existing != null) b = existing; // often change blocks that hold data
                    changes.put(b, rnd.nextInt(3) == 0 ? ChunkId.ZERO : pool[rnd.nextInt(pool.length)]);
                }
                Root updated = new TreeUpdater(store, cache).update(before, changes);
                TreeMap<Long, ChunkId> after = new TreeMap<>(content);
                changes.forEach((b, id) -> {
                    if (id.isZero()) after.remove(b);
                    else after.put(b, id);
                });
                assertEquals(build(store, after, size), updated, "seed=" + seed + " iteration=" + iter + " size=" + size);
            }
        }
    }

    private static Root build(LocalChunkStore store, TreeMap<Long, ChunkId> leaves, long size) {
        TreeWriter w = new TreeWriter(store, 4096);
        leaves.forEach(w::add);
        return w.finish(size);
    }
}
