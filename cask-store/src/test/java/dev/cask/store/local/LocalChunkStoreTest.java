package dev.cask.store.local;

import dev.cask.store.ScanSink;
import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.ChunkStoreContract;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The {@link ChunkStore} contract for {@link LocalChunkStore}, plus what only a directory of packs has. */
class LocalChunkStoreTest extends ChunkStoreContract {
    /**
     * The stores here cut segments at 64 KiB (16 blocks of 4 KiB), not the default 1 MiB, so that
     * batches of a few dozen blocks span several segments and the tests can see their edges;
     * {@link #defaultSegmentsHoldUpTo256BlocksAndRandomAccessBatchesUpTo16} checks the default.
     */
    private static final LocalChunkStore.Options OPTIONS = LocalChunkStore.Options.defaults().withSegments(64 << 10, 3);

    @Override
    protected ChunkStore open(Path dir) {
        return LocalChunkStore.open(dir, OPTIONS);
    }

    @Override
    protected void corruptPayload(Path dir, ChunkId id) {
        ChunkLocation loc;
        try (LocalChunkStore s = LocalChunkStore.open(dir, OPTIONS)) {
            loc = s.locate(id);
        }
        assertNotNull(loc, "chunk " + id + " to corrupt is not in the index");
        if (loc.inSegment()) { // a byte near the end of the segment's zstd frame
            flipByte(packFile(dir, loc.pack()), loc.offset() + loc.length() - 2);
            return;
        }
        int payload = loc.length() - PackFormat.RECORD_HEADER;
        assertTrue(payload > 0, "chunk " + id + " has no payload to corrupt");
        flipByte(packFile(dir, loc.pack()), loc.offset() + PackFormat.RECORD_HEADER + payload / 2);
    }

    // ---------------------------------------------------------------- helpers

    private static Path packFile(Path dir, int pack) {
        return dir.resolve("packs").resolve(String.format("%08d.pack", pack));
    }

    private static void flipByte(Path file, long at) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            assertEquals(1, ch.read(b, at), "no byte at " + at + " in " + file);
            b.put(0, (byte) (b.get(0) ^ 0x5a));
            b.rewind();
            ch.write(b, at);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private LocalChunkStore local() {
        return (LocalChunkStore) store;
    }

    private LocalChunkStore openLocal(LocalChunkStore.Options options) {
        return (LocalChunkStore) track(LocalChunkStore.open(dir, options));
    }

    /** What scanning every pack found. */
    private record Scan(Map<ChunkId, Integer> records, List<ChunkLocation> locations, List<String> problems) {}

    private static Scan scanAll(LocalChunkStore s) {
        Map<ChunkId, Integer> records = new HashMap<>();
        List<ChunkLocation> locations = new ArrayList<>();
        List<String> problems = new ArrayList<>();
        for (int pack : s.packIds()) {
            s.scanPack(pack, new ScanSink() {
                @Override
                public void chunk(ChunkId id, ChunkLocation location, java.util.function.Supplier<byte[]> plain) {
                    records.merge(id, 1, Integer::sum);
                    locations.add(location);
                }

                @Override
                public void problem(String line) {
                    problems.add(line);
                }
            }, Progress.NONE);
        }
        return new Scan(records, locations, problems);
    }

    private static Scan scanPack(LocalChunkStore s, int pack) {
        Map<ChunkId, Integer> records = new LinkedHashMap<>();
        List<ChunkLocation> locations = new ArrayList<>();
        List<String> problems = new ArrayList<>();
        s.scanPack(pack, new ScanSink() {
            @Override
            public void chunk(ChunkId id, ChunkLocation location, java.util.function.Supplier<byte[]> plain) {
                records.merge(id, 1, Integer::sum);
                locations.add(location);
            }

            @Override
            public void problem(String line) {
                problems.add(line);
            }
        }, Progress.NONE);
        return new Scan(records, locations, problems);
    }

    /**
     * Healing under concurrency: eight threads put a batch holding a chunk marked damaged while two
     * threads read it. The readers get the right bytes or an error naming the chunk, never wrong
     * bytes; the chunk is stored again exactly once; the index moves to the new copy and clears
     * the mark; and a later put is a plain dedup hit again.
     */
    @Test
    void concurrentPutsOfADamagedChunkStoreOneNewCopyAndReadersNeverSeeWrongBytes() throws Exception {
        Random rnd = new Random(31);
        int[] offsets = new int[32];
        byte[] buf = batch(rnd, 32, 4096, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        store.close();
        ChunkId victim = ids[7];
        byte[] want = java.util.Arrays.copyOfRange(buf, 7 * 4096, 8 * 4096);
        corruptPayload(dir, victim);
        store = openLocal(OPTIONS);
        ChunkLocation bad = local().locate(victim);
        assertThrows(CaskException.Corrupt.class, () -> store.get(victim));
        assertEquals(List.of(Map.entry(victim, new ChunkLocation(bad.pack(), bad.offset(), 0, bad.slot()))),
                local().damageMarks().stream().filter(m -> m.getKey().equals(victim)).toList(), "the failed read marked the copy");

        java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.ConcurrentLinkedQueue<String> wrong = new java.util.concurrent.ConcurrentLinkedQueue<>();
        List<Thread> readers = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
            readers.add(Thread.ofPlatform().start(() -> {
                while (!stop.get()) {
                    try {
                        if (!java.util.Arrays.equals(want, store.get(victim))) wrong.add("wrong bytes");
                    } catch (CaskException.Corrupt e) {
                        if (!e.getMessage().contains(victim.shortHex())) wrong.add("error not naming the chunk: " + e.getMessage());
                    }
                }
            }));
        }
        List<Thread> writers = new ArrayList<>();
        for (int w = 0; w < 8; w++) writers.add(Thread.ofPlatform().start(() -> store.putAll(buf, offsets, 4096)));
        for (Thread t : writers) t.join();
        store.sync();
        stop.set(true);
        for (Thread t : readers) t.join();
        assertEquals(List.of(), List.copyOf(wrong));

        ChunkLocation healed = local().locate(victim);
        assertNotEquals(bad, healed);
        assertArrayEquals(want, store.get(victim));
        assertEquals(List.of(), local().damageMarks(), "the heal cleared the mark");
        Scan scan = scanAll(local());
        assertEquals(1, scan.records().get(victim), "one good copy (the bad one is no longer a record): " + scan.records().get(victim));
        for (ChunkId id : ids) if (!id.equals(victim)) assertEquals(1, scan.records().get(id), "the batch's other chunks were dedup hits");
        long packBytes = local().storedBytes();
        store.putAll(buf, offsets, 4096);
        store.sync();
        assertEquals(packBytes, local().storedBytes(), "healed: the next put is a dedup hit");
    }

