package dev.cask.tree;

import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import dev.cask.device.Devices;
import dev.cask.device.ReadBuffer;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;

/**
 * A stored version (a {@link Layout} of trees) as a read-only {@link BlockDevice}: what export
 * and read-only NBD exports read, and what a live volume reads where its journal has nothing.
 * Holes (zero ids) read as zeros without touching the store, and {@link #blockStatus} reports
 * them as holes.
 *
 * <p><b>Live reads</b> (the {@linkplain #LayoutDevice(ChunkStore, Layout, PointerCache) plain
 * constructor}: an NBD client's reads) run whole in the calling thread: a read of a few blocks
 * takes each chunk through {@link ChunkStore#get} and its caches (the same few blocks are read
 * again and again, and a segment's neighbours come from the cache); a larger one hands all its
 * chunks to one {@link ChunkStore#getAll} ({@link ChunkStore.Reading#LIVE}), which reads
 * neighbouring records with one system call and checks each, where a chunk at a time cost a
 * system call, a CRC call, a cache lookup and two copies per 4 KiB (a 1 MiB read of unique data
 * ran at 0.4-0.5 x qemu-nbd). Not cut into shares on a worker pool: an NBD client that wants
 * throughput keeps several requests in flight, each on its own thread already, and the worker
 * pool is where a volume's checkpoint hashes and compresses, so a read's share waited behind a
 * whole checkpoint's queue (a read during a checkpoint of 512 MiB ran at a tenth of qemu-nbd's
 * speed).
 *
 * <p>A {@linkplain #streaming streaming} device (export, which reads every block once) cuts large
 * reads into a few shares (one per core at most, one of them in the calling thread) on the given
 * executor, each fetched with one {@link ChunkStore#getAll} ({@link ChunkStore.Reading#STREAM}):
 * the store decompresses and checks each chunk in the thread that asks, so a sequential export
 * keeps every core busy. Thread-safe.
 */
public final class LayoutDevice implements BlockDevice {
    /** Reads of at least this many blocks go through {@link ChunkStore#getAll}. */
    private static final int BULK_MIN_BLOCKS = 8;
    /** At most this many shares of one streaming read run at once (the executor has a thread per core). */
    private static final int SLICES = Math.max(2, Runtime.getRuntime().availableProcessors());
    private final Layout layout;
    private final TreeReader[] readers;
    private final ChunkStore store;
    private final Executor executor;
    private final boolean streaming;
    /** Most shares one read is cut into. */
    private final int slices;

    /** A live device: see the class essay. */
    public LayoutDevice(ChunkStore store, Layout layout, PointerCache cache) {
        this(store, layout, cache, Runnable::run, false, 1);
    }

    private LayoutDevice(ChunkStore store, Layout layout, PointerCache cache, Executor executor, boolean streaming, int slices) {
        this.store = store;
        this.layout = layout;
        this.executor = executor;
        this.streaming = streaming;
        this.slices = slices;
        this.readers = layout.extents().stream().map(e -> new TreeReader(store, e.root(), cache)).toArray(TreeReader[]::new);
    }

    /** The same version for one pass over the disk: large reads use {@link ChunkStore#getAll}, in shares on {@code executor}. */
    public static LayoutDevice streaming(ChunkStore store, Layout layout, PointerCache cache, Executor executor) {
        return new LayoutDevice(store, layout, cache, executor, true, SLICES);
    }

    /**
     * A streaming device whose every read runs whole in the calling thread, with one
     * {@link ChunkStore#getAll} per extent it covers: for a reader that runs several large reads
     * at once itself (raw export). Not cutting a read into shares means a stored segment the
     * read covers is decompressed once, not once per share.
     */
    public static LayoutDevice streamingInCaller(ChunkStore store, Layout layout, PointerCache cache) {
        return new LayoutDevice(store, layout, cache, Runnable::run, true, 1);
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
        read(offset, ReadBuffer.of(buffer), bufferOffset, length);
    }

    @Override
    public void read(long offset, java.nio.ByteBuffer buffer, int bufferIndex, int length) {
        BlockDevice.checkRange(this, offset, length);
        read(offset, ReadBuffer.of(buffer), bufferIndex, length);
    }

