package dev.cask.tree;

import dev.cask.store.ScanSink;
import dev.cask.common.Progress;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import dev.cask.image.Importer;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import dev.cask.store.local.LocalChunkStore;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Model-based randomized test of import and read-back: random disks (a plain block map is the
 * model) go through {@link Importer#importDevice} into a real {@link LocalChunkStore}, then every
 * view of the resulting tree must agree with the model: bytes ({@link LayoutDevice#read}), the
 * allocation map ({@link LayoutDevice#blockStatus}), leaf ids ({@link TreeReader#leaf}) and what
 * the store holds (each distinct non-zero block once, no zero block ever).
 *
 * <p>The seed comes from {@code -Dcask.seed=N} or is random; every assertion message starts with
 * {@code seed=N iteration=I}, so a failure replays with {@code -Dcask.seed=N}.
 */
class TreeModelTest {
    private static final long SEED = seed();
    private static final int ITERATIONS = 70;
    private static final long TIB = 1L << 40;
    private static ExecutorService pool;

    @TempDir
    Path tmp;

    private static long seed() {
        String s = System.getProperty("cask.seed");
        return s != null && !s.isBlank() ? Long.parseLong(s.trim()) : new SecureRandom().nextLong();
    }

    @BeforeAll
    static void startPool() {
        pool = Executors.newFixedThreadPool(3);
    }

    @AfterAll
    static void stopPool() {
        pool.shutdownNow();
    }

    // ---------------------------------------------------------------- the model

    /** A disk: its size, block size, and the content of every non-zero block (padded to a full block with zeros). */
    record Disk(long size, int blockSize, TreeMap<Long, byte[]> blocks, String kind) {
        long blockCount() {
            return Root.blocks(size, blockSize);
        }

        /** The model's bytes of {@code [off, off+len)}. */
        void read(long off, byte[] buf, int bo, int len) {
            Arrays.fill(buf, bo, bo + len, (byte) 0);
            if (len == 0) return;
            long end = off + len;
            for (var e : blocks.subMap(off / blockSize, true, (end - 1) / blockSize, true).entrySet()) {
                long bStart = e.getKey() * blockSize;
                long s = Math.max(bStart, off);
                long t = Math.min(bStart + blockSize, end);
                System.arraycopy(e.getValue(), (int) (s - bStart), buf, bo + (int) (s - off), (int) (t - s));
            }
        }

        byte[] read(long off, int len) {
            byte[] b = new byte[len];
            read(off, b, 0, len);
            return b;
        }

        /** The allocation map a perfect device would report: data exactly where the non-zero blocks are. */
        List<BlockStatus> expectedStatus(long off, long len) {
            List<BlockStatus> out = new ArrayList<>();
            long end = off + len;
            long pos = off;
            long from = off / blockSize;
            for (long b : blocks.subMap(from, true, (end - 1) / blockSize, true).keySet()) {
                long s = Math.max(b * blockSize, off);
                long t = Math.min(Math.min((b + 1) * blockSize, size), end);
                if (s > pos) out.add(new BlockStatus(pos, s - pos, true));
                if (!out.isEmpty() && !out.getLast().hole() && out.getLast().end() == s) {
                    BlockStatus last = out.removeLast();
                    out.add(new BlockStatus(last.offset(), t - last.offset(), false));
                } else {
                    out.add(new BlockStatus(s, t - s, false));
                }
                pos = t;
            }
            if (pos < end) out.add(new BlockStatus(pos, end - pos, true));
            return out;
        }

        @Override
        public String toString() {
            return kind + " disk of " + size + " bytes, block size " + blockSize + ", " + blocks.size() + " non-zero blocks";
        }
    }

    private static byte[] blockContent(Random rnd, int bs, byte[][] patterns) {
        int k = rnd.nextInt(100);
        if (k < 30) return patterns[rnd.nextInt(patterns.length)].clone();
        byte[] b = new byte[bs];
        if (k < 65) {
            rnd.nextBytes(b);
        } else if (k < 82) {
            // mostly zero: a few bytes, often at the very edges where zero tests slip
            int n = 1 + rnd.nextInt(3);
            for (int i = 0; i < n; i++) {
                int at = switch (rnd.nextInt(3)) {
                    case 0 -> 0;
                    case 1 -> bs - 1;
                    default -> rnd.nextInt(bs);
                };
                b[at] = (byte) (1 + rnd.nextInt(255));
            }
        } else {
            byte[] unit = new byte[1 + rnd.nextInt(40)];
            rnd.nextBytes(unit);
            for (int i = 0; i < bs; i++) b[i] = unit[i % unit.length];
        }
        if (isZero(b)) b[rnd.nextInt(bs)] = 1;
        return b;
    }

    private static boolean isZero(byte[] b) {
        for (byte x : b) if (x != 0) return false;
        return true;
    }

    private static Disk randomDisk(Random rnd) {
        int bs = Root.MIN_BLOCK << rnd.nextInt(9); // 4K .. 1M
        byte[][] patterns = new byte[3][];
        for (int i = 0; i < patterns.length; i++) {
            patterns[i] = new byte[bs];
            if (i == 0) patterns[i][bs - 1] = 7; // a single byte at the end
            else if (i == 1) rnd.nextBytes(patterns[i]);
            else Arrays.fill(patterns[i], (byte) 0x5a);
        }
        TreeMap<Long, byte[]> blocks = new TreeMap<>();
        long size;
        String kind;
        if (rnd.nextInt(100) < 72) {
            kind = "dense";
            long cap = 4L << 20;
            List<Long> choices = new ArrayList<>(List.of(
                    1L + rnd.nextInt(bs - 1),                  // less than one block
                    (long) bs,                                 // exactly one block
                    (long) bs * (1 + rnd.nextInt(6)) + rnd.nextInt(bs), // a few blocks, ragged
                    1L + rnd.nextInt((int) cap)));             // anything up to 4 MiB
            if (128L * bs <= cap) {
                choices.add(128L * bs);                        // the largest depth-1 tree
                choices.add(128L * bs + 1 + rnd.nextInt(bs));  // the smallest depth-2 trees
            }
            size = choices.get(rnd.nextInt(choices.size()));
            long n = Root.blocks(size, bs);
            int zeroPercent = rnd.nextInt(70);
            for (long b = 0; b < n; b++) {
                if (rnd.nextInt(100) >= zeroPercent) blocks.put(b, blockContent(rnd, bs, patterns));
            }
        } else {
            kind = "sparse";
            size = switch (rnd.nextInt(3)) {
                case 0 -> 2 * TIB;
                case 1 -> 2 * TIB + 1 + rnd.nextInt(3 * bs);
                default -> (4L << 20) + (long) (rnd.nextDouble() * (64L << 30));
            };
            long n = Root.blocks(size, bs);
            int data = 1 + rnd.nextInt(6);
            for (int i = 0; i < data; i++) {
                long b = (long) (rnd.nextDouble() * n);
                blocks.put(Math.min(b, n - 1), blockContent(rnd, bs, patterns));
            }
            if (rnd.nextInt(3) == 0) blocks.put(0L, blockContent(rnd, bs, patterns));
            if (rnd.nextInt(3) == 0) blocks.put(n - 1, blockContent(rnd, bs, patterns));
            if (rnd.nextInt(3) == 0 && n > 1) blocks.put(1L + rnd.nextInt((int) Math.min(n - 1, 300)), patterns[1].clone());
        }
        // a disk has no bytes past its end: the last block is zero there
        long last = Root.blocks(size, bs) - 1;
        int tail = (int) (size - last * bs);
        byte[] lastBlock = blocks.get(last);
        if (lastBlock != null && tail < bs) {
            Arrays.fill(lastBlock, tail, bs, (byte) 0);
            if (isZero(lastBlock)) blocks.remove(last);
        }
        return new Disk(size, bs, blocks, kind);
    }

    // ---------------------------------------------------------------- the device the importer reads

    /**
     * The model as a {@link BlockDevice} whose allocation map is honest but untidy: every
     * non-zero byte lies in a data range, holes only ever cover zeros, yet data ranges often
     * claim zeros too, do not follow block boundaries, and entries are split at random points.
     */
    static class ModelDevice implements BlockDevice {
        private final Disk disk;
        private final TreeMap<Long, Long> data = new TreeMap<>(); // start -> end, merged
        private final TreeSet<Long> cuts = new TreeSet<>();

        ModelDevice(Disk disk, Random rnd) {
            this.disk = disk;
            int bs = disk.blockSize();
            long size = disk.size();
            List<long[]> ranges = new ArrayList<>();
            boolean dense = disk.kind().equals("dense");
            if (dense && rnd.nextInt(10) == 0) {
                ranges.add(new long[]{0, size}); // no allocation map at all: everything is data
            }
            for (var e : disk.blocks().entrySet()) {
                long base = e.getKey() * bs;
                byte[] c = e.getValue();
                int first = 0;
                while (c[first] == 0) first++;
                int lastNz = bs - 1;
                while (c[lastNz] == 0) lastNz--;
                long s = base + first;
                long t = base + lastNz + 1;
                switch (rnd.nextInt(5)) {
                    case 0, 1 -> { s = base; t = base + bs; }                        // the whole block
                    case 2 -> { s = s / 512 * 512; t = (t + 511) / 512 * 512; }      // sectors
                    case 3 -> { s -= rnd.nextInt(3 * bs); t += rnd.nextInt(3 * bs); } // spilling into neighbours
                    default -> { }                                                    // exactly the non-zero bytes
                }
                ranges.add(new long[]{Math.max(0, s), Math.min(size, t)});
            }
            int claims = rnd.nextInt(dense ? 6 : 4);
            for (int i = 0; i < claims; i++) {
                long s = (long) (rnd.nextDouble() * size);
                ranges.add(new long[]{s, Math.min(size, s + 1 + rnd.nextInt(3 * bs))});
            }
            ranges.sort((a, b) -> Long.compare(a[0], b[0]));
            for (long[] r : ranges) {
                if (r[0] >= r[1]) continue;
                var last = data.lastEntry();
                if (last != null && r[0] <= last.getValue()) {
                    data.put(last.getKey(), Math.max(last.getValue(), r[1]));
                } else {
                    data.put(r[0], r[1]);
                }
            }
            int n = rnd.nextInt(8);
            for (int i = 0; i < n; i++) cuts.add(1 + (long) (rnd.nextDouble() * (size - 1)));
        }

        @Override
        public long size() {
            return disk.size();
        }

        @Override
        public Capabilities capabilities() {
            return Capabilities.readOnly(disk.blockSize());
        }

        @Override
        public void read(long offset, byte[] buffer, int bufferOffset, int length) {
            BlockDevice.checkRange(this, offset, length);
            disk.read(offset, buffer, bufferOffset, length);
        }

        @Override
        public List<BlockStatus> blockStatus(long offset, long length) {
            BlockDevice.checkRange(this, offset, length);
            List<BlockStatus> out = new ArrayList<>();
            long end = offset + length;
            long pos = offset;
            Long startKey = data.floorKey(offset);
            var view = startKey == null ? data : data.tailMap(startKey, true);
            for (var e : view.entrySet()) {
                long s = e.getKey();
                long t = e.getValue();
                if (s >= end) break;
                if (t <= pos) continue;
                if (s > pos) emit(out, pos, s, true);
                long to = Math.min(t, end);
                emit(out, Math.max(s, pos), to, false);
                pos = to;
            }
            if (pos < end) emit(out, pos, end, true);
            return out;
        }

        private void emit(List<BlockStatus> out, long from, long to, boolean hole) {
            for (long c : cuts.subSet(from, false, to, false)) {
                out.add(new BlockStatus(from, c - from, hole));
                from = c;
            }
            out.add(new BlockStatus(from, to - from, hole));
        }

        /** Checks our own promise: a hole never covers a non-zero byte. */
        void checkHonest(String ctx) {
            for (BlockStatus st : blockStatus(0, disk.size())) {
                if (!st.hole()) continue;
                for (long b : disk.blocks().subMap(st.offset() / disk.blockSize(), true, (st.end() - 1) / disk.blockSize(), true).keySet()) {
                    long s = Math.max(st.offset(), b * disk.blockSize());
                    long t = Math.min(st.end(), (b + 1) * disk.blockSize());
                    assertTrue(isZero(disk.read(s, (int) (t - s))), ctx + ": test device reports a hole over data at " + s);
                }
            }
        }

        @Override
        public void close() {}
    }

    // ---------------------------------------------------------------- the test

    @Test
    void importedDisksReadBackExactlyLikeTheModel() {
        Random rnd = new Random(SEED);
        for (int it = 0; it < ITERATIONS; it++) {
            Disk disk = randomDisk(rnd);
            String ctx = "seed=" + SEED + " iteration=" + it + " (" + disk + ")";
            Path dir = tmp.resolve("store-" + it);
            LocalChunkStore store = LocalChunkStore.open(dir, LocalChunkStore.Options.defaults());
            try {
                ModelDevice device = new ModelDevice(disk, rnd);
                device.checkHonest(ctx);
                Layout layout = new Importer(store, pool, 3).importDevice(device, disk.blockSize(), Progress.NONE);
                store.sync();
                if (rnd.nextInt(3) == 0) { // read back through the index, not the in-memory pending map
                    store.close();
                    store = LocalChunkStore.open(dir, LocalChunkStore.Options.defaults());
                }
                checkTree(ctx, disk, layout, store, rnd);
                if (disk.kind().equals("dense")) checkStreamImport(ctx, disk, layout, store);
            } finally {
                store.close();
            }
        }
    }

    private void checkTree(String ctx, Disk disk, Layout layout, LocalChunkStore store, Random rnd) {
        int bs = disk.blockSize();
        assertEquals(1, layout.extents().size(), ctx + ": one extent");
        Root root = layout.extents().getFirst().root();
        assertEquals(disk.size(), root.size(), ctx + ": root size");
        assertEquals(disk.size(), layout.size(), ctx + ": layout size");
        assertEquals(bs, root.blockSize(), ctx + ": root block size");
        assertEquals(Root.depthFor(disk.size(), bs), root.depth(), ctx + ": root depth");
        assertEquals(disk.blocks().isEmpty(), root.top().isZero(), ctx + ": top is ZERO exactly when the disk is all zeros");

        // leaves: ZERO exactly for zero blocks, the block's hash otherwise (so identical blocks share an id)
        TreeReader reader = new TreeReader(store, root, new PointerCache(64));
        long n = disk.blockCount();
        Set<Long> probe = new TreeSet<>();
        if (n <= 4096) {
            for (long b = 0; b < n; b++) probe.add(b);
        } else {
            for (long b : disk.blocks().keySet()) {
                probe.add(b);
                if (b > 0) probe.add(b - 1);
                if (b + 1 < n) probe.add(b + 1);
            }
            probe.add(0L);
            probe.add(n - 1);
            for (int i = 0; i < 30; i++) probe.add((long) (rnd.nextDouble() * n));
        }
        for (long b : probe) {
            byte[] c = disk.blocks().get(b);
            ChunkId expected = c == null ? ChunkId.ZERO : ChunkId.of(c);
            assertEquals(expected, reader.leaf(b), ctx + ": leaf of block " + b);
        }

        // a walk finds exactly the non-zero blocks, in order; the store holds each distinct one once
        Map<Long, ChunkId> walked = new TreeMap<>();
        Set<ChunkId> pointerChunks = new HashSet<>();
        List<Long> order = new ArrayList<>();
        reader.walk(0, n, (block, id) -> {
            order.add(block);
            walked.put(block, id);
        }, (level, first, id) -> {
            pointerChunks.add(id);
            return true; // every subtree, also one whose pointer chunk was seen before (equal subtrees)
        });
        Map<Long, ChunkId> expectedLeaves = new TreeMap<>();
        Set<ChunkId> dataChunks = new HashSet<>();
        disk.blocks().forEach((b, c) -> {
            ChunkId id = ChunkId.of(c);
            expectedLeaves.put(b, id);
            dataChunks.add(id);
        });
        assertEquals(expectedLeaves, walked, ctx + ": leaves found by a walk");
        assertEquals(new ArrayList<>(expectedLeaves.keySet()), order, ctx + ": walk order");
        if (root.depth() == 0 || disk.blocks().isEmpty()) {
            assertEquals(Set.of(), pointerChunks, ctx + ": no pointer chunks");
        } else {
            assertTrue(pointerChunks.size() >= root.depth(), ctx + ": at least one pointer chunk per level, got " + pointerChunks.size());
        }

        Set<ChunkId> expectedChunks = new HashSet<>(dataChunks);
        expectedChunks.addAll(pointerChunks);
        List<ChunkId> listed = new ArrayList<>();
        store.list(listed::add);
        assertEquals(expectedChunks.size(), listed.size(), ctx + ": chunks in the store (" + dataChunks.size()
                + " distinct data blocks + " + pointerChunks.size() + " pointer chunks)");
        assertEquals(expectedChunks, new HashSet<>(listed), ctx + ": the store holds exactly the tree's chunks");
        assertFalse(store.contains(ChunkId.of(new byte[bs])), ctx + ": a zero block is never stored");
        assertEquals(listed.size(), recordsInPacks(store, ctx), ctx + ": each chunk is in the packs once");

        // bytes
        LayoutDevice dev = new LayoutDevice(store, layout, new PointerCache());
        assertEquals(disk.size(), dev.size(), ctx + ": device size");
        if (disk.size() <= (8L << 20)) {
            byte[] all = new byte[(int) disk.size()];
            java.util.Arrays.fill(all, (byte) 0x5a); // callers recycle buffers: a read writes every byte, holes too
            dev.read(0, all, 0, all.length);
            assertArrayEquals(disk.read(0, all.length), all, ctx + ": the whole disk");
            java.util.Arrays.fill(all, (byte) 0x5a);
            LayoutDevice.streaming(store, layout, new PointerCache(), pool).read(0, all, 0, all.length);
            assertArrayEquals(disk.read(0, all.length), all, ctx + ": the whole disk, streaming (export)");
            java.util.Arrays.fill(all, (byte) 0x5a);
            LayoutDevice.streamingInCaller(store, layout, new PointerCache()).read(0, all, 0, all.length);
            assertArrayEquals(disk.read(0, all.length), all, ctx + ": the whole disk, streaming in the caller (raw export)");
        }
        List<Long> interesting = new ArrayList<>(disk.blocks().keySet());
        for (int i = 0; i < 60; i++) {
            long off;
            int pick = rnd.nextInt(10);
            if (pick < 4 && !interesting.isEmpty()) {        // around a data block's edges
                long b = interesting.get(rnd.nextInt(interesting.size())) + rnd.nextInt(3) - 1;
                off = b * bs + rnd.nextInt(64) - 32;
            } else if (pick < 6) {                             // near the end
                off = disk.size() - rnd.nextInt(3 * bs);
            } else {
                off = (long) (rnd.nextDouble() * disk.size());
            }
            off = Math.max(0, Math.min(off, disk.size()));
            long room = disk.size() - off;
            int maxLen = rnd.nextInt(5) == 0 ? 16 * bs + 999 : 3 * bs + 17; // long reads take the parallel path
            int len = (int) Math.min(room, Math.min(rnd.nextInt(maxLen + 1), 6 << 20));
            byte[] got = new byte[len + 10];
            Arrays.fill(got, (byte) 0x77);
            dev.read(off, got, 5, len);
            byte[] expected = new byte[len + 10];
            Arrays.fill(expected, (byte) 0x77);
            disk.read(off, expected, 5, len);
            assertArrayEquals(expected, got, ctx + ": read of " + len + " bytes at " + off + " (and nothing around it)");
            // the same into a direct buffer (what the NBD server sends large replies from)
            java.nio.ByteBuffer direct = java.nio.ByteBuffer.allocateDirect(len + 10);
            for (int k = 0; k < len + 10; k++) direct.put(k, (byte) 0x77);
            dev.read(off, direct, 5, len);
            byte[] viaDirect = new byte[len + 10];
            direct.get(0, viaDirect);
            assertArrayEquals(expected, viaDirect, ctx + ": read of " + len + " bytes at " + off + " into a direct buffer");
        }

        // allocation map: holes are exactly the zero blocks
        assertEquals(disk.expectedStatus(0, disk.size()), dev.blockStatus(0, disk.size()), ctx + ": block status of the whole disk");
        for (int i = 0; i < 20; i++) {
            long off = (long) (rnd.nextDouble() * disk.size());
            if (!interesting.isEmpty() && rnd.nextBoolean()) {
                off = Math.min(disk.size() - 1, Math.max(0, interesting.get(rnd.nextInt(interesting.size())) * bs + rnd.nextInt(2 * bs) - bs));
            }
            long len = 1 + (long) (rnd.nextDouble() * Math.min(disk.size() - off, rnd.nextBoolean() ? 5L * bs : disk.size())) ;
            len = Math.min(len, disk.size() - off);
            assertEquals(disk.expectedStatus(off, len), dev.blockStatus(off, len), ctx + ": block status of " + off + "+" + len);
        }
    }

    private static long recordsInPacks(LocalChunkStore store, String ctx) {
        long[] records = {0};
        List<String> problems = new ArrayList<>();
        for (int p : store.packIds()) {
            store.scanPack(p, new ScanSink() {
                @Override
                public void chunk(ChunkId id, ChunkLocation location, java.util.function.Supplier<byte[]> plain) {
                    records[0]++;
                }

                @Override
                public void problem(String line) {
                    problems.add(line);
                }
            }, Progress.NONE);
        }
        assertEquals(List.of(), problems, ctx + ": pack problems");
        return records[0];
    }

    private void checkStreamImport(String ctx, Disk disk, Layout layout, LocalChunkStore store) {
        byte[] bytes = disk.read(0, (int) disk.size());
        long before = store.chunkCount();
        long packed = recordsInPacks(store, ctx);
        Layout streamed = new Importer(store, pool, 2).importStream(new ByteArrayInputStream(bytes), "model", disk.blockSize(), Progress.NONE);
        assertEquals(layout, streamed, ctx + ": importStream and importDevice of the same bytes give the same root");
        store.sync();
        assertEquals(before, store.chunkCount(), ctx + ": importing the same bytes again stores nothing new");
        assertEquals(packed, recordsInPacks(store, ctx), ctx + ": importing the same bytes again appends nothing");
    }

    // ---------------------------------------------------------------- edges the random disks rarely hit

    @Test
    void emptyDiskImportsAsAnEmptyTree() {
        String ctx = "seed=" + SEED;
        try (LocalChunkStore store = LocalChunkStore.open(tmp.resolve("empty"), LocalChunkStore.Options.defaults())) {
            Disk disk = new Disk(0, 4096, new TreeMap<>(), "empty");
            Layout a = new Importer(store, pool, 2).importDevice(new ModelDevice(disk, new Random(SEED)), 4096, Progress.NONE);
            Layout b = new Importer(store, pool, 2).importStream(new ByteArrayInputStream(new byte[0]), "empty", 4096, Progress.NONE);
            assertEquals(a, b, ctx);
            Root root = a.extents().getFirst().root();
            assertEquals(0, root.size(), ctx);
            assertTrue(root.top().isZero(), ctx + ": an empty disk has top ZERO");
            List<ChunkId> listed = new ArrayList<>();
            store.list(listed::add);
            assertEquals(List.of(), listed, ctx + ": an empty disk stores nothing");
            LayoutDevice dev = new LayoutDevice(store, a, new PointerCache());
            assertEquals(0, dev.size(), ctx);
            dev.read(0, new byte[0], 0, 0);
        }
    }

    @Test
    void allZeroDiskStoresNothingAndIsOneHole() {
        String ctx = "seed=" + SEED;
        Random rnd = new Random(SEED);
        try (LocalChunkStore store = LocalChunkStore.open(tmp.resolve("zero"), LocalChunkStore.Options.defaults())) {
            long size = (3L << 20) + 5;
            Disk disk = new Disk(size, 4096, new TreeMap<>(), "zero");
            // the device claims every byte is data: the importer must still find the zeros
            ModelDevice device = new ModelDevice(disk, rnd) {
                @Override
                public List<BlockStatus> blockStatus(long offset, long length) {
                    return List.of(new BlockStatus(offset, length, false));
                }
            };
            Layout layout = new Importer(store, pool, 2).importDevice(device, 4096, Progress.NONE);
            assertTrue(layout.extents().getFirst().root().top().isZero(), ctx + ": an all-zero disk has top ZERO");
            store.sync();
            assertEquals(0, store.chunkCount(), ctx + ": zero blocks cost nothing");
            LayoutDevice dev = new LayoutDevice(store, layout, new PointerCache());
            assertEquals(List.of(new BlockStatus(0, size, true)), dev.blockStatus(0, size), ctx);
            byte[] got = new byte[(int) size];
            Arrays.fill(got, (byte) 1);
            dev.read(0, got, 0, got.length);
            assertTrue(isZero(got), ctx + ": holes read as zeros");
        }
    }

    @Test
    void identicalBlocksAcrossDisksShareChunks() {
        String ctx = "seed=" + SEED;
        Random rnd = new Random(SEED);
        try (LocalChunkStore store = LocalChunkStore.open(tmp.resolve("dedup"), LocalChunkStore.Options.defaults())) {
            int bs = 4096;
            byte[] base = new byte[64 * bs];
            rnd.nextBytes(base);
            Importer importer = new Importer(store, pool, 3);
            Layout first = importer.importStream(new ByteArrayInputStream(base), "first", bs, Progress.NONE);
            store.sync();
            long chunks = store.chunkCount();
            byte[] clone = base.clone();
            clone[5 * bs + 100] ^= 1; // one changed block
            Layout second = importer.importStream(new ByteArrayInputStream(clone), "second", bs, Progress.NONE);
            store.sync();
            // one new data block plus one new top pointer chunk
            assertEquals(chunks + 2, store.chunkCount(), ctx + ": a disk differing in one block costs one block and one pointer chunk");
            Map<Long, ChunkId> a = new HashMap<>();
            Map<Long, ChunkId> b = new HashMap<>();
            new TreeReader(store, first.extents().getFirst().root(), new PointerCache()).walk(0, 64, a::put);
            new TreeReader(store, second.extents().getFirst().root(), new PointerCache()).walk(0, 64, b::put);
            for (long i = 0; i < 64; i++) {
                if (i == 5) assertFalse(a.get(i).equals(b.get(i)), ctx);
                else assertEquals(a.get(i), b.get(i), ctx + ": block " + i);
            }
        }
    }
}