    /**
     * Another process healed a chunk (a good copy in its own pack, the index entry moved) after
     * this one cached the bad copy's location: get and getAll find the new copy at once.
     */
    @Test
    void aReaderWithAStaleLocationReadsTheCopyAnotherProcessHealed() throws Exception {
        Random rnd = new Random(33);
        byte[] one = random(rnd, 4096), two = random(rnd, 4096);
        ChunkId a = store.put(one), b = store.put(two);
        store.sync(); // this process now has both locations cached
        ChunkLocation la = local().locate(a), lb = local().locate(b);
        byte[] pack1 = Files.readAllBytes(packFile(dir, 1));
        // "another process": pack 2 with good copies of both, the entries moved to them, pack 1 damaged
        java.io.ByteArrayOutputStream pack2 = new java.io.ByteArrayOutputStream();
        pack2.write(PackFormat.encodePackHeader(2));
        pack2.write(pack1, (int) la.offset(), la.length());
        pack2.write(pack1, (int) lb.offset(), lb.length());
        Files.write(packFile(dir, 2), pack2.toByteArray());
        flipByte(packFile(dir, 1), la.offset() + PackFormat.RECORD_HEADER + 10);
        flipByte(packFile(dir, 1), lb.offset() + PackFormat.RECORD_HEADER + 10);
        try (var c = java.sql.DriverManager.getConnection("jdbc:sqlite:" + dir.resolve("index.db"));
             var recent = c.prepareStatement("UPDATE recent SET pack = 2, offset = ? WHERE id = ?");
             var settled = c.prepareStatement("UPDATE chunks SET pack = 2, offset = ? WHERE id = ?")) {
            for (var e : List.of(java.util.Map.entry(a, (long) PackFormat.PACK_HEADER), java.util.Map.entry(b, (long) PackFormat.PACK_HEADER + la.length()))) {
                int n = 0;
                for (var st : List.of(recent, settled)) { // the entry is in one of the index's two tables
                    st.setLong(1, e.getValue());
                    st.setBytes(2, e.getKey().toBytes());
                    n += st.executeUpdate();
                }
                assertEquals(1, n);
            }
        }
        assertEquals(la, local().locate(a), "the stale location is still cached");
        assertArrayEquals(one, store.get(a));
        byte[][] got = new byte[1][];
        store.getAll(List.of(b), (i, data, off, len) -> got[i] = Arrays.copyOfRange(data, off, off + len));
        assertArrayEquals(two, got[0]);
        assertEquals(new ChunkLocation(2, PackFormat.PACK_HEADER + la.length(), lb.length()), local().locate(b));
    }

    private static void assertEachStoredOnce(Scan scan, Set<ChunkId> expected) {
        assertEquals(List.of(), scan.problems());
        assertEquals(expected, scan.records().keySet(), "the packs must hold exactly the chunks put");
        scan.records().forEach((id, n) -> assertEquals(1, n, "chunk " + id + " has " + n + " records in the packs; put must store it once"));
    }

    private Map<ChunkId, byte[]> putRandom(Random rnd, int count, int size) {
        Map<ChunkId, byte[]> put = new LinkedHashMap<>();
        for (int i = 0; i < count; i++) {
            byte[] d = random(rnd, size);
            put.put(store.put(d), d);
        }
        return put;
    }

    private void assertReadable(Map<ChunkId, byte[]> chunks, String when) {
        for (var e : chunks.entrySet()) {
            assertArrayEquals(e.getValue(), store.get(e.getKey()), when + ": chunk " + e.getKey());
        }
    }

    private static void writeString(Path p, String s) {
        try {
            Files.writeString(p, s, StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    // ---------------------------------------------------------------- idempotence on disk

    /**
     * A single record is read into a recycled array that still holds an earlier read's bytes and
     * may be longer than the record: chunks of mixed sizes, each size class read after a longer
     * record of the same class, read back exactly, again and again.
     */
    @Test
    void recordsReadIntoRecycledArraysReadBackExactly() {
        Random rnd = new Random(41);
        Map<ChunkId, byte[]> put = new LinkedHashMap<>();
        for (int len : new int[] {8000, 4100, 7000, 4097, 16000, 9000, 5000, 4096}) {
            byte[] d = random(rnd, len);
            put.put(store.put(d), d);
        }
        restart(); // nothing cached: every get reads its record from the pack
        for (int round = 0; round < 3; round++) {
            for (var e : put.entrySet()) assertArrayEquals(e.getValue(), store.get(e.getKey()), "round " + round + ", " + e.getValue().length + " bytes");
        }
    }

    @Test
    void secondPutAfterSyncDoesNotGrowThePacks() {
        Random rnd = new Random(20);
        Map<ChunkId, byte[]> put = putRandom(rnd, 30, 20_000);
        byte[] text = compressible(rnd, 200_000);
        put.put(store.put(text), text);
        store.sync();
        long bytes = local().storedBytes();
        assertTrue(bytes > 30 * 20_000, "stored bytes " + bytes + " must at least hold the random chunks");

        for (byte[] d : put.values()) store.put(d);
        store.sync();
        assertEquals(bytes, local().storedBytes(), "putting the same chunks again after sync");
        assertEquals(put.size(), local().chunkCount());

        restart();
        for (byte[] d : put.values()) store.put(d);
        store.sync();
        assertEquals(bytes, local().storedBytes(), "putting the same chunks again after reopen");
        assertEachStoredOnce(scanAll(local()), put.keySet());
    }

    @Test
    void compressibleChunksTakeLessSpace() {
        byte[] text = compressible(new Random(21), 1 << 20);
        store.put(text);
        store.sync();
        assertTrue(local().storedBytes() < text.length / 4, "1 MiB of text stored in " + local().storedBytes() + " bytes");
    }

    @Test
    void closeWithoutSyncKeepsEverything() {
        // close is an orderly shutdown: it syncs
        Map<ChunkId, byte[]> put = putRandom(new Random(22), 20, 50_000);
        restart();
        assertReadable(put, "after close and reopen");
        assertEquals(put.keySet(), listed());
    }

    @Test
    void concurrentPutsOfTheSameChunksWhileSyncingStoreEachOnce() throws Exception {
        // put checks "already stored?" outside its lock; a sync that moves the chunk from pending
        // to the index in between must not lead to a second copy in the packs
        Random setup = new Random(23);
        int distinct = 200;
        byte[][] pool = new byte[distinct][];
        for (int i = 0; i < distinct; i++) pool[i] = compressible(setup, 65536);
        int threads = 6;
        CyclicBarrier start = new CyclicBarrier(threads + 1);
        AtomicBoolean done = new AtomicBoolean();
        ExecutorService ex = Executors.newFixedThreadPool(threads + 1);
        try {
            Future<?> syncer = ex.submit(() -> {
                start.await();
                while (!done.get()) store.sync();
                return null;
            });
            List<Future<?>> putters = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                long seed = t;
                putters.add(ex.submit(() -> {
                    Random rnd = new Random(seed);
                    start.await();
                    for (int round = 0; round < 3; round++) {
                        for (int i = 0; i < distinct; i++) store.put(pool[(i + rnd.nextInt(4)) % distinct]);
                    }
                    return null;
                }));
            }
            for (Future<?> f : putters) f.get(120, TimeUnit.SECONDS);
            done.set(true);
            syncer.get(60, TimeUnit.SECONDS);
        } finally {
            done.set(true);
            ex.shutdownNow();
        }
        store.sync();
        Set<ChunkId> ids = new java.util.HashSet<>();
        for (byte[] d : pool) ids.add(ChunkId.of(d));
        assertEquals(ids, listed());
        assertEachStoredOnce(scanAll(local()), ids);
    }

    // ---------------------------------------------------------------- packs

    @Test
    void packsRollOverAtTheLimitAndEverythingReadsBack() {
        store.close();
        long limit = 64 << 10;
        store = openLocal(new LocalChunkStore.Options(3, limit, false));
        Random rnd = new Random(24);
        Map<ChunkId, byte[]> put = putRandom(rnd, 60, 8192);
        byte[] bigger = random(rnd, 100_000); // larger than a whole pack: gets a pack of its own
        put.put(store.put(bigger), bigger);
        put.putAll(putRandom(rnd, 10, 3000));
        assertReadable(put, "before sync");
        store.sync();
        assertReadable(put, "after sync");

        List<Integer> packs = local().packIds();
        assertTrue(packs.size() >= 8, "70 chunks of ~600 KiB in 64 KiB packs made only " + packs.size() + " packs");
        for (int i = 0; i < packs.size(); i++) assertEquals(i + 1, packs.get(i), "packs are numbered 1, 2, 3...: " + packs);
        for (int p : packs) {
            Scan scan = scanPack(local(), p);
            assertEquals(List.of(), scan.problems(), "pack " + p);
            long size;
            try {
                size = Files.size(packFile(dir, p));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            assertTrue(size <= limit || scan.records().size() == 1,
                    "pack " + p + " is " + size + " bytes with " + scan.records().size() + " records; limit " + limit);
        }
        assertEachStoredOnce(scanAll(local()), put.keySet());
        // the packs the puts filled were sealed with their fsyncs on a thread of their own; the sync
        // waited for those, indexed their chunks and let go of them: only the open pack is marked
        try (var markers = Files.list(dir.resolve("packs"))) {
            assertEquals(List.of(String.format("%08d.open", packs.getLast())),
                    markers.map(m -> m.getFileName().toString()).filter(n -> n.endsWith(".open")).toList());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }

        restart();
        assertReadable(put, "after reopen");
        assertEquals(put.keySet(), listed());
    }

    @Test
    void rebuildIndexAfterDeletingItRestoresEveryChunk() throws IOException {
        store.close();
        store = openLocal(new LocalChunkStore.Options(3, 100 << 10, false));
        Random rnd = new Random(25);
        Map<ChunkId, byte[]> put = putRandom(rnd, 40, 10_000);
        for (int i = 0; i < 10; i++) {
            byte[] d = compressible(rnd, 30_000);
            put.put(store.put(d), d);
        }
        byte[] empty = new byte[0];
        put.put(store.put(empty), empty);
        store.close();
        try (Stream<Path> s = Files.list(dir.resolve("packs"))) {
            assertTrue(s.count() > 2, "the test wants several packs");
        }

        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith("index.db")).toList()) Files.delete(p);
        }
        store = openLocal(LocalChunkStore.Options.defaults().withExclusive(true));
        ChunkId some = put.keySet().iterator().next();
        assertThrows(CaskException.NotFound.class, () -> store.get(some), "the index is gone, so the chunk is not found");

        List<String> problems = new ArrayList<>();
        long n = local().rebuildIndex(problems::add, Progress.NONE);
        assertEquals(List.of(), problems);
        assertEquals(put.size(), n, "rebuildIndex must report every chunk of the packs");
        assertReadable(put, "after rebuild");
        assertEquals(put.keySet(), listed());

        restart(); // reopened without exclusivity, as a normal command would
        assertReadable(put, "after rebuild and reopen");
        assertEquals(put.keySet(), listed());
    }

