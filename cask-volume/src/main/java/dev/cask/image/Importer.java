package dev.cask.image;

import dev.cask.common.ByteArrays;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Devices;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.tree.Layout;
import dev.cask.tree.Root;
import dev.cask.tree.TreeWriter;
import dev.cask.device.SliceDevice;
import dev.cask.layout.LayoutPlanner;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;

/**
 * Turns a {@link BlockDevice} (or a raw byte stream) into a tree in the store.
 *
 * <p>One reader (the calling thread) reads batches of about 1 MiB of the device's data ranges,
 * skipping holes its allocation map reports; workers on the pool test each block for zeros and
 * put the others (hash, compress, append: all in the worker); the calling thread hands the ids
 * to the {@link TreeWriter} in block order. At most {@code 2 * threads + 2} batches are in
 * flight, so memory stays at a few MiB whatever the disk size; their buffers are recycled
 * ({@link ByteArrays}), since zeroing a fresh mebibyte per batch showed in import profiles.
 *
 * <p>The importer does not sync the store or touch the catalog: the caller syncs, then commits
 * the version, so a failed import leaves no visible image (its chunks are garbage for GC).
 */
public final class Importer {
    private static final int BATCH_BYTES = 1 << 20;
    private final ChunkStore store;
    private final ExecutorService pool;
    private final int inFlight;
    /** Non-zero bytes of the trees this importer made (what {@code Images.allocatedBytes} would count). */
    private long allocatedBytes;

    public Importer(ChunkStore store, ExecutorService pool, int threads) {
        this.store = store;
        this.pool = pool;
        this.inFlight = 2 * threads + 2;
    }

    /** Bytes of non-zero blocks in the trees imported so far, counted as they were stored (no tree walk). */
    public long allocatedBytes() {
        return allocatedBytes;
    }

    /** Imports the whole device as one tree of {@code blockSize} blocks. */
    public Layout importDevice(BlockDevice device, int blockSize, Progress progress) {
        return importDevice(device, LayoutPlanner.whole(device, blockSize), progress);
    }

    /** Imports the device as the layout {@code plan} describes: one tree per extent. */
    public Layout importDevice(BlockDevice device, List<LayoutPlanner.ExtentPlan> plan, Progress progress) {
        progress.start("import", device.size());
        List<Layout.Extent> extents = new ArrayList<>();
        for (LayoutPlanner.ExtentPlan e : plan) {
            try (SliceDevice slice = new SliceDevice(device, e.offset(), e.length())) {
                extents.add(new Layout.Extent(e.offset(), importTree(slice, e.blockSize(), progress)));
            }
        }
        progress.done();
        return new Layout(extents);
    }

    private Root importTree(BlockDevice device, int blockSize, Progress progress) {
        Root.checkBlockSize(blockSize);
        long size = device.size();
        Pipeline p = new Pipeline(blockSize, progress);
        try {
            long nextBlock = 0;
            final long window = 1L << 30;
            for (long w = 0; w < size; w += window) {
                long wlen = Math.min(window, size - w);
                for (BlockStatus st : device.blockStatus(w, wlen)) {
                    if (st.hole()) continue;
                    long b0 = Math.max(nextBlock, st.offset() / blockSize);
                    long b1 = (st.end() + blockSize - 1) / blockSize;
                    int perBatch = Math.max(1, BATCH_BYTES / blockSize);
                    for (long b = b0; b < b1; b += perBatch) {
                        long n = Math.min(perBatch, b1 - b);
                        long start = b * blockSize;
                        int avail = (int) Math.min(n * blockSize, size - start);
                        byte[] buf = ByteArrays.take((int) (n * blockSize)); // old bytes: read writes [0, avail)
                        if (avail < n * blockSize) java.util.Arrays.fill(buf, avail, (int) (n * blockSize), (byte) 0);
                        device.read(start, buf, 0, avail);
                        p.submit(b, buf, (int) n);
                    }
                    nextBlock = Math.max(nextBlock, b1);
                }
            }
            return p.finish(size);
        } catch (RuntimeException e) {
            p.cancel();
            throw e;
        }
    }

