package dev.cask.store.s3;

import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.ChunkLocation;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.store.local.PackEncoder;
import dev.cask.store.local.PackFormat;
import dev.cask.store.postgres.PostgresChunkIndex;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;

/**
 * A store whose packs are immutable objects in S3-compatible storage ({@code s3://BUCKET/PREFIX},
 * key {@code PREFIX/packs/NNNNNNNN.pack}) and whose index is in PostgreSQL
 * ({@link PostgresChunkIndex}), so that any number of cask nodes share one store. The pack bytes
 * are those of a local store's packs ({@link PackFormat}: records and segments, CRC32C, zstd).
 *
 * <p><b>Writing.</b> {@link #put} and {@link #putAll} hash and compress in the caller's thread by
 * a local store's rules ({@link PackEncoder}), look the ids up in the index (the dedup check, which
 * stamps GC epochs), and append the new records and segments to this process's open pack in memory
 * ({@link OpenPack}); the chunks are {@code pending} until their pack is indexed. A pack's id comes
 * from the index when it is opened ({@link PostgresChunkIndex#beginPack}: an unsealed row). When it
 * reaches {@link Options#packLimit} it is sealed and uploaded as ONE object, by the put that filled
 * it (others go on filling the next pack meanwhile; with {@value #MAX_SEALED} packs waiting, puts
 * wait for the upload, and while uploads fail, puts that would add to memory fail too: memory
 * stays bounded to a few packs). {@link #sync} seals the open
 * pack and uploads every sealed one, in order.
 *
 * <p><b>Crash order.</b> An object is written whole (one PUT with {@code Content-MD5}) and never
 * written again once indexed; only after the PUT returned are its pack's row sealed and its
 * chunks' entries inserted, in one transaction ({@link PostgresChunkIndex#commitPack}). So a crash
 * (of this process, of the object store, of PostgreSQL) can leave an object nothing names (its
 * pack row unsealed), never an entry naming a missing object. A failed upload or commit leaves the
 * pack sealed in memory with its chunks pending, and the next {@link #sync} (or the next put that
 * fills a pack) tries again: a sync that threw lost nothing as long as this store stays open. A
 * retried upload writes the same key with the same bytes (an S3 PUT is atomic: a failed one left no
 * object, or the same bytes); a commit whose outcome was unknown is recognised by the sealed row.
 * {@link #close} without a successful sync drops what is pending (its pack rows stay unsealed).
 *
 * <p><b>Reading</b> is {@link PackObjectReader}'s: a chunk not yet uploaded from its pack in
 * memory, any other by a ranged GET of its record or segment, checked as a local read is, with
 * in-memory caches of index answers and decompressed chunks. A node's cache on local disk is not
 * here yet (issue 14, item 7).
 *
 * <p><b>Damage.</b> A read that finds a copy corrupt throws {@link CaskException.Corrupt} naming the
 * chunk and marks the copy in the index's {@code damaged} table ({@link PackObjectReader}); the next
 * put of the same bytes stores them again, and the commit of that pack moves the entry to the new
 * copy by compare-and-swap (see {@code Healing}). The new copy is not read back
 * before the entry moves (a local store does): the object store checked its MD5 on upload.
 *
 * <p><b>GC.</b> Puts stamp entries as {@code GcEpochs} says (a pending hit is asked under this
 * store's lock, never between a pack's commit and its chunks leaving {@code pending}), and
 * {@link #session} registers a writer session in PostgreSQL ({@link PostgresChunkIndex#openSession}):
 * the rule that lets {@link S3Collection} delete while every node writes.
 *
 * <p>Thread-safe. Locks: {@code this} guards the open pack, the sealed queue and {@code pending}
 * changes (never held during an upload); {@code uploads} serialises uploads and commits.
 */
public final class S3ChunkStore implements ChunkStore {
    /** Sealed packs waiting for upload before a put that would add to memory uploads first. */
    static final int MAX_SEALED = 2;
    /** A checkpoint's segments, as a local store's (random reads of a VM's writes: a ranged GET and a decompression of the whole segment each). */
    static final int RANDOM_SEGMENT_BYTES = dev.cask.store.local.LocalChunkStore.RANDOM_SEGMENT_BYTES;