    @Test
    void rebuildIndexNeedsAnExclusiveOpen() {
        store.put(new byte[]{1, 2, 3});
        store.sync();
        assertThrows(IllegalStateException.class, () -> local().rebuildIndex(line -> {}, Progress.NONE));
        assertArrayEquals(new byte[]{1, 2, 3}, store.get(ChunkId.of(new byte[]{1, 2, 3})), "a refused rebuild leaves the index alone");
    }

    // ---------------------------------------------------------------- opening

    @Test
    void sharedOpenWhileExclusivelyOpenIsAConflict() {
        byte[] d = random(new Random(26), 1000);
        ChunkId id = store.put(d);
        store.close();
        LocalChunkStore exclusive = openLocal(LocalChunkStore.Options.defaults().withExclusive(true));
        CaskException.Conflict e = assertThrows(CaskException.Conflict.class,
                () -> track(LocalChunkStore.open(dir, LocalChunkStore.Options.defaults())));
        assertTrue(e.getMessage().contains(dir.toString()), "message names the store: " + e.getMessage());
        assertThrows(CaskException.Conflict.class,
                () -> track(LocalChunkStore.open(dir, LocalChunkStore.Options.defaults().withExclusive(true))));
        assertArrayEquals(d, exclusive.get(id), "the refused opens must not disturb the exclusive one");
        exclusive.close();

        store = openLocal(LocalChunkStore.Options.defaults());
        assertArrayEquals(d, store.get(id), "after the exclusive handle closed, a normal open works");
    }

    @Test
    void exclusiveOpenWhileSharedOpenIsAConflict() {
        assertThrows(CaskException.Conflict.class,
                () -> track(LocalChunkStore.open(dir, LocalChunkStore.Options.defaults().withExclusive(true))));
        ChunkId id = store.put(new byte[]{7});
        assertArrayEquals(new byte[]{7}, store.get(id), "the open handle still works");
    }

    @Test
    void nonEmptyDirectoryThatIsNotAStoreIsRefused() throws IOException {
        Path other = tmp.resolve("photos");
        Files.createDirectories(other);
        Files.writeString(other.resolve("holiday.jpg"), "not a store");
        CaskException.InvalidInput e = assertThrows(CaskException.InvalidInput.class,
                () -> track(LocalChunkStore.open(other, LocalChunkStore.Options.defaults())));
        assertTrue(e.getMessage().contains(other.toString()), e.getMessage());
        try (Stream<Path> s = Files.list(other)) {
            assertEquals(List.of(other.resolve("holiday.jpg")), s.toList(), "a refused open must not write into the directory");
        }
        Path file = tmp.resolve("plain-file");
        Files.writeString(file, "x");
        assertThrows(CaskException.InvalidInput.class, () -> track(LocalChunkStore.open(file, LocalChunkStore.Options.defaults())));
    }

    @Test
    void emptyOrMissingDirectoryBecomesAStore() throws IOException {
        Path empty = tmp.resolve("empty");
        Files.createDirectories(empty);
        try (LocalChunkStore s = LocalChunkStore.open(empty, LocalChunkStore.Options.defaults())) {
            s.put(new byte[]{1});
        }
        assertEquals(LocalChunkStore.HEADER_TEXT, Files.readString(empty.resolve(LocalChunkStore.HEADER_FILE)));
        Path missing = tmp.resolve("a/b/c");
        try (LocalChunkStore s = LocalChunkStore.open(missing, LocalChunkStore.Options.defaults())) {
            assertFalse(s.contains(ChunkId.of(new byte[]{1})));
        }
        assertTrue(Files.exists(missing.resolve(LocalChunkStore.HEADER_FILE)));
    }

    @Test
    void futureFormatIsRefused() throws IOException {
        store.close();
        writeString(dir.resolve(LocalChunkStore.HEADER_FILE), "cask-store 3\n");
        CaskException.InvalidInput e = assertThrows(CaskException.InvalidInput.class, () -> track(open(dir)));
        assertTrue(e.getMessage().contains("format 3"), "message says which format it found: " + e.getMessage());
        assertEquals("cask-store 3\n", Files.readString(dir.resolve(LocalChunkStore.HEADER_FILE)), "a refused open must not rewrite the header");
    }

    @Test
    void garbledHeaderIsRefused() {
        store.close();
        writeString(dir.resolve(LocalChunkStore.HEADER_FILE), "hello\n");
        assertThrows(CaskException.class, () -> track(open(dir)));
    }

    // ---------------------------------------------------------------- damage to packs

