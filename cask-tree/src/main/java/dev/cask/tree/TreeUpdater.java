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
 *
 * <p><b>Resize</b> ({@link #resize(Layout, long)}) keeps the same canonical form. Growing a tree
 * from depth d to d' puts the old top in slot 0 of d' - d new pointer chunks of one id each (what
 * {@link TreeWriter} builds for a disk whose blocks past 128^d are zero): no data is read or
 * written. Shrinking takes the slot-0 chain down to the new depth, then writes every non-zero leaf
 * at or past the new block count as a hole; when the new end cuts a block, that block is
 * rewritten with zeros after the end, so that the padding of a last block is always zero and a
 * later grow reads zeros there. Extents wholly past the new end are dropped; a grow lengthens the
 * last extent.
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


    /** The layout cut or extended to {@code newSize} bytes (see the class comment). */
    public Layout resize(Layout layout, long newSize) {
        if (newSize <= 0) throw new IllegalArgumentException("new size " + newSize);
        java.util.List<Layout.Extent> out = new java.util.ArrayList<>();
        for (Layout.Extent e : layout.extents()) {
            if (e.offset() >= newSize) break;
            boolean last = e == layout.extents().getLast();
            long end = last ? newSize : Math.min(e.end(), newSize);
            out.add(new Layout.Extent(e.offset(), resize(e.root(), end - e.offset())));
        }
        return new Layout(out);
    }

    /** The tree of {@code root} with size {@code newSize}: zeros past the old end, or the blocks past the new end dropped. */
    public Root resize(Root root, long newSize) {
        int bs = root.blockSize();
        int depth = Root.depthFor(newSize, bs);
        ChunkId top = root.top();
        if (newSize >= root.size()) {
            for (int d = root.depth(); d < depth && !top.isZero(); d++) {
                byte[] one = top.toBytes();
                top = store.put(one);
                cache.put(top, one);
            }
            return new Root(newSize, bs, depth, top);
        }
        for (int d = root.depth(); d > depth && !top.isZero(); d--) {
            byte[] p = TreeReader.pointerChunk(store, cache, top);
            top = ChunkId.fromBytes(p, 0);
        }
        // the subtree of the new depth covers 128^depth blocks; drop every leaf at or past the new end
        long capacity = 1L << (Root.FANOUT_BITS * depth);
        long keep = Root.blocks(newSize, bs);
        java.util.TreeMap<Long, ChunkId> changes = new java.util.TreeMap<>();
        if (!top.isZero() && keep < capacity) {
            walkFrom(top, depth, 0, keep, changes);
        }
        int tail = (int) (newSize % bs);
        if (tail != 0 && !top.isZero()) {
            ChunkId lastLeaf = leafOf(top, depth, keep - 1);
            if (!lastLeaf.isZero()) {
                byte[] b = java.util.Arrays.copyOf(store.get(lastLeaf), bs);
                java.util.Arrays.fill(b, tail, bs, (byte) 0);
                boolean zero = true;
                for (byte x : b) if (x != 0) { zero = false; break; }
                changes.put(keep - 1, zero ? ChunkId.ZERO : store.put(b));
            }
        }
        if (!changes.isEmpty()) top = update(top, depth, 0, changes);
        return new Root(newSize, bs, depth, top);
    }

    /** Adds a hole for every non-zero leaf at or after block {@code from} of the subtree {@code node}. */
    private void walkFrom(ChunkId node, int level, long first, long from, java.util.Map<Long, ChunkId> changes) {
        if (level == 0) {
            if (first >= from) changes.put(first, ChunkId.ZERO);
            return;
        }
        byte[] p = TreeReader.pointerChunk(store, cache, node);
        long span = 1L << (Root.FANOUT_BITS * (level - 1));
        for (int slot = 0; slot < p.length / ChunkId.LENGTH; slot++) {
            long childFirst = first + slot * span;
            if (childFirst + span <= from || TreeReader.isZero(p, slot)) continue;
            walkFrom(ChunkId.fromBytes(p, slot * ChunkId.LENGTH), level - 1, childFirst, from, changes);
        }
    }

    private ChunkId leafOf(ChunkId id, int depth, long block) {
        for (int level = depth - 1; level >= 0 && !id.isZero(); level--) {
            byte[] p = TreeReader.pointerChunk(store, cache, id);
            int slot = (int) ((block >>> (Root.FANOUT_BITS * level)) & (Root.FANOUT - 1));
            id = slot * ChunkId.LENGTH < p.length ? ChunkId.fromBytes(p, slot * ChunkId.LENGTH) : ChunkId.ZERO;
        }
        return id;
    }
}
