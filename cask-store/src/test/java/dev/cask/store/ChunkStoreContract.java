package dev.cask.store;

import dev.cask.common.CaskException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The contract every {@link ChunkStore} (implementation or decorator) must keep: one test, or a
 * few, per clause of the {@link ChunkStore} Javadoc. An implementation's test extends this class
 * and says how to open a store on a directory and how to damage one chunk's stored bytes;
 * everything else is shared.
 *
 * <p>Each test gets a fresh, empty store from {@link #open} on its own temporary directory.
 * {@link #reopen} stands in for a restart: it is only called after every handle on the
 * directory is closed. {@link #corruptPayload} is likewise only called while the store is closed,
 * for a chunk that was synced.
 *
 * <p>Counting what a store holds goes through {@link ChunkStore#list}, the one
 * implementation-neutral view; implementations add their own physical checks (bytes on disk,
 * records in packs) in their subclass.
 */
public abstract class ChunkStoreContract {

    /** Opens (creating when needed) the store kept in {@code dir}. */
    protected abstract ChunkStore open(Path dir);

    /**
     * Damages the stored bytes of chunk {@code id} (synced, non-empty) in the store at {@code dir},
     * as a bad disk sector would, leaving everything the store needs to find the chunk in place.
     * Called only while no handle on the store is open.
     */
    protected abstract void corruptPayload(Path dir, ChunkId id);

    /** Another handle on the store in {@code dir} after the previous one was closed; by default {@link #open}. */
    protected ChunkStore reopen(Path dir) {
        return open(dir);
    }

    @TempDir
    protected Path tmp;

    /** Where the store under test keeps its files. */
    protected Path dir;

    /** The store under test. */
    protected ChunkStore store;

    private final List<ChunkStore> opened = new ArrayList<>();

    @BeforeEach
    void openStore() {
        dir = tmp.resolve("store");
        store = track(open(dir));
    }

    @AfterEach
    void closeStores() {
        for (ChunkStore s : opened) {
            try {
                s.close();
            } catch (RuntimeException ignored) {
                // a test that damaged the store may make close complain; the test already judged
            }
        }
    }

    /** Closes {@code s} at the end of the test. */
    protected ChunkStore track(ChunkStore s) {
        opened.add(s);
        return s;
    }

    /** Closes the store under test and opens it again, as after a restart. */
    protected void restart() {
        store.close();
        store = track(reopen(dir));
    }

    // ---------------------------------------------------------------- data helpers

    protected static byte[] random(Random rnd, int size) {
        byte[] b = new byte[size];
        rnd.nextBytes(b);
        return b;
    }

    /** Text-like bytes that zstd shrinks well, different for every seed. */
    protected static byte[] compressible(Random rnd, int size) {
        byte[] b = new byte[size];
        String[] words = {"cask ", "chunk ", "pack ", "index ", "tree ", "root ", "block ", "zero "};
        int i = 0;
        while (i < size) {
            byte[] w = words[rnd.nextInt(words.length)].getBytes();
            int n = Math.min(w.length, size - i);
            System.arraycopy(w, 0, b, i, n);
            i += n;
        }
        if (size > 0) b[rnd.nextInt(size)] = (byte) rnd.nextInt(256);
        return b;
    }

    protected Set<ChunkId> listed() {
        List<ChunkId> all = new ArrayList<>();
        store.list(all::add);
        Set<ChunkId> set = new HashSet<>(all);
        assertEquals(all.size(), set.size(), "list() must name every chunk exactly once, got " + all);
        return set;
    }

    protected long listCount() {
        long[] n = {0};
        store.list(id -> n[0]++);
        return n[0];
    }

    private static final int[] SIZES = {0, 1, 4095, 4096, 65536, ChunkStore.MAX_CHUNK};

    private Map<ChunkId, byte[]> putAllSizes(Random rnd) {
        Map<ChunkId, byte[]> put = new HashMap<>();
        for (int size : SIZES) {
            for (byte[] data : List.of(random(rnd, size), compressible(rnd, size))) {
                ChunkId id = store.put(data);
                assertEquals(ChunkId.of(data), id, "put of " + size + " bytes must return the SHA-256 of the bytes");
                put.put(id, data);
            }
        }
        return put;
    }

    private void assertAllReadable(Map<ChunkId, byte[]> chunks, String when) {
        for (var e : chunks.entrySet()) {
            assertTrue(store.contains(e.getKey()), when + ": contains(" + e.getKey() + ")");
            assertArrayEquals(e.getValue(), store.get(e.getKey()), when + ": bytes of chunk " + e.getKey() + " (" + e.getValue().length + " bytes)");
        }
    }

    // ---------------------------------------------------------------- round trip

    @Test
    void roundTripOfEverySizeRandomAndCompressible() {
        Map<ChunkId, byte[]> put = putAllSizes(new Random(1));
        // the empty chunk is the same for random and compressible data
        assertEquals(2 * SIZES.length - 1, put.size());
        assertAllReadable(put, "before sync");
        store.sync();
        assertAllReadable(put, "after sync");
        restart();
        assertAllReadable(put, "after reopen");
        assertEquals(put.keySet(), listed());
    }

    @Test
    void putOfASliceStoresOnlyTheSlice() {
        byte[] big = random(new Random(2), 10_000);
        ChunkId id = store.put(big, 1000, 5000);
        byte[] slice = Arrays.copyOfRange(big, 1000, 6000);
        assertEquals(ChunkId.of(slice), id);
        assertArrayEquals(slice, store.get(id));
        store.sync();
        assertArrayEquals(slice, store.get(id));
    }

    @Test
    void changingTheCallersArrayAfterPutDoesNotChangeTheChunk() {
        Random rnd = new Random(3);
        byte[] data = random(rnd, 8192);
        byte[] original = data.clone();
        ChunkId id = store.put(data);
        Arrays.fill(data, (byte) 0x55);
        assertArrayEquals(original, store.get(id), "before sync");
        store.sync();
        Arrays.fill(data, (byte) 0x66);
        assertArrayEquals(original, store.get(id), "after sync");
    }

    @Test
    void getReturnsAFreshCopyEveryTime() {
        byte[] data = random(new Random(4), 4096);
        ChunkId id = store.put(data);
        byte[] first = store.get(id);
        Arrays.fill(first, (byte) 0);
        assertArrayEquals(data, store.get(id), "a caller scribbling on a returned array must not change the chunk");
    }

    // ---------------------------------------------------------------- idempotence

    @Test
    void putIsIdempotent() {
        Random rnd = new Random(5);
        byte[] a = random(rnd, 65536);
        byte[] b = compressible(rnd, 65536);
        ChunkId ida = store.put(a);
        assertEquals(ida, store.put(a.clone()), "same bytes, same id");
        assertEquals(ida, store.put(a), "same bytes, same id");
        ChunkId idb = store.put(b);
        assertEquals(2, listCount(), "two distinct chunks put, one of them three times");

        store.sync();
        assertEquals(2, listCount());
        assertEquals(ida, store.put(a), "put after sync");
        assertEquals(idb, store.put(b), "put after sync");
        store.sync();
        assertEquals(2, listCount(), "a second put after sync must not store the chunk again");

        restart();
        assertEquals(ida, store.put(a), "put after reopen");
        store.sync();
        assertEquals(Set.of(ida, idb), listed());
        assertArrayEquals(a, store.get(ida));
        assertArrayEquals(b, store.get(idb));
    }

    // ---------------------------------------------------------------- limits and errors

    @Test
    void overSizeChunkIsRejectedAndNothingIsStored() {
        byte[] big = new byte[ChunkStore.MAX_CHUNK + 1];
        new Random(6).nextBytes(big);
        assertThrows(IllegalArgumentException.class, () -> store.put(big));
        assertThrows(IllegalArgumentException.class, () -> store.put(big, 0, big.length));
        assertFalse(store.contains(ChunkId.of(big)));
        store.sync();
        assertEquals(0, listCount(), "a rejected put must not leave a chunk behind");
        // exactly the limit is fine
        ChunkId id = store.put(big, 1, ChunkStore.MAX_CHUNK);
        assertArrayEquals(Arrays.copyOfRange(big, 1, big.length), store.get(id));
    }

    @Test
    void getOfUnknownChunkThrowsNotFoundNamingIt() {
        ChunkId unknown = ChunkId.of("never stored".getBytes());
        store.put("something else".getBytes());
        CaskException.NotFound e = assertThrows(CaskException.NotFound.class, () -> store.get(unknown));
        assertTrue(e.getMessage().contains(unknown.hex()), "message must name the chunk by its 64 hex characters: " + e.getMessage());
        assertFalse(store.contains(unknown));
        store.sync();
        e = assertThrows(CaskException.NotFound.class, () -> store.get(unknown));
        assertTrue(e.getMessage().contains(unknown.hex()), e.getMessage());
        restart();
        assertThrows(CaskException.NotFound.class, () -> store.get(unknown));
        assertFalse(store.contains(unknown));
    }

    // ---------------------------------------------------------------- contains and list

    @Test
    void containsAndListSeeExactlyWhatWasPut() {
        Random rnd = new Random(7);
        assertEquals(Set.of(), listed(), "a new store is empty");
        Map<ChunkId, byte[]> put = new HashMap<>();
        for (int i = 0; i < 50; i++) {
            byte[] d = i % 2 == 0 ? random(rnd, 1 + rnd.nextInt(20_000)) : compressible(rnd, 1 + rnd.nextInt(20_000));
            put.put(store.put(d), d);
        }
        assertEquals(put.keySet(), listed(), "before sync");
        for (ChunkId id : put.keySet()) assertTrue(store.contains(id));
        assertFalse(store.contains(ChunkId.of(new byte[]{42})));
        assertFalse(store.contains(ChunkId.ZERO), "the zero id names no chunk");

        store.sync();
        assertEquals(put.keySet(), listed(), "after sync");

        // some synced, some still pending: list must name each exactly once
        for (int i = 0; i < 10; i++) {
            byte[] d = random(rnd, 100 + i);
            put.put(store.put(d), d);
        }
        for (byte[] d : new ArrayList<>(put.values()).subList(0, 10)) store.put(d);
        assertEquals(put.keySet(), listed(), "synced and pending chunks together");

        restart();
        assertEquals(put.keySet(), listed(), "after reopen");
        for (ChunkId id : put.keySet()) assertTrue(store.contains(id));
    }

    // ---------------------------------------------------------------- visibility before sync

    @Test
    void putIsVisibleToGetBeforeSync() {
        Random rnd = new Random(8);
        // a small chunk stays in the write buffer; a big one is written straight through
        byte[] small = random(rnd, 100);
        ChunkId ids = store.put(small);
        assertTrue(store.contains(ids));
        assertArrayEquals(small, store.get(ids), "a chunk still in the write buffer");

        List<byte[]> more = new ArrayList<>();
        List<ChunkId> moreIds = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            byte[] d = i % 3 == 0 ? compressible(rnd, 4096 * (1 + rnd.nextInt(64))) : random(rnd, 1 + rnd.nextInt(300_000));
            more.add(d);
            moreIds.add(store.put(d));
            // read back the newest chunk and an older one, interleaved with puts
            assertArrayEquals(d, store.get(moreIds.get(i)), "chunk " + i + " right after put");
            int j = rnd.nextInt(i + 1);
            assertArrayEquals(more.get(j), store.get(moreIds.get(j)), "chunk " + j + " after " + i + " more puts");
        }
        assertArrayEquals(small, store.get(ids));
        byte[] max = random(rnd, ChunkStore.MAX_CHUNK);
        ChunkId idm = store.put(max);
        assertArrayEquals(max, store.get(idm), "a full-size chunk before sync");
        for (int i = 0; i < more.size(); i++) assertArrayEquals(more.get(i), store.get(moreIds.get(i)));
    }

    @Test
    void putIsVisibleToOtherThreadsBeforeSync() throws Exception {
        byte[] d = random(new Random(9), 5000);
        ChunkId id = store.put(d);
        ExecutorService ex = Executors.newSingleThreadExecutor();
        try {
            assertArrayEquals(d, ex.submit(() -> store.get(id)).get(30, TimeUnit.SECONDS));
            assertTrue(ex.submit(() -> store.contains(id)).get(30, TimeUnit.SECONDS));
        } finally {
            ex.shutdownNow();
        }
    }

    // ---------------------------------------------------------------- durability

    @Test
    void syncedChunksSurviveCloseAndReopen() {
        Random rnd = new Random(10);
        Map<ChunkId, byte[]> put = putAllSizes(rnd);
        for (int i = 0; i < 100; i++) {
            byte[] d = rnd.nextBoolean() ? random(rnd, rnd.nextInt(70_000)) : compressible(rnd, rnd.nextInt(70_000));
            put.put(store.put(d), d);
        }
        store.sync();
        restart();
        assertAllReadable(put, "after reopen");
        assertEquals(put.keySet(), listed());
        // and again, with more chunks added by the second handle
        byte[] later = random(rnd, 12345);
        put.put(store.put(later), later);
        store.sync();
        restart();
        assertAllReadable(put, "after second reopen");
        assertEquals(put.keySet(), listed());
    }

    // ---------------------------------------------------------------- threads

    @Test
    void eightThreadsPutOverlappingChunksAndReadThemBack() throws Exception {
        Random setup = new Random(12);
        int distinct = 300;
        byte[][] pool = new byte[distinct][];
        for (int i = 0; i < distinct; i++) {
            int size = switch (i % 4) {
                case 0 -> 4096;
                case 1 -> 1 + setup.nextInt(8192);
                case 2 -> 16384 + setup.nextInt(50_000);
                default -> setup.nextInt(2000);
            };
            pool[i] = i % 3 == 0 ? compressible(setup, size) : random(setup, size);
        }
        int threads = 8;
        Map<ChunkId, byte[]> published = new ConcurrentHashMap<>();
        CyclicBarrier start = new CyclicBarrier(threads);
        ExecutorService ex = Executors.newFixedThreadPool(threads);
        try {
            List<Future<Set<ChunkId>>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                long seed = 100 + t;
                results.add(ex.submit(() -> {
                    Random rnd = new Random(seed);
                    Set<ChunkId> mine = new HashSet<>();
                    List<ChunkId> mineList = new ArrayList<>();
                    start.await();
                    for (int op = 0; op < 250; op++) {
                        int k = rnd.nextInt(distinct);
                        ChunkId id = store.put(pool[k]);
                        if (!id.equals(ChunkId.of(pool[k]))) throw new AssertionError("put returned " + id + " for chunk " + k);
                        published.put(id, pool[k]);
                        if (mine.add(id)) mineList.add(id);
                        // read back one of mine, and one another thread published
                        ChunkId back = mineList.get(rnd.nextInt(mineList.size()));
                        if (!Arrays.equals(published.get(back), store.get(back))) throw new AssertionError("wrong bytes for " + back);
                        for (var e : published.entrySet()) {
                            if (rnd.nextInt(50) != 0) continue;
                            if (!store.contains(e.getKey())) throw new AssertionError("published chunk " + e.getKey() + " not contained");
                            if (!Arrays.equals(e.getValue(), store.get(e.getKey()))) throw new AssertionError("wrong bytes for " + e.getKey());
                            break;
                        }
                        if (rnd.nextInt(40) == 0) store.sync();
                    }
                    return mine;
                }));
            }
            Set<ChunkId> all = new HashSet<>();
            for (Future<Set<ChunkId>> f : results) all.addAll(f.get(120, TimeUnit.SECONDS));
            assertEquals(published.keySet(), all);
            assertEquals(all, listed(), "every chunk put by any thread, each once");
            assertAllReadable(published, "after the threads finished");
            store.sync();
            restart();
            assertEquals(all, listed(), "after reopen");
            assertAllReadable(published, "after reopen");
        } finally {
            ex.shutdownNow();
        }
    }

    @Test
    void listWhileOthersPutAndSyncNamesEveryChunkPutBeforeIt() throws Exception {
        // garbage collection and replication trust list(): a chunk that was put before list
        // started must be named, even while a sync moves it around inside the store
        Random rnd = new Random(15);
        Set<ChunkId> before = new HashSet<>();
        ExecutorService ex = Executors.newFixedThreadPool(2);
        try {
            for (int round = 0; round < 40; round++) {
                List<byte[]> batch = new ArrayList<>();
                for (int i = 0; i < 30; i++) batch.add(random(rnd, 200 + rnd.nextInt(3000)));
                for (byte[] d : batch) before.add(store.put(d));
                CyclicBarrier go = new CyclicBarrier(2);
                Future<?> syncer = ex.submit(() -> {
                    go.await();
                    store.sync();
                    return null;
                });
                Future<Set<ChunkId>> lister = ex.submit(() -> {
                    go.await();
                    Set<ChunkId> seen = new HashSet<>();
                    store.list(seen::add);
                    return seen;
                });
                syncer.get(60, TimeUnit.SECONDS);
                Set<ChunkId> seen = lister.get(60, TimeUnit.SECONDS);
                Set<ChunkId> missing = new HashSet<>(before);
                missing.removeAll(seen);
                assertEquals(Set.of(), missing, "round " + round + ": list() during a sync missed chunks put before it");
            }
        } finally {
            ex.shutdownNow();
        }
    }

    // ---------------------------------------------------------------- batches (putAll)

    /**
     * A batch as an importer hands it over: {@code blocks} blocks of {@code size} bytes in one
     * array, compressible and random mixed, with repeats inside the batch; returns the array and
     * fills {@code offsets} with where each block starts (every block, in order).
     */
    protected static byte[] batch(Random rnd, int blocks, int size, int[] offsets) {
        byte[] buf = new byte[blocks * size];
        for (int i = 0; i < blocks; i++) {
            offsets[i] = i * size;
            byte[] b;
            if (i > 3 && i % 7 == 0) b = java.util.Arrays.copyOfRange(buf, (i - 3) * size, (i - 2) * size); // a repeat
            else if (i % 11 == 5) b = random(rnd, size);
            else b = compressible(rnd, size);
            System.arraycopy(b, 0, buf, i * size, size);
        }
        return buf;
    }

    /** Without a hint, and with each {@link ChunkStore.Access} hint: a hint changes nothing a get returns. */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"", "SEQUENTIAL", "RANDOM"})
    void putAllReturnsTheIdsInOrderAndEveryChunkReadsBack(String hint) {
        Random rnd = new Random(40);
        for (int size : new int[]{1, 512, 4096, 65536}) {
            int blocks = size == 65536 ? 20 : 100;
            int[] offsets = new int[blocks];
            byte[] buf = batch(rnd, blocks, size, offsets);
            ChunkId[] ids = hint.isEmpty() ? store.putAll(buf, offsets, size)
                    : store.putAll(buf, offsets, size, ChunkStore.Access.valueOf(hint));
            assertEquals(blocks, ids.length);
            Map<ChunkId, byte[]> put = new HashMap<>();
            for (int i = 0; i < blocks; i++) {
                byte[] d = java.util.Arrays.copyOfRange(buf, i * size, (i + 1) * size);
                assertEquals(ChunkId.of(d), ids[i], "id of block " + i + " of " + size + " bytes");
                put.put(ids[i], d);
            }
            java.util.Arrays.fill(buf, (byte) 0x55); // the store must have copied what it keeps
            assertAllReadable(put, "before sync, blocks of " + size);
            store.sync();
            assertAllReadable(put, "after sync, blocks of " + size);
        }
    }

    @Test
    void putAllOfChunksAlreadyStoredStoresNothingNew() {
        Random rnd = new Random(41);
        int[] offsets = new int[64];
        byte[] buf = batch(rnd, 64, 4096, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        Set<ChunkId> distinct = new HashSet<>(List.of(ids));
        assertEquals(distinct, listed(), "a batch with repeats lists each chunk once");
        // the same batch again, a batch sharing half of it, and single puts of its blocks
        assertArrayEquals(ids, store.putAll(buf, offsets, 4096));
        store.sync();
        int[] half = new int[32];
        byte[] mixed = new byte[64 * 4096];
        System.arraycopy(buf, 0, mixed, 0, 32 * 4096);
        byte[] other = batch(new Random(42), 32, 4096, half);
        System.arraycopy(other, 0, mixed, 32 * 4096, 32 * 4096);
        int[] all = new int[64];
        for (int i = 0; i < 64; i++) all[i] = i * 4096;
        ChunkId[] mixedIds = store.putAll(mixed, all, 4096);
        for (int i = 0; i < 32; i++) assertEquals(ids[i], mixedIds[i]);
        for (int i = 0; i < 64; i++) store.put(java.util.Arrays.copyOfRange(buf, i * 4096, (i + 1) * 4096));
        store.sync();
        distinct.addAll(List.of(mixedIds));
        assertEquals(distinct, listed());
        restart();
        assertEquals(distinct, listed());
        for (int i = 0; i < 64; i++) assertArrayEquals(java.util.Arrays.copyOfRange(mixed, i * 4096, (i + 1) * 4096), store.get(mixedIds[i]));
    }

    @Test
    void corruptChunkOfABatchIsAnErrorAndItsNeighboursAreRightOrErrors() {
        Random rnd = new Random(43);
        int[] offsets = new int[48];
        byte[] buf = batch(rnd, 48, 4096, offsets);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        store.close();
        ChunkId victim = ids[20];
        corruptPayload(dir, victim);
        store = track(reopen(dir));
        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> store.get(victim));
        assertTrue(e.getMessage().contains(victim.shortHex()), "message must name the chunk (" + victim.shortHex() + "): " + e.getMessage());
        int good = 0;
        for (int i = 0; i < ids.length; i++) {
            // chunks stored together with the victim may share its fate; they must never be wrong
            try {
                assertArrayEquals(java.util.Arrays.copyOfRange(buf, i * 4096, (i + 1) * 4096), store.get(ids[i]), "block " + i);
                good++;
            } catch (CaskException.Corrupt c) {
                assertTrue(c.getMessage().contains(ids[i].shortHex()), "message must name the chunk (" + ids[i].shortHex() + "): " + c.getMessage());
            }
        }
        assertTrue(good >= ids.length / 2, "damage to one chunk's bytes spoils at most its neighbours, not the batch: " + good + " of " + ids.length + " readable");
        assertThrows(CaskException.Corrupt.class, () -> store.get(victim), "and stays an error");
    }

    // ---------------------------------------------------------------- corruption

    @Test
    void corruptChunkThrowsCorruptNamingItAndNeverReturnsBytes() {
        Random rnd = new Random(13);
        Map<ChunkId, byte[]> put = new HashMap<>();
        List<ChunkId> victims = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            byte[] d = switch (i % 4) {
                case 0 -> random(rnd, 4096);
                case 1 -> compressible(rnd, 65536);
                case 2 -> random(rnd, 1);
                default -> random(rnd, 200_000);
            };
            ChunkId id = store.put(d);
            put.put(id, d);
            if (i >= 4 && i < 8) victims.add(id); // one of each kind, in the middle of the data
        }
        store.sync();
        store.close();
        for (ChunkId v : victims) corruptPayload(dir, v);
        store = track(reopen(dir));
        for (ChunkId v : victims) {
            for (int attempt = 0; attempt < 2; attempt++) {
                CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> store.get(v),
                        "a damaged chunk must be an error, never bytes");
                assertTrue(e.getMessage().contains(v.shortHex()), "message must name the chunk (" + v.shortHex() + "): " + e.getMessage());
                e = assertThrows(CaskException.Corrupt.class, () -> store.get(v, (index, data, off, len) -> fail("a damaged chunk lent bytes")));
                assertTrue(e.getMessage().contains(v.shortHex()), "lent or not, the message names the chunk: " + e.getMessage());
            }
        }
        for (var e : put.entrySet()) {
            if (victims.contains(e.getKey())) continue;
            assertArrayEquals(e.getValue(), store.get(e.getKey()), "an undamaged chunk next to damaged ones");
            assertArrayEquals(e.getValue(), lent(e.getKey()), "an undamaged chunk next to damaged ones, lent");
        }
    }

    @Test
    void corruptChunkStaysAnErrorWhenPutAgain() {
        // putting the same bytes again must not be fooled into thinking the damaged copy is fine
        // or into returning the damaged bytes: either get fails, or it returns the right bytes
        byte[] d = random(new Random(14), 30_000);
        ChunkId id = store.put(d);
        store.sync();
        store.close();
        corruptPayload(dir, id);
        store = track(reopen(dir));
        assertThrows(CaskException.Corrupt.class, () -> store.get(id));
        assertEquals(id, store.put(d));
        try {
            byte[] got = store.get(id);
            assertArrayEquals(d, got, "after a fresh put of damaged chunk, get must return the right bytes or throw");
        } catch (CaskException.Corrupt e) {
            assertTrue(e.getMessage().contains(id.shortHex()), e.getMessage());
        } catch (RuntimeException e) {
            fail("unexpected " + e);
        }
    }

    /**
     * Healing: once a read found a chunk's copy corrupt, the next put of the same bytes (alone, or
     * in a batch) stores them again, and every read returns them from then on, after a restart too.
     */
    @Test
    void aCorruptChunkAReadFoundIsStoredAgainByTheNextPutOfItsBytes() {
        Random rnd = new Random(15);
        byte[] alone = compressible(rnd, 30_000);
        int[] offsets = new int[48];
        byte[] buf = batch(rnd, 48, 4096, offsets);
        ChunkId single = store.put(alone);
        ChunkId[] ids = store.putAll(buf, offsets, 4096);
        store.sync();
        store.close();
        ChunkId inBatch = ids[20];
        corruptPayload(dir, single);
        corruptPayload(dir, inBatch);
        store = track(reopen(dir));
        assertThrows(CaskException.Corrupt.class, () -> store.get(single));
        assertThrows(CaskException.Corrupt.class, () -> getAll(List.of(inBatch)), "a bulk read finds it too");

        assertEquals(single, store.put(alone));
        assertArrayEquals(ids, store.putAll(buf, offsets, 4096));
        assertArrayEquals(alone, store.get(single), "the new copy is read at once");
        assertArrayEquals(java.util.Arrays.copyOfRange(buf, 20 * 4096, 21 * 4096), store.get(inBatch));
        store.sync();
        store.close();
        store = track(reopen(dir));
        assertArrayEquals(alone, store.get(single), "and after a restart");
        byte[][] all = getAll(List.of(ids));
        for (int i = 0; i < ids.length; i++) assertArrayEquals(java.util.Arrays.copyOfRange(buf, i * 4096, (i + 1) * 4096), all[i], "block " + i);
    }

    // ---------------------------------------------------------------- getAll

    /**
     * getAll's answer as arrays, one per index, checking each index is answered once: as an export
     * reads ({@link ChunkStore.Reading#STREAM}) and then as an NBD client's large read does
     * ({@link ChunkStore.Reading#LIVE}), which must give the same bytes, or fail the same way.
     */
    private byte[][] getAll(List<ChunkId> ids) {
        byte[][] stream;
        try {
            stream = getAll(ids, ChunkStore.Reading.STREAM);
        } catch (RuntimeException e) {
            RuntimeException live = assertThrows(RuntimeException.class, () -> getAll(ids, ChunkStore.Reading.LIVE),
                    "a live getAll fails where an export's did (" + e + ")");
            assertEquals(e.getClass(), live.getClass(), "the same failure either way: " + e + " / " + live);
            throw e;
        }
        byte[][] live = getAll(ids, ChunkStore.Reading.LIVE);
        for (int i = 0; i < ids.size(); i++) assertArrayEquals(stream[i], live[i], "a live getAll's index " + i);
        return stream;
    }

    private byte[][] getAll(List<ChunkId> ids, ChunkStore.Reading reading) {
        byte[][] got = new byte[ids.size()][];
        store.getAll(ids, (i, data, off, len) -> {
            assertTrue(got[i] == null, "getAll answered index " + i + " twice");
            got[i] = java.util.Arrays.copyOfRange(data, off, off + len);
        }, reading);
        return got;
    }

    /** What {@link ChunkStore#get(ChunkId, ChunkStore.ChunkSink)} lends, copied; fails unless it lends chunk 0 exactly once. */
    private byte[] lent(ChunkId id) {
        List<byte[]> got = new ArrayList<>();
        store.get(id, (index, data, off, len) -> {
            assertEquals(0, index, "the one chunk of a get is chunk 0");
            got.add(java.util.Arrays.copyOfRange(data, off, off + len));
        });
        assertEquals(1, got.size(), "a get lends its chunk once");
        return got.get(0);
    }

    @Test
    void getThroughASinkLendsWhatGetReturns() {
        Random rnd = new Random(23);
        Map<ChunkId, byte[]> put = new LinkedHashMap<>();
        for (int i = 0; i < 40; i++) {
            byte[] d = i % 3 == 0 ? random(rnd, 4096 + i) : compressible(rnd, 4096 * (1 + i % 4));
            put.put(store.put(d), d);
        }
        byte[] empty = new byte[0], max = random(rnd, ChunkStore.MAX_CHUNK);
        put.put(store.put(empty), empty);
        put.put(store.put(max), max);
        int[] offsets = new int[16]; // as an import stores them: a batch, compressible runs together
        byte[] batch = new byte[16 * 4096];
        for (int k = 0; k < 16; k++) {
            offsets[k] = k * 4096;
            System.arraycopy(k % 2 == 0 ? compressible(rnd, 4096) : random(rnd, 4096), 0, batch, k * 4096, 4096);
        }
        ChunkId[] ids = store.putAll(batch, offsets, 4096);
        for (int k = 0; k < 16; k++) put.put(ids[k], java.util.Arrays.copyOfRange(batch, k * 4096, (k + 1) * 4096));
        for (String when : List.of("before sync", "after sync", "after a restart")) {
            if (when.equals("after sync")) store.sync();
            if (when.equals("after a restart")) restart();
            for (int round = 0; round < 2; round++) { // the second from whatever the first left cached
                for (var e : put.entrySet()) assertArrayEquals(e.getValue(), lent(e.getKey()), e.getValue().length + " bytes, " + when + ", round " + round);
            }
        }
        ChunkId unknown = ChunkId.of(random(rnd, 100));
        CaskException.NotFound e = assertThrows(CaskException.NotFound.class, () -> lent(unknown));
        assertTrue(e.getMessage().contains(unknown.hex()), "message must name the chunk by its 64 hex characters: " + e.getMessage());
    }

    @Test
    void getAllReturnsWhatGetReturnsForEveryIndexIncludingRepeats() {
        Random rnd = new Random(21);
        List<byte[]> datas = new ArrayList<>();
        for (int i = 0; i < 300; i++) datas.add(i % 3 == 0 ? random(rnd, 4096) : compressible(rnd, 4096 * (1 + i % 5)));
        datas.add(new byte[0]);
        datas.add(random(rnd, ChunkStore.MAX_CHUNK));
        List<ChunkId> ids = new ArrayList<>();
        for (byte[] d : datas) ids.add(store.put(d));
        List<ChunkId> asked = new ArrayList<>();
        List<byte[]> expected = new ArrayList<>();
        for (int round = 0; round < 2; round++) { // before and after sync, out of order, with repeats
            asked.clear();
            expected.clear();
            for (int k = 0; k < 600; k++) {
                int j = (k * 37 + round) % datas.size();
                asked.add(ids.get(j));
                expected.add(datas.get(j));
            }
            byte[][] got = getAll(asked);
            for (int k = 0; k < asked.size(); k++) assertArrayEquals(expected.get(k), got[k], "getAll index " + k + " (round " + round + ")");
            store.sync();
        }
        restart();
        byte[][] got = getAll(asked);
        for (int k = 0; k < asked.size(); k++) assertArrayEquals(expected.get(k), got[k], "getAll index " + k + " after a restart");
    }

    @Test
    void getAllReadsWhatPutAllStoredAsAnImporterStoresIt() {
        // putAll is how imports store blocks (a store may pack a batch differently from single puts)
        Random rnd = new Random(24);
        int block = 4096;
        byte[] batch = new byte[64 * block];
        for (int i = 0; i < 64; i++) {
            byte[] d = i % 4 == 0 ? random(rnd, block) : compressible(rnd, block);
            System.arraycopy(d, 0, batch, i * block, block);
        }
        int[] offsets = new int[64];
        for (int i = 0; i < 64; i++) offsets[i] = (i % 8 == 7 ? i - 1 : i) * block; // some repeats
        ChunkId[] ids = store.putAll(batch, offsets, block);
        store.sync();
        restart();
        List<ChunkId> asked = new ArrayList<>();
        for (int k = 63; k >= 0; k -= 2) asked.add(ids[k]);
        for (int k = 0; k < 64; k += 3) asked.add(ids[k]);
        byte[][] got = getAll(asked);
        for (int k = 0; k < asked.size(); k++) {
            int i = java.util.Arrays.asList(ids).indexOf(asked.get(k));
            assertArrayEquals(java.util.Arrays.copyOfRange(batch, offsets[i], offsets[i] + block), got[k], "getAll index " + k);
            assertArrayEquals(got[k], store.get(asked.get(k)), "get and getAll agree on index " + k);
        }
    }

    @Test
    void getAllOfAnUnknownChunkThrowsNotFoundNamingIt() {
        ChunkId known = store.put(random(new Random(22), 5000));
        store.sync();
        ChunkId unknown = ChunkId.of(new byte[]{1, 2, 3});
        CaskException.NotFound e = assertThrows(CaskException.NotFound.class, () -> getAll(List.of(known, unknown, known)));
        assertTrue(e.getMessage().contains(unknown.hex()) || e.getMessage().contains(unknown.shortHex()), e.getMessage());
    }

    @Test
    void getAllOfACorruptChunkThrowsCorruptNamingIt() {
        Random rnd = new Random(23);
        List<ChunkId> ids = new ArrayList<>();
        for (int i = 0; i < 40; i++) ids.add(store.put(i % 2 == 0 ? random(rnd, 4096) : compressible(rnd, 4096)));
        store.sync();
        store.close();
        ChunkId victim = ids.get(17);
        corruptPayload(dir, victim);
        store = track(reopen(dir));
        CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> getAll(ids), "a damaged chunk must be an error, never bytes");
        assertTrue(e.getMessage().contains(victim.shortHex()), "message must name the chunk (" + victim.shortHex() + "): " + e.getMessage());
    }
}