    /**
     * Tuning: pack size (objects of 32 MiB by default: big enough that per-request costs and
     * request counts stay small, small enough that three fit in the memory of a server), zstd level
     * of single records, segment bytes and level (as a local store), bytes of decompressed chunks
     * kept in memory.
     */
    public record Options(long packLimit, int zstdLevel, int segmentBytes, int segmentLevel, long cacheBytes) {
        public Options {
            if (packLimit < 1024 || packLimit > (1L << 30)) throw new IllegalArgumentException("pack limit " + packLimit + " bytes; 1 KiB to 1 GiB");
            if (segmentBytes < 0 || segmentBytes > PackFormat.MAX_PAYLOAD - 1024) throw new IllegalArgumentException("segment of " + segmentBytes + " bytes");
        }

        /** {@code cask.s3.pack.limit} (default 32 MiB), {@code cask.zstd.level}, {@code cask.segment.bytes}, {@code cask.segment.level}, {@code cask.cache.bytes} ({@link LocalChunkStore#plainCacheBytes}). */
        public static Options defaults() {
            return new Options(Long.getLong("cask.s3.pack.limit", 32L << 20), Integer.getInteger("cask.zstd.level", 1),
                    Integer.getInteger("cask.segment.bytes", 1 << 20), Integer.getInteger("cask.segment.level", 3),
                    LocalChunkStore.plainCacheBytes());
        }

        public Options withPackLimit(long bytes) {
            return new Options(bytes, zstdLevel, segmentBytes, segmentLevel, cacheBytes);
        }

        public Options withSegments(int bytes, int level) {
            return new Options(packLimit, zstdLevel, bytes, level, cacheBytes);
        }
    }

    private final S3StoreUrl url;
    private final S3Objects objects;
    private final PostgresChunkIndex index;
    private final Options options;
    private final PackEncoder encoder;
    /** Chunks put but not yet indexed, and where they are in their (in-memory) pack. */
    private final Map<ChunkId, ChunkLocation> pending = new ConcurrentHashMap<>();
    /** Packs whose bytes are still here (open, sealed, being uploaded), by id. */
    private final Map<Integer, OpenPack> inMemory = new ConcurrentHashMap<>();
    /** Pending new copies of damaged chunks: id -> the bad location they replace. */
    private final Map<ChunkId, ChunkLocation> replacing = new ConcurrentHashMap<>();
    /** Reads: caches, ranged GETs, checks, damage marks. */
    private final PackObjectReader reads;
    private final ReentrantLock uploads = new ReentrantLock();

    // guarded by this
    private OpenPack open;
    private final ArrayDeque<OpenPack> sealed = new ArrayDeque<>();
    private boolean closed;
    /** Packs committed to the index; written under this, read without it. */
    private volatile long commits;

    private S3ChunkStore(S3StoreUrl url, S3Objects objects, PostgresChunkIndex index, Options options) {
        this.url = url;
        this.objects = objects;
        this.index = index;
        this.options = options;
        this.encoder = new PackEncoder(options.zstdLevel(), options.segmentLevel());
        this.reads = new PackObjectReader(url, objects, index, pending, inMemory, options.cacheBytes());
    }

    /**
     * Opens the store at {@code url} (objects reached with {@code settings}) with its index in the
     * PostgreSQL database {@code indexUrl}: checks the bucket, then opens (or creates) the index,
     * which must be this store's.
     */
    public static S3ChunkStore open(S3StoreUrl url, S3Settings settings, CatalogUrl indexUrl, PostgresCatalog.Options pgOptions, Options options) {
        S3Objects objects = new S3Objects(url, settings);
        try {
            objects.checkBucket();
            PostgresChunkIndex index = PostgresChunkIndex.open(indexUrl, pgOptions, url.toString());
            return new S3ChunkStore(url, objects, index, options);
        } catch (RuntimeException e) {
            objects.close();
            throw e;
        }
    }

    /** {@link #open} with the SDK's environment, default pool options and default tuning. */
    public static S3ChunkStore open(String store, String indexUrl) {
        return open(S3StoreUrl.parse(store), S3Settings.fromEnvironment(), CatalogUrl.parse(indexUrl), PostgresCatalog.Options.defaults(), Options.defaults());
    }

