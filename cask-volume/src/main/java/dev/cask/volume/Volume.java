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
import dev.cask.device.ReadBuffer;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.tree.Layout;
import dev.cask.tree.LayoutDevice;
import dev.cask.tree.PointerCache;
import dev.cask.tree.TreeReader;
import dev.cask.tree.TreeUpdater;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.Executor;
import java.util.concurrent.locks.ReentrantLock;

import dev.cask.common.Pacer;

/**
 * An image opened for live reads and writes: its head version's trees, the blocks written since
 * (the dirty map: block to journal location, per extent), and the journal that holds their data.
 *
 * <p><b>Writes</b> cost one append to the journal and no hashing: whole blocks go in as they
 * are (a run of them as one record, all-zero blocks as a hole record); a partial block is read,
 * patched and appended whole. The dirty map then points the blocks at their journal location,
 * and readers see the data at once. Hashing, compression and the chunk store wait for the next
 * checkpoint, so a burst of writes runs at the speed of a sequential file append. A block whose
 * current copy is in the current generation and was written after the last FLUSH started is
 * rewritten in place instead ({@link Journal#overwrite}): no flush promised that copy, so a torn
 * rewrite may lose it, and the journal of a guest that rewrites the same blocks between flushes
 * does not grow. A reader that catches a block mid-rewrite (its CRC fails) waits for the write
 * and reads again.
 *
 * <p><b>Durability.</b> {@link #flush} fdatasyncs the journal: after it returns every completed
 * write survives a crash. A FUA write flushes before returning. A crash before a flush loses only
 * unflushed writes, each block old or new, never torn (each journal block carries its own CRC).
 * Replay after a crash rebuilds the dirty map from the journal generations in order; when two
 * writes to a block race, the map keeps the one later in the journal, which is what replay does.
 * On a shared store every journal sync also copies what it made durable into the journal's
 * shared copy ({@link SharedJournal}) before it returns, and {@link #open} first rebuilds the
 * generation files from that copy (under the lease): the node that opens an image after another
 * died replays every write the dead node flushed.
 *
 * <p><b>Checkpoints.</b> {@link #checkpoint} takes a snapshot of the dirty map and seals the
 * journal generation (new writes go to a fresh one), reads the sealed blocks back, stores them as
 * chunks (in parallel), writes the changed tree paths ({@link TreeUpdater}), syncs the store and
 * commits a version by compare-and-swap on the head; then a base record naming that version is
 * appended to the new generation and synced, the entries it covered leave the dirty map and the
 * sealed generations are deleted. Writes go on during a checkpoint. A crash at any point replays
 * what is left onto the version the oldest generation left names ({@link JournalFiles}): the
 * version before the checkpoint with the sealed generations, or the checkpoint's version without
 * them; the result is the same either way.
 *
 * <p><b>Paced checkpoints.</b> A checkpoint nobody waits for (a server's timer) may be paced
 * ({@link #checkpoint(String, Pacer)}): its blocks are then stored one batch at a time, and the
 * checkpoint's own thread rests between batches as the pacer says (beside busy clients, many
 * times the batch's time), so that it holds at most one core, for a small share of the time,
 * while other disks are served; the storing threads themselves never rest, since other images'
 * checkpoints share them. Whoever needs the checkpoint lock meanwhile (a full journal, a
 * snapshot or export, a close) hurries it ({@link Pacer#hurry}): the rest of its blocks are
 * stored at full speed, so nothing waits on a rest.
 *
 * <p><b>Recovery.</b> {@link #open} replays a crash's journal onto its own base version. If the
 * head moved since (only an older cask did that: every command now folds a leftover journal into
 * a version before it moves a head), the result is committed at once on top of the head as
 * "recovered from a journal based on version N" ({@link #recovered}). An open that fails deletes
 * the generation files it made.
 *
 * <p><b>Journal limit.</b> When the journal passes {@code journalLimit} bytes a checkpoint starts
 * in the background ("checkpoint: journal full"), and runs again as long as the journal is still
 * past the limit when it ends; at twice the limit writers wait for it, so the
 * journal stays bounded under a sustained write load, whose speed is then that of the checkpoint.
 *
 * <p><b>Lease.</b> A volume holds its image's lease ({@link Leases}; locally a lock on
 * {@code journals/NAME.lease}) while open: a second read-write open of the image fails with a Conflict.
 * Every write, zero, trim and flush calls {@link Leases.Lease#check} before it touches the journal
 * and again before it returns (a flush after its fsync), and every commit carries the lease's
 * epoch, which the catalog checks: a volume whose lease was taken over (Fenced) neither
 * acknowledges a request nor moves the head. Its journal stays where it is, on this node (until
 * journals are shared, issue 14 item 5, the next holder does not see the writes in it).
 *
 * <p>Thread-safe: several NBD connections share one volume. Partial-block writes (read, patch,
 * append) are serialised per block by striped locks; a checkpoint is serialised with other
 * checkpoints, and swaps base, dirty map and journal under {@code swap}'s write lock.
 */
public final class Volume implements BlockDevice {
    private static final System.Logger LOG = System.getLogger("cask.volume");
    private static final int STRIPES = 256;
    /** Default journal size that starts a background checkpoint. */
    public static final long DEFAULT_JOURNAL_LIMIT = 1L << 30;
    static final int OFFSET_BITS = 38;
    private static final long MAX_GENERATION = JournalFiles.MAX_GENERATION;
    /** Bytes of blocks one checkpoint task reads and stores at once (256 blocks of 4 KiB). */
    private static final int BATCH_BYTES = 1 << 20;

