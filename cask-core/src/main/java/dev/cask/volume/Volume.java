package dev.cask.volume;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Image;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import dev.cask.device.Devices;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.tree.Layout;
import dev.cask.tree.LayoutDevice;
import dev.cask.tree.PointerCache;
import dev.cask.tree.TreeReader;
import dev.cask.tree.TreeUpdater;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.Executor;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An image opened for live reads and writes: its head version's trees, the blocks written since
 * (the dirty map: block to chunk id, per extent), and the journal that makes them durable.
 *
 * <p><b>Writes.</b> A write puts each touched block into the store as a chunk (a partial block
 * is read, patched and put whole) and records "block -> id" in the dirty map and the journal.
 * Readers see it at once. Zeroing and trimming whole blocks record the zero id (a hole).
 *
 * <p><b>Durability.</b> {@link #flush} syncs the chunk store, then the journal: after it returns
 * every completed write survives a crash. A FUA write flushes before returning. A crash before a
 * flush loses only unflushed writes, each block old or new, never torn: a block's mapping is one
 * journal record, and replay ignores records whose chunk never reached the store.
 *
 * <p><b>Checkpoints.</b> {@link #checkpoint} snapshots the dirty map, writes the changed tree paths
 * ({@link TreeUpdater}), syncs the store and commits a version by compare-and-swap on the head;
 * then the dirty entries it covered are dropped and the journal starts a new generation holding
 * only the writes that arrived meanwhile. Writes go on during a checkpoint.
 *
 * <p><b>Lease.</b> A volume holds an exclusive lock on {@code journals/NAME.lease} while open:
 * a second read-write open of the image from another process fails with a Conflict.
 *
 * <p>Thread-safe: several NBD connections share one volume. Writes to the same block are
 * serialised by striped locks; a checkpoint is serialised with other checkpoints.
 */
public final class Volume implements BlockDevice {
    private static final int STRIPES = 256;

    private final String image;
    private final ChunkStore store;
    private final Catalog catalog;
    private final PointerCache cache;
    private final Executor executor;
    private final Path journalPath;
    private final FileChannel leaseChannel;
    private final FileLock lease;
    private final ReentrantLock[] stripes = new ReentrantLock[STRIPES];
    private final ReentrantLock checkpointLock = new ReentrantLock();
    /** Reads and writes hold it shared; a checkpoint holds it exclusively while it swaps base, dirty map and journal. */
    private final java.util.concurrent.locks.ReentrantReadWriteLock swap = new java.util.concurrent.locks.ReentrantReadWriteLock();
    private final List<ConcurrentSkipListMap<Long, ChunkId>> dirty = new ArrayList<>();

    private volatile Base base;
    private volatile Journal journal;
    private volatile boolean closed;

    /** The committed state writes are layered on. */
    private record Base(Version version, Layout layout, TreeReader[] readers, LayoutDevice device) {}

    private Volume(String image, ChunkStore store, Catalog catalog, PointerCache cache, Executor executor,
                   Path journalDir, FileChannel leaseChannel, FileLock lease) {
        this.image = image;
        this.store = store;
        this.catalog = catalog;
        this.cache = cache;
        this.executor = executor;
        this.journalPath = journalDir.resolve(fileName(image) + ".journal");
        this.leaseChannel = leaseChannel;
        this.lease = lease;
        for (int i = 0; i < STRIPES; i++) stripes[i] = new ReentrantLock();
    }

    /** True when some process (this one included) holds {@code image}'s lease: it is open read-write. */
    public static boolean isLeased(Path journalDir, String image) {
        Path p = journalDir.resolve(fileName(image) + ".lease");
        if (!Files.exists(p)) return false;
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            FileLock lk = ch.tryLock();
            if (lk == null) return true;
            lk.release();
            return false;
        } catch (OverlappingFileLockException e) {
            return true;
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot check its lease " + p + ": " + e.getMessage(), e);
        }
    }

    /** Journal and lease file names: the image name with '/' spelled '+' (not allowed in names). */
    static String fileName(String image) {
        return image.replace('/', '+');
    }

    /**
     * Opens {@code image} for writing: takes the lease, loads the head, and replays a journal left
     * by a crash (dropping records whose chunk the store lacks).
     */
    public static Volume open(String image, ChunkStore store, Catalog catalog, PointerCache cache, Executor executor, Path journalDir) {
        Image img = catalog.image(image);
        FileChannel ch;
        FileLock lk;
        try {
            Files.createDirectories(journalDir);
            ch = FileChannel.open(journalDir.resolve(fileName(image) + ".lease"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            try {
                lk = ch.tryLock();
            } catch (OverlappingFileLockException e) {
                lk = null;
            }
            if (lk == null) {
                ch.close();
                throw new CaskException.Conflict("image '" + image + "': already open read-write (served by another cask process?)");
            }
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot take its lease in " + journalDir + ": " + e.getMessage(), e);
        }
        Volume v = new Volume(image, store, catalog, cache, executor, journalDir, ch, lk);
        try {
            v.load(catalog.version(image, img.head()));
            v.recover();
            return v;
        } catch (RuntimeException e) {
            v.releaseLease();
            throw e;
        }
    }

    private void load(Version head) {
        Layout layout = Layout.decode(head.content());
        TreeReader[] readers = layout.extents().stream().map(e -> new TreeReader(store, e.root(), cache)).toArray(TreeReader[]::new);
        base = new Base(head, layout, readers, new LayoutDevice(store, layout, cache, executor));
        while (dirty.size() < layout.extents().size()) dirty.add(new ConcurrentSkipListMap<>());
    }

    private void recover() {
        Journal.Contents old = Journal.replay(journalPath, image);
        List<Journal.Entry> kept = new ArrayList<>();
        if (old != null) {
            for (Journal.Entry e : old.entries()) {
                if (e.extent() < 0 || e.extent() >= dirty.size() || e.block() < 0
                        || e.block() >= base.layout().extents().get(e.extent()).root().blockCount()) {
                    throw new CaskException.Corrupt("journal " + journalPath + ": record for extent " + e.extent() + " block " + e.block()
                            + " does not fit image '" + image + "'");
                }
                // an unflushed write whose chunk never became durable: the block keeps its old content
                if (!e.id().isZero() && !store.contains(e.id())) continue;
                dirty.get(e.extent()).put(e.block(), e.id());
                kept.add(e);
            }
        }
        journal = Journal.create(journalPath, image, base.version().number(), kept, null);
    }

    public String image() {
        return image;
    }

    /** The version the volume's writes are layered on (the last checkpoint). */
    public Version baseVersion() {
        return base.version();
    }

    public boolean isDirty() {
        for (var m : dirty) if (!m.isEmpty()) return true;
        return false;
    }

    @Override
    public long size() {
        return base.layout().size();
    }

    @Override
    public Capabilities capabilities() {
        int bs = base.layout().extents().isEmpty() ? 4096 : base.layout().extents().getFirst().root().blockSize();
        return new Capabilities(true, true, true, true, true, true, true, true, 1, bs, 32 << 20);
    }

    // ------------------------------------------------------------------ reading

    @Override
    public void read(long offset, byte[] buffer, int bufferOffset, int length) {
        BlockDevice.checkRange(this, offset, length);
        swap.readLock().lock();
        try {
            checkOpen();
            readLocked(offset, buffer, bufferOffset, length);
        } finally {
            swap.readLock().unlock();
        }
    }

    private void readLocked(long offset, byte[] buffer, int bufferOffset, int length) {
        Base b = base;
        b.layout().overlapping(offset, length, (i, e, from, to) ->
                readExtent(b, i, from, to, buffer, bufferOffset + (int) (from - offset)));
    }

    private void readExtent(Base b, int ext, long from, long to, byte[] buf, int bufOff) {
        Layout.Extent e = b.layout().extents().get(ext);
        int bs = e.root().blockSize();
        ConcurrentSkipListMap<Long, ChunkId> d = dirty.get(ext);
        long firstBlock = (from - e.offset()) / bs;
        long lastBlock = (to - e.offset() - 1) / bs;
        if (d.subMap(firstBlock, true, lastBlock, true).isEmpty()) {
            // nothing written here since the checkpoint: the tree alone answers (in parallel)
            b.device().read(from, buf, bufOff, (int) (to - from));
            return;
        }
        for (long blk = firstBlock; blk <= lastBlock; blk++) {
            long bStart = e.offset() + blk * bs;
            long s = Math.max(bStart, from);
            long t = Math.min(bStart + bs, to);
            ChunkId id = d.get(blk);
            int dst = bufOff + (int) (s - from);
            if (id == null) {
                b.device().read(s, buf, dst, (int) (t - s));
            } else if (id.isZero()) {
                java.util.Arrays.fill(buf, dst, dst + (int) (t - s), (byte) 0);
            } else {
                byte[] data = store.get(id);
                System.arraycopy(data, (int) (s - bStart), buf, dst, (int) (t - s));
            }
        }
    }

    /** The whole current content of one block (dirty, or from the tree). */
    private byte[] block(int ext, long blk) {
        Base b = base;
        Layout.Extent e = b.layout().extents().get(ext);
        int bs = e.root().blockSize();
        byte[] out = new byte[bs];
        ChunkId id = dirty.get(ext).get(blk);
        if (id == null) id = b.readers()[ext].leaf(blk);
        if (!id.isZero()) System.arraycopy(store.get(id), 0, out, 0, bs);
        return out;
    }

    // ------------------------------------------------------------------ writing

    @Override
    public void write(long offset, byte[] buffer, int bufferOffset, int length, boolean fua) {
        BlockDevice.checkRange(this, offset, length);
        java.util.Map<Long, ChunkId> whole = putWholeBlocks(offset, buffer, bufferOffset, length);
        forEachBlock(offset, length, (ext, blk, bStart, s, t, bs) -> {
            int src = bufferOffset + (int) (s - offset);
            ChunkId id;
            if (s == bStart && t - s == bs) {
                id = whole.get(bStart);
            } else {
                byte[] cur = block(ext, blk);
                System.arraycopy(buffer, src, cur, (int) (s - bStart), (int) (t - s));
                id = Devices.isZero(cur, 0, bs) ? ChunkId.ZERO : store.put(cur);
            }
            record(ext, blk, id);
        });
        if (fua) flush();
    }

    /**
     * Stores the whole blocks of a write in one batch (one index query for all of them) before any
     * block lock is taken: content-addressed puts need no lock. Returns block start to chunk id.
     */
    private java.util.Map<Long, ChunkId> putWholeBlocks(long offset, byte[] buffer, int bufferOffset, int length) {
        java.util.Map<Long, ChunkId> ids = new java.util.HashMap<>();
        base.layout().overlapping(offset, length, (i, e, from, to) -> {
            int bs = e.root().blockSize();
            List<Long> starts = new ArrayList<>();
            List<Integer> srcs = new ArrayList<>();
            for (long bStart = e.offset() + (from - e.offset()) / bs * bs; bStart < to; bStart += bs) {
                if (bStart < from || bStart + bs > to) continue;
                int src = bufferOffset + (int) (bStart - offset);
                if (Devices.isZero(buffer, src, bs)) {
                    ids.put(bStart, ChunkId.ZERO);
                } else {
                    starts.add(bStart);
                    srcs.add(src);
                }
            }
            if (starts.isEmpty()) return;
            ChunkId[] put = store.putAll(buffer, srcs.stream().mapToInt(Integer::intValue).toArray(), bs);
            for (int k = 0; k < put.length; k++) ids.put(starts.get(k), put[k]);
        });
        return ids;
    }

    @Override
    public void zero(long offset, long length, boolean fua) {
        BlockDevice.checkRange(this, offset, length);
        forEachBlock(offset, length, (ext, blk, bStart, s, t, bs) -> {
            if (s == bStart && t - s == bs) {
                record(ext, blk, ChunkId.ZERO);
            } else {
                byte[] cur = block(ext, blk);
                java.util.Arrays.fill(cur, (int) (s - bStart), (int) (t - bStart), (byte) 0);
                record(ext, blk, Devices.isZero(cur, 0, bs) ? ChunkId.ZERO : store.put(cur));
            }
        });
        if (fua) flush();
    }

    /** Whole blocks in the range become holes; partial blocks are left as they are (trim is a hint). */
    @Override
    public void trim(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        forEachBlock(offset, length, (ext, blk, bStart, s, t, bs) -> {
            if (s == bStart && t - s == bs) record(ext, blk, ChunkId.ZERO);
        });
    }

    @Override
    public void flush() {
        checkOpen();
        store.sync();
        journal.sync();
    }

    private void record(int ext, long blk, ChunkId id) {
        dirty.get(ext).put(blk, id);
        journal.append(ext, blk, id);
    }

    @FunctionalInterface
    private interface BlockAction {
        void apply(int ext, long blk, long blockStart, long from, long to, int blockSize);
    }

    /** Runs {@code action} for each block the range touches, under that block's stripe lock. */
    private void forEachBlock(long offset, long length, BlockAction action) {
        swap.readLock().lock();
        try {
            checkOpen();
            forEachBlockLocked(offset, length, action);
        } finally {
            swap.readLock().unlock();
        }
    }

    private void forEachBlockLocked(long offset, long length, BlockAction action) {
        base.layout().overlapping(offset, length, (i, e, from, to) -> {
            int bs = e.root().blockSize();
            for (long blk = (from - e.offset()) / bs; e.offset() + blk * bs < to; blk++) {
                long bStart = e.offset() + blk * bs;
                long s = Math.max(bStart, from);
                long t = Math.min(bStart + bs, to);
                ReentrantLock l = stripes[(int) ((blk * 31 + i) & (STRIPES - 1))];
                l.lock();
                try {
                    action.apply(i, blk, bStart, s, t, bs);
                } finally {
                    l.unlock();
                }
            }
        });
    }

    // ------------------------------------------------------------------ allocation map

    @Override
    public List<BlockStatus> blockStatus(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        swap.readLock().lock();
        try {
            return blockStatusLocked(offset, length);
        } finally {
            swap.readLock().unlock();
        }
    }

    private List<BlockStatus> blockStatusLocked(long offset, long length) {
        Base b = base;
        List<BlockStatus> out = new ArrayList<>();
        b.layout().overlapping(offset, length, (i, e, from, to) -> {
            int bs = e.root().blockSize();
            long pos = from;
            var d = dirty.get(i).subMap((from - e.offset()) / bs, true, (to - e.offset() - 1) / bs, true);
            for (Map.Entry<Long, ChunkId> w : d.entrySet()) {
                long s = Math.max(e.offset() + w.getKey() * bs, from);
                long t = Math.min(e.offset() + (w.getKey() + 1) * bs, to);
                if (s > pos) out.addAll(b.device().blockStatus(pos, s - pos));
                out.add(new BlockStatus(s, t - s, w.getValue().isZero()));
                pos = t;
            }
            if (pos < to) out.addAll(b.device().blockStatus(pos, to - pos));
        });
        return Devices.coalesce(out);
    }

    // ------------------------------------------------------------------ checkpoints

    /**
     * Commits the writes so far as a new version (null when nothing changed since the last one).
     * Calls {@link #flush} first: the new version holds only durable data.
     */
    public Version checkpoint(String message) {
        return checkpoint(message, false);
    }

    /** Like {@link #checkpoint(String)}; with {@code always}, commits a version even when nothing changed (a user's snapshot). */
    public Version checkpoint(String message, boolean always) {
        checkpointLock.lock();
        try {
            checkOpen();
            if (!always && !isDirty()) return null;
            flush();
            Base b = base;
            List<NavigableMap<Long, ChunkId>> snapshot = new ArrayList<>();
            for (var m : dirty) snapshot.add(new TreeMap<>(m));
            TreeUpdater updater = new TreeUpdater(store, cache);
            List<Layout.Extent> extents = new ArrayList<>();
            for (int i = 0; i < b.layout().extents().size(); i++) {
                Layout.Extent e = b.layout().extents().get(i);
                extents.add(new Layout.Extent(e.offset(), updater.update(e.root(), snapshot.get(i))));
            }
            Layout next = new Layout(extents);
            store.sync();
            Version v = catalog.commit(image, b.version().number(),
                    new NewVersion(message == null ? "checkpoint" : message, next.size(), next.encode()), b.version().key());
            swap.writeLock().lock();
            try {
                load(v);
                // drop what the new version holds; writes that came in meanwhile stay dirty
                List<Journal.Entry> carried = new ArrayList<>();
                for (int i = 0; i < dirty.size(); i++) {
                    for (var s : snapshot.get(i).entrySet()) dirty.get(i).remove(s.getKey(), s.getValue());
                    for (var r : dirty.get(i).entrySet()) carried.add(new Journal.Entry(i, r.getKey(), r.getValue()));
                }
                journal = Journal.create(journalPath, image, v.number(), carried, journal);
            } finally {
                swap.writeLock().unlock();
            }
            return v;
        } finally {
            checkpointLock.unlock();
        }
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("volume '" + image + "' is closed");
    }

    /** Checkpoints what is dirty ("on close"), removes the journal and releases the lease. */
    @Override
    public void close() {
        if (closed) return;
        try {
            checkpoint("checkpoint on close");
            journal.delete();
        } finally {
            closed = true;
            releaseLease();
        }
    }

    /** Closes without a checkpoint, as a crash would (tests; the journal stays for recovery). */
    void abandon() {
        closed = true;
        journal.close();
        releaseLease();
    }

    private void releaseLease() {
        try {
            lease.release();
            leaseChannel.close();
        } catch (IOException ignored) {
            // the lock goes with the process anyway
        }
    }
}