    public S3StoreUrl url() {
        return url;
    }

    PostgresChunkIndex index() {
        return index;
    }

    S3Objects objects() {
        return objects;
    }

    @Override
    public String toString() {
        return "store " + url;
    }

    // ---------------------------------------------------------------- put

    @Override
    public ChunkId put(byte[] data, int off, int len) {
        if (len < 0 || len > MAX_CHUNK) throw new IllegalArgumentException("chunk of " + len + " bytes; at most " + MAX_CHUNK);
        ChunkId id = ChunkId.of(data, off, len);
        long seen = commits; // read before looking, so a commit after the look is noticed
        if (pending.containsKey(id) && pendingHit(id)) return id;
        PostgresChunkIndex.PutLookup found = index.lookupForPut(List.of(id)).get(id);
        if (found != null && !found.damaged()) return id;
        uploadIfFull(); // before adding to memory: waits while packs wait for upload, fails while uploads fail
        storeSingle(id, encoder.record(id, data, off, len), seen, found == null ? null : found.location());
        uploadIfFull();
        return id;
    }

    @Override
    public ChunkId[] putAll(byte[] data, int[] offsets, int length) {
        return putAll(data, offsets, length, Access.SEQUENTIAL);
    }

    @Override
    public ChunkId[] putAll(byte[] data, int[] offsets, int length, Access access) {
        if (length < 0 || length > MAX_CHUNK) throw new IllegalArgumentException("chunk of " + length + " bytes; at most " + MAX_CHUNK);
        ChunkId[] ids = new ChunkId[offsets.length];
        for (int i = 0; i < offsets.length; i++) ids[i] = ChunkId.of(data, offsets[i], length);
        long seen = commits;
        Map<ChunkId, PostgresChunkIndex.PutLookup> found = index.lookupForPut(notPending(ids));
        Map<ChunkId, ChunkLocation> damaged = new HashMap<>();
        for (var e : found.entrySet()) if (e.getValue().damaged()) damaged.put(e.getKey(), e.getValue().location());
        Set<ChunkId> done = new HashSet<>();
        int[] fresh = new int[ids.length];
        int n = 0;
        for (int i = 0; i < ids.length; i++) {
            ChunkId id = ids[i];
            PostgresChunkIndex.PutLookup f = found.get(id);
            if ((f != null && !f.damaged()) || !done.add(id) || pending.containsKey(id)) continue;
            fresh[n++] = i;
        }
        if (n > 0) uploadIfFull(); // before adding to memory (see put)
        int segmentBytes = access == Access.RANDOM ? Math.min(options.segmentBytes(), RANDOM_SEGMENT_BYTES) : options.segmentBytes();
        int perSegment = Math.max(1, length == 0 ? 1 : Math.min(PackFormat.MAX_SEGMENT_CHUNKS, segmentBytes / length));
        for (int from = 0; from < n; from += perSegment) {
            int count = Math.min(perSegment, n - from);
            if (count == 1) {
                int i = fresh[from];
                storeSingle(ids[i], encoder.record(ids[i], data, offsets[i], length), seen, damaged.get(ids[i]));
            } else {
                ChunkId[] gids = new ChunkId[count];
                int[] goffs = new int[count];
                for (int k = 0; k < count; k++) {
                    gids[k] = ids[fresh[from + k]];
                    goffs[k] = offsets[fresh[from + k]];
                }
                storeSegment(gids, data, goffs, length, seen, damaged);
            }
        }
        uploadIfFull();
        return ids;
    }

    /** A dedup hit in {@code pending}, asked under the lock that a pack's commit holds (see the class comment, GC). */
    private synchronized boolean pendingHit(ChunkId id) {
        return pending.containsKey(id);
    }

    /** The ids of a batch that are not pending hits: one look without the lock, again under it only when some id is pending. */
    private List<ChunkId> notPending(ChunkId[] ids) {
        List<ChunkId> out = new ArrayList<>(ids.length);
        for (ChunkId id : ids) if (!pending.containsKey(id)) out.add(id);
        if (out.size() == ids.length) return out;
        synchronized (this) {
            out.clear();
            for (ChunkId id : ids) if (!pending.containsKey(id)) out.add(id);
        }
        return out;
    }