    private final String image;
    private final ChunkStore store;
    private final Catalog catalog;
    private final PointerCache cache;
    private final Executor executor;
    private final JournalFiles files;
    /** The shared copy of the journal every generation syncs into ({@link SharedJournal#NONE} on a local store). */
    private final SharedJournal shared;
    private final long journalLimit;
    private final Leases.Lease lease;
    private final ReentrantLock[] stripes = new ReentrantLock[STRIPES];
    private final ReentrantLock checkpointLock = new ReentrantLock();
    /** The pacer of the paced checkpoint under way, or null: whoever waits for {@link #checkpointLock} hurries it. */
    private volatile Pacer pacing;
    private final java.util.concurrent.atomic.AtomicBoolean autoCheckpoint = new java.util.concurrent.atomic.AtomicBoolean();
    /** Reads and writes hold it shared; a checkpoint holds it exclusively while it swaps base, dirty map and journal. */
    private final java.util.concurrent.locks.ReentrantReadWriteLock swap = new java.util.concurrent.locks.ReentrantReadWriteLock();
    /** Per extent: block -> journal location ({@link #loc}). */
    private final List<ConcurrentSkipListMap<Long, Long>> dirty = new ArrayList<>();
    /** Open journal generations by number: the current one and sealed ones not yet checkpointed. */
    private final Map<Long, Journal> generations = new java.util.concurrent.ConcurrentHashMap<>();

    private volatile Base base;
    /** Set while the base is a crash's journal base that is not the head: the next commit goes on top of this head instead. */
    private volatile Version commitOnto;
    /** The version open committed from a journal left under a moved head, or null. */
    private volatile Version recovered;
    /** The last generation on disk when the open began, and the one a format 1 journal was copied into: a failed open deletes the others it made. */
    private long openedAfter = Long.MAX_VALUE;
    private long legacyGeneration = -1;
    private volatile Journal journal;
    private volatile boolean closed;

    /** The committed state writes are layered on. */
    private record Base(Version version, Layout layout, TreeReader[] readers, LayoutDevice device) {}

    private Volume(String image, ChunkStore store, Catalog catalog, PointerCache cache, Executor executor,
                   JournalFiles files, SharedJournal shared, long journalLimit, Leases.Lease lease) {
        this.image = image;
        this.shared = shared;
        this.store = store;
        this.catalog = catalog;
        this.cache = cache;
        this.executor = executor;
        this.files = files;
        this.journalLimit = journalLimit;
        this.lease = lease;
        for (int i = 0; i < STRIPES; i++) stripes[i] = new ReentrantLock();
    }

    /**
     * A block's journal location as one long, ordered like the journal: generation, then offset
     * in the generation's file, then a flag for a hole.
     */
    static long loc(long generation, long offset, boolean zero) {
        return generation << (OFFSET_BITS + 1) | offset << 1 | (zero ? 1 : 0);
    }

    private static long generationOf(long loc) {
        return loc >>> (OFFSET_BITS + 1);
    }

    private static long offsetOf(long loc) {
        return (loc >>> 1) & ((1L << OFFSET_BITS) - 1);
    }

    private static boolean isZeroLoc(long loc) {
        return (loc & 1) != 0;
    }

    private static Long later(Long a, Long b) {
        return Long.compareUnsigned(a, b) >= 0 ? a : b;
    }

    /** Opens {@code image} for writing with the default journal limit. */
    public static Volume open(String image, ChunkStore store, Catalog catalog, PointerCache cache, Executor executor,
                              JournalStore journals, Leases leases) {
        return open(image, store, catalog, cache, executor, journals, leases, DEFAULT_JOURNAL_LIMIT);
    }

    /**
     * Opens {@code image} for writing: takes the lease ({@code leases}), loads the head, and
     * replays the journal generations a crash left behind ({@code journals}). {@code journalLimit}:
     * journal bytes that start a checkpoint.
     */
    public static Volume open(String image, ChunkStore store, Catalog catalog, PointerCache cache, Executor executor,
                              JournalStore journals, Leases leases, long journalLimit) {
        if (journalLimit < (64 << 10) || journalLimit > (1L << (OFFSET_BITS - 2))) {
            throw new CaskException.InvalidInput("journal limit " + journalLimit + " is out of range (64 KiB to " + (1L << (OFFSET_BITS - 2)) + " bytes)");
        }
        Image img = catalog.image(image);
        JournalFiles files = journals.files(image);
        files.prepare();
        Leases.Lease lk = leases.tryTake(image).orElseThrow(() ->
                new CaskException.Conflict("image '" + image + "': already open read-write (served by another cask process?)"));
        SharedJournal shared;
        try {
            shared = journals.shared(image, lk);
            // the shared copy is the journal: what this node's files hold beyond it was never
            // acknowledged, and another node may have written generations since
            if (shared.keeps()) files.restore(shared);
        } catch (RuntimeException e) {
            lk.close();
            throw e;
        }
        Volume v = new Volume(image, store, catalog, cache, executor, files, shared, journalLimit, lk);
        try {
            // the head as of now, under the lease: a writer whose lease this take-over ended may
            // have committed between the read above and the take-over (its commit held the lease
            // row, which the take-over waited for), and a volume must start from that commit
            v.recover(catalog.version(image, catalog.image(image).head()));
            return v;
        } catch (RuntimeException e) {
            v.closeJournals();
            v.deleteWhatOpenMade();
            v.releaseLease();
            throw e;
        }
    }

    private void load(Version head) {
        Layout layout = Layout.decode(head.content());
        TreeReader[] readers = layout.extents().stream().map(e -> new TreeReader(store, e.root(), cache)).toArray(TreeReader[]::new);
        base = new Base(head, layout, readers, new LayoutDevice(store, layout, cache));
        while (dirty.size() < layout.extents().size()) dirty.add(new ConcurrentSkipListMap<>());
    }

