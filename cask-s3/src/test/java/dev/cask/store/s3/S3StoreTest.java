package dev.cask.store.s3;

import dev.cask.store.ScanSink;
import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import dev.cask.store.local.PackScan;
import dev.cask.store.postgres.PostgresChunkIndex;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a user of a store on S3 notices beyond the contract: a missing bucket or wrong keys are one
 * clear line; a pack is one object holding exactly a local pack's bytes, indexed only once whole;
 * s3proxy killed in the middle of an upload is a clear error naming the object, leaves nothing
 * indexed, and the next sync uploads it; a damaged or vanished object is a Corrupt error naming the
 * chunk; an index serves one store. Real s3proxy and PostgreSQL; the kill test has an s3proxy of
 * its own.
 */
class S3StoreTest {
    static final String BUCKET = "store-test";
    private static final AtomicInteger NAMES = new AtomicInteger();
    private static PostgresServer pg;
    private static String database;
    private static S3Server s3;

    @TempDir
    Path tmp;

    @BeforeAll
    static void servers() {
        pg = PostgresServer.shared();
        database = pg.createDatabase("s3_store");
        s3 = S3Server.shared();
        s3.createBucket(BUCKET);
    }

    private static String newSchema() {
        String name = "s" + NAMES.incrementAndGet();
        pg.execute(database, "CREATE SCHEMA " + name);
        return name;
    }

    private static CatalogUrl indexUrl(String schema) {
        return CatalogUrl.parse(pg.url(database)).with("currentSchema", schema);
    }

    private static S3ChunkStore open(String store, String schema, S3Settings settings, S3ChunkStore.Options options) {
        return S3ChunkStore.open(S3StoreUrl.parse(store), settings, indexUrl(schema), PostgresCatalog.Options.defaults(), options);
    }

    private static S3ChunkStore open(String store, String schema) {
        return open(store, schema, s3.settings(), S3ChunkStore.Options.defaults());
    }

    private static byte[] random(Random rnd, int n) {
        byte[] b = new byte[n];
        rnd.nextBytes(b);
        return b;
    }

    private static void assertOneLine(String m) {
        assertFalse(m.contains("\n") || m.contains("\r"), "one line: " + m);
    }

    // ---------------------------------------------------------------- configuration errors