    /**
     * True when the chunk is stored already: pending, or indexed by a commit since {@code seen} at
     * another location than {@code bad} (the damaged copy the caller replaces). Caller holds the lock.
     */
    private boolean stored(ChunkId id, long seen, ChunkLocation bad) {
        if (pending.containsKey(id)) return true;
        if (commits == seen) return false;
        PostgresChunkIndex.PutLookup now = index.lookupForPut(List.of(id)).get(id); // confirmed and stamped by the index, never a cache
        return now != null && !now.damaged() && !now.location().equals(bad);
    }

    private void addPending(ChunkId id, ChunkLocation loc, ChunkLocation bad) {
        if (bad != null) replacing.put(id, bad);
        pending.put(id, loc);
    }

    private void storeSingle(ChunkId id, byte[] record, long seen, ChunkLocation bad) {
        synchronized (this) {
            checkOpen();
            if (stored(id, seen, bad)) return;
            OpenPack p = packFor(record.length);
            long at = p.append(record);
            addPending(id, new ChunkLocation(p.id, at, record.length), bad);
        }
    }

    /** As a local store: a run as one segment; chunks another thread stored meanwhile are left out and the rest encoded again. */
    private void storeSegment(ChunkId[] ids, byte[] data, int[] offs, int length, long seen, Map<ChunkId, ChunkLocation> damaged) {
        while (ids.length > 1) {
            PackEncoder.Run run = encoder.segment(ids, data, offs, length);
            if (run.segment() == null) {
                for (int k = 0; k < ids.length; k++) {
                    storeSingle(ids[k], encoder.record(run, ids[k], data, offs[k], length), seen, damaged.get(ids[k]));
                }
                return;
            }
            boolean[] keep = new boolean[ids.length];
            int kept = 0;
            synchronized (this) {
                checkOpen();
                for (int k = 0; k < ids.length; k++) if (keep[k] = !stored(ids[k], seen, damaged.get(ids[k]))) kept++;
                if (kept == ids.length) {
                    byte[] segment = run.segment();
                    OpenPack p = packFor(segment.length);
                    long at = p.append(segment);
                    for (int k = 0; k < ids.length; k++) addPending(ids[k], new ChunkLocation(p.id, at, segment.length, k), damaged.get(ids[k]));
                    return;
                }
            }
            ChunkId[] nids = new ChunkId[kept];
            int[] noffs = new int[kept];
            for (int k = 0, j = 0; k < ids.length; k++) {
                if (keep[k]) {
                    nids[j] = ids[k];
                    noffs[j++] = offs[k];
                }
            }
            ids = nids;
            offs = noffs;
        }
        if (ids.length == 1) storeSingle(ids[0], encoder.record(ids[0], data, offs[0], length), seen, damaged.get(ids[0]));
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("store " + url + " is closed");
    }

    /**
     * The pack a record of {@code length} bytes goes into: the open one, or a new one when it would
     * pass the limit (the full one is sealed). Caller holds the lock.
     */
    private OpenPack packFor(int length) {
        if (open != null && open.size() + length > options.packLimit() && !open.isEmpty()) {
            sealed.addLast(open);
            open = null;
        }
        if (open == null) {
            int id = index.beginPack(url::packKey);
            int cap = (int) (options.packLimit() + PackFormat.MAX_SEGMENT);
            open = new OpenPack(id, Math.min(cap, 1 << 20), cap);
            inMemory.put(id, open);
        }
        return open;
    }

    /**
     * Before and after a put adds to memory: uploads sealed packs, waiting for another thread's
     * upload only when {@value #MAX_SEALED} or more are waiting. This bounds memory (to about
     * {@value #MAX_SEALED} sealed packs, plus one per thread that sealed one meanwhile, plus the open
     * one) and makes puts fail, adding nothing, while uploads fail.
     */
    private void uploadIfFull() {
        int waiting;
        synchronized (this) {
            waiting = sealed.size();
        }
        if (waiting == 0) return;
        if (waiting >= MAX_SEALED) uploads.lock();
        else if (!uploads.tryLock()) return; // another thread uploads; go on filling the open pack
        try {
            uploadSealed();
        } finally {
            uploads.unlock();
        }
    }

