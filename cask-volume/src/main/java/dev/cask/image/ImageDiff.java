package dev.cask.image;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.tree.Layout;
import dev.cask.tree.PointerCache;
import dev.cask.tree.Root;
import dev.cask.tree.TreeReader;

import java.util.ArrayList;
import java.util.List;

/**
 * The byte ranges in which two versions differ, found by comparing their trees: never a data
 * chunk is read, and of the pointer chunks only those on paths where the trees differ.
 *
 * <p><b>Where the layouts line up</b> (an extent at the same offset with the same block size in
 * both versions: always so between versions of one image that was written, snapshotted or
 * resized, and between two imports of one disk with the same options), the two trees are walked
 * together: a subtree whose id is the same on both sides is equal and skipped whole, without
 * reading it; two ids that differ lead one level down. Trees of different depths (a resize) are
 * lined up by following slot 0 of the deeper one, whose other slots are compared with holes.
 * A block is reported when its two leaf ids differ; since an id is the hash of the block, that
 * is exactly when its bytes differ (a hole is a zero block). Cost: for k changed blocks, at
 * most k * depth pointer chunks per side, and far fewer when the changes cluster.
 *
 * <p><b>Elsewhere</b> (extents that do not line up: a re-import with another block size or a
 * different partition table), the leaf ids of both sides are read over the piece (pointer
 * chunks only) and a byte is reported unless both sides are holes there, or both hold the same
 * chunk at the same place in it. That may report bytes that are in fact equal (the same data cut
 * into blocks differently), never miss one that differs.
 *
 * <p>Past the end of the smaller version, it reads as zeros (as after a resize). Ranges are in
 * ascending order, adjacent ones merged, each at least one block long except at the disk's end.
 * Not thread-safe: one instance per comparison; {@link #pointerChunksRead} counts the pointer
 * chunks fetched from the store (cache misses of this instance's own cache).
 */
public final class ImageDiff {
    /** One changed byte range. */
    public record Range(long offset, long length) {
        public long end() {
            return offset + length;
        }
    }

    private static final long WINDOW_BLOCKS = 1 << 16;

    private final ChunkStore store;
    private final PointerCache cache = new PointerCache(4096);
    private final List<Range> out = new ArrayList<>();
    private long pointerChunksRead;

    public ImageDiff(ChunkStore store) {
        this.store = store;
    }

    /** Pointer chunks this diff fetched from the store so far. */
    public long pointerChunksRead() {
        return pointerChunksRead;
    }

    /** The byte ranges where {@code a} and {@code b} differ. */
    public List<Range> diff(Layout a, Layout b) {
        out.clear();
        long size = Math.max(a.size(), b.size());
        long at = 0;
        // pair extents that line up; everything between them is compared by leaf ids
        List<Layout.Extent> ea = a.extents();
        List<Layout.Extent> eb = b.extents();
        int i = 0;
        int j = 0;
        while (i < ea.size() && j < eb.size()) {
            Layout.Extent x = ea.get(i);
            Layout.Extent y = eb.get(j);
            if (x.offset() < y.offset()) {
                i++;
                continue;
            }
            if (y.offset() < x.offset()) {
                j++;
                continue;
            }
            if (x.root().blockSize() == y.root().blockSize()) {
                boolean bothLast = i == ea.size() - 1 && j == eb.size() - 1;
                long end = bothLast ? size : x.offset() + Math.min(x.length(), y.length());
                if (at < x.offset()) byLeaves(a, b, at, x.offset());
                compareTrees(x.offset(), x.root(), y.root(), end);
                at = end;
            }
            i++;
            j++;
        }
        if (at < size) byLeaves(a, b, at, size);
        return List.copyOf(out);
    }

    // ---- trees that line up ----

    private void compareTrees(long offset, Root x, Root y, long end) {
        int depth = Math.max(x.depth(), y.depth());
        Lined l = new Lined(offset, x.blockSize(), end);
        lift(x.top(), x.depth(), y.top(), y.depth(), depth, 0, l);
    }

    private record Lined(long offset, int blockSize, long end) {}

    /** Compares top {@code a} (depth {@code da}) with {@code b} (depth {@code db}) at the common level {@code level}. */
    private void lift(ChunkId a, int da, ChunkId b, int db, int level, long first, Lined l) {
        if (da == db) {
            compare(a, b, level, first, l);
            return;
        }
        if (a.equals(b) && a.isZero()) return;
        long span = 1L << (Root.FANOUT_BITS * (level - 1));
        if (da > db) {
            byte[] p = a.isZero() ? new byte[0] : pointers(a);
            lift(slot(p, 0), da - 1, b, db, level - 1, first, l);
            for (int s = 1; s < p.length / ChunkId.LENGTH; s++) compare(slot(p, s), ChunkId.ZERO, level - 1, first + s * span, l);
        } else {
            byte[] p = b.isZero() ? new byte[0] : pointers(b);
            lift(a, da, slot(p, 0), db - 1, level - 1, first, l);
            for (int s = 1; s < p.length / ChunkId.LENGTH; s++) compare(ChunkId.ZERO, slot(p, s), level - 1, first + s * span, l);
        }
    }