    /** Imports a raw stream to its end; the disk size is the number of bytes read. */
    public Layout importStream(InputStream in, String what, int blockSize, Progress progress) {
        Root.checkBlockSize(blockSize);
        Pipeline p = new Pipeline(blockSize, progress);
        progress.start("import", 0);
        long size = 0;
        long block = 0;
        int batch = Math.max(blockSize, BATCH_BYTES);
        try {
            while (true) {
                byte[] buf = ByteArrays.take(batch);
                int n = in.readNBytes(buf, 0, batch);
                if (n == 0) break;
                if (n < batch) java.util.Arrays.fill(buf, n, batch, (byte) 0); // the last block's tail
                size += n;
                int blocks = (n + blockSize - 1) / blockSize;
                p.submit(block, buf, blocks);
                block += blocks;
                if (n < batch) break;
            }
            Root root = p.finish(size);
            progress.done();
            return Layout.single(root);
        } catch (IOException e) {
            p.cancel();
            throw new CaskException.Io(what + ": read failed after " + size + " bytes: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            p.cancel();
            throw e;
        }
    }

    /** The ordered hand-over from workers to the tree writer. */
    private final class Pipeline {
        private record Batch(long firstBlock, int blocks, Future<ChunkId[]> ids) {}

        private final int blockSize;
        private final Progress progress;
        private final TreeWriter writer;
        private final ArrayDeque<Batch> queue = new ArrayDeque<>();
        private volatile boolean cancelled;

        Pipeline(int blockSize, Progress progress) {
            this.blockSize = blockSize;
            this.progress = progress;
            this.writer = new TreeWriter(store, blockSize);
        }

        void submit(long firstBlock, byte[] buf, int blocks) {
            Future<ChunkId[]> f = pool.submit(() -> {
                if (cancelled) throw new java.util.concurrent.CancellationException();
                ChunkId[] ids = new ChunkId[blocks];
                int[] data = new int[blocks];
                int n = 0;
                for (int i = 0; i < blocks; i++) {
                    if (Devices.isZero(buf, i * blockSize, blockSize)) ids[i] = ChunkId.ZERO;
                    else data[n++] = i * blockSize;
                }
                ChunkId[] stored = store.putAll(buf, java.util.Arrays.copyOf(data, n), blockSize);
                ByteArrays.give(buf); // the store keeps no reference (ChunkStore contract)
                for (int i = 0, j = 0; i < blocks; i++) if (ids[i] == null) ids[i] = stored[j++];
                return ids;
            });
            queue.add(new Batch(firstBlock, blocks, f));
            while (queue.size() > inFlight) drainOne();
        }

        private long done;
        private long nonZeroBlocks;

        private void drainOne() {
            Batch b = queue.poll();
            ChunkId[] ids;
            try {
                ids = b.ids().get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CaskException("import interrupted");
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                throw new CaskException("import failed: " + e.getCause(), e.getCause());
            }
            for (int i = 0; i < ids.length; i++) {
                if (!ids[i].isZero()) {
                    writer.add(b.firstBlock() + i, ids[i]);
                    nonZeroBlocks++;
                }
            }
            long start = b.firstBlock() * blockSize;
            long end = (b.firstBlock() + b.blocks()) * blockSize;
            if (start > done) progress.skip(start - done); // the holes before this batch
            progress.advance(Math.max(0, end - Math.max(start, done)));
            done = Math.max(done, end);
        }

        Root finish(long size) {
            while (!queue.isEmpty()) drainOne();
            progress.skip(Math.max(0, size - done)); // holes at the end
            allocatedBytes += Math.min(size, nonZeroBlocks * blockSize);
            return writer.finish(size);
        }

        /** Stops the workers and waits for them, so nothing writes to the store after a failed import. */
        void cancel() {
            cancelled = true;
            for (Batch b : queue) {
                try {
                    b.ids().get();
                } catch (Exception ignored) {
                    // the import already failed; this batch's outcome no longer matters
                }
            }
            queue.clear();
        }
    }

}