    /** Uploads and commits the sealed packs, oldest first, until none is left; caller holds {@code uploads}. */
    private void uploadSealed() {
        while (true) {
            OpenPack p;
            synchronized (this) {
                p = sealed.peekFirst();
            }
            if (p == null) return;
            if (!p.uploaded) {
                beforeUpload.accept(p.id);
                objects.put(url.packKey(p.id), p.array(), p.size());
                p.uploaded = true; // a failed commit is retried without a second upload
            }
            commit(p);
        }
    }

    /** Test hook: runs before a pack's upload, with its id. */
    volatile java.util.function.IntConsumer beforeUpload = id -> {};

    /** Seals pack {@code p} in the index with its chunks' entries (its object is whole), and drops them from {@code pending}. */
    private synchronized void commit(OpenPack p) {
        List<Map.Entry<ChunkId, ChunkLocation>> fresh = new ArrayList<>();
        Map<ChunkId, ChunkLocation[]> heals = new HashMap<>();
        List<Map.Entry<ChunkId, ChunkLocation>> all = new ArrayList<>();
        for (var e : pending.entrySet()) {
            if (e.getValue().pack() != p.id) continue;
            all.add(e);
            ChunkLocation bad = replacing.get(e.getKey());
            if (bad == null) fresh.add(e);
            else heals.put(e.getKey(), new ChunkLocation[] {bad, e.getValue()});
        }
        Set<ChunkId> here = index.commitPack(p.id, p.size(), fresh, heals);
        commits++;
        reads.committed(all, here);
        for (var e : all) {
            replacing.remove(e.getKey());
            pending.remove(e.getKey(), e.getValue());
        }
        sealed.remove(p);
        inMemory.remove(p.id);
    }

    // ---------------------------------------------------------------- sync and close

    @Override
    public void sync() {
        synchronized (this) {
            checkOpen();
            if (open != null && !open.isEmpty()) {
                sealed.addLast(open);
                open = null;
            }
            if (sealed.isEmpty()) return;
        }
        uploads.lock();
        try {
            uploadSealed();
        } finally {
            uploads.unlock();
        }
    }

    /** Syncs, then lets go of the index and the client. What a failed sync left pending is dropped (its pack rows stay unsealed). */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
        }
        try {
            sync();
        } finally {
            synchronized (this) {
                closed = true;
                pending.clear();
                inMemory.clear();
                sealed.clear();
                open = null;
            }
            index.close();
            objects.close();
        }
    }

    /** The reader, for tests' hooks. */
    PackObjectReader reader() {
        return reads;
    }

    // ---------------------------------------------------------------- get (see PackObjectReader)

    @Override
    public byte[] get(ChunkId id) {
        return reads.get(id);
    }

    /** Where the chunk is: pending, cached, or in the index; null when nowhere. */
    ChunkLocation locate(ChunkId id) {
        return reads.locate(id);
    }

    @Override
    public void prefetch(java.util.Collection<ChunkId> ids) {
        reads.prefetch(ids);
    }

    @Override
    public void getAll(List<ChunkId> ids, ChunkSink sink) {
        reads.getAll(ids, sink, Reading.STREAM);
    }

    @Override
    public void getAll(List<ChunkId> ids, ChunkSink sink, Reading reading) {
        reads.getAll(ids, sink, reading);
    }

    /** A writer session in the index's database (see {@link PostgresChunkIndex#openSession}). */
    @Override
    public Session session(String what) {
        return index.openSession(what);
    }

    @Override
    public boolean contains(ChunkId id) {
        return pending.containsKey(id) || index.find(id) != null;
    }

    @Override
    public void list(Consumer<ChunkId> sink) {
        // pending first: a commit indexes a chunk before it leaves pending
        Set<ChunkId> unsynced = new HashSet<>(pending.keySet());
        index.forEachId(id -> {
            if (!unsynced.contains(id)) sink.accept(id);
        });
        unsynced.forEach(sink);
    }
}