    /** Compares two subtrees of the same level covering the same blocks; equal ids are skipped unread. */
    private void compare(ChunkId a, ChunkId b, int level, long first, Lined l) {
        if (a.equals(b)) return;
        long from = l.offset() + first * l.blockSize();
        if (from >= l.end()) return;
        if (level == 0) {
            emit(from, Math.min(l.end(), from + l.blockSize()));
            return;
        }
        byte[] pa = a.isZero() ? new byte[0] : pointers(a);
        byte[] pb = b.isZero() ? new byte[0] : pointers(b);
        int n = Math.max(pa.length, pb.length) / ChunkId.LENGTH;
        long span = 1L << (Root.FANOUT_BITS * (level - 1));
        for (int s = 0; s < n; s++) compare(slot(pa, s), slot(pb, s), level - 1, first + s * span, l);
    }

    private static ChunkId slot(byte[] p, int s) {
        return (s + 1) * ChunkId.LENGTH <= p.length ? ChunkId.fromBytes(p, s * ChunkId.LENGTH) : ChunkId.ZERO;
    }

    private byte[] pointers(ChunkId id) {
        if (cache.get(id) == null) pointerChunksRead++;
        return TreeReader.pointerChunk(store, cache, id);
    }

    // ---- pieces that do not line up ----

    /** A non-zero leaf of one side over a byte range: {@code [from, to)} holds chunk {@code id} from its byte {@code at}. */
    private record Leaf(long from, long to, ChunkId id, long at) {}

    /** Compares {@code [from, to)} by the leaf ids of both sides, a window at a time. */
    private void byLeaves(Layout a, Layout b, long from, long to) {
        long window = WINDOW_BLOCKS * Root.MIN_BLOCK;
        for (long w = from; w < to; w += window) {
            long we = Math.min(to, w + window);
            List<Leaf> la = leaves(a, w, we);
            List<Leaf> lb = leaves(b, w, we);
            sweep(la, lb, w, we);
        }
    }

    private List<Leaf> leaves(Layout layout, long from, long to) {
        List<Leaf> leaves = new ArrayList<>();
        if (from >= layout.size()) return leaves;
        layout.overlapping(from, Math.min(to, layout.size()) - from, (index, e, f, t) -> {
            int bs = e.root().blockSize();
            long b0 = (f - e.offset()) / bs;
            long b1 = (t - e.offset() + bs - 1) / bs;
            TreeReader r = new TreeReader(store, e.root(), cache);
            r.walk(b0, b1, (block, id) -> {
                long start = e.offset() + block * bs;
                long lo = Math.max(start, f);
                long hi = Math.min(start + bs, t);
                if (lo < hi) leaves.add(new Leaf(lo, hi, id, lo - start));
            }, (level, first, id) -> {
                if (cache.get(id) == null) pointerChunksRead++;
                return true;
            });
        });
        return leaves;
    }

    /** Emits the parts of {@code [from, to)} where the two sides' leaves differ. */
    private void sweep(List<Leaf> la, List<Leaf> lb, long from, long to) {
        java.util.TreeSet<Long> cuts = new java.util.TreeSet<>();
        cuts.add(from);
        cuts.add(to);
        for (Leaf x : la) { cuts.add(x.from()); cuts.add(x.to()); }
        for (Leaf x : lb) { cuts.add(x.from()); cuts.add(x.to()); }
        int i = 0;
        int j = 0;
        Long prev = null;
        for (long c : cuts) {
            if (prev != null) {
                long s = prev;
                while (i < la.size() && la.get(i).to() <= s) i++;
                while (j < lb.size() && lb.get(j).to() <= s) j++;
                Leaf x = i < la.size() && la.get(i).from() <= s ? la.get(i) : null;
                Leaf y = j < lb.size() && lb.get(j).from() <= s ? lb.get(j) : null;
                boolean same = (x == null && y == null)
                        || (x != null && y != null && x.id().equals(y.id()) && x.at() + (s - x.from()) == y.at() + (s - y.from()));
                if (!same) emit(s, c);
            }
            prev = c;
        }
    }

    private void emit(long from, long to) {
        if (!out.isEmpty() && out.getLast().end() == from) {
            Range last = out.removeLast();
            out.add(new Range(last.offset(), to - last.offset()));
        } else {
            out.add(new Range(from, to - from));
        }
    }
}
