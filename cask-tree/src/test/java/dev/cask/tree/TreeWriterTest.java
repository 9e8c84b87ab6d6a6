package dev.cask.tree;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Building trees: shape, sparseness, and the order rules of {@link TreeWriter}. */
class TreeWriterTest {
    private static final long TIB = 1L << 40;

    /** A plain in-memory store that counts what it is given. */
    static final class MemoryStore implements ChunkStore {
        final Map<ChunkId, byte[]> chunks = new ConcurrentHashMap<>();
        long puts;
        long bytesPut;

        @Override
        public ChunkId put(byte[] data, int off, int len) {
            if (len > MAX_CHUNK) throw new IllegalArgumentException("too big");
            byte[] copy = Arrays.copyOfRange(data, off, off + len);
            ChunkId id = ChunkId.of(copy);
            puts++;
            bytesPut += len;
            chunks.putIfAbsent(id, copy);
            return id;
        }

        @Override
        public byte[] get(ChunkId id) {
            byte[] b = chunks.get(id);
            if (b == null) throw new CaskException.NotFound("chunk " + id.hex());
            return b.clone();
        }

        @Override
        public boolean contains(ChunkId id) {
            return chunks.containsKey(id);
        }

        @Override
        public void list(Consumer<ChunkId> sink) {
            chunks.keySet().forEach(sink);
        }

        @Override
        public void sync() {}

        @Override
        public void close() {}
    }

    private static ChunkId data(MemoryStore store, int blockSize, long seed) {
        byte[] b = new byte[blockSize];
        new Random(seed).nextBytes(b);
        return store.put(b);
    }

    @Test
    void twoTebibyteSparseDiskWithThreeBlocksIsTinyAndHasDepthFive() {
        MemoryStore store = new MemoryStore();
        int bs = 4096;
        long size = 2 * TIB;
        long blocks = size / bs; // 2^29
        long[] at = {7, (1L << 28) + 12345, blocks - 1};
        Map<Long, ChunkId> ids = new TreeMap<>();
        for (long b : at) ids.put(b, data(store, bs, b));
        long dataPuts = store.puts;

        TreeWriter w = new TreeWriter(store, bs);
        // step through the disk: the data blocks, and zero ids handed in between (allowed, and free)
        long next = 0;
        for (var e : ids.entrySet()) {
            for (long z = next; z < e.getKey(); z += Math.max(1, (e.getKey() - next) / 1000)) w.add(z, ChunkId.ZERO);
            w.add(e.getKey(), e.getValue());
            next = e.getKey() + 1;
        }
        Root root = w.finish(size);

        assertEquals(size, root.size());
        assertEquals(bs, root.blockSize());
        assertEquals(5, root.depth(), "2^29 blocks need 128^5 = 2^35");
        // per level, one pointer chunk per distinct node on the three paths: 3 + 3 + 3 + 2 + 1
        assertEquals(12, store.puts - dataPuts, "pointer chunks stored");
        assertTrue(store.bytesPut - dataPuts * bs <= 12 * 4096L, "twelve pointer chunks of at most 4 KiB, got "
                + (store.bytesPut - dataPuts * bs) + " bytes");
        assertEquals(3 + 12, store.chunks.size(), "the store holds the three data blocks and the twelve pointer chunks, nothing for the holes");

        TreeReader r = new TreeReader(store, root, new PointerCache());
        for (long b : at) assertEquals(ids.get(b), r.leaf(b), "block " + b);
        for (long b : new long[]{0, 6, 8, 1L << 28, blocks - 2, blocks / 2}) assertTrue(r.leaf(b).isZero(), "block " + b + " is a hole");
        Map<Long, ChunkId> walked = new TreeMap<>();
        r.walk(0, blocks, walked::put);
        assertEquals(ids, walked);
    }

    @Test
    void sparseDiskIsTheSameTreeWhetherZeroIdsAreGivenOrLeftOut() {
        MemoryStore store = new MemoryStore();
        int bs = 8192;
        long size = 3L << 30;
        long[] at = {0, 1, 127, 128, 16383, 16384, 200_000, size / bs - 1};
        TreeWriter sparse = new TreeWriter(store, bs);
        for (long b : at) sparse.add(b, data(store, bs, b));
        TreeWriter dense = new TreeWriter(store, bs);
        int k = 0;
        for (long b = 0; b < size / bs; b++) {
            if (k < at.length && at[k] == b) {
                dense.add(b, data(store, bs, b));
                k++;
            } else if (b < 300_000 || b % 97 == 0) {
                dense.add(b, ChunkId.ZERO);
            }
        }
        assertEquals(sparse.finish(size), dense.finish(size));
    }