    /**
     * Loads the version the writes are layered on and replays the generations a crash left
     * ({@link JournalFiles#replay}). Their writes go onto the journal's own base version, never
     * simply onto the head: when the two differ (an older cask moved the head, by a rollback or a
     * snapshot, without looking at the journal), the replayed content is committed at once as a
     * new version on top of the head, "recovered from a journal based on version N", so that no
     * head is ever a mix of one version and another's writes, and every flushed write is kept
     * (the moved head stays in the history). A journal without a write in it is deleted, and the
     * head loaded: it has nothing to recover.
     */
    private void recover(Version head) {
        JournalFiles.Leftover left = files.replay();
        for (Journal j : left.generations().values()) j.share(shared, true);
        generations.putAll(left.generations());
        openedAfter = left.last();
        Version onto = head;
        if (left.writes().isEmpty()) {
            for (long g : left.generations().keySet()) generations.remove(g).delete();
        } else if (left.baseVersion() != head.number()) {
            Path oldest = files.generation(left.generations().firstKey());
            try {
                onto = catalog.version(image, left.baseVersion());
            } catch (CaskException.NotFound e) {
                throw new CaskException.Corrupt("journal " + oldest + ": written on version " + left.baseVersion() + " of image '" + image
                        + "', which does not exist (the head is version " + head.number() + "); move the journal files away to open the image without them");
            }
        }
        load(onto);
        for (JournalFiles.Write w : left.writes()) {
            Journal.Entry e = w.entry();
            checkEntry(files.generation(w.generation()), e.extent(), e.block());
            dirty.get(e.extent()).merge(e.block(), loc(w.generation(), e.offset(), e.zero()), Volume::later);
        }
        long next = left.last() + 1;
        journal = newGeneration(next);
        generations.put(next, journal);
        upgradeLegacy(next);
        if (onto != head) {
            commitOnto = head;
            recovered = checkpoint("recovered from a journal based on version " + onto.number() + " (the head had moved to version " + head.number() + ")");
        }
    }

    /** Creates generation {@code g} on the current base version, syncing into the shared copy. */
    private Journal newGeneration(long g) {
        Journal j = Journal.create(files.generation(g), image, g, base.version().number());
        j.share(shared, false);
        return j;
    }

    /** A format 1 journal left by an older cask: its chunks are in the store; copies their data into generation {@code g}. */
    private void upgradeLegacy(long g) {
        Path legacy = files.legacy();
        List<Journal.LegacyEntry> old = Journal.replayLegacy(legacy, image);
        if (old == null) return;
        for (Journal.LegacyEntry e : old) {
            checkEntry(legacy, e.extent(), e.block());
            // an unflushed write whose chunk never became durable: the block keeps its old content
            if (!e.id().isZero() && !store.contains(e.id())) continue;
            int bs = base.layout().extents().get(e.extent()).root().blockSize();
            long at = e.id().isZero() ? journal.appendZero(e.extent(), e.block(), 1, bs)
                    : journal.append(e.extent(), e.block(), bs, 1, store.get(e.id()), 0);
            dirty.get(e.extent()).merge(e.block(), loc(g, at, e.id().isZero()), Volume::later);
        }
        journal.sync();
        legacyGeneration = g; // holds data now: a failed open keeps it
        try {
            Files.delete(legacy);
        } catch (IOException ex) {
            throw new CaskException.Io("journal " + legacy + ": cannot remove it after the upgrade: " + ex.getMessage(), ex);
        }
    }

    /** After a failed open: deletes the generations it created, which hold no write (nor a copied format 1 journal). */
    private void deleteWhatOpenMade() {
        for (long g : generations.keySet()) {
            if (g <= openedAfter || g == legacyGeneration) continue;
            try {
                Files.deleteIfExists(files.generation(g));
            } catch (IOException ignored) {
                // a generation without records replays as nothing
            }
        }
    }

    private void checkEntry(Path journalFile, int extent, long block) {
        if (extent < 0 || extent >= dirty.size() || block < 0 || block >= base.layout().extents().get(extent).root().blockCount()) {
            throw new CaskException.Corrupt("journal " + journalFile + ": record for extent " + extent + " block " + block
                    + " does not fit image '" + image + "'");
        }
    }

    public String image() {
        return image;
    }

    /**
     * The version {@link #open} committed because a crash left a journal based on another version
     * than the head ("recovered from a journal based on version N"), or null: the server logs it.
     */
    public Version recovered() {
        return recovered;
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
        return capabilities(base.layout());
    }

    /** What a volume over {@code layout} can do (the same for every version of an image of that layout). */
    public static Capabilities capabilities(Layout layout) {
        int bs = layout.extents().isEmpty() ? 4096 : layout.extents().getFirst().root().blockSize();
        return new Capabilities(true, true, true, true, true, true, true, true, 1, bs, 32 << 20);
    }

    // ------------------------------------------------------------------ reading

    @Override
    public void read(long offset, byte[] buffer, int bufferOffset, int length) {
        BlockDevice.checkRange(this, offset, length);
        read(offset, ReadBuffer.of(buffer), bufferOffset, length);
    }

    /** Straight into {@code buffer} (a direct one: what the NBD server sends large replies from). */
    @Override
    public void read(long offset, java.nio.ByteBuffer buffer, int bufferIndex, int length) {
        BlockDevice.checkRange(this, offset, length);
        read(offset, ReadBuffer.of(buffer), bufferIndex, length);
    }

    private void read(long offset, ReadBuffer buffer, int bufferOffset, int length) {
        swap.readLock().lock();
        try {
            checkOpen();
            Base b = base;
            b.layout().overlapping(offset, length, (i, e, from, to) ->
                    readExtent(b, i, from, to, buffer, bufferOffset + (int) (from - offset)));
        } finally {
            swap.readLock().unlock();
        }
    }

