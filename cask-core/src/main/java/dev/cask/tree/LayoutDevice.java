package dev.cask.tree;

import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import dev.cask.device.Devices;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;

/**
 * A stored version (a {@link Layout} of trees) as a read-only {@link BlockDevice}: what export
 * and read-only NBD exports read. Holes (zero ids) read as zeros without touching the store,
 * and {@link #blockStatus} reports them as holes.
 *
 * <p>Reads larger than a few blocks fetch their chunks in parallel, in a few shares (one per
 * core at most, one of them in the calling thread) on the given executor: the store decompresses
 * and checks each chunk in the thread that asks, so a sequential export keeps every core busy,
 * while a read of cached chunks does not pay a task per chunk. Thread-safe.
 */
public final class LayoutDevice implements BlockDevice {
    private static final int PARALLEL_MIN_BLOCKS = 8;
    /** At most this many shares of one read run at once (the executor has a thread per core). */
    private static final int SLICES = Math.max(2, Runtime.getRuntime().availableProcessors());
    private final Layout layout;
    private final TreeReader[] readers;
    private final ChunkStore store;
    private final Executor executor;

    public LayoutDevice(ChunkStore store, Layout layout, PointerCache cache, Executor executor) {
        this.store = store;
        this.layout = layout;
        this.executor = executor;
        this.readers = layout.extents().stream().map(e -> new TreeReader(store, e.root(), cache)).toArray(TreeReader[]::new);
    }

    public Layout layout() {
        return layout;
    }

    @Override
    public long size() {
        return layout.size();
    }

    @Override
    public Capabilities capabilities() {
        int preferred = layout.extents().isEmpty() ? 4096 : layout.extents().getFirst().root().blockSize();
        return Capabilities.readOnly(preferred);
    }

    @Override
    public void read(long offset, byte[] buffer, int bufferOffset, int length) {
        BlockDevice.checkRange(this, offset, length);
        List<CompletableFuture<Void>> parallel = new ArrayList<>();
        long start = offset;
        layout.overlapping(offset, length, (i, e, from, to) ->
                readExtent(readers[i], e.offset(), from, to, buffer, bufferOffset + (int) (from - start), parallel));
        try {
            for (CompletableFuture<Void> f : parallel) f.join();
        } catch (CompletionException ce) {
            if (ce.getCause() instanceof RuntimeException re) throw re;
            throw ce;
        }
    }

    private void readExtent(TreeReader r, long base, long from, long to, byte[] buf, int bufOff,
                            List<CompletableFuture<Void>> parallel) {
        int bs = r.root().blockSize();
        long rel = from - base;
        long relEnd = to - base;
        long firstBlock = rel / bs;
        long lastBlock = (relEnd - 1) / bs;
        boolean par = lastBlock - firstBlock + 1 >= PARALLEL_MIN_BLOCKS;
        java.util.Arrays.fill(buf, bufOff, bufOff + (int) (to - from), (byte) 0);
        if (par) {
            List<ChunkId> ids = new ArrayList<>();
            r.walk(firstBlock, lastBlock + 1, (block, id) -> ids.add(id));
            store.prefetch(ids);
        }
        List<Runnable> copies = new ArrayList<>();
        r.walk(firstBlock, lastBlock + 1, (block, id) -> {
            long bStart = block * bs;
            long s = Math.max(bStart, rel);
            long t = Math.min(bStart + bs, relEnd);
            int dst = bufOff + (int) (s - rel);
            int srcOff = (int) (s - bStart);
            int n = (int) (t - s);
            if (par) copies.add(() -> copyChunk(id, bs, srcOff, buf, dst, n));
            else copyChunk(id, bs, srcOff, buf, dst, n);
        });
        if (copies.isEmpty()) return;
        // a few tasks of many chunks each, not a task per chunk: the caller's thread does one share
        int tasks = Math.min(SLICES, Math.max(1, copies.size() / PARALLEL_MIN_BLOCKS));
        int per = (copies.size() + tasks - 1) / tasks;
        for (int k = per; k < copies.size(); k += per) {
            List<Runnable> slice = copies.subList(k, Math.min(k + per, copies.size()));
            parallel.add(CompletableFuture.runAsync(() -> slice.forEach(Runnable::run), executor));
        }
        copies.subList(0, Math.min(per, copies.size())).forEach(Runnable::run);
    }

    private void copyChunk(ChunkId id, int blockSize, int srcOff, byte[] dst, int dstOff, int n) {
        byte[] data = store.get(id);
        if (data.length != blockSize) {
            throw new dev.cask.common.CaskException.Corrupt("data chunk " + id.shortHex() + ": " + data.length
                    + " bytes where the tree needs a block of " + blockSize);
        }
        System.arraycopy(data, srcOff, dst, dstOff, n);
    }

    @Override
    public List<BlockStatus> blockStatus(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        List<BlockStatus> out = new ArrayList<>();
        layout.overlapping(offset, length, (i, e, from, to) -> {
            int bs = e.root().blockSize();
            long[] pos = {from};
            readers[i].walk((from - e.offset()) / bs, (to - e.offset() - 1) / bs + 1, (block, id) -> {
                long s = Math.max(e.offset() + block * bs, pos[0]);
                long t = Math.min(e.offset() + (block + 1) * bs, to);
                if (s > pos[0]) out.add(new BlockStatus(pos[0], s - pos[0], true));
                out.add(new BlockStatus(s, t - s, false));
                pos[0] = t;
            });
            if (pos[0] < to) out.add(new BlockStatus(pos[0], to - pos[0], true));
        });
        return Devices.coalesce(out);
    }

    @Override
    public void close() {
        // nothing owned: the store and executor belong to the caller
    }
}
