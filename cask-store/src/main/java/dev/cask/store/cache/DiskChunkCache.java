package dev.cask.store.cache;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.RemovalCause;
import dev.cask.common.CaskException;
import dev.cask.common.Sizes;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A directory of chunk copies on this node's disk, bounded by bytes: the files of a
 * {@link CachingChunkStore}. It owns the directory {@code DIR} and everything in it; nothing else
 * writes there, and it never holds the only copy of anything (the wrapped store does), so it may
 * drop any file at any time.
 *
 * <p>Layout (format 1, see docs/format.md, "Node chunk cache"):
 * <pre>
 *   DIR/cask-cache          "cask chunk cache 1\n": marks the directory as a cache of this format
 *   DIR/lock                locked (fcntl) by the one process using the cache
 *   DIR/chunks/ab/ab12...ef the plain bytes of the chunk whose id is that 64-hex name; the
 *                           first two hex characters name the fan-out directory (256 of them)
 *   DIR/chunks/ab/ab12...ef.RANDOM.tmp  a copy being written; renamed to its name when complete
 * </pre>
 *
 * <p>Invariants. (1) A file is written under a temporary name and renamed to its chunk's name
 * only when all its bytes are written, so a crash (kill -9, power loss) leaves either no file, a
 * complete one, or a {@code .tmp} that is never read and is deleted at the next open. (2) No file
 * is trusted: every read hashes the bytes and compares them with the name ({@link #read}); a
 * mismatch (a torn write the file system let through after a power loss, a bad sector, someone's
 * editor) deletes the file and reads as a miss. Hence no fsync anywhere: a file lost or damaged in
 * a crash costs one read from the wrapped store, never wrong bytes. (3) The bytes of the files
 * the cache knows of, each rounded up to 4 KiB (a file system block), stay at most {@code
 * maxBytes}: Caffeine's bounded policy (W-TinyLFU: recency and frequency, which keeps the working
 * set through a one-off scan such as an export better than plain LRU does) decides what goes, and
 * its eviction listener deletes the file inside the entry's own lock, so a file is deleted only
 * for the entry that named it. Caffeine's upkeep runs in the calling thread, so the bound can be
 * passed only while copies are being added at that moment: at most one chunk (1 MiB) per thread
 * adding one. A {@code .tmp} being written is not counted either (at most 1 MiB per writing thread).
 *
 * <p>A restart finds the files again ({@link #open} lists them, oldest modification time first,
 * so eviction order after a restart is least recently used first, approximately: a hit touches
 * its file's mtime when the last touch is over a minute old, so recency survives to that
 * precision). Opening a cache over its bound (a smaller size than last time) evicts down to it.
 *
 * <p>Sizing arithmetic: one entry costs about 200 bytes of heap (the id: 24 + 48 bytes; the
 * entry: 24; Caffeine's node, its map's node and slot and its frequency sketch: about 100) and
 * one file (an inode, its size rounded up to 4 KiB). A 20 GiB cache of 64 KiB chunks is 327,680
 * files and about 65 MiB of heap; of 4 KiB chunks (the default block size) 5.2 million files and
 * about 1 GiB of heap, and opening it lists 5.2 million files: size it to the working set of the
 * images a node serves, not to the disk.
 *
 * <p>One process per directory: {@link #open} takes {@code DIR/lock} and fails with {@link
 * CaskException.Conflict} while another process holds it (two processes would each bound only
 * what they know of). Thread-safe: every method may be called from many threads at once.
 */
public final class DiskChunkCache implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("cask.cache");
    static final String MARKER = "cask-cache";
    static final String MARKER_TEXT = "cask chunk cache 1\n";
    private static final HexFormat HEX = HexFormat.of();
    private static final long TOUCH_AFTER_MILLIS = 60_000;
    private static final long WARN_EVERY_MILLIS = 60_000;

    /** What the cache knows of one file: its length. Compared by identity (a new copy is a new entry). */
    private static final class Entry {
        final int length;
        volatile long touchedMillis;

        Entry(int length, long touchedMillis) {
            this.length = length;
            this.touchedMillis = touchedMillis;
        }

        int weight() {
            return (int) Math.min(Integer.MAX_VALUE, ((long) length + 4095) & ~4095L);
        }
    }

    /** Counters since open: what a user (or a test) asks of a cache. */
    public record Stats(long hits, long misses, long added, long corrupt, long writeFailures, long chunks, long bytes) {}

    private final Path dir;
    private final Path chunks;
    private final long maxBytes;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private final Cache<ChunkId, Entry> entries;
    private final AtomicLong hits = new AtomicLong();
    private final AtomicLong misses = new AtomicLong();
    private final AtomicLong added = new AtomicLong();
    private final AtomicLong corrupt = new AtomicLong();
    private final AtomicLong writeFailures = new AtomicLong();
    private volatile long lastWarnMillis;

    private DiskChunkCache(Path dir, long maxBytes, FileChannel lockChannel, FileLock lock) {
        this.dir = dir;
        this.chunks = dir.resolve("chunks");
        this.maxBytes = maxBytes;
        this.lockChannel = lockChannel;
        this.lock = lock;
        this.entries = Caffeine.newBuilder().executor(Runnable::run)
                .maximumWeight(maxBytes)
                .weigher((ChunkId id, Entry e) -> e.weight())
                .evictionListener((ChunkId id, Entry e, RemovalCause cause) -> {
                    if (id != null) deleteQuietly(file(id));
                })
                .build();
    }

    /**
     * Opens (creating when needed) the cache in {@code dir}, bounded by {@code maxBytes}, and lists
     * the files a previous run left. {@code dir} must be missing, empty, or a cache: a directory
     * holding anything else is refused (the cache deletes files in it). Throws Conflict when
     * another process uses it, InvalidInput for a directory that is not a cache, Io when it cannot
     * be created or read.
     */
    public static DiskChunkCache open(Path dir, long maxBytes) {
        if (maxBytes < ChunkStore.MAX_CHUNK) {
            throw new CaskException.InvalidInput("cache " + dir + ": size " + maxBytes + " bytes is less than one chunk (" + Sizes.human(ChunkStore.MAX_CHUNK) + ")");
        }
        Path marker = dir.resolve(MARKER);
        try {
            Files.createDirectories(dir);
            if (Files.exists(marker)) {
                String text = Files.readString(marker, StandardCharsets.UTF_8);
                if (!text.equals(MARKER_TEXT)) {
                    throw new CaskException.InvalidInput("cache " + dir + ": " + marker.getFileName() + " says '" + text.strip()
                            + "', expected '" + MARKER_TEXT.strip() + "'");
                }
            } else {
                try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
                    for (Path p : ds) {
                        String n = p.getFileName().toString();
                        if (!n.equals("lock") && !n.equals("chunks")) {
                            throw new CaskException.InvalidInput("cache " + dir + ": holds '" + n
                                    + "' and is no cache; give an empty or new directory (the cache deletes files in it)");
                        }
                    }
                }
                Files.writeString(marker, MARKER_TEXT, StandardCharsets.UTF_8);
            }
            Files.createDirectories(dir.resolve("chunks"));
        } catch (IOException e) {
            throw new CaskException.Io("cache " + dir + ": " + e, e);
        }
        FileChannel ch;
        FileLock lock;
        try {
            ch = FileChannel.open(dir.resolve("lock"), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new CaskException.Io("cache " + dir + ": cannot open its lock file: " + e, e);
        }
        try {
            lock = ch.tryLock();
        } catch (IOException | OverlappingFileLockException e) {
            lock = null;
        }
        if (lock == null) {
            closeQuietly(ch);
            throw new CaskException.Conflict("cache " + dir + ": in use by another process (one process per cache directory)");
        }
        DiskChunkCache c = new DiskChunkCache(dir, maxBytes, ch, lock);
        try {
            c.load();
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
        return c;
    }

    private record Found(ChunkId id, int length, long mtimeMillis) {}

    /** Lists the files left by earlier runs, oldest first, deleting temporaries and foreign names. */
    private void load() {
        List<Found> found = new ArrayList<>();
        try (DirectoryStream<Path> fans = Files.newDirectoryStream(chunks)) {
            for (Path fan : fans) {
                if (!Files.isDirectory(fan)) continue;
                try (DirectoryStream<Path> files = Files.newDirectoryStream(fan)) {
                    for (Path f : files) {
                        String n = f.getFileName().toString();
                        ChunkId id = parseName(n);
                        BasicFileAttributes a;
                        try {
                            a = Files.readAttributes(f, BasicFileAttributes.class);
                        } catch (NoSuchFileException gone) {
                            continue;
                        }
                        if (id == null || !n.startsWith(fan.getFileName().toString()) || !a.isRegularFile() || a.size() > ChunkStore.MAX_CHUNK) {
                            // a copy a crash interrupted, or nothing of ours: never served
                            if (a.isRegularFile()) deleteQuietly(f);
                            continue;
                        }
                        found.add(new Found(id, (int) a.size(), a.lastModifiedTime().toMillis()));
                    }
                }
            }
        } catch (IOException e) {
            throw new CaskException.Io("cache " + dir + ": cannot list it: " + e, e);
        }
        found.sort(Comparator.comparingLong(Found::mtimeMillis));
        for (Found f : found) entries.put(f.id(), new Entry(f.length(), f.mtimeMillis()));
        entries.cleanUp();
        LOG.log(System.Logger.Level.DEBUG, () -> "cache " + dir + ": " + found.size() + " files found, " + stats().chunks() + " kept ("
                + Sizes.human(stats().bytes()) + " of " + Sizes.human(maxBytes) + ")");
    }

    /** The id a file name names, or null for any other name (a temporary among them). */
    static ChunkId parseName(String name) {
        if (name.length() != 2 * ChunkId.LENGTH) return null;
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (!(c >= '0' && c <= '9' || c >= 'a' && c <= 'f')) return null;
        }
        return ChunkId.fromBytes(HEX.parseHex(name));
    }

    /** Where the copy of {@code id} lives (whether or not it exists). */
    public Path file(ChunkId id) {
        String hex = id.hex();
        return chunks.resolve(hex.substring(0, 2)).resolve(hex);
    }

    public Path dir() {
        return dir;
    }

    public long maxBytes() {
        return maxBytes;
    }

    /**
     * The verified bytes of the cached copy of {@code id}, or null when there is none (or it was
     * unreadable or damaged: then it is deleted, counted and logged). Never wrong bytes.
     */
    public byte[] read(ChunkId id) {
        Entry e = entries.getIfPresent(id);
        if (e == null) {
            misses.incrementAndGet();
            return null;
        }
        Path f = file(id);
        byte[] data;
        try {
            data = readChunkFile(f);
        } catch (NoSuchFileException gone) { // deleted under us (evicted meanwhile, or by hand)
            forget(id, e, false);
            misses.incrementAndGet();
            return null;
        } catch (IOException x) {
            LOG.log(System.Logger.Level.WARNING, "cache " + dir + ": chunk " + id.shortHex() + ": cannot read " + f + " (" + x + "); reading from the store");
            forget(id, e, true);
            misses.incrementAndGet();
            return null;
        }
        if (!ChunkId.of(data).equals(id)) {
            corrupt.incrementAndGet();
            LOG.log(System.Logger.Level.WARNING, "cache " + dir + ": chunk " + id.shortHex() + ": the cached copy " + f + " ("
                    + data.length + " bytes) does not hash to its id; deleted it, reading from the store");
            forget(id, e, true);
            misses.incrementAndGet();
            return null;
        }
        hits.incrementAndGet();
        long now = System.currentTimeMillis();
        if (now - e.touchedMillis > TOUCH_AFTER_MILLIS) {
            e.touchedMillis = now;
            try {
                Files.setLastModifiedTime(f, FileTime.fromMillis(now));
            } catch (IOException ignored) {
                // recency after a restart is approximate anyway
            }
        }
        return data;
    }

    /** The bytes of {@code f}; a file over {@link ChunkStore#MAX_CHUNK} (no chunk's copy) reads as its first byte too many. */
    private static byte[] readChunkFile(Path f) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            int size = (int) Math.min(ch.size(), ChunkStore.MAX_CHUNK + 1L);
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(size);
            while (b.hasRemaining() && ch.read(b) >= 0) {
                // until full or at the end (a file cut short meanwhile is then a mismatch)
            }
            return b.position() == size ? b.array() : java.util.Arrays.copyOf(b.array(), b.position());
        }
    }

    /** Whether the cache has an entry for {@code id} (its file is only checked when read). */
    public boolean holds(ChunkId id) {
        return entries.asMap().containsKey(id);
    }

    /**
     * Keeps a copy of {@code data[off, off+len)}, the verified bytes of chunk {@code id} (the
     * caller read them from a store that verifies), unless one is kept already. Never fails: a
     * full disk or any other I/O error drops the copy (counted, logged at most once a minute).
     */
    public void keep(ChunkId id, byte[] data, int off, int len) {
        if (len > ChunkStore.MAX_CHUNK || len > maxBytes || entries.asMap().containsKey(id)) return;
        Path f = file(id);
        Path tmp = f.resolveSibling(f.getFileName() + "." + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ".tmp");
        try {
            try {
                write(tmp, data, off, len);
            } catch (NoSuchFileException e) { // the fan-out directory is made on first use
                Files.createDirectories(tmp.getParent());
                write(tmp, data, off, len);
            }
        } catch (IOException | RuntimeException e) {
            deleteQuietly(tmp);
            failedWrite(id, e);
            return;
        }
        Entry fresh = new Entry(len, System.currentTimeMillis());
        boolean[] renamed = {false};
        entries.asMap().compute(id, (k, old) -> {
            if (old != null) return old; // another thread kept it meanwhile
            try {
                Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                renamed[0] = true;
                return fresh;
            } catch (IOException e) {
                failedWrite(id, e);
                return null;
            }
        });
        if (!renamed[0]) deleteQuietly(tmp);
        else added.incrementAndGet();
    }

    private static void write(Path tmp, byte[] data, int off, int len) throws IOException {
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(data, off, len);
            while (b.hasRemaining()) ch.write(b);
        } catch (FileAlreadyExistsException e) {
            throw new IOException("temporary " + tmp + " exists", e);
        }
    }

    private void failedWrite(ChunkId id, Exception e) {
        writeFailures.incrementAndGet();
        long now = System.currentTimeMillis();
        if (now - lastWarnMillis > WARN_EVERY_MILLIS) {
            lastWarnMillis = now;
            LOG.log(System.Logger.Level.WARNING, "cache " + dir + ": cannot keep a copy of chunk " + id.shortHex() + " (" + e
                    + "); reads go to the store (" + writeFailures.get() + " copies dropped so far; next warning in a minute at the earliest)");
        }
    }

    /** Drops entry {@code e} of {@code id} (if it is still the current one), deleting its file when {@code delete}. */
    private void forget(ChunkId id, Entry e, boolean delete) {
        entries.asMap().computeIfPresent(id, (k, cur) -> {
            if (cur != e) return cur; // a new copy replaced it: its file is the new one
            if (delete) deleteQuietly(file(id));
            return null;
        });
    }

    public Stats stats() {
        long[] n = {0, 0};
        entries.asMap().values().forEach(e -> {
            n[0]++;
            n[1] += e.weight();
        });
        return new Stats(hits.get(), misses.get(), added.get(), corrupt.get(), writeFailures.get(), n[0], n[1]);
    }

    private static void deleteQuietly(Path f) {
        try {
            Files.deleteIfExists(f);
        } catch (IOException ignored) {
            // a file left behind is found at the next open and verified before any use
        }
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // nothing to do
        }
    }

    /** Releases the directory's lock; the files stay for the next run. */
    @Override
    public void close() {
        try {
            if (lock.isValid()) lock.release();
        } catch (IOException ignored) {
            // closing the channel releases it too
        }
        closeQuietly(lockChannel);
    }

    @Override
    public String toString() {
        return "cache " + dir + " (" + Sizes.human(maxBytes) + ")";
    }
}
