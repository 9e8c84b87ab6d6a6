package dev.cask.store.local;

import dev.cask.store.ScanSink;
import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * The embedded default store: a directory of append-only pack files plus an SQLite index.
 *
 * <pre>
 * STORE/cask.store       "cask-store 2": the format version (and the lock file)
 * STORE/packs/NNNNNNNN.pack
 * STORE/packs/NNNNNNNN.holes  stretches a gc punched out of the pack ({@link PackHoles})
 * STORE/index.db         chunk id -> (pack, offset, length, slot); a cache of the packs
 * </pre>
 *
 * <p><b>Writing.</b> {@link #put} hashes and compresses in the caller's thread (so import
 * workers run in parallel), then appends the record to this process's own open pack under a
 * lock, through a 1 MiB buffer. A process never appends to a pack another process created, so
 * several processes can write one store at once. The new chunk sits in {@code pending} until
 * {@link #sync}, which flushes and fsyncs the pack and only then adds the entries to the index:
 * the index never points at bytes a crash could lose. A pack is sealed (fsynced, closed) once it
 * reaches {@link Options#packLimit}; the fsync of a pack a put fills runs on a thread of its own,
 * and the next sync waits for it ({@link #sealPackLater}).
 *
 * <p><b>Segments.</b> {@link #putAll} (an import batch, a checkpoint batch) keeps the new chunks
 * of the batch in batch order, which is disk order, and compresses each run of up to
 * {@link Options#segmentBytes} plain bytes as one zstd frame: a <em>segment</em> (see
 * {@link PackFormat}). Neighbouring blocks of a disk (the blocks of one file, of one directory's
 * files) share words, so they compress better together than one by one, and a whole run costs
 * one frame and one table entry of 40 bytes per chunk instead of a 52-byte record header. A run
 * of one chunk, a run that does not save 1/16 (already compressed files: it becomes single raw
 * records, so reading them costs nothing extra), and every chunk put alone (pointer chunks)
 * stay single records. Segments are built only from chunks that are new to the store and to the
 * batch: a chunk is stored once, as before. If another thread stores some of a run's chunks while
 * this one compresses it, the run is compressed again without them under the same rule.
 *
 * <p><b>Sizing.</b> Measured on the unique 4 KiB chunks of the four fixture images (474 MiB,
 * 121,328 chunks, in import batches), bytes stored for chunk data (payload and framing):
 * <pre>
 *   plain run    zstd 1     zstd 3    compress (1 core, zstd 3)  decompress a run (cold, 1 core)
 *   4 KiB        244.5 MiB  241.7 MiB  90 MB/s                    ~10 us
 *   32 KiB       225.5      220.6     163 MB/s                    ~60 us
 *   64 KiB       222.4      216.9     185 MB/s                    ~120 us
 *   128 KiB      219.7      213.4     175 MB/s                    ~250-320 us
 *   256 KiB      214.9      209.4     124 MB/s                    ~300-800 us
 *   1 MiB        -          202.1     195 MB/s                    ~900 us
 * </pre>
 * About 80 MiB of the unique data does not compress at all (packages, compressed firmware), which
 * bounds what any run size can do: even the whole 474 MiB as one zstd 3 stream is 192 MiB. Runs
 * of up to 1 MiB (an import or checkpoint batch, so the largest a batch can give) at level 3 are
 * the default: the issue asks for at most 0.8 x the smallest of borg, restic and casync, and the
 * four fixture images then take 208.2 MiB, 0.797 x casync's 261.1 MiB (64 KiB runs: 222.5 MiB,
 * 0.852; 256 KiB: 215.1, 0.824; 256 KiB at level 6: 0.802 for 25 % more import time, level 9:
 * 0.795 for 50 % more). Import time is the same as with 64 KiB runs. The price is paid by a
 * random read of a block that is not in the plain cache: it decompresses its whole run (up to 1
 * MiB, ~0.9 ms here, against ~0.1 ms for 64 KiB), and the run goes into the plain cache. For
 * a boot that is a good trade: a recorded Debian boot (1,263 reads) replayed against a server
 * that had served the same content once read in 0.40-0.44 s with 1 MiB runs, 0.64-0.69 s with
 * 64 KiB runs (qemu-nbd on a raw file: 0.35-0.41 s); against a cold server it took 1.8 s
 * against 1.2 s. Runs that compress badly stay single records (see above), so random reads of
 * incompressible data never pay for a run. Blocks a running VM wrote are read back at random, so
 * a checkpoint (a {@link ChunkStore.Access#RANDOM} batch) cuts runs of at most 16 KiB
 * ({@link #RANDOM_SEGMENT_BYTES}), compressed at the single records' level (1; see
 * {@link PackEncoder#segment(ChunkId[], byte[], int[], int, boolean)}): a VM whose journal is full
 * waits for its checkpoint, which keeps up better at level 1 for 2.6 % more bytes. For the same
 * reason a checkpoint's batch probes a run before it tries it whole once its earlier runs did not
 * compress ({@link PackEncoder.Probe}). Level 6 (-2.8 %
 * at 64 KiB) halves compression speed. All are {@link Options}: system properties
 * {@code cask.segment.bytes}, {@code cask.segment.level}, (records, and a checkpoint's
 * segments) {@code cask.zstd.level}, and {@code cask.segment.random-bytes}.
 *
 * <p><b>Reading.</b> {@link #get} answers from a bounded cache of plain chunk bytes when it can;
 * else it finds the chunk through {@code pending}, a bounded cache of index answers (entries
 * never change), or the index ({@link #prefetch} looks up a large read's chunks in batches),
 * reads its record or segment in one positional read, checks the magic, the CRC32C and that the
 * record's id (or the segment table's id at the chunk's slot) is the one asked for, then
 * decompresses and checks the length. A segment's chunk is also checked against its own CRC32C
 * from the table, and the decompressed segment goes into the plain cache as one entry, so the
 * next blocks of a sequential read cost no second decompression (each is checked against its CRC
 * when it is asked for: {@link PlainCache}). The plain cache keeps only what cost a
 * decompression: the page cache already keeps the pack bytes of plain records.
 * {@link #getAll} (an export, an NBD client's large read) reads many chunks with one system call
 * per run of records and no per-chunk cache lookups ({@link BulkReads}). {@code check --deep}
 * also rehashes.
 *
 * <p><b>Healing.</b> A read that finds a copy corrupt marks it in the index's {@code damaged}
 * table, and a put of a chunk whose entry points at a marked copy stores it again; the sync that
 * indexes the new copy reads it back and moves the entry to it (see {@link Healing}). A
 * read ({@link #get}, {@link #getAll}) whose location fails asks the index once more, since
 * another process may have healed the chunk after this one cached the bad location.
 *
 * <p><b>Failure.</b> A write error (a full disk) rolls back that write only: the pack is cut back
 * to the end of the last record handed to the OS whole ({@code packFlushed}), the record that
 * did not fit is not stored (its put throws), and the records still in the write buffer stay
 * there, pending, to be written by a later flush. So a put or sync that met a full disk throws,
 * and once space is freed the next sync writes, fsyncs and indexes everything pending, as if
 * nothing had happened: no chunk a caller was told about is lost, and the index never points
 * at bytes that were not written. An fsync error is different: the kernel may have dropped the
 * unsynced pages, so every chunk put since the last sync may be gone. Then the pending chunks
 * are dropped, the packs created since the last sync deleted, and every later {@link #sync} of
 * this store object fails (reopen the store), since the callers that put those chunks cannot be
 * told apart. {@link #close} whose sync fails (the disk is still full) gives the unsynced bytes
 * back in the same way: nothing indexed points into them, and no caller will sync them any more.
 * Nothing already synced is touched. Segments change nothing here: a segment is appended like a
 * record, and its chunks enter the index together at the sync after it.
 *
 * <p><b>Ownership of packs.</b> A pack is appended to only by the process that created it, which
 * holds an exclusive {@code fcntl} lock on it while it is open for appending, and keeps a marker
 * {@code packs/NNNNNNNN.open} until it seals it. A marker whose pack nobody locks was left by a
 * writer that died: {@link PackRecovery} cuts that pack's torn tail on open (see there).
 *
 * <p><b>Garbage collection and compaction.</b> This class is also the store's
 * {@link dev.cask.store.ChunkDeleter}: its puts stamp index entries with the GC epoch and confirm
 * every dedup hit in the index, never in a cache, and writers register sessions ({@link GcEpochs}
 * holds the safety rule); {@link Compactor} rewrites packs through {@link #appendCopies}. A sealed
 * pack keeps its lock and marker until the sync that indexes its chunks, so compaction never takes
 * it for garbage. A read through a cached location into a pack compaction deleted asks the index
 * again; read channels of deleted packs are closed within about 10 s of a read, so a server does
 * not keep their space.
 *
 * <p><b>Formats.</b> Store format 2 (this class writes pack format 2 and index schema 3); a
 * format-1 store is upgraded when opened, and its packs and index entries are read as they are.
 *
 * <p>Thread-safe. Every process holds a shared lock on {@code cask.store}; {@link #rebuildIndex}
 * needs the store opened {@linkplain Options#exclusive exclusively}.
 */
public final class LocalChunkStore implements ChunkStore, dev.cask.store.ChunkDeleter {
    public static final String HEADER_FILE = "cask.store";
    /** Store format 2: packs may hold segments, and the index has their slots. Format 1 stores are upgraded on open. */
    public static final String HEADER_TEXT = "cask-store 2\n";
    static final String HEADER_TEXT_1 = "cask-store 1\n";
    private static final int WRITE_BUFFER = 1 << 20;

    /**
     * Tuning: zstd level of single records, pack size limit, whether to lock the store for this
     * process alone, the plain bytes and zstd level of a segment ({@code segmentBytes} 0: no
     * segments), and how much of the index file each index connection reads through a memory map
     * ({@code indexMapBytes}, SQLite's {@code mmap_size}; 0: none, every page a read system call).
     */
    public record Options(int zstdLevel, long packLimit, boolean exclusive, int segmentBytes, int segmentLevel, long indexMapBytes) {
        public static final int DEFAULT_SEGMENT_BYTES = 1 << 20;
        public static final int DEFAULT_SEGMENT_LEVEL = 3;

        public Options {
            if (segmentBytes < 0 || segmentBytes > PackFormat.MAX_PAYLOAD - 1024) {
                throw new IllegalArgumentException("segment of " + segmentBytes + " bytes; 0 (off) to 1 MiB");
            }
            if (indexMapBytes < 0) throw new IllegalArgumentException("index map of " + indexMapBytes + " bytes");
        }

        /** Default segments (up to 1 MiB plain at zstd level 3: see the class essay), no index map. */
        public Options(int zstdLevel, long packLimit, boolean exclusive) {
            this(zstdLevel, packLimit, exclusive, DEFAULT_SEGMENT_BYTES, DEFAULT_SEGMENT_LEVEL, 0);
        }

        /**
         * zstd level 1 for single records (per 4 KiB chunk, level 3 saves only about 1 % and costs
         * 60 % more time), segments of up to 1 MiB at level 3, unless the system properties
         * {@code cask.zstd.level}, {@code cask.segment.bytes}, {@code cask.segment.level} say otherwise.
         */
        public static Options defaults() {
            return new Options(Integer.getInteger("cask.zstd.level", 1), Long.getLong("cask.pack.limit", 256L << 20), false,
                    Integer.getInteger("cask.segment.bytes", DEFAULT_SEGMENT_BYTES), Integer.getInteger("cask.segment.level", DEFAULT_SEGMENT_LEVEL), 0);
        }

        public Options withExclusive(boolean e) {
            return new Options(zstdLevel, packLimit, e, segmentBytes, segmentLevel, indexMapBytes);
        }

        public Options withSegments(int bytes, int level) {
            return new Options(zstdLevel, packLimit, exclusive, bytes, level, indexMapBytes);
        }

        /**
         * Index reads through a memory map of up to {@code bytes} of the index file: a page read
         * becomes a memory access instead of a system call. For a process that looks up every
         * block of a disk (import, export: a 4-image import 10-15 % faster) and for a server,
         * whose clients' first read of each block asks the index (cold random 4K reads of a
         * restarted server 14 % faster, median of 5 interleaved runs, session 25). Each pooled
         * index connection maps the file on its own: the pages are the page cache's, shared by
         * every mapping and charged once to the process's cgroup, but {@code ps}'s RSS counts
         * them once per mapping that touched them (PSS does not).
         */
        public Options withIndexMapBytes(long bytes) {
            return new Options(zstdLevel, packLimit, exclusive, segmentBytes, segmentLevel, bytes);
        }
    }

    private final Path dir;
    private final Path packDir;
    private final Options options;
    private final ChunkIndex index;
    /** Damaged chunks and their new copies (see {@link Healing}). */
    private final Healing healing;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private final Map<ChunkId, ChunkLocation> pending = new ConcurrentHashMap<>();
    /** Positional reads of pack files (see {@link PackReader}). */
    private final PackReader reader;
    /** {@link #getAll} (see there). */
    private final BulkReads bulk;
    /** Index answers kept in memory (see {@link #remember}). */
    private final LocationCache located;
    /** Plain bytes of recently read chunks (see {@link #get}); null when turned off. */
    private final PlainCache plain;
    private final PackEncoder encoder;
    /** Segments decompressed by reads (not by scans); tests use it to see that neighbours come from the cache. */
    private final java.util.concurrent.atomic.LongAdder segmentReads = new java.util.concurrent.atomic.LongAdder();

    // writer state, guarded by "this"
    private volatile int packId = -1;
    private FileChannel packChannel;
    private volatile long packFlushed; // bytes of the open pack already handed to the OS
    private long packSynced; // bytes of the open pack fsynced at the last sync (or when it was made)
    /** Records not yet written to the open pack. Direct: a write from a heap buffer is copied into a temporary direct one first. */
    private final ByteBuffer buffer = ByteBuffer.allocateDirect(WRITE_BUFFER);
    private boolean closed;
    /** Packs this process created since the last sync: nothing in them is indexed yet. */
    private final List<Integer> unsyncedPacks = new ArrayList<>();
    /** Set when an fsync failed and unsynced chunks may be lost: every later sync fails with it. */
    private String lostWrites;
    /** The exclusive lock on the open pack (see "Ownership of packs"); null when none is open. */
    private FileLock packLock;
    /** Torn tails {@link PackRecovery} cut when this store opened, one line each. */
    private List<String> cutOnOpen = List.of();
    /** Count of syncs that moved chunks from pending to the index; written under "this", read by put without it. */
    private volatile long syncs;

    /**
     * The size of a store's cache of plain bytes ({@link PlainCache}, and the shared store's): the
     * system property {@code cask.cache.bytes} (0: none), else a quarter of the heap, 512 MiB in a
     * server's 2 GiB. An eighth until session 29: the segments that random 4 KiB reads of one
     * recompressed fixture image touch (its chunks share segments with their look-alikes) hold
     * between 256 and 384 MiB, and at 256 MiB those reads ran at 0.71-0.82 x qemu-nbd, at 512 MiB
     * at 1.03-1.14 x. It fills only with what reads decompressed, so a write path's heap is
     * untouched until reads come; once reads filled it, a server's 1 GiB write of unique data ran
     * about 6 % slower than with 256 MiB (the collector's smaller headroom).
     */
    public static long plainCacheBytes() {
        return Long.getLong("cask.cache.bytes", Runtime.getRuntime().maxMemory() / 4);
    }

    /**
     * How many index answers a store keeps in memory ({@link LocationCache}, 32 bytes each): the
     * system property {@code cask.locations} (at least 16k), else as many as a thirty-second of the
     * heap holds, 2M (64 MiB) in a server's 2 GiB. Until session 30 they were objects in a Caffeine
     * cache, ~200 bytes each, bounded to 838k in that heap.
     */
    static long locationCacheEntries() {
        return Long.getLong("cask.locations", Runtime.getRuntime().maxMemory() / 32 / 32);
    }

    private LocalChunkStore(Path dir, Options options, FileChannel lockChannel, FileLock lock) {
        this.dir = dir;
        this.packDir = dir.resolve("packs");
        this.options = options;
        this.located = new LocationCache(locationCacheEntries());
        long cacheBytes = plainCacheBytes();
        this.plain = cacheBytes <= 0 ? null : new PlainCache(cacheBytes);
        this.lockChannel = lockChannel;
        this.lock = lock;
        this.index = new ChunkIndex(dir.resolve("index.db"), options.indexMapBytes());
        this.healing = new Healing(index);
        this.reader = new PackReader(this::packPath);
        this.bulk = new BulkReads(this, reader, index);
        this.encoder = new PackEncoder(options.zstdLevel(), options.segmentLevel());
    }

    /** Opens the store at {@code dir}, creating it when the directory is missing or empty. */
    public static LocalChunkStore open(Path dir, Options options) {
        try {
            Path header = dir.resolve(HEADER_FILE);
            if (!Files.exists(header)) {
                if (Files.exists(dir) && !Files.isDirectory(dir)) {
                    throw new CaskException.InvalidInput("store " + dir + ": exists and is not a directory");
                }
                if (Files.isDirectory(dir)) {
                    try (Stream<Path> s = Files.list(dir)) {
                        if (s.anyMatch(p -> !p.getFileName().toString().startsWith("."))) {
                            throw new CaskException.InvalidInput("store " + dir + ": directory is not empty and has no " + HEADER_FILE + " (not a cask store)");
                        }
                    }
                }
                Files.createDirectories(dir.resolve("packs"));
                Path tmp = dir.resolve(HEADER_FILE + ".tmp");
                try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                    ch.write(ByteBuffer.wrap(HEADER_TEXT.getBytes(StandardCharsets.US_ASCII)));
                    ch.force(true);
                }
                Files.move(tmp, header, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                fsyncDir(dir);
            }
            String text = Files.readString(header, StandardCharsets.US_ASCII);
            if (!text.startsWith("cask-store ")) {
                throw new CaskException.Corrupt("store " + dir + ": " + HEADER_FILE + " does not start with 'cask-store'");
            }
            String version = text.substring("cask-store ".length()).trim();
            if (!version.equals("1") && !version.equals("2")) {
                throw new CaskException.InvalidInput("store " + dir + ": format " + version + ", this cask reads formats 1 and 2 (upgrade cask)");
            }
            Files.createDirectories(dir.resolve("packs"));
            FileChannel lc = FileChannel.open(header, StandardOpenOption.READ, StandardOpenOption.WRITE);
            FileLock lk;
            try {
                lk = lc.tryLock(0, Long.MAX_VALUE, !options.exclusive());
            } catch (OverlappingFileLockException e) {
                lk = null;
            }
            if (lk == null) {
                lc.close();
                throw new CaskException.Conflict("store " + dir + ": in use by another process"
                        + (options.exclusive() ? " (stop cask serve and other cask commands first)" : " that holds it exclusively (check --repair?)"));
            }
            if (version.equals("1")) upgradeHeader(dir, lc);
            LocalChunkStore store = new LocalChunkStore(dir, options, lc, lk);
            try {
                store.cutOnOpen = PackRecovery.cutAbandonedTails(store);
            } catch (RuntimeException e) {
                store.close();
                throw e;
            }
            return store;
        } catch (IOException e) {
            throw new CaskException.Io("store " + dir + ": cannot open: " + e.getMessage(), e);
        }
    }

    /**
     * Format 1 to 2: the index migrates itself when opened (it gains a slot column), and this
     * process may write segments, which a format-1 cask cannot read: mark the store format 2 so
     * such a cask refuses it instead of calling its segments corrupt. The header is rewritten in
     * place (same length, one byte differs: no torn state), because other processes hold locks on
     * this very file.
     */
    private static void upgradeHeader(Path dir, FileChannel lc) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(HEADER_TEXT.getBytes(StandardCharsets.US_ASCII));
        while (b.hasRemaining()) lc.write(b, b.position());
        lc.force(true);
    }

    public Path dir() {
        return dir;
    }

    /**
     * One line per torn tail cut off a pack when this store opened (a writer had died mid-append;
     * see {@link PackRecovery}), naming the pack, the offset and the bytes cut: for the CLI to show.
     */
    public List<String> cutOnOpen() {
        return cutOnOpen;
    }

    Path packDir() {
        return packDir;
    }

    ChunkIndex index() {
        return index;
    }

    private static void fsyncDir(Path d) throws IOException {
        try (FileChannel ch = FileChannel.open(d, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }

    Path packPath(int id) {
        return packDir.resolve(String.format("%08d.pack", id));
    }

    // ---------------------------------------------------------------- put

    @Override
    public ChunkId put(byte[] data, int off, int len) {
        if (len < 0 || len > MAX_CHUNK) throw new IllegalArgumentException("chunk of " + len + " bytes; at most " + MAX_CHUNK);
        ChunkId id = ChunkId.of(data, off, len);
        long syncsSeen = syncs; // read before looking, so a sync after the look is noticed below
        if (pending.containsKey(id) && pendingHit(id)) return id;
        Healing.Lookup found = healing.lookup(List.of(id));
        if (found.isHit(id)) return id;
        storeSingle(id, encoder.encode(id, data, off, len), syncsSeen, found.damaged().get(id));
        return id;
    }

    /**
     * Hashes the whole batch, looks the ids up in one index query, then stores the new ones:
     * consecutive new chunks together as segments of up to {@link Options#segmentBytes} plain
     * bytes ({@link #RANDOM_SEGMENT_BYTES} at most for a {@link ChunkStore.Access#RANDOM} batch),
     * a lone new chunk (or a run that does not compress) as single records.
     */
    @Override
    public ChunkId[] putAll(byte[] data, int[] offsets, int length) {
        return putAll(data, offsets, length, Access.SEQUENTIAL);
    }

    /**
     * Segments of a {@link ChunkStore.Access#RANDOM} batch (a checkpoint of a running VM's writes)
     * hold at most this many plain bytes (16 KiB: four 4 KiB blocks), whatever
     * {@link Options#segmentBytes} says: a random read of one block decompresses its whole segment
     * and puts all its neighbours in the plain cache, where blocks a VM wrote are read back one at a
     * time. Measured (fio, random 4 KiB reads at queue depth 32 of 1 GiB of mixed data written
     * through NBD and checkpointed, more than the plain cache holds): 80-85 MiB/s with 64 KiB
     * segments, 148-153 with 16 KiB, qemu-nbd on qcow2 116-133; sequential 1 MiB reads the same or
     * faster; a Debian server image written through NBD stores 2.1 % more (141.2 -> 144.1 MB;
     * 8 KiB: +4.9 %, no faster). {@code -Dcask.segment.random-bytes=N} sets it.
     */
    public static final int RANDOM_SEGMENT_BYTES = Integer.getInteger("cask.segment.random-bytes", 16 << 10);

    @Override
    public ChunkId[] putAll(byte[] data, int[] offsets, int length, Access access) {
        if (length < 0 || length > MAX_CHUNK) throw new IllegalArgumentException("chunk of " + length + " bytes; at most " + MAX_CHUNK);
        ChunkId[] ids = new ChunkId[offsets.length];
        for (int i = 0; i < offsets.length; i++) ids[i] = ChunkId.of(data, offsets[i], length);
        long syncsSeen = syncs;
        List<ChunkId> unknown = notPending(ids);
        Healing.Lookup found = healing.lookup(unknown); // a damaged copy is stored again, like a new chunk
        java.util.Map<ChunkId, ChunkLocation> damaged = found.damaged();
        java.util.Set<ChunkId> done = new java.util.HashSet<>();
        int[] fresh = new int[ids.length]; // indexes of the chunks to store, in batch order
        int n = 0;
        for (int i = 0; i < ids.length; i++) {
            ChunkId id = ids[i];
            if (found.isHit(id) || !done.add(id) || pending.containsKey(id)) continue;
            fresh[n++] = i;
        }
        int segmentBytes = access == Access.RANDOM ? Math.min(options.segmentBytes(), RANDOM_SEGMENT_BYTES) : options.segmentBytes();
        int perSegment = length == 0 ? 1 : Math.min(PackFormat.MAX_SEGMENT_CHUNKS, segmentBytes / length);
        PackEncoder.Probe probe = access == Access.RANDOM ? new PackEncoder.Probe() : null;
        for (int from = 0; from < n; from += Math.max(1, perSegment)) {
            int count = Math.min(Math.max(1, perSegment), n - from);
            if (count == 1) {
                int i = fresh[from];
                storeSingle(ids[i], encoder.encode(ids[i], data, offsets[i], length), syncsSeen, damaged.get(ids[i]));
            } else {
                ChunkId[] gids = new ChunkId[count];
                int[] goffs = new int[count];
                for (int k = 0; k < count; k++) {
                    gids[k] = ids[fresh[from + k]];
                    goffs[k] = offsets[fresh[from + k]];
                }
                storeSegment(gids, data, goffs, length, syncsSeen, damaged, probe);
            }
        }
        return ids;
    }

    /**
     * A dedup hit in {@code pending}, which takes no index stamp: the entry a later sync inserts
     * is stamped with the GC epoch of that time, after this put (see {@link GcEpochs}). Not while
     * a sync is between committing the chunk's entry and dropping it from {@code pending}: that
     * entry was stamped before this put, maybe before a gc raised the epoch, and a writer whose
     * session registered after the gc looked would get a hit nothing stamps (PendingHitRaceTest).
     * Asked under the lock, which such a sync holds; the caller saw the id pending without it.
     */
    private synchronized boolean pendingHit(ChunkId id) {
        return pending.containsKey(id);
    }

    /**
     * The ids of a batch that are not pending hits ({@link #pendingHit}): one look without the
     * lock, and again under it only when some id is pending. An id that becomes pending after
     * this is indexed by a sync that starts after it, so a later look may trust it.
     */
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
     * True when the chunk is already stored: pending, or indexed by a sync since {@code syncsSeen}
     * (at another location than {@code bad}, the damaged copy the caller means to replace, if
     * any: a heal by this process's sync moved the entry). Caller holds the lock.
     */
    private boolean stored(ChunkId id, long syncsSeen, ChunkLocation bad) {
        // another thread may have put it, and a sync moved it from pending to the index meanwhile
        if (pending.containsKey(id)) return true;
        if (syncs == syncsSeen) return false;
        // confirmed (and stamped) by the index, never by a cache: see GcEpochs
        ChunkIndex.PutLookup now = index.lookupForPut(List.of(id)).get(id);
        return now != null && !now.damaged() && !now.location().equals(bad);
    }

    /** Notes a new chunk in {@code pending}; {@code bad} is the damaged copy it replaces, or null. Caller holds the lock. */
    private void addPending(ChunkId id, ChunkLocation loc, ChunkLocation bad) {
        if (bad != null) healing.replaces(id, bad);
        pending.put(id, loc);
    }

    private void storeSingle(ChunkId id, PackEncoder.Encoded record, long syncsSeen, ChunkLocation bad) {
        synchronized (this) {
            checkOpen();
            if (stored(id, syncsSeen, bad)) return;
            long at = append(record.header(), record.body(), record.off(), record.len());
            addPending(id, new ChunkLocation(packId, at, record.length()), bad);
        }
    }

    /**
     * Stores chunks {@code data[offs[k], offs[k] + length)} as one segment, compressed in the
     * caller's thread. If another thread stored some of them while this one compressed, they are
     * left out and the rest compressed again (rare: two workers with the same new blocks at once),
     * so a chunk is never stored twice. A segment that does not save 1/16 becomes single raw records.
     * With {@code probe} (a {@link ChunkStore.Access#RANDOM} batch: a checkpoint's), at the single
     * records' level, and after a few runs of the batch that did not compress, probed before it is
     * tried whole ({@link PackEncoder.Probe}).
     */
    private void storeSegment(ChunkId[] ids, byte[] data, int[] offs, int length, long syncsSeen, Map<ChunkId, ChunkLocation> damaged,
                              PackEncoder.Probe probe) {
        while (ids.length > 1) {
            PackEncoder.Run run = probe == null ? encoder.segment(ids, data, offs, length) : encoder.segment(ids, data, offs, length, probe);
            byte[] segment = run.segment();
            if (segment == null) {
                // incompressible: plain single records; weakly compressible: each compressed alone,
                // so that a random read of one decompresses its own bytes only
                for (int k = 0; k < ids.length; k++) {
                    storeSingle(ids[k], encoder.encode(run, ids[k], data, offs[k], length), syncsSeen, damaged.get(ids[k]));
                }
                return;
            }
            boolean[] keep = new boolean[ids.length];
            int kept = 0;
            synchronized (this) {
                checkOpen();
                for (int k = 0; k < ids.length; k++) if (keep[k] = !stored(ids[k], syncsSeen, damaged.get(ids[k]))) kept++;
                if (kept == ids.length) {
                    long at = append(segment);
                    for (int k = 0; k < ids.length; k++) addPending(ids[k], new ChunkLocation(packId, at, segment.length, k), damaged.get(ids[k]));
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
        if (ids.length == 1) storeSingle(ids[0], encoder.encode(ids[0], data, offs[0], length), syncsSeen, damaged.get(ids[0]));
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("store " + dir + " is closed");
    }

    /** Appends a record or segment to the open pack and returns its offset there; caller holds the lock. */
    private long append(byte[] record) {
        return append(record, record, 0, 0);
    }

    /**
     * Appends {@code head} and then {@code tail[off, off+len)} as one record (a header and a payload
     * left where it was: see {@link PackEncoder.Encoded}) and returns its offset in the open pack;
     * caller holds the lock.
     */
    private long append(byte[] head, byte[] tail, int off, int len) {
        int length = head.length + len;
        try {
            if (packChannel == null) openNewPack();
            long at = packFlushed + buffer.position();
            if (at + length > options.packLimit() && at > PackFormat.PACK_HEADER) {
                sealPackLater();
                openNewPack();
                at = packFlushed + buffer.position();
            }
            if (length > buffer.remaining()) flushBuffer();
            if (length > buffer.capacity()) {
                try {
                    writeFully(ByteBuffer.wrap(head), packFlushed);
                    writeFully(ByteBuffer.wrap(tail, off, len), packFlushed + head.length);
                } catch (IOException e) {
                    cutBack(e);
                    throw e;
                }
                packFlushed += length;
            } else {
                buffer.put(head).put(tail, off, len);
            }
            return at;
        } catch (FsyncFailed e) {
            poison(e);
            throw new CaskException.Io("store " + dir + ": syncing pack " + packId + " failed: " + e.getCause().getMessage(), e.getCause());
        } catch (IOException e) {
            throw new CaskException.Io("store " + dir + ": writing pack " + packId + " failed: " + e.getMessage(), e);
        }
    }

    /** An fsync of a pack failed: what was written since the last one may be lost (see the class essay). */
    private static final class FsyncFailed extends IOException {
        FsyncFailed(IOException cause) {
            super(cause.getMessage(), cause);
        }

        @Override
        public synchronized IOException getCause() {
            return (IOException) super.getCause();
        }
    }

    private void force(FileChannel ch) throws FsyncFailed {
        try {
            ch.force(false);
        } catch (IOException e) {
            throw new FsyncFailed(e);
        }
    }

    /**
     * A write to the open pack failed: cut the pack back to the end of the last whole write
     * ({@code packFlushed}), so that no torn record stays behind it and the next write lands
     * where this one should have. The write buffer is left as it was. If the cut fails too, the
     * next write overwrites the torn bytes from the same offset.
     */
    private void cutBack(IOException cause) {
        try {
            packChannel.truncate(packFlushed);
        } catch (IOException e) {
            cause.addSuppressed(e);
        }
    }

    private void openNewPack() throws IOException {
        int next = 1;
        try (Stream<Path> s = Files.list(packDir)) {
            next = s.map(p -> p.getFileName().toString())
                    .filter(n -> n.matches("\\d{8}\\.pack"))
                    .mapToInt(n -> Integer.parseInt(n.substring(0, 8)))
                    .max().orElse(0) + 1;
        }
        while (true) {
            try {
                packChannel = FileChannel.open(packPath(next), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.READ);
                break;
            } catch (FileAlreadyExistsException e) {
                next++; // another process took it
            }
        }
        // locked before its marker exists and before it has a header: PackRecovery never cuts a
        // pack without a whole header, nor one whose lock is held (it may hold it for a moment: wait)
        packLock = packChannel.lock();
        packId = next;
        packFlushed = 0;
        packSynced = PackFormat.PACK_HEADER;
        unsyncedPacks.add(next);
        buffer.clear();
        buffer.put(PackFormat.encodePackHeader(packId));
        try {
            Files.newByteChannel(PackRecovery.markerPath(packDir, next), StandardOpenOption.CREATE, StandardOpenOption.WRITE).close();
            flushBuffer();
            packChannel.force(true);
            fsyncDir(packDir);
        } catch (IOException e) {
            // a pack without a whole header helps nobody (the disk is full): remove it
            packChannel.close();
            packChannel = null;
            packLock = null;
            buffer.clear();
            Files.deleteIfExists(packPath(next));
            Files.deleteIfExists(PackRecovery.markerPath(packDir, next));
            unsyncedPacks.remove((Integer) next);
            throw e;
        }
    }

    /** Writes the buffer to the pack; on failure the pack is cut back and the buffer kept as it was. */
    private void flushBuffer() throws IOException {
        if (buffer.position() == 0) return;
        ByteBuffer b = buffer.duplicate().flip();
        int n = b.remaining();
        try {
            writeFully(b, packFlushed);
        } catch (IOException e) {
            cutBack(e);
            throw e;
        }
        packFlushed += n;
        buffer.clear();
    }

    private void writeFully(ByteBuffer b, long pos) throws IOException {
        while (b.hasRemaining()) {
            pos += packChannel.write(b, pos);
        }
    }

    /**
     * Seals the open pack: flushed and fsynced, no more appends. Its lock and marker are kept until
     * the next {@link #sync} has indexed the chunks appended to it ({@link #releaseSealed}): until
     * then it looks to compaction like a pack being written, which it must not rewrite or delete
     * (its chunks are not in the index yet, so it would look like garbage).
     */
    private void sealPack() throws IOException {
        flushBuffer();
        force(packChannel);
        sealedUnindexed.put(packId, packChannel); // the channel holds packLock
        packChannel = null;
        packLock = null;
    }

    /**
     * Seals the open pack as {@link #sealPack} does, but its fsync runs on {@link #packSyncer}:
     * the put that filled the pack, and every other put waiting for this lock, go on into the
     * next pack at once. Before, all of them waited 0.12-0.16 s for the fsync of each 256 MiB
     * pack a checkpoint filled, under this lock (write-bench's sustained write: a fifth of the
     * time a 512 MiB checkpoint spent storing, on 2 cores). The chunks in the pack stay pending,
     * and {@link #flushAndForce} waits for the fsync before anything indexes them; a failed one
     * poisons the store there, as a failed fsync in this thread would have. Caller holds "this".
     */
    private void sealPackLater() throws IOException {
        flushBuffer();
        FileChannel ch = packChannel;
        sealedUnindexed.put(packId, ch); // the channel holds packLock
        var fsync = java.util.concurrent.CompletableFuture.runAsync(() -> {
            try {
                force(ch);
            } catch (FsyncFailed e) {
                throw new java.util.concurrent.CompletionException(e);
            }
        }, packSyncer);
        syncing.put(packId, new Sealing(fsync, ch, unsyncedPacks.contains(packId) ? -1 : packSynced));
        packChannel = null;
        packLock = null;
    }

    /**
     * A pack {@link #sealPackLater} sealed: its fsync, its channel, and the bytes of it the last
     * sync made durable ({@code packSynced} then; -1: created since, so {@link #poison} deletes it),
     * to which a poison cuts it back as it cuts the open pack.
     */
    private record Sealing(java.util.concurrent.CompletableFuture<Void> fsync, FileChannel channel, long synced) {}

    /** The packs {@link #sealPackLater} sealed that no {@link #flushAndForce} has waited for yet, by pack. Guarded by "this". */
    private final Map<Integer, Sealing> syncing = new java.util.TreeMap<>();

    /** Runs {@link #sealPackLater}'s fsyncs, one at a time (a platform thread: it blocks in the kernel). */
    private final java.util.concurrent.ExecutorService packSyncer = java.util.concurrent.Executors.newSingleThreadExecutor(
            Thread.ofPlatform().daemon().name("cask-pack-sync").factory());

    /**
     * Waits for the fsyncs of the packs sealed by {@link #sealPackLater}. The first that failed
     * poisons the store, as a failed fsync of the open pack does, and is thrown. Caller holds "this".
     */
    private void awaitSealedPacks() {
        for (var f : new ArrayList<>(syncing.entrySet())) {
            try {
                f.getValue().fsync().join();
            } catch (java.util.concurrent.CompletionException e) {
                FsyncFailed failed = e.getCause() instanceof FsyncFailed ff ? ff : new FsyncFailed(new IOException(e.getCause()));
                poison(failed); // cuts back every pack still in syncing, this one included
                throw new CaskException.Io("store " + dir + ": syncing pack " + f.getKey() + " failed: " + failed.getMessage(), failed.getCause());
            }
        }
        syncing.clear();
    }

    /** Sealed packs whose chunks are not all indexed yet, with the channel holding each one's lock. Guarded by "this". */
    private final Map<Integer, FileChannel> sealedUnindexed = new java.util.TreeMap<>();

    /**
     * Releases the locks and markers of sealed packs whose chunks are all indexed: not of one that
     * a pending (unsynced) chunk is in, which the next sync releases. Compaction calls it after its
     * switch, when this process's other writers may have filled and sealed a pack meanwhile; until
     * session 29 that pack was released too, and the next compaction or recompression could take
     * it, find no index entry for its pending chunks, and delete it under them (GcConcurrencyTest
     * saw a kept version's export fail with the pack missing). Caller holds "this".
     */
    void releaseSealed() {
        if (sealedUnindexed.isEmpty()) return;
        Set<Integer> unsynced = new HashSet<>();
        for (ChunkLocation l : pending.values()) unsynced.add(l.pack());
        for (var it = sealedUnindexed.entrySet().iterator(); it.hasNext(); ) {
            var e = it.next();
            if (unsynced.contains(e.getKey())) continue;
            try {
                e.getValue().close(); // releases the pack's lock
                Files.deleteIfExists(PackRecovery.markerPath(packDir, e.getKey()));
            } catch (IOException ignored) {
                // a marker left: the next open finds the pack whole and deletes it
            }
            it.remove();
        }
    }

    /**
     * After an fsync error (or a close that cannot sync): forget every chunk put since the last
     * sync, delete the packs created since then (nothing indexed points into them, and a full
     * disk needs the room back), cut the unsynced tail off an older open pack, and, after an
     * fsync error, make every later sync fail loudly.
     */
    private void poison(IOException cause) {
        if (cause instanceof FsyncFailed || cause.getCause() instanceof FsyncFailed) lostWrites = cause.getMessage();
        poison();
    }

    private void poison() {
        pending.clear();
        // packs sealed with their fsync not waited for: cut back to what a sync made durable (packs
        // created since are deleted below), as the open pack is
        for (Sealing s : syncing.values()) {
            if (s.synced() < 0) continue;
            try {
                s.channel().truncate(s.synced());
            } catch (IOException ignored) {
                // nothing indexed points past it; check reports a tail it finds
            }
        }
        syncing.clear();
        healing.forget();
        if (plain != null) plain.clear(); // it may hold chunks read back from the lost records
        buffer.clear();
        if (packChannel != null) {
            try {
                packChannel.truncate(unsyncedPacks.contains(packId) ? packFlushed : packSynced);
            } catch (IOException ignored) {
                // deleted below, or reported by check as a torn tail; nothing points at it
            }
            try {
                packChannel.close();
            } catch (IOException ignored) {
                // already failing
            }
        }
        packChannel = null;
        packLock = null;
        try {
            Files.deleteIfExists(PackRecovery.markerPath(packDir, packId));
        } catch (IOException ignored) {
            // PackRecovery finds the pack whole, or cuts what is left
        }
        releaseSealed();
        for (int id : unsyncedPacks) {
            try {
                Files.deleteIfExists(packPath(id));
                reader.forget(id);
            } catch (IOException ignored) {
                // garbage for GC then
            }
        }
        unsyncedPacks.clear();
    }

    /** A stored record or segment as it is in its pack, and the chunks in it (slot -1: a record). */
    record Verbatim(byte[] bytes, ChunkId[] ids, int[] slots) {}

    /**
     * Compaction's other write ({@link Compactor}): appends each record or segment of
     * {@code pieces} byte for byte (the caller checked its CRC and that every chunk in it is live),
     * flushes and fsyncs them, and returns the chunks' new locations (same slots). Nothing is
     * compressed again and nothing is indexed, as {@link #appendCopies}.
     */
    synchronized Map<ChunkId, ChunkLocation> appendVerbatim(List<Verbatim> pieces) {
        checkOpen();
        sync();
        Map<ChunkId, ChunkLocation> out = new java.util.LinkedHashMap<>();
        for (Verbatim v : pieces) {
            long at = append(v.bytes());
            for (int k = 0; k < v.ids().length; k++) out.put(v.ids()[k], new ChunkLocation(packId, at, v.bytes().length, v.slots()[k]));
        }
        flushAndForce();
        packSynced = packFlushed;
        unsyncedPacks.clear();
        return out;
    }

    /**
     * The number of chunks the segment at {@code loc} holds, from its header (checked: a
     * CaskException when it cannot be read or is no segment header).
     */
    int segmentChunks(ChunkLocation loc) {
        byte[] h = readStored(loc.pack(), loc.offset(), PackFormat.SEGMENT_HEADER);
        PackFormat.segmentLength("pack " + loc.pack() + " offset " + loc.offset(), h, 0); // checks the header
        return java.nio.ByteBuffer.wrap(h).getInt(8);
    }

    /** The bytes {@code [offset, offset+length)} of pack {@code pack}, exactly (compaction's verbatim copies). */
    byte[] readStored(int pack, long offset, int length) {
        byte[] span = reader.readSpan(pack, offset, length);
        try {
            return java.util.Arrays.copyOf(span, length);
        } finally {
            dev.cask.common.ByteArrays.give(span);
        }
    }

    /**
     * Compaction's write ({@link Compactor}): appends copies of the chunks {@code plains} (their
     * verified plain bytes) to this process's pack, runs of equal length as segments as a put would
     * ({@link PackEncoder#runs}, up to {@link Options#segmentBytes} each), flushes and fsyncs them
     * ({@link #appendVerbatim}), and returns their new locations. Nothing is indexed: the caller
     * switches the index, then calls {@link #releaseSealed}. Pending chunks are synced first.
     */
    synchronized Map<ChunkId, ChunkLocation> appendCopies(List<ChunkId> ids, List<byte[]> plains) {
        checkOpen();
        sync();
        List<Verbatim> pieces = new ArrayList<>();
        for (List<Verbatim> run : encoder.runs(ids, plains, options.segmentBytes(), java.util.function.Supplier::get)) pieces.addAll(run);
        return appendVerbatim(pieces);
    }

    /**
     * Indexes what is pending, then seals this process's open pack, if any, and lets go of it: the
     * next append opens a new pack. A recompression calls it before its first copy and after its
     * index switch, so its copies fill packs of their own ({@link Recompressor}).
     */
    synchronized void sealOpenPack() {
        checkOpen();
        sync();
        if (packChannel != null) {
            try {
                sealPack();
            } catch (IOException e) {
                throw new CaskException.Io("store " + dir + ": sealing pack " + packId + " failed: " + e.getMessage(), e);
            }
        }
        releaseSealed(); // sync indexed every chunk appended before it
    }

    /** The store's tuning (a recompression's encoder keeps its single records' zstd level). */
    Options options() {
        return options;
    }

    /** Flushes the write buffer into the open pack, if any, and fsyncs it; a failed fsync poisons the store. Caller holds "this". */
    private void flushAndForce() {
        awaitSealedPacks();
        if (packChannel == null) return;
        try {
            flushBuffer();
            force(packChannel);
        } catch (FsyncFailed e) {
            poison(e);
            throw new CaskException.Io("store " + dir + ": syncing pack " + packId + " failed: " + e.getMessage(), e.getCause());
        } catch (IOException e) {
            throw new CaskException.Io("store " + dir + ": writing pack " + packId + " failed: " + e.getMessage(), e);
        }
    }

    /** The pack this process appends to, or -1. */
    int openPackId() {
        return packChannel == null ? -1 : packId;
    }

    /** True when this process holds {@code pack} open for appending or sealed but not yet indexed. */
    synchronized boolean ownsPack(int pack) {
        return (packChannel != null && packId == pack) || sealedUnindexed.containsKey(pack);
    }

    /** Forgets a deleted pack's read channel and the damage marks of copies in it. */
    void dropPack(int pack) {
        reader.forget(pack);
        index.unmarkPack(pack);
    }

    /** Runs the closing of deleted packs' read channels at the next read (tests). */
    void checkDeletedPacksSoon() {
        reader.checkDeletedPacksSoon();
    }

    static void fsyncDirectory(Path d) throws IOException {
        fsyncDir(d);
    }

    // ---------------------------------------------------------------- sync

    @Override
    public synchronized void sync() {
        if (lostWrites != null) {
            throw new CaskException.Io("store " + dir + ": an fsync of a pack failed (" + lostWrites
                    + "), so chunks put before it may be lost; reopen the store", null);
        }
        if (pending.isEmpty()) return;
        flushAndForce();
        if (packChannel != null) packSynced = packFlushed;
        List<Map.Entry<ChunkId, ChunkLocation>> entries = new ArrayList<>(pending.entrySet());
        entries.sort(Map.Entry.comparingByKey()); // ascending keys fill the index B-tree pages in order
        // new copies of damaged chunks replace the bad ones only once read back good (see Healing)
        List<Map.Entry<ChunkId, ChunkLocation>> indexed = healing.commit(entries, this::readsBackGood);
        afterIndexCommit.run();
        // a healed chunk's cached location was the bad copy: every entry's cached location goes, and a
        // put replaces it anyway, so only entries not indexed here (a heal that did not take) need a
        // separate invalidation (a sync of a large checkpoint makes 100k+ cache operations under this
        // lock: ~1-2 us each while the location cache was a Caffeine map; a few array accesses now)
        if (indexed.size() != entries.size()) {
            java.util.Set<ChunkId> put = new java.util.HashSet<>(indexed.size() * 2);
            for (var e : indexed) put.add(e.getKey());
            for (var e : entries) if (!put.contains(e.getKey())) located.invalidate(e.getKey());
        }
        for (var e : indexed) located.put(e.getKey(), e.getValue()); // just written, likely read soon: no index query then
        for (var e : entries) pending.remove(e.getKey(), e.getValue());
        unsyncedPacks.clear();
        releaseSealed();
        syncs++;
    }

    /** Test hook: runs in {@link #sync} after the pending chunks' entries are committed, before they leave {@code pending}. */
    volatile Runnable afterIndexCommit = () -> {};

    /** Whether the copy of {@code id} at {@code loc} (synced, not yet indexed) reads back whole and hashes to its id. */
    private boolean readsBackGood(ChunkId id, ChunkLocation loc) {
        try {
            return ChunkId.of(read(id, loc, false)).equals(id);
        } catch (CaskException e) {
            return false;
        }
    }

    // ---------------------------------------------------------------- get

    /**
     * Reads a chunk. What cost a decompression to read (a compressed record, a whole segment: see
     * {@link PlainCache}) is kept in an in-memory cache of plain bytes, bounded in bytes
     * ({@link #plainCacheBytes}: the system property {@code cask.cache.bytes}, default a quarter of
     * the heap; 0 turns it off): a chunk never changes, so a cached copy is as good as the verified
     * read that made it. A record stored plain is not kept: reading it again costs a positional
     * read from the page cache and a CRC, about what copying it into the cache costs, and random
     * reads of incompressible data (a guest's compressed files, encrypted disks) would only churn
     * the cache, pushing out what did cost a decompression. Every call returns a fresh copy (a caller may scribble on it).
     */
    @Override
    public byte[] get(ChunkId id) {
        if (plain != null) {
            byte[] hit = plain.chunk(id); // a copy
            if (hit != null) return hit;
        }
        ChunkLocation loc = locate(id);
        if (loc == null) throw new CaskException.NotFound("chunk " + id.hex() + ": not in store " + dir);
        byte[] data;
        try {
            data = read(id, loc, true);
        } catch (CaskException e) {
            if (!(e instanceof CaskException.Corrupt) && !packGone(e)) throw e;
            data = readElsewhere(id, loc, e);
        }
        // a plain record is stored as long as its bytes plus the header; anything shorter was
        // decompressed (a segment's chunk is not: read() kept the whole segment)
        if (plain != null && !loc.inSegment() && loc.length() < PackFormat.RECORD_HEADER + data.length) plain.keepChunk(id, data);
        return data;
    }

    /**
     * {@link #get} without an array of its own when the chunk is a record stored uncompressed (a
     * guest's unique data, mostly): the record is read into a recycled array and its payload lent
     * to {@code sink} from there. A served disk's random 4 KiB reads go this way. Anything else
     * (the plain cache holds it, a segment's chunk, a compressed record, a copy that fails its
     * checks) is as {@link #get} does it.
     */
    @Override
    public void get(ChunkId id, ChunkSink sink) {
        ChunkLocation loc = plain != null && plain.holdsChunk(id) ? null : locate(id);
        if (loc != null && !loc.inSegment()) {
            java.util.function.Supplier<String> name = () -> "chunk " + id.shortHex() + " (" + loc + ")"; // built only on failure
            PackFormat.Record r = null;
            byte[] data = null;
            try {
                r = recordRecycled(id, loc, name);
                if (!PackReader.storedPlain(name, r)) data = PackReader.plainBytes(name, r);
            } catch (CaskException e) {
                if (!(e instanceof CaskException.Corrupt) && !packGone(e)) throw e;
                r = null; // get() reads it again and finds the copy the index points at now, or fails as it did
            }
            if (r != null) {
                try {
                    if (data == null) {
                        sink.chunk(0, r.payload(), r.payloadOffset(), r.payloadLength());
                        return;
                    }
                } finally {
                    dev.cask.common.ByteArrays.give(r.payload());
                }
                if (plain != null) plain.keepChunk(id, data); // decompressed: as get() keeps it
                sink.chunk(0, data, 0, data.length);
                return;
            }
        }
        byte[] data = get(id);
        sink.chunk(0, data, 0, data.length);
    }

    /**
     * The copy of {@code id} at {@code loc} failed its checks, or its pack is gone: reads the copy
     * the index (or this process's pending chunks) points at now if that is another one (another
     * process healed the chunk, or compaction moved it, since this one cached its location), else
     * throws {@code failure}.
     */
    private byte[] readElsewhere(ChunkId id, ChunkLocation loc, CaskException failure) {
        byte[] data = copyElsewhere(id, loc, failure, true);
        if (data == null) throw failure;
        return data;
    }

    /**
     * A read of chunk {@code id} at {@code loc} (a location a cache or the index gave) failed:
     * forgets the cached location and returns the bytes of the copy the index points at now, or
     * null when it still points at {@code loc} (or nowhere); then a corrupt copy is marked damaged
     * (see {@link Healing}) unless it is this process's own pending copy.
     */
    byte[] copyElsewhere(ChunkId id, ChunkLocation loc, CaskException failure, boolean keepNeighbours) {
        located.invalidate(id);
        byte[] data = healedCopy(id, loc, keepNeighbours);
        if (data == null && failure instanceof CaskException.Corrupt corrupt && !loc.equals(pending.get(id))) markCorrupt(id, loc, corrupt);
        return data;
    }

    /**
     * The bytes of {@code id} from where the index (or this process's pending chunks) says it is
     * now, when that is not {@code bad}: a copy another process wrote since this one cached the
     * bad location; null when there is none. When that copy fails too, the index is asked again:
     * compaction may have moved the chunk once more between the lookup and the read (small packs,
     * a collector in a loop), and a new answer is followed, at most {@link #MOVES_FOLLOWED} times.
     * When the answer stays the same, that copy's failure is thrown, and a copy that failed its
     * checks (not one whose pack is gone) is marked damaged, or no put would ever heal it.
     */
    private byte[] healedCopy(ChunkId id, ChunkLocation bad, boolean keepNeighbours) {
        ChunkLocation tried = bad;
        CaskException failed = null; // what reading tried failed with, when it was the index's answer
        for (int moves = 0; ; moves++) {
            ChunkLocation now = pending.get(id);
            if (now == null) now = index.find(id);
            if (now == null || now.equals(tried) || moves == MOVES_FOLLOWED) {
                if (failed == null) return null;
                if (failed instanceof CaskException.Corrupt corrupt && !packGone(failed) && !tried.equals(pending.get(id))) {
                    markCorrupt(id, tried, corrupt);
                }
                throw failed;
            }
            beforeReadElsewhere.run();
            try {
                byte[] data = read(id, now, keepNeighbours);
                remember(Map.of(id, now));
                return data;
            } catch (CaskException e) {
                if (!(e instanceof CaskException.Corrupt) && !packGone(e)) throw e;
                tried = now;
                failed = e;
            }
        }
    }

    /** Most moves of one chunk {@link #healedCopy} follows while it reads: each is a whole compaction of its pack meanwhile. */
    static final int MOVES_FOLLOWED = 16;

    /** Test hook: runs in {@link #healedCopy} between the index's answer and the read of the copy it names. */
    volatile Runnable beforeReadElsewhere = () -> {};

    /**
     * Marks the copy of {@code id} at {@code loc} damaged (see {@link Healing}). A segment is
     * suspect as a whole (its CRC covers table and frame together), so every chunk its table
     * names is marked at its slot, read from the table without checks: a wrong id there marks a
     * location no index entry has, which changes nothing. Then one failed read of a disk is enough
     * for the next import of that disk to heal all of the segment's chunks, not only the first.
     */
    private void markCorrupt(ChunkId id, ChunkLocation loc, CaskException.Corrupt failure) {
        List<Map.Entry<ChunkId, ChunkLocation>> marks = new ArrayList<>();
        marks.add(Map.entry(id, loc));
        if (loc.inSegment()) {
            try {
                byte[] span = reader.readSpan(loc.pack(), loc.offset(), loc.length());
                try {
                    ChunkId[] named = PackFormat.segmentTableIdsUnchecked(span, 0, loc.length());
                    for (int k = 0; k < named.length; k++) {
                        if (k != loc.slot()) marks.add(Map.entry(named[k], new ChunkLocation(loc.pack(), loc.offset(), loc.length(), k)));
                    }
                } finally {
                    dev.cask.common.ByteArrays.give(span);
                }
            } catch (CaskException e) {
                failure.addSuppressed(e); // the pack is short or unreadable: mark the one chunk
            }
        }
        healing.markCorrupt(marks, failure);
    }

    /** Where the chunk is, or null. */
    public ChunkLocation locate(ChunkId id) {
        ChunkLocation loc = pending.get(id);
        if (loc != null) return loc;
        loc = located.get(id);
        if (loc != null) return loc;
        loc = index.find(id);
        if (loc != null) remember(Map.of(id, loc));
        return loc;
    }

    /** Looks the chunks up in batches (one index query per 128) so the {@link #get}s that follow find them cached. */
    @Override
    public void prefetch(java.util.Collection<ChunkId> ids) {
        List<ChunkId> wanted = new ArrayList<>(ids.size());
        for (ChunkId id : ids) {
            if (!pending.containsKey(id) && located.get(id) == null && (plain == null || !plain.holdsChunk(id))) wanted.add(id);
        }
        if (wanted.size() < 2) return;
        remember(index.locateAll(wanted));
    }

    private GcEpochs gcEpochs;

    private synchronized GcEpochs gcEpochs() {
        if (gcEpochs == null) gcEpochs = new GcEpochs(this);
        return gcEpochs;
    }

    /** Registers a writer session (see {@link GcEpochs}). */
    @Override
    public Session session(String what) {
        checkOpen();
        return gcEpochs().open(what);
    }

    /** Starts a garbage collection (see {@link GcEpochs}). */
    @Override
    public Sweep begin(Consumer<String> waiting) {
        checkOpen();
        return gcEpochs().begin(waiting);
    }

    /** Starts a garbage collection that {@code pacer} can stop while it waits (see {@link GcEpochs}). */
    @Override
    public Sweep begin(String who, Consumer<String> waiting, dev.cask.common.Pacer pacer) {
        checkOpen();
        return gcEpochs().begin(who, waiting, pacer);
    }

    /** The store's current GC epoch. */
    @Override
    public long gcEpoch() {
        return index.epoch();
    }

    void forget(java.util.Collection<ChunkId> ids) {
        for (ChunkId id : ids) located.invalidate(id);
    }

    /**
     * Keeps index answers for reads: an entry's location never changes once written. Garbage
     * collection may delete an entry; a read through a stale answer still finds the chunk's bytes
     * (the pack stays until compaction), and no put trusts this cache (see {@link GcEpochs}).
     * Bounded by {@link #locationCacheEntries}; see {@link LocationCache}.
     */
    void remember(Map<ChunkId, ChunkLocation> found) {
        for (var e : found.entrySet()) located.put(e.getKey(), e.getValue());
    }

    /**
     * The verified plain bytes of chunk {@code id} at {@code loc}. For a chunk in a segment the
     * whole segment is read and decompressed once, unless the plain cache holds it already; with
     * {@code keepNeighbours} it goes into the plain cache, so reading the next blocks of a disk
     * costs no second decompression.
     */
    private byte[] read(ChunkId id, ChunkLocation loc, boolean keepNeighbours) {
        if (loc.inSegment() && plain != null) {
            byte[] hit = plain.fromSegment(id, loc);
            if (hit != null) return hit;
        }
        if (loc.inSegment()) {
            byte[] rec = readRecordBytes(loc);
            String what = "chunk " + id.shortHex() + " (" + loc + ")";
            PackFormat.Segment s = PackReader.segmentHolding(what, id, loc, rec);
            byte[] all = PackReader.segmentPlain(what, s);
            segmentReads.increment();
            byte[] data = PackFormat.chunkPlain(what, s, all, loc.slot());
            if (keepNeighbours && plain != null) plain.keepSegment(loc, s, all);
            return data;
        }
        java.util.function.Supplier<String> name = () -> "chunk " + id.shortHex() + " (" + loc + ")"; // built only on failure
        PackFormat.Record r = recordRecycled(id, loc, name);
        try {
            return PackReader.plainBytes(name, r);
        } finally {
            dev.cask.common.ByteArrays.give(r.payload());
        }
    }

    /**
     * The single record of chunk {@code id} at {@code loc}, read (checked) into a recycled array,
     * {@code Record#payload()}, that the caller gives back ({@code ByteArrays.give}) once done
     * with it; on an error the array is left to the collector. So only a chunk's plain bytes are
     * new, if that (a served disk's random 4 KiB reads allocated the record and then its copy,
     * each request).
     */
    private PackFormat.Record recordRecycled(ChunkId id, ChunkLocation loc, java.util.function.Supplier<String> name) {
        PackReader.checkEntry(loc); // before its length sizes an array
        byte[] rec = dev.cask.common.ByteArrays.take(loc.length());
        readRecordInto(loc, rec);
        return PackReader.recordHolding(name, id, rec, 0, loc.length());
    }

    /** Plain bytes handed to zstd by puts since the store opened, also those that did not compress (tests). */
    long compressionTriedBytes() {
        return encoder.triedBytes();
    }

    /** Segments decompressed by reads (get and getAll) since the store opened. */
    long segmentReads() {
        return segmentReads.sum();
    }

    /** Ids looked up in the index (by any read or put) since the store opened. */
    long indexLookups() {
        return index.lookups();
    }

    private byte[] readRecordBytes(ChunkLocation loc) {
        flushIfBuffered(loc);
        return reader.read(loc);
    }

    /** {@link #readRecordBytes} into {@code into[0, loc.length())}. */
    private void readRecordInto(ChunkLocation loc, byte[] into) {
        flushIfBuffered(loc);
        reader.readInto(loc, into);
    }

    /** Checks the entry, and writes out the write buffer when the record at {@code loc} may still be in it. */
    private void flushIfBuffered(ChunkLocation loc) {
        PackReader.checkEntry(loc);
        // the record may still sit in the write buffer (checked without the lock first: reads are hot)
        if (loc.pack() == packId && loc.offset() + loc.length() > packFlushed) synchronized (this) {
            if (loc.pack() == packId && packChannel != null && loc.offset() + loc.length() > packFlushed) {
                try {
                    flushBuffer();
                } catch (IOException e) {
                    throw new CaskException.Io("store " + dir + ": writing pack " + packId + " failed: " + e.getMessage(), e);
                }
            }
        }
    }

    @Override
    public boolean contains(ChunkId id) {
        // not through the location cache: garbage collection may have deleted the entry since
        return pending.containsKey(id) || index.find(id) != null;
    }

    @Override
    public void list(Consumer<ChunkId> sink) {
        // pending first: a sync commits a chunk to the index before it leaves pending, so every
        // chunk put before list started is in this copy or in the index scan that follows
        java.util.Set<ChunkId> unsynced = new java.util.HashSet<>(pending.keySet());
        index.forEachId(id -> {
            if (!unsynced.contains(id)) sink.accept(id);
        });
        unsynced.forEach(sink);
    }

    // ---------------------------------------------------------------- bulk reads

    /**
     * Reads many chunks (an export walking a disk) with few system calls, few index queries and
     * no per-chunk allocation, leaving the caches alone: see {@link BulkReads}.
     */
    @Override
    public void getAll(List<ChunkId> ids, ChunkSink sink) {
        bulk.getAll(ids, sink, false);
    }

    /** {@link #getAll}; a {@link ChunkStore.Reading#LIVE} read keeps what helps the next reads (see {@link BulkReads}). */
    @Override
    public void getAll(List<ChunkId> ids, ChunkSink sink, Reading reading) {
        bulk.getAll(ids, sink, reading == Reading.LIVE);
    }

    /** True when {@code e} came from a pack file that no longer exists (see {@link Compactor}). */
    static boolean packGone(CaskException e) {
        return e instanceof PackReader.PackGone || e.getCause() instanceof java.nio.file.NoSuchFileException
                || e.getCause() instanceof java.nio.channels.ClosedChannelException;
    }

    /**
     * A copy of the plain cache's bytes of single chunk {@code id}, or null, without counting as a
     * use of the entry: a bulk read asks about every chunk it reads, and a scan should not make
     * entries look popular.
     */
    byte[] plainHit(ChunkId id) {
        return plain == null ? null : plain.chunkQuietly(id);
    }

    /**
     * The plain cache's decoded segment at {@code loc}, pinned in place until closed (see
     * {@link PlainCache#pin}), or null; quietly, as {@link #plainHit}.
     */
    PlainCache.Pinned segmentHit(ChunkLocation loc) {
        return plain == null ? null : plain.pin(loc, true);
    }

    /**
     * Keeps a copy of the decompressed segment {@code s} stored at {@code loc}, whose plain bytes
     * are {@code data[0, s.plainLength())}, in the plain cache (see {@link PlainCache}).
     */
    void keepSegment(ChunkLocation loc, PackFormat.Segment s, byte[] data) {
        if (plain != null) plain.keepSegment(loc, s, data);
    }

    /**
     * Whether a read decompressed the segment at {@code loc} recently without keeping it (then
     * it is kept now: {@link BulkReads}' "Caches"); notes it if not. A guess: false when there is
     * no plain cache or the note was overwritten.
     */
    boolean decodedBefore(ChunkLocation loc) {
        return plain != null && plain.decodedBefore(loc);
    }

    /** Where this process's unsynced copy of {@code id} is, or null. */
    ChunkLocation pendingAt(ChunkId id) {
        return pending.get(id);
    }

    /** Where the location cache says {@code id} is, or null. */
    ChunkLocation cachedLocation(ChunkId id) {
        return located.get(id);
    }

    void countSegmentRead() {
        segmentReads.increment();
    }

    // ---------------------------------------------------------------- check and repair support

    /** Ids of the packs in the store, ascending. */
    public List<Integer> packIds() {
        try (Stream<Path> s = Files.list(packDir)) {
            return s.map(p -> p.getFileName().toString())
                    .filter(n -> n.matches("\\d{8}\\.pack"))
                    .map(n -> Integer.parseInt(n.substring(0, 8)))
                    .sorted().toList();
        } catch (IOException e) {
            throw new CaskException.Io("store " + dir + ": cannot list packs: " + e.getMessage(), e);
        }
    }

    /** Bytes the packs occupy: chunk data plus record and pack overhead, less the stretches a collection punched out ({@link HolePuncher}). */
    public long storedBytes() {
        long sum = 0;
        for (int id : packIds()) {
            try {
                sum += occupiedBytes(id);
            } catch (IOException e) {
                // a pack vanished between list and size: count nothing for it
            }
        }
        return sum;
    }

    /** Bytes pack {@code pack} occupies: its file's size less its punched stretches ({@link #punchedBytes}); an IOException when its size cannot be read. */
    long occupiedBytes(int pack) throws IOException {
        return Files.size(packPath(pack)) - punchedBytes(pack);
    }

    /** Bytes of pack {@code id} punched out (its holes file, {@link PackHoles}); 0 when it has none or it cannot be read. */
    long punchedBytes(int id) {
        try {
            return PackHoles.read(PackHoles.path(packDir, id), id).punched();
        } catch (CaskException e) {
            return 0;
        }
    }

    /** Number of distinct chunks the index knows. */
    public long chunkCount() {
        return index.count();
    }

    /**
     * Reads every record and segment of pack {@code id}, checking magic, lengths and CRC (see
     * {@link PackScan#scan}).
     */
    public void scanPack(int id, ScanSink sink, Progress progress) {
        PackScan.scan(packPath(id), id, sink, progress);
    }

    /**
     * Verifies that the record or segment an index entry points at holds that chunk; returns a
     * problem line or null. A record is also decompressed; a segment's frame only with {@code deep}
     * (its CRC covers the frame either way, and a pack scan with {@code deep} decompresses each
     * segment once instead of once per chunk). With {@code deep} the plain bytes are rehashed.
     */
    public String verifyEntry(ChunkId id, ChunkLocation loc, boolean deep) {
        CaskException fault = entryFault(id, loc, deep);
        return fault == null ? null : fault.getMessage();
    }

    /**
     * {@link #verifyEntry}, as the error a read of the entry would throw ({@link IndexMismatch}
     * when the bytes are whole but hold another chunk; {@link CaskException.Io} when the pack
     * cannot be read), or null when the entry is good.
     */
    public CaskException entryFault(ChunkId id, ChunkLocation loc, boolean deep) {
        byte[] rec;
        try {
            rec = readRecordBytes(loc);
        } catch (CaskException e) {
            return e;
        }
        return PackReader.entryFault(id, loc, rec, deep);
    }

    /**
     * For {@code cask check}: records that the copy of {@code id} at {@code loc} (the one its index
     * entry points at) is corrupt, or with {@code fault} null that it was read and found good
     * (clearing a stale mark). See {@link Healing}: a marked chunk is stored again by its next put.
     * An I/O error marks nothing: it may pass.
     */
    public void checked(ChunkId id, ChunkLocation loc, CaskException fault) {
        if (fault instanceof CaskException.Corrupt) healing.markCorrupt(List.of(Map.entry(id, loc)), fault);
        else if (fault == null) healing.markGood(id, loc);
    }

    /** Copies marked damaged: (chunk id, pack, offset and slot of the bad copy; length 0). */
    public List<Map.Entry<ChunkId, ChunkLocation>> damageMarks() {
        return healing.marks();
    }

    /** Every index entry. */
    public void forEachIndexEntry(java.util.function.BiConsumer<ChunkId, ChunkLocation> sink) {
        index.forEach(sink);
    }

    /** Drops the index and rebuilds it from the packs; returns the number of chunks indexed. Needs an exclusive open. */
    public synchronized long rebuildIndex(Consumer<String> problems, Progress progress) {
        if (!options.exclusive()) throw new IllegalStateException("rebuildIndex needs the store opened exclusively");
        located.clear();
        if (plain != null) plain.clear();
        index.clear();
        List<Map.Entry<ChunkId, ChunkLocation>> batch = new ArrayList<>();
        long[] count = {0};
        for (int id : packIds()) {
            ScanSink.Damage[] last = {null};
            scanPack(id, new ScanSink() {
                @Override
                public void chunk(ChunkId cid, ChunkLocation location, java.util.function.Supplier<byte[]> plainBytes) {
                    batch.add(Map.entry(cid, location));
                    count[0]++;
                    if (batch.size() >= 10_000) {
                        index.addAll(batch);
                        batch.clear();
                    }
                }

                @Override
                public void problem(String line) {
                    problems.accept(line);
                }

                @Override
                public void damage(ScanSink.Damage d) {
                    last[0] = d;
                    problems.accept(d.message());
                }
            }, progress);
            // this process has the store to itself: no writer can be appending to any pack
            if (last[0] != null) {
                String cut = PackRecovery.cutAlone(packPath(id), last[0]);
                if (cut != null) problems.accept(cut);
            }
        }
        PackRecovery.deleteMarkers(packDir);
        index.addAll(batch);
        return index.count();
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        try {
            sync();
            if (packChannel != null) sealPack();
            releaseSealed();
        } catch (IOException | CaskException e) {
            // nobody can sync what is pending any more: give its bytes back (see the class essay)
            poison();
            if (e instanceof CaskException c) throw c;
            throw new CaskException.Io("store " + dir + ": closing pack " + packId + " failed: " + e.getMessage(), e);
        } finally {
            closed = true;
            packSyncer.close(); // no fsync is left queued: sync waited for them, poison forgot them
            reader.close();
            index.close();
            try {
                lock.release();
                lockChannel.close();
            } catch (IOException ignored) {
                // the lock goes with the process anyway
            }
        }
    }
}
