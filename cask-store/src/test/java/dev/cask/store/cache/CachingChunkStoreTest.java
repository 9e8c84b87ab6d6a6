package dev.cask.store.cache;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.local.LocalChunkStore;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a node's cache does that a user notices: a second read does not reach the store, the cache
 * survives a restart, damaged or half-written cache files are never served, the size bound holds,
 * and a cache that cannot write keeps reads working. The store under the cache is a real
 * {@link LocalChunkStore}; {@link Counting} only counts the chunks read from it.
 */
class CachingChunkStoreTest {
    @TempDir
    Path tmp;

    private LocalChunkStore local;
    private Counting counting;
    private final List<AutoCloseable> opened = new ArrayList<>();

    /** Forwards to a real store, counting the chunks read from it (by get and getAll). */
    static final class Counting implements ChunkStore {
        final ChunkStore store;
        final AtomicInteger reads = new AtomicInteger();

        Counting(ChunkStore store) {
            this.store = store;
        }

        @Override
        public ChunkId put(byte[] data, int off, int len) {
            return store.put(data, off, len);
        }

        @Override
        public void prefetch(Collection<ChunkId> ids) {
            store.prefetch(ids);
        }

        @Override
        public byte[] get(ChunkId id) {
            reads.incrementAndGet();
            return store.get(id);
        }

        @Override
        public void getAll(List<ChunkId> ids, ChunkSink sink) {
            reads.addAndGet(ids.size());
            store.getAll(ids, sink);
        }

        @Override
        public void getAll(List<ChunkId> ids, ChunkSink sink, Reading reading) {
            reads.addAndGet(ids.size());
            store.getAll(ids, sink, reading);
        }

        @Override
        public boolean contains(ChunkId id) {
            return store.contains(id);
        }

        @Override
        public void list(Consumer<ChunkId> sink) {
            store.list(sink);
        }

        @Override
        public void sync() {
            store.sync();
        }

        @Override
        public void close() {
            // the test closes the real store itself, after every cache over it
        }
    }

