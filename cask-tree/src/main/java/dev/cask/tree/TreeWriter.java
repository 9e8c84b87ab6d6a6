package dev.cask.tree;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Builds a tree bottom-up from leaf ids given in ascending block order, storing each pointer
 * chunk as soon as it is complete. Memory is one pointer chunk per level (about 4 KiB times the
 * depth), whatever the disk size; holes cost nothing because only non-zero ids are added and a
 * pointer chunk with no non-zero id is never stored. The final size need not be known up front
 * (a raw stream from stdin): {@link #finish} picks the depth.
 *
 * <p>Level k's node n covers blocks {@code [n * 128^(k+1), (n+1) * 128^(k+1))}; a node is written
 * when an id for a later node of its level arrives, or at finish.
 *
 * <p>Not thread-safe: one writer per tree, fed in order.
 */
public final class TreeWriter {
    private final ChunkStore store;
    private final int blockSize;
    private final List<Level> levels = new ArrayList<>();
    private long lastBlock = -1;
    private ChunkId firstLeaf = ChunkId.ZERO;

    private static final class Level {
        long node;
        final byte[] ids = new byte[Root.FANOUT * ChunkId.LENGTH];
        int used; // slots up to the last non-zero one
    }

    public TreeWriter(ChunkStore store, int blockSize) {
        Root.checkBlockSize(blockSize);
        this.store = store;
        this.blockSize = blockSize;
    }

    public int blockSize() {
        return blockSize;
    }

    /** Records the leaf id of block {@code block}; blocks must ascend; zero ids may be left out. */
    public void add(long block, ChunkId id) {
        if (block <= lastBlock) throw new IllegalArgumentException("block " + block + " after block " + lastBlock);
        lastBlock = block;
        if (id.isZero()) return;
        if (block == 0) firstLeaf = id;
        push(0, block >>> Root.FANOUT_BITS, (int) (block & (Root.FANOUT - 1)), id);
    }

    private void push(int k, long node, int slot, ChunkId id) {
        while (levels.size() <= k) {
            Level l = new Level();
            l.node = levels.isEmpty() ? 0 : -1;
            levels.add(l);
        }
        Level level = levels.get(k);
        if (level.node != node) {
            if (level.used > 0) flush(k);
            level.node = node;
        }
        id.copyTo(level.ids, slot * ChunkId.LENGTH);
        level.used = Math.max(level.used, slot + 1);
    }

    /** Stores level k's pointer chunk and hands its id to level k+1. */
    private void flush(int k) {
        Level level = levels.get(k);
        ChunkId id = store.put(level.ids, 0, level.used * ChunkId.LENGTH);
        long node = level.node;
        Arrays.fill(level.ids, 0, level.used * ChunkId.LENGTH, (byte) 0);
        level.used = 0;
        push(k + 1, node >>> Root.FANOUT_BITS, (int) (node & (Root.FANOUT - 1)), id);
    }

    /** Completes the tree for a disk of {@code size} bytes; every added block must lie inside it. */
    public Root finish(long size) {
        long blocks = Root.blocks(size, blockSize);
        if (lastBlock >= blocks) throw new IllegalArgumentException("block " + lastBlock + " beyond a disk of " + size + " bytes");
        int depth = Root.depthFor(size, blockSize);
        if (depth == 0) return new Root(size, blockSize, 0, firstLeaf);
        // Flush every level below the top; each flush may cascade upwards.
        for (int k = 0; k < depth - 1; k++) {
            if (k < levels.size() && levels.get(k).used > 0) flush(k);
        }
        ChunkId top = ChunkId.ZERO;
        if (depth - 1 < levels.size()) {
            Level l = levels.get(depth - 1);
            if (l.used > 0) top = store.put(l.ids, 0, l.used * ChunkId.LENGTH);
        }
        return new Root(size, blockSize, depth, top);
    }
}