    private void readExtent(Base b, int ext, long from, long to, ReadBuffer buf, int bufOff) {
        Layout.Extent e = b.layout().extents().get(ext);
        int bs = e.root().blockSize();
        ConcurrentSkipListMap<Long, Long> d = dirty.get(ext);
        long firstBlock = (from - e.offset()) / bs;
        long lastBlock = (to - e.offset() - 1) / bs;
        var written = d.subMap(firstBlock, true, lastBlock, true);
        if (written.isEmpty()) {
            // nothing written here since the checkpoint: the tree alone answers
            b.device().read(from, buf, bufOff, (int) (to - from));
            return;
        }
        // runs, not blocks: the tree reads each stretch between written blocks at once, and a run of
        // written blocks that sit back to back in one journal record is one read (one per 4 KiB block
        // was a system call, an allocation and a copy each: the reads of a checkpoint's data crawled)
        long pos = from; // the bytes before pos are filled
        var it = written.entrySet().iterator();
        Map.Entry<Long, Long> w = it.hasNext() ? it.next() : null;
        while (w != null) {
            long blk = w.getKey();
            long l = w.getValue();
            long bStart = e.offset() + blk * bs;
            long s = Math.max(bStart, from);
            if (s > pos) b.device().read(pos, buf, bufOff + (int) (pos - from), (int) (s - pos));
            long t = Math.min(bStart + bs, to);
            w = it.hasNext() ? it.next() : null;
            if (s != bStart || t != bStart + bs) { // a block the read covers in part
                readDirty(ext, blk, l, bs, buf, bufOff + (int) (s - from), (int) (s - bStart), (int) (t - s));
                pos = t;
                continue;
            }
            // whole blocks: this one and the written ones right after it that the read covers whole
            // and whose copies follow it in the journal (holes: any holes)
            long stride = isZeroLoc(l) ? 0 : (long) (bs + 4) << 1;
            int run = 1;
            while (w != null && run < Journal.MAX_RECORD_DATA / bs && w.getKey() == blk + run
                    && e.offset() + (w.getKey() + 1) * bs <= to && w.getValue() == l + run * stride) {
                run++;
                w = it.hasNext() ? it.next() : null;
            }
            int dst = bufOff + (int) (s - from);
            if (isZeroLoc(l)) {
                buf.zero(dst, dst + run * bs);
            } else if (run == 1) {
                readDirty(ext, blk, l, bs, buf, dst, 0, bs);
            } else {
                readDirtyRun(ext, blk, l, run, bs, buf, dst);
            }
            pos = s + (long) run * bs;
        }
        if (pos < to) b.device().read(pos, buf, bufOff + (int) (pos - from), (int) (to - pos));
    }

    /**
     * Reads {@code run} written blocks from {@code blk} whose copies sit back to back in one journal
     * record from location {@code l}: one read for all of them. When a check fails (a block of the
     * current generation caught mid-rewrite), block by block through {@link #readDirty}, which waits
     * for the rewrite.
     */
    private void readDirtyRun(int ext, long blk, long l, int run, int bs, ReadBuffer buf, int dst) {
        Journal j = generations.get(generationOf(l));
        if (j == null) throw new IllegalStateException("volume '" + image + "': no journal generation " + generationOf(l));
        try {
            j.readBlocks(offsetOf(l), bs, run, buf, dst);
        } catch (CaskException.Corrupt e) {
            long stride = (long) (bs + 4) << 1;
            for (int k = 0; k < run; k++) readDirty(ext, blk + k, l + k * stride, bs, buf, dst + k * bs, 0, bs);
        }
    }

    /**
     * Reads (part of) dirty block {@code blk} of extent {@code ext}, last seen at location {@code l}.
     * A block of the current generation may be being overwritten in place: when its CRC fails,
     * wait for that write and read the block's location again (a few times, then it is corrupt).
     */
    private void readDirty(int ext, long blk, long l, int bs, ReadBuffer buf, int dst, int from, int length) {
        for (int attempt = 0; ; attempt++) {
            if (isZeroLoc(l)) {
                buf.zero(dst, dst + length);
                return;
            }
            Journal j = generations.get(generationOf(l));
            if (j == null) throw new IllegalStateException("volume '" + image + "': no journal generation " + generationOf(l));
            try {
                j.readBlock(offsetOf(l), bs, buf, dst, from, length);
                return;
            } catch (CaskException.Corrupt e) {
                if (j != journal || attempt >= 8) throw e;
                j.awaitWrite();
                Long again = dirty.get(ext).get(blk);
                if (again == null) throw e; // cannot happen under the swap lock: a dirty block stays dirty until a checkpoint swaps
                l = again;
            }
        }
    }

    /** The whole current content of one block (dirty, or from the tree). */
    private byte[] block(int ext, long blk) {
        Base b = base;
        Layout.Extent e = b.layout().extents().get(ext);
        int bs = e.root().blockSize();
        byte[] out = new byte[bs];
        Long l = dirty.get(ext).get(blk);
        if (l != null) {
            readDirty(ext, blk, l, bs, ReadBuffer.of(out), 0, 0, bs);
        } else {
            ChunkId id = b.readers()[ext].leaf(blk);
            if (!id.isZero()) System.arraycopy(store.get(id), 0, out, 0, bs);
        }
        return out;
    }

    // ------------------------------------------------------------------ writing

