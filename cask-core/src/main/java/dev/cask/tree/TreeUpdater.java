package dev.cask.tree;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.util.Arrays;
import java.util.Map;
import java.util.NavigableMap;

/**
 * Makes a new tree from an old one and a set of changed leaves (copy-on-write): only the pointer
 * chunks on the paths to changed blocks are rewritten; every other subtree is shared with the
 * old tree. A changed leaf may be {@link ChunkId#ZERO} (the block became a hole); a pointer
 * chunk left with no non-zero id becomes a hole itself, and trailing zero ids are trimmed, so the
 * result is exactly the tree {@link TreeWriter} would build for the same content.
 *
 * <p>Cost: for k changed blocks, at most k * depth pointer chunks are read and written (far fewer
 * when the changes cluster). Not thread-safe; the caller passes a snapshot of its changes.
 */
public final class TreeUpdater {
    private final ChunkStore store;
    private final PointerCache cache;

    public TreeUpdater(ChunkStore store, PointerCache cache) {
        this.store = store;
        this.cache = cache;
    }

    /** The root of {@code root}'s tree with the leaves in {@code changes} (block index to id) replaced. */
    public Root update(Root root, NavigableMap<Long, ChunkId> changes) {
        if (changes.isEmpty()) return root;
        if (changes.firstKey() < 0 || changes.lastKey() >= root.blockCount()) {
            throw new IllegalArgumentException("changed block " + changes.lastKey() + " outside a tree of " + root.blockCount() + " blocks");
        }
        ChunkId top = update(root.top(), root.depth(), 0, changes);
        return new Root(root.size(), root.blockSize(), root.depth(), top);
    }

    private ChunkId update(ChunkId node, int level, long first, NavigableMap<Long, ChunkId> changes) {
        if (level == 0) return changes.firstEntry().getValue();
        long span = 1L << (Root.FANOUT_BITS * (level - 1));
        byte[] ids = new byte[Root.FANOUT * ChunkId.LENGTH];
        if (!node.isZero()) {
            byte[] old = TreeReader.pointerChunk(store, cache, node);
            System.arraycopy(old, 0, ids, 0, old.length);
        }
        long cursor = changes.firstKey();
        while (true) {
            Map.Entry<Long, ChunkId> e = changes.ceilingEntry(cursor);
            if (e == null) break;
            int slot = (int) ((e.getKey() - first) / span);
            if (slot >= Root.FANOUT) break;
            long childFirst = first + slot * span;
            NavigableMap<Long, ChunkId> sub = changes.subMap(childFirst, true, childFirst + span, false);
            ChunkId child = ChunkId.fromBytes(ids, slot * ChunkId.LENGTH);
            ChunkId updated = update(child, level - 1, childFirst, sub);
            updated.copyTo(ids, slot * ChunkId.LENGTH);
            cursor = childFirst + span;
        }
        int used = Root.FANOUT;
        while (used > 0 && TreeReader.isZero(ids, used - 1)) used--;
        if (used == 0) return ChunkId.ZERO;
        byte[] trimmed = Arrays.copyOf(ids, used * ChunkId.LENGTH);
        ChunkId id = store.put(trimmed);
        cache.put(id, trimmed);
        return id;
    }

}