    @Test
    void blocksOutOfOrderAreRejected() {
        MemoryStore store = new MemoryStore();
        ChunkId a = data(store, 4096, 1);
        TreeWriter w = new TreeWriter(store, 4096);
        w.add(5, a);
        assertThrows(IllegalArgumentException.class, () -> w.add(5, a), "the same block twice");
        assertThrows(IllegalArgumentException.class, () -> w.add(4, a), "an earlier block");
        assertThrows(IllegalArgumentException.class, () -> w.add(3, ChunkId.ZERO), "an earlier hole");
        assertThrows(IllegalArgumentException.class, () -> w.add(-1, a), "a negative block");
        w.add(6, a);
        Root root = w.finish(7 * 4096);
        TreeReader r = new TreeReader(store, root, new PointerCache());
        assertEquals(a, r.leaf(5));
        assertEquals(a, r.leaf(6));
        assertTrue(r.leaf(4).isZero(), "the rejected adds changed nothing");
        assertTrue(r.leaf(3).isZero());
    }

    @Test
    void blockBeyondTheSizeIsRejectedAtFinish() {
        MemoryStore store = new MemoryStore();
        ChunkId a = data(store, 4096, 2);
        TreeWriter w = new TreeWriter(store, 4096);
        w.add(10, a);
        assertThrows(IllegalArgumentException.class, () -> w.finish(10 * 4096), "block 10 is the 11th block");
        TreeWriter z = new TreeWriter(store, 4096);
        z.add(10, ChunkId.ZERO);
        assertThrows(IllegalArgumentException.class, () -> z.finish(4096), "even a hole beyond the end is a caller bug");

        TreeWriter ok = new TreeWriter(store, 4096);
        ok.add(10, a);
        Root root = ok.finish(10 * 4096 + 1); // block 10 holds the last byte
        assertEquals(1, root.depth());
        assertEquals(a, new TreeReader(store, root, new PointerCache()).leaf(10));
    }

    @Test
    void emptyDiskHasTopZero() {
        MemoryStore store = new MemoryStore();
        Root empty = new TreeWriter(store, 4096).finish(0);
        assertEquals(Root.empty(0, 4096), empty);
        assertTrue(empty.top().isZero());
        assertEquals(0, empty.depth());
        assertEquals(0, store.puts, "an empty disk stores nothing");

        TreeWriter holes = new TreeWriter(store, 4096);
        for (long b = 0; b < 100_000; b += 7) holes.add(b, ChunkId.ZERO);
        Root allZero = holes.finish(1L << 30);
        assertEquals(Root.empty(1L << 30, 4096), allZero);
        assertEquals(3, allZero.depth());
        assertEquals(0, store.puts, "an all-zero disk stores nothing");
    }

    @Test
    void depthFollowsTheNumberOfBlocks() {
        MemoryStore store = new MemoryStore();
        int bs = 4096;
        ChunkId a = data(store, bs, 3);
        record Case(long size, int depth) {}
        for (Case c : List.of(new Case(1, 0), new Case(bs, 0), new Case(bs + 1, 1), new Case(128L * bs, 1),
                new Case(128L * bs + 1, 2), new Case(128L * 128 * bs, 2), new Case(128L * 128 * bs + 1, 3))) {
            TreeWriter w = new TreeWriter(store, bs);
            w.add(0, a);
            Root root = w.finish(c.size());
            assertEquals(c.depth(), root.depth(), "size " + c.size());
            assertEquals(a, new TreeReader(store, root, new PointerCache()).leaf(0), "size " + c.size());
            if (c.depth() == 0) assertEquals(a, root.top(), "a one-block disk's top is the data chunk itself");
        }
    }

    @Test
    void pointerChunksHoldIdsUpToTheLastNonZeroOne() {
        MemoryStore store = new MemoryStore();
        int bs = 4096;
        List<ChunkId> ids = new ArrayList<>();
        TreeWriter w = new TreeWriter(store, bs);
        for (int b = 0; b < 3; b++) {
            ids.add(data(store, bs, 10 + b));
            w.add(b, ids.get(b));
        }
        w.add(50, ChunkId.ZERO);
        Root root = w.finish(128L * bs);
        byte[] top = store.get(root.top());
        assertEquals(3 * ChunkId.LENGTH, top.length, "trailing holes are trimmed from a pointer chunk");
        for (int i = 0; i < 3; i++) assertTrue(ids.get(i).matches(top, i * ChunkId.LENGTH));

        TreeWriter gap = new TreeWriter(store, bs);
        gap.add(1, ids.getFirst());
        Root r2 = gap.finish(128L * bs);
        byte[] p = store.get(r2.top());
        assertEquals(2 * ChunkId.LENGTH, p.length, "a leading hole stays as a zero id");
        assertTrue(ChunkId.ZERO.matches(p, 0));
    }

    @Test
    void badBlockSizeIsRefused() {
        for (int bs : new int[]{0, 512, 4095, 6144, 2 << 20}) {
            assertThrows(CaskException.InvalidInput.class, () -> new TreeWriter(new MemoryStore(), bs), "block size " + bs);
        }
    }
}