    @Override
    public void write(long offset, byte[] buffer, int bufferOffset, int length, boolean fua) {
        BlockDevice.checkRange(this, offset, length);
        lease.check(); // a fenced volume takes no write
        throttle();
        swap.readLock().lock();
        try {
            checkOpen();
            Journal j = journal;
            base.layout().overlapping(offset, length, (i, e, from, to) -> {
                int bs = e.root().blockSize();
                long pos = from;
                while (pos < to) {
                    long blk = (pos - e.offset()) / bs;
                    long bStart = e.offset() + blk * bs;
                    int src = bufferOffset + (int) (pos - offset);
                    if (pos == bStart && to - pos >= bs) {
                        int n = (int) Math.min((to - pos) / bs, Journal.MAX_RECORD_DATA / bs);
                        appendWhole(j, i, blk, n, bs, buffer, src);
                        pos += (long) n * bs;
                    } else {
                        long t = Math.min(bStart + bs, to);
                        int at = (int) (pos - bStart);
                        patchBlock(j, i, blk, bs, cur -> System.arraycopy(buffer, src, cur, at, (int) (t - bStart) - at));
                        pos = t;
                    }
                }
            });
        } finally {
            swap.readLock().unlock();
        }
        afterAppend();
        if (fua) flush();
        else lease.check(); // nor acknowledges one
    }

    /**
     * Writes {@code n} whole blocks: runs of zero blocks as hole records; data blocks in place
     * where their current copy is an unflushed block of the current generation ({@link
     * Journal#overwrite}), else appended as data records.
     */
    private void appendWhole(Journal j, int ext, long firstBlock, int n, int bs, byte[] buf, int src) {
        var d = dirty.get(ext);
        int k = 0;
        while (k < n) {
            boolean zero = Devices.isZero(buf, src + k * bs, bs);
            int m = k + 1;
            while (m < n && Devices.isZero(buf, src + m * bs, bs) == zero) m++;
            if (zero) {
                long at = j.appendZero(ext, firstBlock + k, m - k, bs);
                for (int q = k; q < m; q++) d.merge(firstBlock + q, loc(j.generation(), at, true), Volume::later);
            } else {
                int pending = k; // blocks [pending, q) still to append
                int q = k;
                while (q < m) {
                    Long first = d.get(firstBlock + q); // read once: a racing writer may move the block meanwhile
                    int r = overwritableRun(j, d, first, firstBlock + q, m - q, bs);
                    if (r == 0) {
                        q++;
                        continue;
                    }
                    // always the data area of a data record (never a header): at worst a copy a racing write left behind
                    long at = offsetOf(first);
                    boolean done;
                    try {
                        done = j.overwrite(at, bs, r, buf, src + q * bs);
                    } catch (CaskException.Io e) {
                        done = false; // the old copies may be torn: append the blocks, the map then leaves them behind
                    }
                    if (done) {
                        appendData(j, d, ext, firstBlock, pending, q, bs, buf, src);
                        pending = q + r;
                    }
                    q += r;
                }
                appendData(j, d, ext, firstBlock, pending, m, bs, buf, src);
            }
            k = m;
        }
    }

    /** Appends data blocks [from, to) of a write as data records and points the dirty map at them. */
    private void appendData(Journal j, ConcurrentSkipListMap<Long, Long> d, int ext, long firstBlock, int from, int to, int bs, byte[] buf, int src) {
        if (from >= to) return;
        long at = j.append(ext, firstBlock + from, bs, to - from, buf, src + from * bs);
        for (int q = from; q < to; q++) d.merge(firstBlock + q, loc(j.generation(), at + (long) (q - from) * (bs + 4), false), Volume::later);
    }

    /**
     * How many blocks from {@code blk}, whose copy is at {@code first}, (at most {@code max}) can be
     * overwritten in place with one write: their copies are data blocks of {@code j}, back to back in one record (a
     * stride of a block and its CRC), and past the last sync. 0 when the first one cannot.
     */
    private static int overwritableRun(Journal j, ConcurrentSkipListMap<Long, Long> d, Long first, long blk, int max, int bs) {
        if (first == null || isZeroLoc(first) || generationOf(first) != j.generation() || !j.mayOverwrite(offsetOf(first))) return 0;
        long stride = (long) (bs + 4) << 1;
        int r = 1;
        while (r < max) {
            Long next = d.get(blk + r);
            if (next == null || next != first + r * stride) break;
            r++;
        }
        return r;
    }

    /** Read-modify-write of one block under its stripe lock; an all-zero result becomes a hole. */
    private void patchBlock(Journal j, int ext, long blk, int bs, java.util.function.Consumer<byte[]> patch) {
        ReentrantLock l = stripes[(int) ((blk * 31 + ext) & (STRIPES - 1))];
        l.lock();
        try {
            byte[] cur = block(ext, blk);
            patch.accept(cur);
            appendWhole(j, ext, blk, 1, bs, cur, 0);
        } finally {
            l.unlock();
        }
    }

    @Override
    public void zero(long offset, long length, boolean fua) {
        BlockDevice.checkRange(this, offset, length);
        lease.check(); // a fenced volume takes no write
        throttle();
        swap.readLock().lock();
        try {
            checkOpen();
            Journal j = journal;
            base.layout().overlapping(offset, length, (i, e, from, to) -> {
                int bs = e.root().blockSize();
                long pos = from;
                while (pos < to) {
                    long blk = (pos - e.offset()) / bs;
                    long bStart = e.offset() + blk * bs;
                    if (pos == bStart && to - pos >= bs) {
                        long n = Math.min((to - pos) / bs, Integer.MAX_VALUE);
                        zeroBlocks(j, i, blk, (int) n, bs);
                        pos += n * bs;
                    } else {
                        long t = Math.min(bStart + bs, to);
                        int a = (int) (pos - bStart);
                        int z = (int) (t - bStart);
                        patchBlock(j, i, blk, bs, cur -> java.util.Arrays.fill(cur, a, z, (byte) 0));
                        pos = t;
                    }
                }
            });
        } finally {
            swap.readLock().unlock();
        }
        afterAppend();
        if (fua) flush();
        else lease.check(); // nor acknowledges one
    }