    /** Reads {@code [offset, offset+length)} into {@code buffer} from index {@code bufferOffset} (the range is checked). */
    public void read(long offset, ReadBuffer buffer, int bufferOffset, int length) {
        List<CompletableFuture<Void>> parallel = new ArrayList<>();
        long start = offset;
        RuntimeException failure = null;
        try {
            layout.overlapping(offset, length, (i, e, from, to) ->
                    readExtent(readers[i], e.offset(), from, to, buffer, bufferOffset + (int) (from - start), parallel));
        } catch (RuntimeException e) {
            failure = e;
        }
        // every share ends before the read does, failed or not: none may touch the store after its
        // caller gave up (and closed it), nor write into the caller's buffer later
        for (CompletableFuture<Void> f : parallel) {
            try {
                f.join();
            } catch (CompletionException ce) {
                if (failure == null) failure = ce.getCause() instanceof RuntimeException re ? re : ce;
            }
        }
        if (failure != null) throw failure;
    }

    private void readExtent(TreeReader r, long base, long from, long to, ReadBuffer buf, int bufOff,
                            List<CompletableFuture<Void>> parallel) {
        int bs = r.root().blockSize();
        long rel = from - base;
        long relEnd = to - base;
        long firstBlock = rel / bs;
        long lastBlock = (relEnd - 1) / bs;
        List<ChunkId> ids = new ArrayList<>();
        List<Long> blocks = new ArrayList<>();
        r.walk(firstBlock, lastBlock + 1, (block, id) -> {
            blocks.add(block);
            ids.add(id);
        });
        // zeros where no chunk is (holes); the chunks' bytes cover the rest
        long pos = rel;
        for (long b : blocks) {
            long s = Math.max(b * bs, rel);
            if (s > pos) buf.zero(bufOff + (int) (pos - rel), bufOff + (int) (s - rel));
            pos = Math.min((b + 1) * bs, relEnd);
        }
        if (pos < relEnd) buf.zero(bufOff + (int) (pos - rel), bufOff + (int) (relEnd - rel));
        if (ids.isEmpty()) return;
        Share whole = new Share(ids, blocks, bs, rel, relEnd, buf, bufOff);
        if (ids.size() < BULK_MIN_BLOCKS) {
            whole.copyOneByOne();
            return;
        }
        // a few shares of many chunks each, not a task per chunk: the caller's thread does one
        int tasks = Math.min(slices, Math.max(1, ids.size() / BULK_MIN_BLOCKS));
        int per = (ids.size() + tasks - 1) / tasks;
        for (int k = per; k < ids.size(); k += per) {
            Share s = whole.slice(k, Math.min(k + per, ids.size()));
            parallel.add(CompletableFuture.runAsync(s::copy, executor));
        }
        whole.slice(0, Math.min(per, ids.size())).copy();
    }

    /** Some of one read's non-zero blocks (ids.get(i) is block blocks.get(i)) and where they go in the buffer. */
    private final class Share {
        final List<ChunkId> ids;
        final List<Long> blocks;
        final int bs;
        final long rel;
        final long relEnd;
        final ReadBuffer buf;
        final int bufOff;

        Share(List<ChunkId> ids, List<Long> blocks, int bs, long rel, long relEnd, ReadBuffer buf, int bufOff) {
            this.ids = ids;
            this.blocks = blocks;
            this.bs = bs;
            this.rel = rel;
            this.relEnd = relEnd;
            this.buf = buf;
            this.bufOff = bufOff;
        }

        Share slice(int from, int to) {
            return new Share(ids.subList(from, to), blocks.subList(from, to), bs, rel, relEnd, buf, bufOff);
        }

        void copy() {
            store.getAll(ids, this::place, streaming ? ChunkStore.Reading.STREAM : ChunkStore.Reading.LIVE);
        }

        void copyOneByOne() {
            for (int i = 0; i < ids.size(); i++) {
                int at = i;
                store.get(ids.get(i), (k, data, off, len) -> place(at, data, off, len));
            }
        }

        /** Copies the part of block i that the read covers out of the chunk's bytes. */
        void place(int i, byte[] data, int off, int len) {
            if (len != bs) {
                throw new dev.cask.common.CaskException.Corrupt("data chunk " + ids.get(i).shortHex() + ": " + len
                        + " bytes where the tree needs a block of " + bs);
            }
            long bStart = blocks.get(i) * bs;
            long s = Math.max(bStart, rel);
            long t = Math.min(bStart + bs, relEnd);
            buf.put(bufOff + (int) (s - rel), data, off + (int) (s - bStart), (int) (t - s));
        }
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