    @BeforeEach
    void openStore() {
        local = LocalChunkStore.open(tmp.resolve("store"), LocalChunkStore.Options.defaults());
        counting = new Counting(local);
    }

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : opened) c.close();
        local.close();
    }

    private CachingChunkStore cached(long bytes) {
        CachingChunkStore s = new CachingChunkStore(counting, DiskChunkCache.open(tmp.resolve("cache"), bytes));
        opened.add(s);
        return s;
    }

    private List<byte[]> chunks(int n, int size, long seed) {
        Random rnd = new Random(seed);
        List<byte[]> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            byte[] b = new byte[size];
            rnd.nextBytes(b);
            out.add(b);
        }
        return out;
    }

    private List<ChunkId> store(List<byte[]> datas) {
        List<ChunkId> ids = new ArrayList<>();
        for (byte[] d : datas) ids.add(local.put(d));
        local.sync();
        return ids;
    }

    /** The cache's chunk files and their bytes on disk, as {@code du} would count them. */
    private long cacheFileBytes() {
        try (Stream<Path> s = Files.walk(tmp.resolve("cache").resolve("chunks"))) {
            return s.filter(Files::isRegularFile).mapToLong(p -> {
                try {
                    return Files.size(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }).sum();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void flipByte(Path f, int at) throws IOException {
        byte[] b = Files.readAllBytes(f);
        b[at] ^= 0x5a;
        Files.write(f, b);
    }

    @Test
    void aSecondReadIsServedFromTheCacheNotTheStore() {
        List<byte[]> datas = chunks(40, 16384, 1);
        List<ChunkId> ids = store(datas);
        CachingChunkStore s = cached(64L << 20);
        for (int i = 0; i < 20; i++) assertArrayEquals(datas.get(i), s.get(ids.get(i)));
        byte[][] got = new byte[40][];
        s.getAll(ids, (i, d, off, len) -> got[i] = Arrays.copyOfRange(d, off, off + len), ChunkStore.Reading.LIVE);
        for (int i = 0; i < 40; i++) assertArrayEquals(datas.get(i), got[i], "getAll index " + i);
        assertEquals(40, counting.reads.get(), "the first read of each chunk goes to the store, once");

        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 40; i++) assertArrayEquals(datas.get(i), s.get(ids.get(i)));
            Arrays.fill(got, null);
            s.getAll(ids, (i, d, off, len) -> got[i] = Arrays.copyOfRange(d, off, off + len), ChunkStore.Reading.STREAM);
            for (int i = 0; i < 40; i++) assertArrayEquals(datas.get(i), got[i], "getAll index " + i);
        }
        assertEquals(40, counting.reads.get(), "later reads come from the cache");
        assertEquals(40, s.cache().stats().chunks());
        assertEquals(40L * 16384, cacheFileBytes());
    }

    @Test
    void aRestartFindsTheCacheAgain() {
        List<byte[]> datas = chunks(30, 8192, 2);
        List<ChunkId> ids = store(datas);
        CachingChunkStore s = cached(64L << 20);
        for (ChunkId id : ids) s.get(id);
        s.close();
        opened.remove(s);
        assertEquals(30, counting.reads.get());

        CachingChunkStore again = cached(64L << 20);
        assertEquals(30, again.cache().stats().chunks(), "the files of the last run are the cache's again");
        for (int i = 0; i < ids.size(); i++) assertArrayEquals(datas.get(i), again.get(ids.get(i)));
        assertEquals(30, counting.reads.get(), "served from the cache after the restart");
    }

    @Test
    void aDamagedCachedCopyIsDeletedAndTheRightBytesComeFromTheStore() throws IOException {
        List<byte[]> datas = chunks(5, 4096, 3);
        List<ChunkId> ids = store(datas);
        CachingChunkStore s = cached(64L << 20);
        for (ChunkId id : ids) s.get(id);
        ChunkId victim = ids.get(2);
        flipByte(s.cache().file(victim), 100);

        assertArrayEquals(datas.get(2), s.get(victim), "never the damaged bytes");
        assertEquals(6, counting.reads.get(), "the damaged copy sent the read to the store");
        assertEquals(1, s.cache().stats().corrupt());
        assertArrayEquals(datas.get(2), Files.readAllBytes(s.cache().file(victim)), "and the cache holds a good copy again");
        assertArrayEquals(datas.get(2), s.get(victim));
        assertEquals(6, counting.reads.get());

        // the same through getAll, and a copy cut short (a write torn by a power loss)
        flipByte(s.cache().file(ids.get(0)), 0);
        Files.write(s.cache().file(ids.get(4)), Arrays.copyOf(datas.get(4), 1000));
        byte[][] got = new byte[5][];
        s.getAll(ids, (i, d, off, len) -> got[i] = Arrays.copyOfRange(d, off, off + len));
        for (int i = 0; i < 5; i++) assertArrayEquals(datas.get(i), got[i], "getAll index " + i);
        assertEquals(8, counting.reads.get());
        assertEquals(3, s.cache().stats().corrupt());
    }

    @Test
    void theCacheStaysWithinItsSizeAfterManyReads() {
        List<byte[]> datas = chunks(300, 65536, 4);
        List<ChunkId> ids = store(datas);
        long bound = 4L << 20;
        CachingChunkStore s = cached(bound);
        Random rnd = new Random(5);
        for (int k = 0; k < 1500; k++) {
            int i = k < 300 ? k : rnd.nextInt(300);
            assertArrayEquals(datas.get(i), s.get(ids.get(i)));
            assertTrue(k % 100 != 0 || cacheFileBytes() <= bound, "after " + k + " reads: " + cacheFileBytes() + " bytes cached, bound " + bound);
        }
        assertTrue(cacheFileBytes() <= bound, cacheFileBytes() + " bytes cached, bound " + bound);
        assertTrue(cacheFileBytes() >= bound / 2, "the cache is used: " + cacheFileBytes() + " bytes");
        s.close();
        opened.remove(s);

        CachingChunkStore smaller = cached(1L << 20);
        assertTrue(cacheFileBytes() <= 1L << 20, "a smaller size at the next open evicts down to it: " + cacheFileBytes());
        for (int i = 0; i < 300; i++) assertArrayEquals(datas.get(i), smaller.get(ids.get(i)));
        assertTrue(cacheFileBytes() <= 1L << 20, cacheFileBytes() + " bytes");
    }

    @Test
    void aCopyLeftHalfWrittenByACrashIsNeverServed() throws IOException {
        List<byte[]> datas = chunks(3, 4096, 6);
        List<ChunkId> ids = store(datas);
        cached(64L << 20).close();
        opened.clear();
        // what a kill -9 in the middle of keeping a copy leaves: a temporary with part of the bytes
        DiskChunkCache probe = DiskChunkCache.open(tmp.resolve("cache"), 64L << 20);
        Path file = probe.file(ids.get(0));
        probe.close();
        Files.createDirectories(file.getParent());
        Path leftover = file.resolveSibling(file.getFileName() + ".1a2b3c4d.tmp");
        Files.write(leftover, Arrays.copyOf(datas.get(0), 2000));

        CachingChunkStore s = cached(64L << 20);
        assertFalse(Files.exists(leftover), "opening the cache deletes what a crash left half written");
        assertEquals(0, s.cache().stats().chunks());
        assertArrayEquals(datas.get(0), s.get(ids.get(0)));
        assertEquals(1, counting.reads.get(), "read from the store, not from the leftover");
    }

    @Test
    void aCacheThatCannotWriteKeepsReadsWorking() throws IOException {
        List<byte[]> datas = chunks(4, 4096, 7);
        List<ChunkId> ids = store(datas);
        CachingChunkStore s = cached(64L << 20);
        // the fan-out directory of chunk 0 cannot be made (a file is in its place), as a full disk fails a write
        Path fan = s.cache().file(ids.get(0)).getParent();
        Files.createDirectories(fan.getParent());
        Files.write(fan, new byte[]{1});
        for (int round = 0; round < 2; round++) {
            for (int i = 0; i < 4; i++) assertArrayEquals(datas.get(i), s.get(ids.get(i)));
        }
        assertTrue(s.cache().stats().writeFailures() >= 1);
        assertFalse(s.cache().holds(ids.get(0)));
    }

    @Test
    void aDirectoryWithOtherFilesIsRefusedAndLeftAlone() throws IOException {
        Path dir = tmp.resolve("home");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("notes.txt"), "mine");
        CaskException.InvalidInput e = assertThrows(CaskException.InvalidInput.class, () -> DiskChunkCache.open(dir, 64L << 20));
        assertTrue(e.getMessage().contains(dir.toString()) && e.getMessage().contains("notes.txt"), e.getMessage());
        assertEquals("mine", Files.readString(dir.resolve("notes.txt")));
    }

    @Test
    void oneProcessAtATimeUsesACacheDirectory() {
        CachingChunkStore s = cached(64L << 20);
        CaskException.Conflict e = assertThrows(CaskException.Conflict.class, () -> DiskChunkCache.open(tmp.resolve("cache"), 64L << 20));
        assertTrue(e.getMessage().contains("in use"), e.getMessage());
        s.close();
        opened.remove(s);
        cached(64L << 20); // free again once closed
    }

    @Test
    void putsAndContainsGoToTheStore() {
        CachingChunkStore s = cached(64L << 20);
        byte[] d = chunks(1, 5000, 8).get(0);
        ChunkId id = s.put(d);
        assertTrue(local.contains(id));
        assertEquals(0, s.cache().stats().chunks(), "what is put is not cached (copy-on-read)");
        assertArrayEquals(d, s.get(id));
        assertEquals(1, s.cache().stats().chunks());
    }

    /**
     * Format 1 as the first release wrote it (docs/format.md, "Node chunk cache"): the marker and
     * one file named by its chunk's id. Never edit these strings: add new ones for a new format.
     */
    @Test
    void aCacheOfFormat1IsReadAsItWasWritten() throws IOException {
        Path dir = tmp.resolve("cache");
        String hello = "074e50f9f8180f3fb41ba84a3adbd631c2e07c981c77e8330f0890a923c8214d"; // "hello, cask\n"
        Files.createDirectories(dir.resolve("chunks").resolve("07"));
        Files.writeString(dir.resolve("cask-cache"), "cask chunk cache 1\n");
        Files.writeString(dir.resolve("chunks").resolve("07").resolve(hello), "hello, cask\n");
        CachingChunkStore s = cached(64L << 20);
        ChunkId id = ChunkId.parse(hello);
        assertFalse(local.contains(id), "the store never had it: only the cache can answer");
        assertArrayEquals("hello, cask\n".getBytes(), s.get(id));
        assertEquals(0, counting.reads.get());
        s.close();
        opened.remove(s);

        Files.writeString(dir.resolve("cask-cache"), "cask chunk cache 2\n");
        CaskException.InvalidInput e = assertThrows(CaskException.InvalidInput.class, () -> DiskChunkCache.open(dir, 64L << 20));
        assertTrue(e.getMessage().contains("cask chunk cache 2") && e.getMessage().contains("expected 'cask chunk cache 1'"), e.getMessage());
    }

    /** Four threads reading through a cache far smaller than what they read: never a wrong byte, and the bound holds. */
    @Test
    void threadsReadingThroughASmallCacheAlwaysGetTheRightBytes() throws Exception {
        List<byte[]> datas = chunks(120, 65536, 9);
        List<ChunkId> ids = store(datas);
        long bound = 2L << 20;
        CachingChunkStore s = cached(bound);
        java.util.concurrent.ConcurrentLinkedQueue<String> wrong = new java.util.concurrent.ConcurrentLinkedQueue<>();
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            long seed = t;
            threads.add(Thread.ofPlatform().start(() -> {
                Random rnd = new Random(seed);
                for (int k = 0; k < 400; k++) {
                    if (k % 4 == 0) {
                        List<Integer> which = new ArrayList<>();
                        for (int j = 0; j < 8; j++) which.add(rnd.nextInt(40)); // a hot set, with repeats
                        List<ChunkId> asked = which.stream().map(ids::get).toList();
                        s.getAll(asked, (i, d, off, len) -> {
                            if (!Arrays.equals(datas.get(which.get(i)), 0, 65536, d, off, off + len)) wrong.add("getAll chunk " + which.get(i));
                        }, ChunkStore.Reading.LIVE);
                    } else {
                        int i = rnd.nextInt(120);
                        if (!Arrays.equals(datas.get(i), s.get(ids.get(i)))) wrong.add("get chunk " + i);
                    }
                }
            }));
        }
        for (Thread t : threads) t.join();
        assertEquals(List.of(), List.copyOf(wrong));
        assertTrue(cacheFileBytes() <= bound, cacheFileBytes() + " bytes cached, bound " + bound);
        assertTrue(s.cache().stats().hits() > 0, "the hot set was read from the cache: " + s.cache().stats());
        try (Stream<Path> files = Files.walk(tmp.resolve("cache").resolve("chunks"))) {
            assertEquals(List.of(), files.filter(p -> p.toString().endsWith(".tmp")).toList(), "no temporary is left behind");
        }
    }
}