    private void zeroBlocks(Journal j, int ext, long firstBlock, int n, int bs) {
        long at = j.appendZero(ext, firstBlock, n, bs);
        var d = dirty.get(ext);
        for (int q = 0; q < n; q++) d.merge(firstBlock + q, loc(j.generation(), at, true), Volume::later);
    }

    /** Whole blocks in the range become holes; partial blocks are left as they are (trim is a hint). */
    @Override
    public void trim(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        lease.check(); // a fenced volume takes no write
        throttle();
        swap.readLock().lock();
        try {
            checkOpen();
            Journal j = journal;
            base.layout().overlapping(offset, length, (i, e, from, to) -> {
                int bs = e.root().blockSize();
                long first = (from - e.offset() + bs - 1) / bs;
                long end = (to - e.offset()) / bs;
                if (end > first) zeroBlocks(j, i, first, (int) Math.min(end - first, Integer.MAX_VALUE), bs);
            });
        } finally {
            swap.readLock().unlock();
        }
        afterAppend();
        lease.check();
    }

    /**
     * Makes every completed write durable: syncs the generations still being checkpointed (oldest
     * first), then the current one. A generation with nothing new costs no fsync.
     */
    @Override
    public void flush() {
        swap.readLock().lock(); // a checkpoint deletes sealed generations under the write lock
        try {
            checkOpen();
            Journal current = journal;
            for (var g : new TreeMap<>(generations).entrySet()) {
                if (g.getKey() < current.generation()) g.getValue().sync();
            }
            current.sync();
        } finally {
            swap.readLock().unlock();
        }
        // after the sync, just before the caller acknowledges: a volume whose lease was taken
        // over meanwhile (the node was frozen, or cut off from the leases past their time to
        // live) acknowledges no FLUSH, since the next holder does not see this node's journal
        lease.check();
    }

    /** Writers wait while the journal is over twice its limit (a checkpoint drains it). */
    private void throttle() {
        if (journal.size() <= 2 * journalLimit) return;
        lockCheckpoints();
        try {
            if (!closed && journal.size() > 2 * journalLimit) checkpoint("checkpoint: journal full");
        } finally {
            checkpointLock.unlock();
        }
    }

    /**
     * Starts a background checkpoint when the journal passed its limit. It checkpoints again for
     * as long as the journal is past its limit when one ends: under a sustained write the next
     * checkpoint starts at once instead of at the next write that finds none running, so no
     * stretch of a sustained write goes by with nothing being stored (bench/write-bench.sh).
     */
    private void afterAppend() {
        if (journal.size() <= journalLimit || !autoCheckpoint.compareAndSet(false, true)) return;
        Thread.ofVirtual().name("checkpoint " + image).start(() -> {
            try {
                while (!closed && journal.size() > journalLimit) checkpoint("checkpoint: journal full");
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, "image '" + image + "': checkpoint failed: " + e.getMessage());
            } finally {
                autoCheckpoint.set(false);
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
            for (Map.Entry<Long, Long> w : d.entrySet()) {
                long s = Math.max(e.offset() + w.getKey() * bs, from);
                long t = Math.min(e.offset() + (w.getKey() + 1) * bs, to);
                if (s > pos) out.addAll(b.device().blockStatus(pos, s - pos));
                out.add(new BlockStatus(s, t - s, isZeroLoc(w.getValue())));
                pos = t;
            }
            if (pos < to) out.addAll(b.device().blockStatus(pos, to - pos));
        });
        return Devices.coalesce(out);
    }

    // ------------------------------------------------------------------ checkpoints

    /** Commits the writes so far as a new version (null when nothing changed since the last one). */
    public Version checkpoint(String message) {
        return checkpoint(message, false);
    }

    /** Like {@link #checkpoint(String)}; with {@code always}, commits a version even when nothing changed. An automatic version. */
    public Version checkpoint(String message, boolean always) {
        return checkpoint(message, always, dev.cask.catalog.VersionKind.AUTO);
    }

    /**
     * Like {@link #checkpoint(String, boolean)}, committing a version of {@code kind}: a user's
     * snapshot is {@code USER}, every checkpoint the server makes by itself {@code AUTO}.
     */
    public Version checkpoint(String message, boolean always, dev.cask.catalog.VersionKind kind) {
        lockCheckpoints();
        try {
            return checkpointLocked(message, always, kind, null);
        } finally {
            checkpointLock.unlock();
        }
    }

    /**
     * An automatic checkpoint ({@link #checkpoint(String)}) at the pace of {@code pacer} (see
     * "Paced checkpoints" above): for a server's timer. Null when nothing changed.
     */
    public Version checkpoint(String message, Pacer pacer) {
        checkpointLock.lock();
        try {
            pacing = pacer;
            try {
                return checkpointLocked(message, false, dev.cask.catalog.VersionKind.AUTO, pacer);
            } finally {
                pacing = null;
            }
        } finally {
            checkpointLock.unlock();
        }
    }

    /** Hurries a paced checkpoint under way, if any (see "Paced checkpoints" above): someone needs it finished. */
    public void hurryCheckpoint() {
        Pacer p = pacing;
        if (p != null) p.hurry();
    }

    /** Takes {@link #checkpointLock}, first hurrying a paced checkpoint that holds it. */
    private void lockCheckpoints() {
        hurryCheckpoint();
        checkpointLock.lock();
    }

