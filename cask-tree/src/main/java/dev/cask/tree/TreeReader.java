package dev.cask.tree;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

/**
 * Reads one tree: finds the leaf id of a block, or walks the non-zero leaves of a range.
 * Pointer chunks come through a shared {@link PointerCache}, so walking a disk touches each
 * pointer chunk once and a random read costs at most {@code depth} cache lookups.
 *
 * <p>A pointer chunk whose length is not a multiple of 32 or over 4096 bytes is corrupt and
 * throws {@link CaskException.Corrupt} naming the chunk. Thread-safe (immutable state).
 */
public final class TreeReader {
    private final ChunkStore store;
    private final Root root;
    private final PointerCache cache;

    public TreeReader(ChunkStore store, Root root, PointerCache cache) {
        this.store = store;
        this.root = root;
        this.cache = cache;
    }

    public Root root() {
        return root;
    }

    /** The id of block {@code block}'s data chunk, ZERO for a hole. */
    public ChunkId leaf(long block) {
        if (block < 0 || block >= root.blockCount()) throw new IllegalArgumentException("block " + block + " outside tree of " + root.blockCount() + " blocks");
        ChunkId id = root.top();
        for (int level = root.depth() - 1; level >= 0 && !id.isZero(); level--) {
            byte[] p = pointers(id);
            int slot = (int) ((block >>> (Root.FANOUT_BITS * level)) & (Root.FANOUT - 1));
            id = slot * ChunkId.LENGTH < p.length ? ChunkId.fromBytes(p, slot * ChunkId.LENGTH) : ChunkId.ZERO;
        }
        return id;
    }

    /** Receives the non-zero leaves of a walk, in ascending block order. */
    @FunctionalInterface
    public interface LeafVisitor {
        void leaf(long block, ChunkId id);
    }

    /** Asked at every pointer chunk of a walk whether to walk its subtree (false: the walk skips it, leaves and all). */
    @FunctionalInterface
    public interface PointerVisitor {
        boolean enter(int level, long firstBlock, ChunkId id);
    }

    /** Visits the non-zero leaves of blocks {@code [from, to)} in order; zero subtrees are skipped whole. */
    public void walk(long from, long to, LeafVisitor leaves) {
        walk(from, to, leaves, null);
    }

    public void walk(long from, long to, LeafVisitor leaves, PointerVisitor pointers) {
        to = Math.min(to, root.blockCount());
        if (from >= to || root.top().isZero()) return;
        walk(root.top(), root.depth(), 0, from, to, leaves, pointers);
    }

    private void walk(ChunkId id, int level, long first, long from, long to, LeafVisitor leaves, PointerVisitor pointers) {
        if (level == 0) {
            leaves.leaf(first, id);
            return;
        }
        if (pointers != null && !pointers.enter(level - 1, first, id)) return;
        byte[] p = pointers(id);
        long span = 1L << (Root.FANOUT_BITS * (level - 1));
        int n = p.length / ChunkId.LENGTH;
        int lo = (int) Math.max(0, (from - first) / span);
        for (int slot = lo; slot < n; slot++) {
            long childFirst = first + slot * span;
            if (childFirst >= to) break;
            if (childFirst + span <= from) continue;
            if (isZero(p, slot)) continue;
            walk(ChunkId.fromBytes(p, slot * ChunkId.LENGTH), level - 1, childFirst, from, to, leaves, pointers);
        }
    }

    /** True when slot {@code slot} of pointer chunk {@code p} holds the zero id. */
    static boolean isZero(byte[] p, int slot) {
        int off = slot * ChunkId.LENGTH;
        for (int i = 0; i < ChunkId.LENGTH; i++) if (p[off + i] != 0) return false;
        return true;
    }

    private byte[] pointers(ChunkId id) {
        return pointerChunk(store, cache, id);
    }

    /**
     * The ids in pointer chunk {@code id}, through the cache. A chunk whose length is not 1 to
     * 128 whole ids is corrupt: {@link CaskException.Corrupt} naming it.
     */
    public static byte[] pointerChunk(ChunkStore store, PointerCache cache, ChunkId id) {
        byte[] p = cache.get(id);
        if (p == null) {
            p = store.get(id);
            if (p.length % ChunkId.LENGTH != 0 || p.length > Root.FANOUT * ChunkId.LENGTH || p.length == 0) {
                throw new CaskException.Corrupt("pointer chunk " + id.shortHex() + ": " + p.length + " bytes is not 1 to 128 chunk ids");
            }
            cache.put(id, p);
        }
        return p;
    }
}