    @Test
    void aMissingBucketIsAClearOneLineErrorNamingTheBucketAndTheEndpoint() throws Exception {
        String schema = newSchema();
        CaskException.NotFound e = assertThrows(CaskException.NotFound.class, () -> open("s3://no-such-bucket/vm-store", schema));
        String m = e.getMessage();
        assertTrue(m.startsWith("store s3://no-such-bucket/vm-store: bucket 'no-such-bucket' does not exist at " + s3.endpoint()), m);
        assertOneLine(m);
        try (var c = pg.connect(database); var st = c.createStatement();
             var rs = st.executeQuery("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema + "'")) {
            rs.next();
            assertEquals(0, rs.getInt(1), "a store that could not open created no index tables");
        }
    }

    @Test
    void wrongKeysAreAClearErrorThatNeverShowsTheSecret() {
        S3Settings wrong = S3Settings.of(s3.endpoint(), S3Server.REGION, S3Server.IDENTITY, "not-the-secret");
        CaskException e = assertThrows(CaskException.Io.class,
                () -> open("s3://" + BUCKET + "/x", newSchema(), wrong, S3ChunkStore.Options.defaults()));
        String m = e.getMessage();
        assertTrue(m.startsWith("store s3://" + BUCKET + "/x: access to bucket '" + BUCKET + "' at " + s3.endpoint() + " denied"), m);
        assertTrue(m.contains("AWS_ACCESS_KEY_ID"), "says what to check: " + m);
        assertFalse(m.contains("not-the-secret"), m);
        assertOneLine(m);
    }

    @Test
    void anIndexServesTheStoreItWasMadeForOnly() {
        String schema = newSchema();
        try (S3ChunkStore store = open("s3://" + BUCKET + "/first", schema)) {
            store.put("a chunk".getBytes());
        }
        CaskException.Conflict e = assertThrows(CaskException.Conflict.class, () -> open("s3://" + BUCKET + "/second", schema));
        assertTrue(e.getMessage().contains("indexes the packs of store s3://" + BUCKET + "/first, not s3://" + BUCKET + "/second"), e.getMessage());
        assertOneLine(e.getMessage());
        try (S3ChunkStore again = open("s3://" + BUCKET + "/first", schema)) {
            assertArrayEquals("a chunk".getBytes(), again.get(ChunkId.of("a chunk".getBytes())));
        }
    }

    // ---------------------------------------------------------------- what is in the bucket

    /**
     * Every pack is one object whose bytes a local store's pack scanner reads as a pack (same format),
     * holding exactly the chunks the index says are in it; while it is uploaded, nothing in it is indexed.
     */
    @Test
    void aPackIsOneObjectInTheLocalPackFormatIndexedOnlyAfterItsUpload() throws Exception {
        String schema = newSchema();
        String url = "s3://" + BUCKET + "/layout";
        Random rnd = new Random(7);
        Map<ChunkId, byte[]> put = new HashMap<>();
        List<String> duringUpload = new ArrayList<>();
        try (S3ChunkStore store = open(url, schema, s3.settings(), S3ChunkStore.Options.defaults().withPackLimit(300 << 10))) {
            store.beforeUpload = id -> {
                long indexed = store.index().packs().stream().filter(p -> p.id() == id && p.sealed()).count();
                long[] rows = {0};
                store.index().forEachId(cid -> {
                    ChunkLocation loc = store.index().find(cid);
                    if (loc != null && loc.pack() == id) rows[0]++;
                });
                duringUpload.add("pack " + id + ": sealed " + indexed + ", entries " + rows[0]);
            };
            for (int round = 0; round < 6; round++) {
                int[] offsets = new int[32];
                byte[] buf = new byte[32 * 4096];
                for (int i = 0; i < 32; i++) {
                    offsets[i] = i * 4096;
                    byte[] b = i % 3 == 0 ? random(rnd, 4096) : ("block " + round + " " + i + " ").repeat(600).substring(0, 4096).getBytes();
                    System.arraycopy(b, 0, buf, i * 4096, 4096);
                }
                ChunkId[] ids = store.putAll(buf, offsets, 4096);
                for (int i = 0; i < 32; i++) put.put(ids[i], java.util.Arrays.copyOfRange(buf, i * 4096, (i + 1) * 4096));
                byte[] single = random(rnd, 20_000 + round);
                put.put(store.put(single), single);
            }
            store.sync();
            assertTrue(duringUpload.size() >= 2, "several packs were uploaded: " + duringUpload);
            for (String line : duringUpload) assertTrue(line.endsWith(": sealed 0, entries 0"), "nothing indexed before its upload: " + line);

            List<PostgresChunkIndex.Pack> packs = store.index().packs();
            Map<ChunkId, ChunkLocation> scanned = new HashMap<>();
            for (PostgresChunkIndex.Pack p : packs) {
                assertTrue(p.sealed(), "pack " + p.id() + " is sealed after the sync");
                assertEquals(S3StoreUrl.parse(url).packKey(p.id()), p.objectKey());
                assertEquals(p.bytes(), store.objects().size(p.objectKey()), "object " + p.objectKey() + " is as long as its row says");
                Path file = tmp.resolve(p.id() + ".pack");
                Files.write(file, store.objects().getRange(p.objectKey(), 0, (int) p.bytes(), () -> "pack"));
                List<String> problems = new ArrayList<>();
                PackScan.scan(file, p.id(), new ScanSink() {
                    @Override
                    public void chunk(ChunkId id, ChunkLocation location, java.util.function.Supplier<byte[]> plain) {
                        assertArrayEquals(put.get(id), plain.get(), "chunk " + id + " as the scanner reads it");
                        scanned.put(id, location);
                    }

                    @Override
                    public void problem(String line) {
                        problems.add(line);
                    }
                }, Progress.NONE);
                assertEquals(List.of(), problems, "pack " + p.id() + " scans clean");
            }
            assertEquals(put.keySet(), scanned.keySet(), "the packs hold every chunk once");
            for (var e : scanned.entrySet()) assertEquals(e.getValue(), store.index().find(e.getKey()), "index entry of " + e.getKey());
        }
    }

    // ---------------------------------------------------------------- damage

    @Test
    void aDamagedOrVanishedObjectIsACorruptErrorNamingTheChunk() throws Exception {
        String schema = newSchema();
        String url = "s3://" + BUCKET + "/damage";
        byte[] a = random(new Random(1), 10_000);
        byte[] b = random(new Random(2), 10_000);
        ChunkId ia, ib;
        try (S3ChunkStore store = open(url, schema, s3.settings(), S3ChunkStore.Options.defaults().withPackLimit(8 << 10))) {
            ia = store.put(a);
            ib = store.put(b); // a pack of its own (the limit is 8 KiB)
        }
        ChunkLocation la, lb;
        try (S3ChunkStore store = open(url, schema)) {
            la = store.index().find(ia);
            lb = store.index().find(ib);
        }
        assertTrue(la.pack() != lb.pack());
        S3StoreUrl u = S3StoreUrl.parse(url);
        S3ChunkStoreTest.flipByte(s3.objectFile(BUCKET, u.packKey(la.pack())), la.offset() + 100);
        Files.delete(s3.objectFile(BUCKET, u.packKey(lb.pack())));
        try (S3ChunkStore store = open(url, schema)) {
            CaskException.Corrupt e = assertThrows(CaskException.Corrupt.class, () -> store.get(ia));
            assertTrue(e.getMessage().startsWith("chunk " + ia.shortHex() + " (pack " + la.pack() + " at offset " + la.offset() + "): checksum mismatch"), e.getMessage());
            assertOneLine(e.getMessage());
            e = assertThrows(CaskException.Corrupt.class, () -> store.get(ib));
            assertTrue(e.getMessage().startsWith("chunk " + ib.shortHex() + " (pack " + lb.pack() + " at offset " + lb.offset() + "): object "
                    + u.objectUrl(u.packKey(lb.pack())) + " is missing"), e.getMessage());
            assertOneLine(e.getMessage());
            // both copies are marked: the next put of the same bytes stores them again, and they read back
            store.put(a);
            store.put(b);
            store.sync();
            assertArrayEquals(a, store.get(ia));
            assertArrayEquals(b, store.get(ib));
        }
    }

    // ---------------------------------------------------------------- the object store dies

    @Test
    void s3proxyKilledMidUploadIsAClearErrorNothingIsIndexedAndTheNextSyncUploadsIt() {
        try (S3Server own = S3Server.start()) {
            own.createBucket("killed");
            String schema = newSchema();
            String url = "s3://killed/vm";
            Random rnd = new Random(3);
            Map<ChunkId, byte[]> put = new HashMap<>();
            try (S3ChunkStore store = S3ChunkStore.open(S3StoreUrl.parse(url), own.settings(), indexUrl(schema), PostgresCatalog.Options.defaults(),
                    S3ChunkStore.Options.defaults())) {
                // how many times the SDK reads a body per upload (to sign it, to send it): the last read is the transfer
                AtomicInteger reads = new AtomicInteger();
                store.objects().uploadProgress = (stream, bytes) -> reads.accumulateAndGet(stream, Math::max);
                store.put(random(rnd, 1000));
                store.sync();
                int transfer = reads.get();
                assertTrue(transfer >= 1);
                for (int i = 0; i < 40; i++) {
                    byte[] d = random(rnd, 128 << 10);
                    put.put(store.put(d), d);
                }
                AtomicBoolean killed = new AtomicBoolean();
                store.objects().uploadProgress = (stream, bytes) -> {
                    if (stream == transfer && bytes > (1 << 20) && killed.compareAndSet(false, true)) own.kill(); // 1 MiB of 5 sent
                };
                CaskException.Io e = assertThrows(CaskException.Io.class, store::sync);
                assertTrue(killed.get(), "the server was killed in the middle of the upload");
                String key = S3StoreUrl.parse(url).packKey(2);
                String m = e.getMessage();
                System.out.println("body reads per upload: " + transfer + "; the error: " + m);
                assertTrue(m.startsWith("store " + url + ": uploading s3://killed/" + key + " ("), m);
                assertTrue(m.contains(" to " + own.endpoint() + " failed: "), m);
                assertOneLine(m);
                assertEquals(1, store.index().count(), "nothing of the killed upload is indexed");
                assertEquals(new PostgresChunkIndex.Pack(2, key, false, -1), store.index().packs().get(1), "the pack is begun, not sealed");
                for (var c : put.entrySet()) assertArrayEquals(c.getValue(), store.get(c.getKey()), "a chunk still waiting for its upload reads back");

                store.objects().uploadProgress = (stream, bytes) -> {};
                own.restart();
                store.sync();
                assertEquals(put.size() + 1, store.index().count());
                assertTrue(store.index().packs().get(1).sealed());
            }
            try (S3ChunkStore again = S3ChunkStore.open(S3StoreUrl.parse(url), own.settings(), indexUrl(schema), PostgresCatalog.Options.defaults(),
                    S3ChunkStore.Options.defaults())) {
                for (var c : put.entrySet()) assertArrayEquals(c.getValue(), again.get(c.getKey()));
            }
        }
    }

    /**
     * PostgreSQL crashes ({@code pg_ctl stop -m immediate}) while a pack is being uploaded: the object
     * lands, its commit cannot; the sync fails with one line naming the index and saying nothing was
     * changed; once the server is back, the next sync commits the pack (without uploading it again)
     * and every chunk reads back, also from a new handle.
     */
    @Test
    void postgresCrashingBeforeAPacksCommitIsAClearErrorAndTheNextSyncCommitsIt() {
        try (PostgresServer own = PostgresServer.start()) {
            String db = own.createDatabase("crash_commit");
            CatalogUrl index = CatalogUrl.parse(own.url(db));
            PostgresCatalog.Options quick = PostgresCatalog.Options.defaults().withConnectTimeout(java.time.Duration.ofSeconds(1));
            String url = "s3://" + BUCKET + "/pg-crash";
            Random rnd = new Random(4);
            Map<ChunkId, byte[]> put = new HashMap<>();
            try (S3ChunkStore store = S3ChunkStore.open(S3StoreUrl.parse(url), s3.settings(), index, quick, S3ChunkStore.Options.defaults())) {
                for (int i = 0; i < 20; i++) {
                    byte[] d = random(rnd, 50_000);
                    put.put(store.put(d), d);
                }
                AtomicInteger uploads = new AtomicInteger();
                store.beforeUpload = id -> {
                    if (uploads.incrementAndGet() == 1) own.crash();
                };
                CaskException.Io e = assertThrows(CaskException.Io.class, store::sync);
                String m = e.getMessage();
                assertTrue(m.startsWith("chunk index " + index.display() + ": indexing 20 chunks of pack 1: cannot reach the server, nothing was changed"), m);
                assertFalse(m.contains(own.password()), m);
                assertOneLine(m);
                assertEquals(1, uploads.get());
                assertEquals(1_000_000 + 20 * 52 + 16, store.objects().size(S3StoreUrl.parse(url).packKey(1)), "the object was uploaded whole");
                for (var c : put.entrySet()) assertArrayEquals(c.getValue(), store.get(c.getKey()), "pending chunks still read back");
                own.restart();
                long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
                while (true) { // the pool reconnects with a back-off of its own
                    try {
                        store.sync();
                        break;
                    } catch (CaskException.Io again) {
                        if (!again.getMessage().contains("cannot reach the server") || System.nanoTime() > deadline) throw again;
                    }
                }
                assertEquals(1, uploads.get(), "the commit was retried without a second upload");
                assertEquals(20, store.index().count());
                assertEquals(List.of(new PostgresChunkIndex.Pack(1, S3StoreUrl.parse(url).packKey(1), true, 1_000_000 + 20 * 52 + 16)),
                        store.index().packs());
            }
            try (S3ChunkStore again = S3ChunkStore.open(S3StoreUrl.parse(url), s3.settings(), index, quick, S3ChunkStore.Options.defaults())) {
                for (var c : put.entrySet()) assertArrayEquals(c.getValue(), again.get(c.getKey()));
            }
        }
    }

    /**
     * Two nodes (two store handles with their own pools and packs) put batches that share half their
     * blocks, at once: both see every chunk after their syncs, the index holds each chunk once, and
     * every entry names a sealed pack (a chunk both stored is indexed in the first pack committed;
     * the other copy is garbage).
     */
    @Test
    void twoNodesPuttingOverlappingChunksAtOnceBothReadEverything() throws Exception {
        String schema = newSchema();
        String url = "s3://" + BUCKET + "/two-nodes";
        S3ChunkStore.Options small = S3ChunkStore.Options.defaults().withPackLimit(128 << 10);
        Map<ChunkId, byte[]> all = new java.util.concurrent.ConcurrentHashMap<>();
        try (S3ChunkStore a = open(url, schema, s3.settings(), small); S3ChunkStore b = open(url, schema, s3.settings(), small)) {
            java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(2);
            List<Thread> nodes = new ArrayList<>();
            List<Throwable> failures = new java.util.concurrent.CopyOnWriteArrayList<>();
            for (int n = 0; n < 2; n++) {
                S3ChunkStore node = n == 0 ? a : b;
                int me = n;
                nodes.add(Thread.ofPlatform().start(() -> {
                    try {
                        start.await();
                        for (int round = 0; round < 8; round++) {
                            int[] offsets = new int[32];
                            byte[] buf = new byte[32 * 4096];
                            for (int i = 0; i < 32; i++) {
                                offsets[i] = i * 4096;
                                // even blocks are common to both nodes, odd ones each node's own
                                Random r = new Random(i % 2 == 0 ? round * 1000L + i : 1_000_000L * (me + 1) + round * 1000L + i);
                                byte[] block = i % 4 == 0 ? random(r, 4096) : ("node data " + r.nextLong() + " ").repeat(300).substring(0, 4096).getBytes();
                                System.arraycopy(block, 0, buf, i * 4096, 4096);
                            }
                            ChunkId[] ids = node.putAll(buf, offsets, 4096);
                            for (int i = 0; i < 32; i++) all.put(ids[i], java.util.Arrays.copyOfRange(buf, i * 4096, (i + 1) * 4096));
                            if (round % 3 == 2) node.sync();
                        }
                        node.sync();
                    } catch (Throwable t) {
                        failures.add(t);
                    }
                }));
            }
            for (Thread t : nodes) t.join();
            assertEquals(List.of(), failures);
            assertEquals(32 * 8 / 2 + 2 * 32 * 8 / 2, all.size(), "common and own blocks");
            for (S3ChunkStore node : List.of(a, b)) {
                for (var c : all.entrySet()) assertArrayEquals(c.getValue(), node.get(c.getKey()), "chunk " + c.getKey() + " on " + (node == a ? "a" : "b"));
            }
            assertEquals(all.size(), a.index().count(), "each chunk indexed once");
            Map<Integer, Boolean> sealed = new HashMap<>();
            for (PostgresChunkIndex.Pack p : a.index().packs()) sealed.put(p.id(), p.sealed());
            for (ChunkLocation loc : a.index().locateAll(new ArrayList<>(all.keySet())).values()) {
                assertTrue(sealed.get(loc.pack()), "entry in pack " + loc.pack() + ", which is sealed");
            }
        }
    }
}