    /** A checkpoint; {@code pacer} null: at full speed. Caller holds {@link #checkpointLock}. */
    private Version checkpointLocked(String message, boolean always, dev.cask.catalog.VersionKind kind, Pacer pacer) {
        checkOpen();
        if (!always && !isDirty()) {
            if (kind == dev.cask.catalog.VersionKind.USER) keepBaseForTheUser();
            return null;
        }
        lease.check(); // a fenced volume stores nothing for a version it could not commit
        long t0 = System.nanoTime();
        List<NavigableMap<Long, Long>> snapshot = new ArrayList<>();
        long sealed;
        swap.writeLock().lock();
        try {
            for (var m : dirty) snapshot.add(new TreeMap<>(m));
            sealed = journal.generation();
            if (isDirty()) {
                // seal the generation: new writes go to the next one. No fsync here: the version
                // gets its data from the store, synced before the commit; what was flushed is
                // durable already, and a later FLUSH syncs sealed generations too
                if (sealed + 1 > MAX_GENERATION) throw new CaskException.Io("image '" + image + "': journal generations exhausted; reopen the image", null);
                journal = newGeneration(sealed + 1);
                generations.put(sealed + 1, journal);
            }
        } finally {
            swap.writeLock().unlock();
        }
        Base b = base;
        Version v;
        // a writer session from the first put to the commit: garbage collection waits for it (see GcEpochs)
        try (dev.cask.store.ChunkStore.Session session = store.session("checkpoint of " + image)) {
            TreeUpdater updater = new TreeUpdater(store, cache);
            List<Layout.Extent> extents = new ArrayList<>();
            for (int i = 0; i < b.layout().extents().size(); i++) {
                Layout.Extent e = b.layout().extents().get(i);
                extents.add(new Layout.Extent(e.offset(), updater.update(e.root(), storeBlocks(snapshot.get(i), e.root().blockSize(), pacer))));
            }
            Layout next = new Layout(extents);
            store.sync();
            Version onto = commitOnto != null ? commitOnto : b.version();
            lease.check(); // a writer whose lease was taken over commits nothing; the catalog checks the epoch too (fencing)
            session.check(); // a session a collection may have stopped waiting for commits nothing
            v = catalog.commit(image, onto.number(),
                    new NewVersion(message == null ? "checkpoint" : message, next.size(), next.encode(), kind), onto.key(), lease.epoch());
        }
        commitOnto = null;
        boolean rebased = rebase(v);
        swap.writeLock().lock();
        try {
            load(v);
        } finally {
            swap.writeLock().unlock();
        }
        // drop what the new version holds, outside the lock (131k blocks a 512 MiB checkpoint: ~0.1 s
        // the volume's reads and writes waited for): a read that still finds a block here reads its
        // journal copy, the bytes the new base holds, and the sealed generations go only below,
        // under the lock, once no read is in them; a block written again meanwhile stays dirty
        // (remove(key, value) leaves it: its copy is in a newer generation)
        for (int i = 0; i < dirty.size(); i++) {
            for (var s : snapshot.get(i).entrySet()) dirty.get(i).remove(s.getKey(), s.getValue());
        }
        swap.writeLock().lock();
        try {
            boolean deleted = false;
            if (rebased) {
                for (var g : new ArrayList<>(generations.keySet())) {
                    if (g <= sealed && g != journal.generation()) {
                        generations.remove(g).delete();
                        deleted = true;
                    }
                }
            }
            // durable before any FLUSH (they wait for this lock) or the caller goes on: a sealed
            // generation holds older copies durably and newer ones maybe not (no fsync at the
            // seal), so one a power cut brought back would replay old data over this version
            if (deleted) syncJournalDir();
        } finally {
            swap.writeLock().unlock();
        }
        logCheckpoint(v, b.layout(), snapshot, t0, pacer);
        return v;
    }

    /**
     * A user's snapshot of unchanged content: the automatic version that holds it (the base)
     * becomes a user version, here, under the checkpoint lock. Here, because the base cannot move
     * meanwhile and, being in use, no prune removes it: done by the caller after this returned, a
     * timer checkpoint could move the base first and a prune remove the version before it is
     * made the user's (a snapshot lost). Caller holds {@link #checkpointLock}.
     */
    private void keepBaseForTheUser() {
        Base b = base;
        if (b.version().kind() != dev.cask.catalog.VersionKind.AUTO) return;
        catalog.makeUserVersion(image, b.version().number());
        Version mine = catalog.version(image, b.version().number());
        swap.writeLock().lock();
        try {
            if (base == b) base = new Base(mine, b.layout(), b.readers(), b.device());
        } finally {
            swap.writeLock().unlock();
        }
    }

    /** One INFO line per version a checkpoint commits: image, version, message, bytes of blocks written, seconds. */
    private void logCheckpoint(Version v, Layout layout, List<NavigableMap<Long, Long>> snapshot, long t0, Pacer pacer) {
        long bytes = 0;
        for (int i = 0; i < snapshot.size(); i++) bytes += (long) snapshot.get(i).size() * layout.extents().get(i).root().blockSize();
        long written = bytes;
        String paced = pacer == null ? "" : String.format(java.util.Locale.ROOT, " (paced: %.2f s of it resting, %.2f s of that beside busy clients%s)",
                pacer.restedSeconds(), pacer.busyRestedSeconds(), pacer.isHurried() ? "; hurried" : "");
        LOG.log(System.Logger.Level.INFO, () -> String.format(java.util.Locale.ROOT, "image '%s': %s -> version %d (%s of written blocks) in %.2f s%s",
                image, v.message(), v.number(), dev.cask.common.Sizes.human(written), (System.nanoTime() - t0) / 1e9, paced));
    }