    /** Appends {@code keep} bytes of a valid record for a chunk that was never synced: a crash mid-append. */
    private static byte[] appendTornRecord(Path pack, byte[] chunk, int keep) throws IOException {
        ChunkId id = ChunkId.of(chunk);
        byte[] rec = PackFormat.encodeRecord(id, PackFormat.CODEC_NONE, chunk.length, chunk, 0, chunk.length);
        Files.write(pack, Arrays.copyOf(rec, keep), StandardOpenOption.APPEND);
        return rec;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 20, PackFormat.RECORD_HEADER, PackFormat.RECORD_HEADER + 2000})
    void tornPackTailLeavesSyncedChunksReadable(int keep) throws IOException {
        Random rnd = new Random(27);
        Map<ChunkId, byte[]> synced = putRandom(rnd, 15, 5000);
        store.sync();
        store.close();
        List<Integer> packs;
        try (LocalChunkStore s = LocalChunkStore.open(dir, OPTIONS)) {
            packs = s.packIds();
        }
        assertEquals(1, packs.size());
        Path pack = packFile(dir, packs.getFirst());
        long before = Files.size(pack);
        byte[] lost = random(rnd, 5000);
        appendTornRecord(pack, lost, keep);

        store = track(reopen(dir));
        assertReadable(synced, "after a torn tail");
        assertEquals(synced.keySet(), listed());
        assertFalse(store.contains(ChunkId.of(lost)), "the torn chunk was never synced");

        Scan scan = scanPack(local(), packs.getFirst());
        assertEquals(synced.keySet(), scan.records().keySet(), "every record before the torn tail");
        assertEquals(1, scan.problems().size(), "one problem, the torn tail: " + scan.problems());
        assertTrue(scan.problems().getFirst().contains("offset " + before),
                "the problem names where the torn record starts (" + before + "): " + scan.problems());

        // the store goes on: the torn chunk can be put again and new chunks land after it
        ChunkId again = store.put(lost);
        store.sync();
        restart();
        assertArrayEquals(lost, store.get(again));
        assertReadable(synced, "after more writes");

        // and a rebuild from the packs finds everything but the torn tail, and cuts it (the store is its alone)
        store.close();
        store = openLocal(LocalChunkStore.Options.defaults().withExclusive(true));
        List<String> problems = new ArrayList<>();
        assertEquals(synced.size() + 1, local().rebuildIndex(problems::add, Progress.NONE));
        assertEquals(2, problems.size(), "the torn tail, and its cut: " + problems);
        assertTrue(problems.get(1).startsWith("pack " + packs.getFirst() + " at offset " + before + ": cut a torn tail of " + keep + " bytes"), problems.toString());
        assertEquals(before, Files.size(pack));
        assertArrayEquals(lost, store.get(again));
        assertReadable(synced, "after rebuild");
    }

    @ParameterizedTest
    @ValueSource(ints = {1, PackFormat.RECORD_HEADER + 2000})
    void openingCutsTheTornTailOfAPackWhoseWriterDied(int keep) throws IOException {
        Random rnd = new Random(28);
        Map<ChunkId, byte[]> synced = putRandom(rnd, 15, 5000);
        store.sync();
        byte[] unsynced = random(rnd, 5000);
        store.put(unsynced); // written to the pack at close, never indexed
        store.close();
        int pack = local().packIds().getFirst();
        Path file = packFile(dir, pack);
        long whole = Files.size(file);
        appendTornRecord(file, random(rnd, 5000), keep);
        // the writer died before sealing: its marker is still there, and nobody holds the pack's lock
        Files.createFile(dir.resolve("packs").resolve(String.format("%08d.open", pack)));

        store = track(reopen(dir));
        assertEquals(List.of("pack " + pack + " at offset " + whole + ": cut a torn tail of " + keep
                + " bytes (left by a writer that died mid-append; nothing referred to it)"), local().cutOnOpen());
        assertEquals(whole, Files.size(file), "cut back to the end of the last whole record");
        assertFalse(Files.exists(dir.resolve("packs").resolve(String.format("%08d.open", pack))), "marker gone");
        assertTrue(scanPack(local(), pack).problems().isEmpty(), "the pack scans clean");
        assertReadable(synced, "after the cut");
        restart();
        assertEquals(List.of(), local().cutOnOpen(), "nothing to cut the second time");
    }

    @Test
    void aTornTailTheIndexPointsIntoIsNeverCut() throws IOException {
        Random rnd = new Random(29);
        putRandom(rnd, 5, 5000);
        store.sync();
        store.close();
        int pack = local().packIds().getFirst();
        Path file = packFile(dir, pack);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 10); // damage to the last record, which the index needs
        }
        long damaged = Files.size(file);
        Files.createFile(dir.resolve("packs").resolve(String.format("%08d.open", pack)));
        store = track(reopen(dir));
        assertEquals(List.of(), local().cutOnOpen());
        assertEquals(damaged, Files.size(file), "left for check to report");
    }

    /** Byte offsets inside a record: magic, codec, plain length, stored length, id, crc, payload start, middle, end. */
    @ParameterizedTest
    @ValueSource(ints = {0, 3, 4, 9, 13, 16, 40, 48, 52, 2000, 4147})
    void bitFlipInTheMiddleOfAPackIsReportedForThatRecordOnly(int at) {
        Random rnd = new Random(28);
        Map<ChunkId, byte[]> put = putRandom(rnd, 21, 4096);
        store.close();
        List<ChunkId> ids = new ArrayList<>(put.keySet());
        ChunkId victim = ids.get(10);
        ChunkLocation loc;
        try (LocalChunkStore s = LocalChunkStore.open(dir, OPTIONS)) {
            loc = s.locate(victim);
        }
        assertTrue(at < loc.length(), "offset " + at + " inside a record of " + loc.length() + " bytes");
        flipByte(packFile(dir, loc.pack()), loc.offset() + at);

        store = track(reopen(dir));
        Scan scan = scanPack(local(), loc.pack());
        assertEquals(1, scan.problems().size(), "exactly one problem for the flipped record: " + scan.problems());
        assertTrue(scan.problems().getFirst().contains("offset " + loc.offset()), "problem names the record's offset " + loc.offset() + ": " + scan.problems());
        List<ChunkId> found = new ArrayList<>(scan.records().keySet());
        List<ChunkId> expected = new ArrayList<>(ids);
        expected.remove(victim);
        assertEquals(expected, found, "every other record, in order, including the ten after the damage (resync)");

        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> store.get(victim));
        assertTrue(e.getMessage().contains(victim.shortHex()), e.getMessage());
        for (ChunkId id : expected) assertArrayEquals(put.get(id), store.get(id));
    }

    @Test
    void indexEntryPointingAtAnotherRecordIsCorruptNotWrongBytes() {
        // if the index and the packs disagree (a bad rebuild, a bug), get must notice
        Random rnd = new Random(29);
        Map<ChunkId, byte[]> put = putRandom(rnd, 3, 4096);
        store.sync();
        List<ChunkId> ids = new ArrayList<>(put.keySet());
        ChunkLocation other = local().locate(ids.get(1));
        String problem = local().verifyEntry(ids.get(0), other, false);
        assertNotNull(problem, "an entry pointing at another chunk's record must be reported");
        assertTrue(problem.contains(ids.get(0).shortHex()), problem);
        assertEquals(null, local().verifyEntry(ids.get(1), other, true));
    }

    @Test
    void scanFindsEveryRecordOfAHealthyStore() {
        Random rnd = new Random(30);
        Map<ChunkId, byte[]> put = new TreeMap<>();
        for (int i = 0; i < 30; i++) {
            byte[] d = i % 2 == 0 ? random(rnd, rnd.nextInt(100_000)) : compressible(rnd, rnd.nextInt(100_000));
            put.put(store.put(d), d);
        }
        store.sync();
        Scan scan = scanAll(local());
        assertEachStoredOnce(scan, put.keySet());
        List<String> problems = new ArrayList<>();
        local().forEachIndexEntry((id, loc) -> {
            String p = local().verifyEntry(id, loc, true);
            if (p != null) problems.add(p);
        });
        assertEquals(List.of(), problems);
    }

    // ---------------------------------------------------------------- segments

    /** {@code blocks} distinct compressible 4 KiB blocks back to back, and their offsets. */
    private static byte[] textBlocks(Random rnd, int blocks, int[] offsets) {
        byte[] buf = new byte[blocks * 4096];
        for (int i = 0; i < blocks; i++) {
            offsets[i] = i * 4096;
            System.arraycopy(compressible(rnd, 4096), 0, buf, i * 4096, 4096);
        }
        return buf;
    }

    /**
     * A checkpoint's batch (RANDOM) that starts with 192 blocks of random bytes tries only its first
     * runs of them whole and probes the rest (PackEncoder.Probe): well under the 1 MiB every run
     * cost before. The 64 text blocks after them are still stored as segments, the random ones as
     * plain records, and every block reads back.
     */
    @Test
    void aCheckpointBatchProbesIncompressibleRunsAndStillCompressesWhatFollows() {
        Random rnd = new Random(57);
        int[] textOffsets = new int[64];
        byte[] text = textBlocks(rnd, 64, textOffsets);
        byte[] buf = new byte[256 * 4096];
        System.arraycopy(random(rnd, 192 * 4096), 0, buf, 0, 192 * 4096);
        System.arraycopy(text, 0, buf, 192 * 4096, 64 * 4096);
        int[] offsets = new int[256];
        for (int i = 0; i < 256; i++) offsets[i] = i * 4096;
        long before = local().compressionTriedBytes();
        ChunkId[] ids = store.putAll(buf, offsets, 4096, ChunkStore.Access.RANDOM);
        long tried = local().compressionTriedBytes() - before;
        // whole tries of 2 random runs (32 KiB), 46 probes of 4 KiB, the text: one probe, 16 runs
        assertTrue(tried < 600 << 10, "bytes handed to zstd: " + tried + ", every run tried whole: " + (256 * 4096));
        store.sync();
        for (int i = 0; i < 256; i++) {
            ChunkLocation l = local().locate(ids[i]);
            assertEquals(i >= 192, l.inSegment(), "block " + i + " at " + l);
            assertArrayEquals(block(buf, i), store.get(ids[i]), "block " + i);
        }
        restart();
        for (int i = 0; i < 256; i++) assertArrayEquals(block(buf, i), store.get(ids[i]), "block " + i + " after a restart");
    }

    private static byte[] block(byte[] buf, int i) {
        return Arrays.copyOfRange(buf, i * 4096, (i + 1) * 4096);
    }

    private Map<ChunkId, ChunkLocation> locations(ChunkId[] ids) {
        Map<ChunkId, ChunkLocation> m = new LinkedHashMap<>();
        for (ChunkId id : ids) m.put(id, local().locate(id));
        return m;
    }

    @Test
    void consecutiveNewChunksOfABatchShareSegmentsOfAtMost64KiB() {
        int[] offsets = new int[100];
        byte[] buf = textBlocks(new Random(50), 100, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        Map<ChunkId, ChunkLocation> locs = locations(ids);
        Map<Long, List<Integer>> bySegment = new TreeMap<>();
        for (int i = 0; i < ids.length; i++) {
            ChunkLocation loc = locs.get(ids[i]);
            assertTrue(loc.inSegment(), "block " + i + " at " + loc);
            bySegment.computeIfAbsent(loc.offset(), k -> new ArrayList<>()).add(i);
            assertEquals(bySegment.get(loc.offset()).size() - 1, loc.slot(), "slots follow the batch order");
        }
        assertEquals(7, bySegment.size(), "100 blocks of 4 KiB in segments of 16: " + bySegment);
        int next = 0;
        for (List<Integer> seg : bySegment.values()) {
            for (int i : seg) assertEquals(next++, i, "a segment holds consecutive blocks");
        }
        // far smaller than the chunks compressed one by one
        long segmented = local().storedBytes();
        LocalChunkStore single = (LocalChunkStore) track(LocalChunkStore.open(tmp.resolve("single"), LocalChunkStore.Options.defaults().withSegments(0, 3)));
        single.putAll(buf, offsets, 4096);
        single.sync();
        assertTrue(single.locate(ids[0]).slot() == ChunkLocation.SINGLE, "segments off: single records");
        assertTrue(segmented * 10 < single.storedBytes() * 9, "segments " + segmented + " bytes, single records " + single.storedBytes());
        restart();
        for (int i = 0; i < ids.length; i++) assertArrayEquals(block(buf, i), store.get(ids[i]), "block " + i + " after reopen");
        assertEachStoredOnce(scanAll(local()), Set.of(ids));
    }

    /** Several handles opening one new index.db at once: each one opens (none gets SQLITE_BUSY), and they all see one table. */
    @Test
    void manyHandlesOpeningOneNewIndexAtOnceAllOpen() throws Exception {
        Path file = tmp.resolve("fresh-index.db");
        int threads = 6;
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(threads);
        List<ChunkIndex> handles = java.util.Collections.synchronizedList(new ArrayList<>());
        var ex = java.util.concurrent.Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> opens = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                opens.add(ex.submit(() -> {
                    start.await();
                    handles.add(new ChunkIndex(file));
                    return null;
                }));
            }
            for (Future<?> f : opens) f.get(60, TimeUnit.SECONDS);
            ChunkId id = ChunkId.of(new byte[]{1, 2, 3});
            handles.getFirst().addAll(List.of(Map.entry(id, new ChunkLocation(1, 16, 60, ChunkLocation.SINGLE))));
            for (ChunkIndex h : handles) assertEquals(Set.of(id), h.locateAll(List.of(id)).keySet(), "every handle sees the entry");
        } finally {
            ex.shutdownNow();
            for (ChunkIndex h : handles) h.close();
        }
    }

    @Test
    void defaultSegmentsHoldUpTo256BlocksAndRandomAccessBatchesUpTo16() {
        LocalChunkStore big = (LocalChunkStore) track(LocalChunkStore.open(tmp.resolve("default"), LocalChunkStore.Options.defaults()));
        int[] offsets = new int[300];
        byte[] buf = textBlocks(new Random(49), 300, offsets);
        ChunkId[] ids = big.putAll(buf, offsets, 4096);
        big.sync();
        Map<Long, Integer> bySegment = new TreeMap<>();
        for (ChunkId id : ids) {
            ChunkLocation loc = big.locate(id);
            assertTrue(loc.inSegment(), "text block at " + loc);
            bySegment.merge(loc.offset(), 1, Integer::sum);
        }
        assertEquals(List.of(256, 44), List.copyOf(bySegment.values()), "300 blocks in 1 MiB segments");
        for (int i = 0; i < ids.length; i++) assertArrayEquals(block(buf, i), big.get(ids[i]), "block " + i);

        // a batch that will be read back at random (a checkpoint) gets segments of at most 16 KiB
        byte[] other = textBlocks(new Random(48), 40, offsets);
        ChunkId[] scattered = big.putAll(other, java.util.Arrays.copyOf(offsets, 40), 4096, ChunkStore.Access.RANDOM);
        big.sync();
        Map<Long, Integer> randomSegments = new TreeMap<>();
        for (ChunkId id : scattered) randomSegments.merge(big.locate(id).offset(), 1, Integer::sum);
        assertEquals(java.util.Collections.nCopies(10, 4), List.copyOf(randomSegments.values()), "40 blocks of a random-access batch");
        for (int i = 0; i < scattered.length; i++) assertArrayEquals(block(other, i), big.get(scattered[i]), "random-access block " + i);
    }

    @Test
    void incompressibleBlocksStaySingleRawRecords() {
        Random rnd = new Random(51);
        byte[] buf = random(rnd, 40 * 4096);
        int[] offsets = new int[40];
        for (int i = 0; i < 40; i++) offsets[i] = i * 4096;
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        for (ChunkId id : ids) {
            ChunkLocation loc = local().locate(id);
            assertEquals(ChunkLocation.SINGLE, loc.slot(), "random block " + id + " at " + loc);
            assertEquals(PackFormat.RECORD_HEADER + 4096, loc.length(), "stored raw");
        }
        for (int i = 0; i < 40; i++) assertArrayEquals(block(buf, i), store.get(ids[i]));
    }

    @Test
    void neighboursOfAReadChunkComeFromTheCacheWithoutDecompressingAgain() {
        int[] offsets = new int[32];
        byte[] buf = textBlocks(new Random(52), 32, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        restart(); // an empty cache
        assertEquals(0, local().segmentReads());
        for (int i = 0; i < 32; i++) assertArrayEquals(block(buf, i), store.get(ids[i]), "block " + i);
        assertEquals(2, local().segmentReads(), "32 blocks in two segments: each decompressed once");
        for (int i = 31; i >= 0; i--) assertArrayEquals(block(buf, i), store.get(ids[i]), "block " + i + " again");
        assertEquals(2, local().segmentReads());
    }

    /**
     * A client's small read decompresses a segment and keeps it whole: the client's next, larger
     * reads (bulk, as NBD reads of 64 KiB are) and single reads of its other chunks are answered
     * from that copy, checked chunk by chunk, without a second decompression.
     */
    @Test
    void aSegmentKeptWholeAnswersLaterBulkAndSingleReads() {
        int[] offsets = new int[32];
        byte[] buf = textBlocks(new Random(54), 32, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        restart();
        assertArrayEquals(block(buf, 5), store.get(ids[5]));
        assertEquals(1, local().segmentReads(), "one segment decompressed for one block");
        ChunkLocation at5 = local().locate(ids[5]);
        List<ChunkId> same = new ArrayList<>();
        for (int i = 0; i < 32; i++) if (i != 5 && local().locate(ids[i]).offset() == at5.offset()) same.add(ids[i]);
        assertTrue(same.size() >= 8, "the block's segment holds more blocks: " + same.size());
        byte[][] got = new byte[same.size()][];
        store.getAll(same, (i, data, off, len) -> got[i] = Arrays.copyOfRange(data, off, off + len), ChunkStore.Reading.LIVE);
        for (int k = 0; k < same.size(); k++) assertArrayEquals(store.get(same.get(k)), got[k], "bulk read of " + same.get(k).shortHex());
        assertEquals(1, local().segmentReads(), "the bulk read and the gets came from the segment kept whole");
    }

    /**
     * Reopens the store with the default options (1 MiB segments, as imports write them), stores
     * the 4 KiB blocks of {@code buf} at {@code offsets} in batches of 256 (as the importer does),
     * syncs and restarts (empty caches); their ids.
     */
    private ChunkId[] putInMiBSegments(byte[] buf, int[] offsets) {
        store.close();
        store = openLocal(LocalChunkStore.Options.defaults());
        ChunkId[] ids = new ChunkId[offsets.length];
        for (int b = 0; b < offsets.length; b += 256) {
            ChunkId[] part = store.putAll(buf, Arrays.copyOfRange(offsets, b, Math.min(offsets.length, b + 256)), 4096);
            System.arraycopy(part, 0, ids, b, part.length);
        }
        store.sync();
        restart();
        return ids;
    }

    /**
     * Clones of one image read the same 1 MiB of it, a whole segment per read (NBD reads of 1 MiB):
     * the first reader's decompression is not kept (most large reads are read once), the second's
     * is, and every later reader's read comes from it, where before session 29 each decompressed
     * it again. An export's read (STREAM) keeps nothing and counts for nothing.
     */
    @Test
    void aSegmentReadWholeTwiceAnswersLaterReadersFromTheCache() {
        int[] offsets = new int[512];
        byte[] buf = textBlocks(new Random(55), 512, offsets);
        ChunkId[] ids = putInMiBSegments(buf, offsets);
        List<ChunkId> first = List.of(ids).subList(0, 256), second = List.of(ids).subList(256, 512);
        assertEquals(256, new java.util.HashSet<>(first).size(), "distinct blocks");
        assertEquals(local().locate(ids[0]).offset(), local().locate(ids[255]).offset(), "the first 256 blocks are one segment");
        for (int export = 0; export < 2; export++) {
            store.getAll(second, (i, data, off, len) -> assertArrayEquals(block(buf, 256 + i), Arrays.copyOfRange(data, off, off + len)), ChunkStore.Reading.STREAM);
        }
        assertEquals(2, local().segmentReads(), "two exports, two decompressions");
        int[] expected = {3, 4, 4, 4};
        for (int reader = 0; reader < expected.length; reader++) {
            byte[][] got = new byte[256][];
            store.getAll(first, (i, data, off, len) -> got[i] = Arrays.copyOfRange(data, off, off + len), ChunkStore.Reading.LIVE);
            for (int k = 0; k < 256; k++) assertArrayEquals(block(buf, k), got[k], "reader " + reader + ", block " + k);
            assertEquals(expected[reader], local().segmentReads(), "reader " + reader + ": the first two readers decompressed the segment, later ones read the kept copy");
        }
        for (int k = 0; k < 256; k += 51) assertArrayEquals(block(buf, k), store.get(ids[k]), "single read of block " + k);
        assertEquals(4, local().segmentReads(), "single reads came from the kept copy");
        for (int reader = 0; reader < 2; reader++) {
            store.getAll(second, (i, data, off, len) -> assertArrayEquals(block(buf, 256 + i), Arrays.copyOfRange(data, off, off + len)), ChunkStore.Reading.LIVE);
        }
        assertEquals(6, local().segmentReads(), "the exports counted for nothing: two live readers of the second segment decompressed it");
    }

    /**
     * An export reads a disk stored in segments: getAll asks the index about a few chunks per
     * segment (the segment's table names the rest), decompresses each segment once, and still
     * answers every index (repeats too) with the right bytes.
     */
    @Test
    void aBulkReadOfSegmentsAsksTheIndexAboutAFewChunksPerSegment() {
        int[] offsets = new int[1024];
        byte[] buf = textBlocks(new Random(53), 1024, offsets);
        ChunkId[] ids = putInMiBSegments(buf, offsets);
        List<ChunkId> asked = new ArrayList<>(List.of(ids));
        asked.addAll(List.of(ids).subList(100, 140)); // repeats, answered at each index
        byte[][] got = new byte[asked.size()][];
        store.getAll(asked, (i, data, off, len) -> {
            assertNull(got[i], "index " + i + " answered twice");
            got[i] = Arrays.copyOfRange(data, off, off + len);
        });
        for (int k = 0; k < asked.size(); k++) {
            int b = k < 1024 ? k : 100 + (k - 1024);
            assertArrayEquals(block(buf, b), got[k], "index " + k);
        }
        assertEquals(4, local().segmentReads(), "1024 blocks in four segments: each decompressed once");
        assertTrue(local().indexLookups() <= 4 * 16, "the index is asked about a few chunks per segment, not 1024: "
                + local().indexLookups());
    }

    /**
     * A served disk's large read of incompressible blocks a checkpoint stored (single records, in
     * disk order): right after the checkpoint (locations cached, as a sync leaves them) it reads
     * the records after the first with the first and asks the index nothing; after a restart
     * (nothing cached) every block is right too, in order or scattered.
     */
    @Test
    void aLiveBulkReadOfRecordsInDiskOrderIsRightWithAndWithoutCachedLocations() {
        Random rnd = new Random(55);
        byte[] buf = random(rnd, 256 * 4096);
        int[] offsets = new int[256];
        for (int i = 0; i < 256; i++) offsets[i] = i * 4096;
        ChunkId[] ids = store.putAll(buf, offsets, 4096, ChunkStore.Access.RANDOM);
        store.sync();
        for (int round = 0; round < 2; round++) {
            long before = local().indexLookups();
            byte[][] got = new byte[256][];
            store.getAll(List.of(ids), (i, data, off, len) -> got[i] = Arrays.copyOfRange(data, off, off + len), ChunkStore.Reading.LIVE);
            for (int i = 0; i < 256; i++) assertArrayEquals(block(buf, i), got[i], "round " + round + ": block " + i);
            if (round == 0) assertEquals(0, local().indexLookups() - before, "locations cached by the sync: no index lookup");
            restart(); // nothing cached
        }
        List<ChunkId> scattered = new ArrayList<>();
        for (int i = 0; i < 256; i++) scattered.add(ids[(i * 97) % 256]);
        byte[][] again = new byte[256][];
        store.getAll(scattered, (i, data, off, len) -> again[i] = Arrays.copyOfRange(data, off, off + len), ChunkStore.Reading.LIVE);
        for (int i = 0; i < 256; i++) assertArrayEquals(block(buf, (i * 97) % 256), again[i], "scattered index " + i);
    }

    /**
     * What the caller's sink throws (a tree whose chunk has the wrong length for its block) reaches
     * the caller as it was, and is not taken for damage of the copy being read: nothing is marked,
     * and the next read gets every chunk.
     */
    @Test
    void aSinkThatFailsIsNotTakenForDamage() {
        Random rnd = new Random(56);
        byte[] buf = random(rnd, 64 * 4096);
        int[] offsets = new int[64];
        for (int i = 0; i < 64; i++) offsets[i] = i * 4096;
        ChunkId[] ids = store.putAll(buf, offsets, 4096, ChunkStore.Access.RANDOM);
        store.sync();
        for (ChunkStore.Reading reading : ChunkStore.Reading.values()) {
            restart();
            // what LayoutDevice throws for a chunk of the wrong length: a Corrupt, but not the store's
            CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> store.getAll(List.of(ids), (i, data, off, len) -> {
                if (i == 40) throw new CaskException.Corrupt("the sink refuses chunk 40");
            }, reading), reading.toString());
            assertEquals("the sink refuses chunk 40", e.getMessage());
            assertEquals(List.of(), local().damageMarks(), reading + ": nothing is marked damaged");
            byte[][] got = new byte[64][];
            store.getAll(List.of(ids), (i, data, off, len) -> got[i] = Arrays.copyOfRange(data, off, off + len), reading);
            for (int i = 0; i < 64; i++) assertArrayEquals(block(buf, i), got[i], reading + ": block " + i);
        }
    }

    /** Import and export read the index through a memory map: the same answers, with and without it, across restarts. */
    @Test
    void anIndexReadThroughAMemoryMapGivesTheSameAnswers() {
        store.close();
        store = openLocal(OPTIONS.withIndexMapBytes(1L << 30));
        int[] offsets = new int[300];
        byte[] buf = textBlocks(new Random(54), 300, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        for (int i = 0; i < 300; i += 7) assertArrayEquals(block(buf, i), store.get(ids[i]), "block " + i + " through the map");
        restart(); // reopened without a map: what the mapped store wrote
        for (int i = 0; i < 300; i += 7) assertArrayEquals(block(buf, i), store.get(ids[i]), "block " + i + " without a map");
        store.close();
        store = openLocal(OPTIONS.withIndexMapBytes(1L << 30));
        byte[][] got = new byte[300][];
        store.getAll(List.of(ids), (i, data, off, len) -> got[i] = Arrays.copyOfRange(data, off, off + len));
        for (int i = 0; i < 300; i++) assertArrayEquals(block(buf, i), got[i], "block " + i + " through the map");
        assertTrue(store.contains(ids[123]));
        assertFalse(store.contains(ChunkId.of(new byte[]{9, 9, 9})));
        assertThrows(IllegalArgumentException.class, () -> OPTIONS.withIndexMapBytes(-1));
    }

    /** Blocks that compress by about a tenth are compressed one by one: a random read of one decompresses 4 KiB, not a segment. */
    @Test
    void weaklyCompressibleBlocksAreCompressedAloneNotInSegments() {
        Random rnd = new Random(52);
        byte[] buf = random(rnd, 32 * 4096);
        for (int i = 0; i < 32; i++) java.util.Arrays.fill(buf, i * 4096, i * 4096 + 500, (byte) 0); // ~12 % zeros, the rest random
        int[] offsets = new int[32];
        for (int i = 0; i < 32; i++) offsets[i] = i * 4096;
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        for (ChunkId id : ids) {
            ChunkLocation loc = local().locate(id);
            assertEquals(ChunkLocation.SINGLE, loc.slot(), "weak block " + id + " at " + loc);
            assertTrue(loc.length() < PackFormat.RECORD_HEADER + 4096 - 256, "compressed alone: " + loc);
        }
        for (int i = 0; i < 32; i++) assertArrayEquals(block(buf, i), store.get(ids[i]), "block " + i);
        assertEquals(0, local().segmentReads(), "no segment was decompressed");
    }

    @Test
    void chunksFoundInABatchOrAlreadyStoredAreLeftOutOfItsSegments() {
        int[] offsets = new int[40];
        byte[] buf = textBlocks(new Random(53), 40, offsets);
        // blocks 10..19 are stored first, one by one
        for (int i = 10; i < 20; i++) store.put(block(buf, i));
        store.sync();
        long before = local().storedBytes();
        // the batch repeats block 3 at 30..33 as well
        for (int i = 30; i < 34; i++) System.arraycopy(buf, 3 * 4096, buf, i * 4096, 4096);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        for (int i = 10; i < 20; i++) assertEquals(ChunkLocation.SINGLE, local().locate(ids[i]).slot(), "block " + i + " stays where it was");
        Set<ChunkId> distinct = new java.util.HashSet<>(List.of(ids));
        assertEquals(40 - 4, distinct.size());
        assertEachStoredOnce(scanAll(local()), distinct);
        long after = local().storedBytes();
        assertArrayEquals(ids, store.putAll(buf, offsets, 4096));
        store.sync();
        assertEquals(after, local().storedBytes(), "the same batch again stores nothing");
        assertTrue(after > before);
        for (int i = 0; i < 40; i++) assertArrayEquals(block(buf, i), store.get(ids[i]));
    }

    @Test
    void concurrentBatchesWithTheSameNewBlocksStoreEachOnce() throws Exception {
        // two import workers with the same new blocks at once: one segment wins, the other leaves them out
        Random setup = new Random(54);
        int[] offsets = new int[64];
        byte[] shared = textBlocks(setup, 64, offsets);
        int threads = 4;
        CyclicBarrier start = new CyclicBarrier(threads + 1);
        AtomicBoolean done = new AtomicBoolean();
        ExecutorService ex = Executors.newFixedThreadPool(threads + 1);
        Set<ChunkId> all = java.util.concurrent.ConcurrentHashMap.newKeySet();
        try {
            Future<?> syncer = ex.submit(() -> {
                start.await();
                while (!done.get()) store.sync();
                return null;
            });
            List<Future<?>> putters = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                long seed = 100 + t;
                putters.add(ex.submit(() -> {
                    Random rnd = new Random(seed);
                    start.await();
                    for (int round = 0; round < 20; round++) {
                        // the shared blocks, interleaved with a few of this thread's own, from a random start
                        byte[] buf = new byte[64 * 4096];
                        int from = rnd.nextInt(64);
                        for (int i = 0; i < 64; i++) {
                            byte[] b = i % 5 == 4 ? compressible(rnd, 4096) : block(shared, (from + i) % 64);
                            System.arraycopy(b, 0, buf, i * 4096, 4096);
                        }
                        ChunkId[] ids = store.putAll(buf, offsets, 4096);
                        for (int i = 0; i < 64; i++) assertArrayEquals(block(buf, i), store.get(ids[i]));
                        all.addAll(List.of(ids));
                    }
                    return null;
                }));
            }
            for (Future<?> f : putters) f.get(120, TimeUnit.SECONDS);
            done.set(true);
            syncer.get(60, TimeUnit.SECONDS);
        } finally {
            done.set(true);
            ex.shutdownNow();
        }
        store.sync();
        assertEquals(all, listed());
        assertEachStoredOnce(scanAll(local()), all);
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 4, 9, 13, 17, 20, 52, 59, 700, 800, -1})
    void bitFlipInASegmentIsFoundAndItsChunksAreErrors(int at) {
        int[] offsets = new int[48];
        byte[] buf = textBlocks(new Random(55), 48, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.close();
        ChunkLocation loc;
        try (LocalChunkStore s = LocalChunkStore.open(dir, OPTIONS)) {
            loc = s.locate(ids[20]); // the second segment: blocks 16..31
        }
        assertEquals(4, loc.slot());
        long where = at >= 0 ? loc.offset() + at : loc.offset() + loc.length() - 1;
        flipByte(packFile(dir, loc.pack()), where);

        store = track(reopen(dir));
        Scan scan = scanPack(local(), loc.pack());
        assertEquals(1, scan.problems().size(), "one problem, the segment: " + scan.problems());
        assertTrue(scan.problems().getFirst().contains("offset " + loc.offset()), scan.problems().toString());
        Set<ChunkId> others = new java.util.LinkedHashSet<>(List.of(ids).subList(0, 16));
        others.addAll(List.of(ids).subList(32, 48));
        assertEquals(others, scan.records().keySet(), "the segments before and after it (resync)");
        for (int i = 16; i < 32; i++) {
            ChunkId id = ids[i];
            CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> store.get(id), "block " + i);
            assertTrue(e.getMessage().contains(id.shortHex()), e.getMessage());
            assertNotNull(local().verifyEntry(id, local().locate(id), false), "the index check finds block " + i);
        }
        for (int i : new int[]{0, 15, 32, 47}) assertArrayEquals(block(buf, i), store.get(ids[i]));
    }

    @Test
    void wrongPlainBytesInASegmentAreCaughtByTheChunkCrc() throws IOException {
        // a segment whose frame and table agree with its CRC but whose frame holds other bytes for
        // slot 1 (a bug in the writer, say): that chunk is an error, its neighbours read fine
        Random rnd = new Random(56);
        byte[] a = compressible(rnd, 4096), b = compressible(rnd, 4096), c = compressible(rnd, 4096);
        byte[] plain = new byte[3 * 4096];
        System.arraycopy(a, 0, plain, 0, 4096);
        System.arraycopy(c, 0, plain, 4096, 4096); // c where b should be
        System.arraycopy(c, 0, plain, 8192, 4096);
        byte[] frame = com.github.luben.zstd.Zstd.compress(plain, 3);
        ChunkId[] ids = {ChunkId.of(a), ChunkId.of(b), ChunkId.of(c)};
        byte[] seg = PackFormat.encodeSegment(ids, new int[]{4096, 4096, 4096},
                new int[]{PackFormat.crc32c(a, 0, 4096), PackFormat.crc32c(b, 0, 4096), PackFormat.crc32c(c, 0, 4096)}, frame, 0, frame.length);
        store.close();
        Path pack = packFile(dir, 1);
        Files.write(pack, PackFormat.encodePackHeader(1));
        Files.write(pack, seg, StandardOpenOption.APPEND);
        Files.deleteIfExists(dir.resolve("index.db"));
        store = openLocal(LocalChunkStore.Options.defaults().withExclusive(true));
        List<String> problems = new ArrayList<>();
        assertEquals(3, local().rebuildIndex(problems::add, Progress.NONE), "the segment's CRC is good: all three are indexed");
        assertEquals(List.of(), problems);
        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> store.get(ids[1]));
        assertTrue(e.getMessage().contains(ids[1].shortHex()) && e.getMessage().contains("crc32c"), e.getMessage());
        assertArrayEquals(c, store.get(ids[2]));
        assertArrayEquals(a, store.get(ids[0]));
        assertNotNull(local().verifyEntry(ids[1], local().locate(ids[1]), true), "check --deep finds it");
        assertEquals(null, local().verifyEntry(ids[0], local().locate(ids[0]), true));
        Scan scan = scanAll(local());
        assertEquals(List.of(), scan.problems(), "the scan alone (no decompression) sees a good segment");
    }

    @Test
    void indexEntryWithTheWrongSlotIsCorruptNotWrongBytes() {
        int[] offsets = new int[8];
        byte[] buf = textBlocks(new Random(57), 8, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        ChunkLocation loc = local().locate(ids[2]);
        ChunkLocation wrong = new ChunkLocation(loc.pack(), loc.offset(), loc.length(), 3);
        String problem = local().verifyEntry(ids[2], wrong, false);
        assertNotNull(problem);
        assertTrue(problem.contains(ids[2].shortHex()) && problem.contains("slot"), problem);
        assertNotNull(local().verifyEntry(ids[2], new ChunkLocation(loc.pack(), loc.offset(), loc.length(), 8), true));
        assertNotNull(local().verifyEntry(ids[2], new ChunkLocation(loc.pack(), loc.offset(), loc.length()), false), "not a single record");
        assertEquals(null, local().verifyEntry(ids[3], wrong, true));
    }

    @Test
    void rebuildIndexFindsEveryChunkOfEverySegment() throws IOException {
        Random rnd = new Random(58);
        Map<ChunkId, byte[]> put = putRandom(rnd, 10, 4096);
        int[] offsets = new int[70];
        byte[] buf = textBlocks(rnd, 70, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        for (int i = 0; i < 70; i++) put.put(ids[i], block(buf, i));
        store.close();
        for (String f : List.of("index.db", "index.db-wal", "index.db-shm")) Files.deleteIfExists(dir.resolve(f));
        store = openLocal(LocalChunkStore.Options.defaults().withExclusive(true));
        List<String> problems = new ArrayList<>();
        assertEquals(80, local().rebuildIndex(problems::add, Progress.NONE));
        assertEquals(List.of(), problems);
        restart();
        assertReadable(put, "after rebuild");
        assertTrue(local().locate(ids[5]).inSegment());
    }

    @Test
    void aFormat1StoreWithAnOldIndexOpensReadsAndTakesSegments() throws Exception {
        // a store as the first release wrote it: header 1, a format-1 pack, an index without slots
        store.close();
        Path old = tmp.resolve("old");
        Files.createDirectories(old.resolve("packs"));
        Files.writeString(old.resolve(LocalChunkStore.HEADER_FILE), LocalChunkStore.HEADER_TEXT_1);
        byte[] hello = "hello, cask\n".getBytes();
        Path pack1 = old.resolve("packs").resolve("00000001.pack");
        Files.write(pack1, PackFormat.encodePackHeader(1, 1));
        Files.write(pack1, java.util.HexFormat.of().parseHex(GoldenFormatTest.HELLO_RECORD), StandardOpenOption.APPEND);
        try (java.sql.Connection c = java.sql.DriverManager.getConnection("jdbc:sqlite:" + old.resolve("index.db"));
             java.sql.Statement st = c.createStatement()) {
            st.execute("CREATE TABLE chunks (id BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID");
            st.execute("INSERT INTO chunks VALUES (x'" + GoldenFormatTest.HELLO_ID + "', 1, 16, " + (PackFormat.RECORD_HEADER + hello.length) + ")");
        }
        dir = old;
        store = openLocal(LocalChunkStore.Options.defaults());
        assertEquals(LocalChunkStore.HEADER_TEXT, Files.readString(old.resolve(LocalChunkStore.HEADER_FILE)), "upgraded to format 2");
        ChunkId helloId = ChunkId.parse(GoldenFormatTest.HELLO_ID);
        assertArrayEquals(hello, store.get(helloId));
        assertEquals(new ChunkLocation(1, 16, 64), local().locate(helloId));
        int[] offsets = new int[20];
        byte[] buf = textBlocks(new Random(59), 20, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        restart();
        assertTrue(local().locate(ids[0]).inSegment());
        assertEquals(2, local().locate(ids[0]).pack(), "a new pack, format 2");
        assertArrayEquals(hello, store.get(helloId));
        for (int i = 0; i < 20; i++) assertArrayEquals(block(buf, i), store.get(ids[i]));
        assertEachStoredOnce(scanAll(local()), new java.util.HashSet<>(listed()));
        try (java.sql.Connection c = java.sql.DriverManager.getConnection("jdbc:sqlite:" + old.resolve("index.db"));
             java.sql.Statement st = c.createStatement(); java.sql.ResultSet rs = st.executeQuery("PRAGMA user_version")) {
            assertTrue(rs.next());
            assertEquals(5, rs.getInt(1), "index schema 5 (slots, GC epochs, the recent table, then the count of settled changes)");
        }
        try (java.sql.Connection c = java.sql.DriverManager.getConnection("jdbc:sqlite:" + old.resolve("index.db"));
             java.sql.Statement st = c.createStatement(); java.sql.ResultSet rs = st.executeQuery("SELECT moved FROM gc")) {
            assertTrue(rs.next());
            assertTrue(rs.getLong(1) >= 0, "gc.moved added by the migration");
        }
    }

    @Test
    void aSegmentInAFormat1PackIsAProblem() throws IOException {
        int[] offsets = new int[4];
        byte[] buf = textBlocks(new Random(60), 4, offsets);
        store.putAll(buf, offsets, 4096);
        store.close();
        Path pack = packFile(dir, 1);
        byte[] bytes = Files.readAllBytes(pack);
        System.arraycopy(PackFormat.encodePackHeader(1, 1), 0, bytes, 0, PackFormat.PACK_HEADER);
        Files.write(pack, bytes);
        store = track(reopen(dir));
        Scan scan = scanPack(local(), 1);
        assertEquals(1, scan.problems().size(), scan.problems().toString());
        assertTrue(scan.problems().getFirst().contains("segment in a format 1 pack"), scan.problems().toString());
    }
}