    /**
     * Appends a base record naming {@code v} to the current generation and syncs it: from then on
     * a replay that starts at the current generation starts from {@code v}, so the generations the
     * checkpoint sealed may go. False when that failed: they stay (a replay from them is still
     * right) until a later checkpoint manages it.
     */
    private boolean rebase(Version v) {
        try {
            journal.appendBase(v.number());
            journal.sync();
            return true;
        } catch (CaskException.Io e) {
            System.getLogger("cask.volume").log(System.Logger.Level.ERROR, "image '" + image + "': version " + v.number()
                    + " committed, but its base record failed (the sealed journal generations stay until the next checkpoint): " + e.getMessage());
            return false;
        }
    }

    /**
     * Stores the snapshot's blocks as chunks, in parallel batches; returns block -> chunk id.
     * With a {@code pacer}: one batch at a time, resting after each in this thread, until the
     * pacer is hurried (or someone waits for the checkpoint lock: then this hurries it), and the
     * rest in parallel.
     */
    private NavigableMap<Long, ChunkId> storeBlocks(NavigableMap<Long, Long> blocks, int bs, Pacer pacer) {
        NavigableMap<Long, ChunkId> ids = new TreeMap<>();
        List<Long> data = new ArrayList<>();
        for (var en : blocks.entrySet()) {
            if (isZeroLoc(en.getValue())) ids.put(en.getKey(), ChunkId.ZERO);
            else data.add(en.getKey());
        }
        List<java.util.concurrent.CompletableFuture<ChunkId[]>> parts = new ArrayList<>();
        int perBatch = Math.max(1, BATCH_BYTES / bs);
        int from = 0;
        for (; pacer != null && from < data.size(); from += perBatch) {
            if (checkpointLock.hasQueuedThreads()) pacer.hurry(); // it began to wait before this checkpoint set pacing
            if (pacer.isHurried()) break;
            List<Long> batch = data.subList(from, Math.min(from + perBatch, data.size()));
            parts.add(java.util.concurrent.CompletableFuture.supplyAsync(() -> storeBatch(blocks, batch, bs), executor));
            joined(parts.getLast());
            pacer.step();
        }
        for (; from < data.size(); from += perBatch) {
            List<Long> batch = data.subList(from, Math.min(from + perBatch, data.size()));
            parts.add(java.util.concurrent.CompletableFuture.supplyAsync(() -> storeBatch(blocks, batch, bs), executor));
        }
        for (int p = 0; p < parts.size(); p++) {
            ChunkId[] got = joined(parts.get(p));
            for (int k = 0; k < got.length; k++) ids.put(data.get(p * perBatch + k), got[k]);
        }
        return ids;
    }

    private static ChunkId[] joined(java.util.concurrent.CompletableFuture<ChunkId[]> part) {
        try {
            return part.join();
        } catch (java.util.concurrent.CompletionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw e;
        }
    }

    /** Reads one batch of sealed journal blocks and stores them; returns their ids in order (zero blocks: the zero id). */
    private ChunkId[] storeBatch(NavigableMap<Long, Long> blocks, List<Long> batch, int bs) {
        byte[] buf = dev.cask.common.ByteArrays.take(batch.size() * bs);
        try {
            int[] offs = new int[batch.size()];
            int n = 0;
            ChunkId[] out = new ChunkId[batch.size()];
            // blocks written together sit back to back in the journal: read each such run at once
            for (int k = 0; k < batch.size(); ) {
                long l = blocks.get(batch.get(k));
                int run = 1;
                while (k + run < batch.size() && blocks.get(batch.get(k + run)) == l + ((long) run * (bs + 4) << 1)) run++;
                Journal j = generations.get(generationOf(l));
                if (j == null) throw new IllegalStateException("volume '" + image + "': no journal generation " + generationOf(l));
                j.readBlocks(offsetOf(l), bs, run, buf, k * bs);
                k += run;
            }
            for (int k = 0; k < batch.size(); k++) {
                if (Devices.isZero(buf, k * bs, bs)) out[k] = ChunkId.ZERO;
                else offs[n++] = k * bs;
            }
            ChunkId[] put = n == 0 ? new ChunkId[0] : store.putAll(buf, java.util.Arrays.copyOf(offs, n), bs, dev.cask.store.ChunkStore.Access.RANDOM);
            for (int k = 0, q = 0; k < batch.size(); k++) if (out[k] == null) out[k] = put[q++];
            return out;
        } finally {
            dev.cask.common.ByteArrays.give(buf);
        }
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("volume '" + image + "' is closed");
    }

    /** Checkpoints what is dirty ("on close"), removes the journal and releases the lease. */
    @Override
    public void close() {
        if (closed) return;
        lockCheckpoints();
        try {
            if (closed) return;
            checkpointLocked("checkpoint on close", false, dev.cask.catalog.VersionKind.AUTO, null);
            swap.writeLock().lock();
            try {
                closed = true;
                for (Journal j : generations.values()) j.delete();
                generations.clear();
                // the deletions must be durable too: a generation a power cut brought back would be
                // replayed over whatever the head is then (a rollback, a new image of the same name)
                syncJournalDir();
            } finally {
                swap.writeLock().unlock();
            }
        } finally {
            closed = true;
            checkpointLock.unlock();
            closeJournals();
            releaseLease();
        }
    }

    private void syncJournalDir() {
        try {
            Journal.syncDirectory(files.dir());
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot sync " + files.dir() + ": " + e.getMessage(), e);
        }
    }

    /** Closes without a checkpoint, as a crash would (tests; the journal stays for recovery). */
    void abandon() {
        lockCheckpoints(); // not in the middle of a background checkpoint: a crash would stop that too
        try {
            closed = true;
            closeJournals();
            releaseLease();
        } finally {
            checkpointLock.unlock();
        }
    }

    private void closeJournals() {
        for (Journal j : generations.values()) j.close();
    }

    private void releaseLease() {
        try {
            lease.close();
        } catch (CaskException ignored) {
            // a file lock goes with the process anyway; a shared lease expires
        }
    }
}
