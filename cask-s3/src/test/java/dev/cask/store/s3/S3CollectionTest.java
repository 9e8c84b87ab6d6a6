package dev.cask.store.s3;

import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Garbage collection's deletion on a store on S3 ({@link S3Collection}) with several nodes (store
 * objects, and a child process) on one real PostgreSQL and s3proxy: a collection waits for the
 * writer sessions of every node and for a second collection; a killed node's session ends with
 * it; the sweep deletes only entries stamped before its epoch, and a node that puts a swept chunk
 * again stores it anew; dead pack objects go, live ones stay; what a node killed between its
 * upload and its commit left, and objects no row names, go too, while a live node's upload stays.
 */
class S3CollectionTest {
    private static SchemaPerDir stores;

    @TempDir
    Path dir;

    @BeforeAll
    static void servers() {
        stores = new SchemaPerDir("s3_collection", "collection", "g");
    }

    private S3ChunkStore node() {
        return S3ChunkStore.open(stores.storeUrl(dir), stores.s3.settings(), stores.indexUrl(dir), PostgresCatalog.Options.defaults(),
                S3ChunkStore.Options.defaults().withPackLimit(64 << 10).withSegments(16 << 10, 3));
    }

    private static byte[] block(int seed) {
        byte[] b = new byte[4096];
        new Random(seed).nextBytes(b);
        return b;
    }

    private int packObjects() {
        return stores.s3.objects(stores.bucket, stores.name(dir) + "/packs/").count();
    }

    @Test
    void aCollectionWaitsForAnotherNodesWriterAndAChunkItSweptIsStoredAgainByTheNextPut() throws Exception {
        try (S3ChunkStore a = node(); S3ChunkStore b = node()) {
            byte[] x = block(1);
            ChunkId id;
            AtomicBoolean ended = new AtomicBoolean();
            CountDownLatch told = new CountDownLatch(1);
            List<String> heard = new java.util.concurrent.CopyOnWriteArrayList<>();
            ChunkStore.Session session = a.session("import of team/vm on node a");
            id = a.put(x);
            a.sync();
            CompletableFuture<ChunkDeleter.Sweep> started = CompletableFuture.supplyAsync(() -> {
                ChunkDeleter.Sweep s = new S3Collection(b).begin(m -> {
                    heard.add(m);
                    told.countDown();
                });
                assertTrue(ended.get(), "the collection went on only after the session ended");
                return s;
            });
            assertTrue(told.await(60, TimeUnit.SECONDS), "the collection says what it waits for");
            assertTrue(heard.getFirst().contains("waiting for writer session") && heard.getFirst().contains("import of team/vm on node a"),
                    heard.toString());
            ended.set(true);
            session.close(); // a writer that committed nothing: its chunk is garbage
            try (ChunkDeleter.Sweep sweep = started.get(60, TimeUnit.SECONDS)) {
                Set<ChunkId> candidates = new HashSet<>();
                sweep.forEachCandidate(candidates::add);
                assertTrue(candidates.contains(id), "stamped before the collection's epoch");
                ChunkDeleter.Deleted d = sweep.delete(List.of(id));
                assertEquals(Set.of(id), d.ids());
                assertTrue(d.bytes() > 4096, "a random block's record: " + d.bytes());
                assertEquals(1, sweep.compact(0.1, Progress.NONE).packsDeleted(), "its pack held nothing else");
            }
            assertEquals(0, packObjects(), "the dead pack's object is gone");
            assertThrows(CaskException.NotFound.class, () -> b.get(id));
            // node a still believes it stored x: its put must find the entry gone and store it again
            try (ChunkStore.Session again = a.session("import again")) {
                assertEquals(id, a.put(x));
                a.sync();
            }
            assertArrayEquals(x, b.get(id));
            assertEquals(1, packObjects());
        }
    }

    @Test
    void theSweepSparesEntriesStampedAfterItsEpochAndLivePacks() throws Exception {
        try (S3ChunkStore a = node(); S3ChunkStore b = node()) {
            List<ChunkId> live = new ArrayList<>();
            List<ChunkId> dead = new ArrayList<>();
            for (int i = 0; i < 20; i++) live.add(a.put(block(100 + i)));
            a.sync();
            for (int i = 0; i < 20; i++) dead.add(a.put(block(200 + i)));
            a.sync();
            int before = packObjects();
            try (ChunkDeleter.Sweep sweep = new S3Collection(b).begin(m -> {})) {
                // node a puts a dead chunk again after the epoch was raised: a dedup hit, stamped now
                a.put(block(200));
                ChunkDeleter.Deleted d = sweep.delete(dead);
                assertEquals(new HashSet<>(dead.subList(1, dead.size())), d.ids(), "the chunk stamped after the epoch stays");
                sweep.compact(0.1, Progress.NONE);
            }
            assertTrue(packObjects() < before, "packs holding only swept chunks are deleted: " + before + " -> " + packObjects());
            for (int i = 0; i < 20; i++) assertArrayEquals(block(100 + i), b.get(live.get(i)));
            assertArrayEquals(block(200), b.get(dead.getFirst()));
            for (ChunkId id : dead.subList(1, dead.size())) assertThrows(CaskException.NotFound.class, () -> b.get(id));
        }
    }

    @Test
    void compactionRewritesPartlyDeadPacksAndEveryNodeStillReadsEveryLiveChunk() throws Exception {
        try (S3ChunkStore a = node(); S3ChunkStore b = node()) {
            List<ChunkId> live = new ArrayList<>();
            List<ChunkId> dead = new ArrayList<>();
            for (int i = 0; i < 24; i++) {
                ChunkId id = a.put(block(300 + i));
                (i % 3 == 0 ? live : dead).add(id); // a third live, spread over every pack
            }
            byte[] text = new byte[16 * 4096];
            for (int k = 0; k < text.length; k++) text[k] = (byte) ('a' + (k * 7 / 4096) % 26); // compressible: segments
            int[] offsets = new int[16];
            for (int k = 0; k < 16; k++) offsets[k] = k * 4096;
            ChunkId[] segmentIds = a.putAll(text, offsets, 4096);
            a.sync();
            for (ChunkId id : live) a.get(id); // node a caches where they are now
            S3Server.Objects before = stores.s3.objects(stores.bucket, stores.name(dir) + "/packs/");
            ChunkDeleter.Compacted c;
            try (ChunkDeleter.Sweep sweep = new S3Collection(b).begin(m -> {})) {
                assertEquals(new HashSet<>(dead), sweep.delete(dead).ids());
                c = sweep.compact(0.1, Progress.NONE);
            }
            assertTrue(c.packsRewritten() >= 1 && c.chunksCopied() >= live.size(), c.toString());
            assertTrue(c.bytesAfter() < c.bytesBefore(), c.toString());
            S3Server.Objects after = stores.s3.objects(stores.bucket, stores.name(dir) + "/packs/");
            assertTrue(after.bytes() < before.bytes() - dead.size() * 4096L / 2, "the dead blocks' bytes came back: " + before + " -> " + after);
            try (S3ChunkStore fresh = node()) {
                for (S3ChunkStore n : List.of(a, b, fresh)) { // a's cached locations name deleted objects: it reads the index again
                    for (int i = 0; i < live.size(); i++) assertArrayEquals(block(300 + i * 3), n.get(live.get(i)));
                    for (int k = 0; k < 16; k++) assertArrayEquals(java.util.Arrays.copyOfRange(text, k * 4096, (k + 1) * 4096), n.get(segmentIds[k]));
                }
            }
            S3StoreTools tools = new S3StoreTools(b);
            assertEquals(after.bytes(), tools.storedBytes(), "the index's packs are the bucket's objects");
        }
    }

    @Test
    void aSessionCutOffFromTheDatabaseRefusesItsCommitAndHoldsUpNoCollection() throws Exception {
        try (S3ChunkStore a = node(); S3ChunkStore b = node()) {
            ChunkStore.Session session = a.session("import on a node cut off");
            a.put(block(7));
            session.check(); // connected: nothing to say
            // the database drops the session's connection, as after a partition (the lock goes with it)
            stores.pg.execute(stores.database, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    + " AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
            List<String> heard = new ArrayList<>();
            new S3Collection(b).begin(heard::add).close();
            assertEquals(List.of(), heard, "a session whose connection is gone holds up no collection");
            CaskException.Io e = assertThrows(CaskException.Io.class, session::check);
            assertTrue(e.getMessage().contains("lost its connection") && e.getMessage().contains("import on a node cut off"), e.getMessage());
            session.close(); // harmless
        }
    }

    @Test
    void aBulkReadThroughLocationsInAPackCompactionDeletedAsksTheIndexAgain() throws Exception {
        // node a keeps no plain bytes in memory: its bulk read goes to the objects, through the locations it cached
        try (S3ChunkStore a = S3ChunkStore.open(stores.storeUrl(dir), stores.s3.settings(), stores.indexUrl(dir), PostgresCatalog.Options.defaults(),
                new S3ChunkStore.Options(64 << 10, 1, 16 << 10, 3, 0)); S3ChunkStore b = node()) {
            List<ChunkId> live = new ArrayList<>();
            List<ChunkId> dead = new ArrayList<>();
            for (int i = 0; i < 12; i++) (i % 2 == 0 ? live : dead).add(a.put(block(400 + i)));
            a.sync();
            a.getAll(live, (i, data, off, len) -> {}); // a caches where they are: neighbours in one pack
            try (ChunkDeleter.Sweep sweep = new S3Collection(b).begin(m -> {})) {
                sweep.delete(dead);
                assertTrue(sweep.compact(0.1, Progress.NONE).packsRewritten() >= 1);
            }
            byte[][] got = new byte[live.size()][];
            a.getAll(live, (i, data, off, len) -> got[i] = java.util.Arrays.copyOfRange(data, off, off + len));
            for (int i = 0; i < live.size(); i++) assertArrayEquals(block(400 + 2 * i), got[i]);
        }
    }

    /**
     * A chunk moves twice: a collection on node b compacts its pack after node a cached where it
     * was, and compacts the copy again between a's second lookup and its read of that copy (a
     * collection in a loop): a follows the index's newer answer instead of failing with the
     * deleted object's 404 and marking a moved copy damaged.
     */
    @Test
    void aChunkCompactedAgainBetweenTheLookupAndTheReadIsFollowed() throws Exception {
        try (S3ChunkStore a = S3ChunkStore.open(stores.storeUrl(dir), stores.s3.settings(), stores.indexUrl(dir), PostgresCatalog.Options.defaults(),
                new S3ChunkStore.Options(64 << 10, 1, 16 << 10, 3, 0)); S3ChunkStore b = node()) {
            List<ChunkId> ids = new ArrayList<>();
            for (int i = 0; i < 12; i++) ids.add(a.put(block(500 + i)));
            a.sync();
            ChunkId x = ids.get(0);
            assertArrayEquals(block(500), a.get(x)); // a caches where it is
            try (ChunkDeleter.Sweep sweep = new S3Collection(b).begin(m -> {})) {
                sweep.delete(ids.subList(6, 12)); // half the pack dead: compacted, x moves
                assertTrue(sweep.compact(0.1, Progress.NONE).packsRewritten() >= 1);
            }
            int[] hooks = {0};
            a.reader().beforeReadElsewhere = () -> {
                if (hooks[0]++ > 0) return;
                try (ChunkDeleter.Sweep sweep = new S3Collection(b).begin(m -> {})) {
                    sweep.delete(ids.subList(3, 6)); // half of the copy's pack dead: x moves again
                    assertTrue(sweep.compact(0.1, Progress.NONE).packsRewritten() >= 1);
                }
            };
            assertArrayEquals(block(500), a.get(x));
            assertEquals(2, hooks[0], "the first copy's object was deleted before a read it, the second was read");
            assertEquals(List.of(), new S3StoreTools(a).damageMarks(), "a moved copy is not damage");
        }
    }

    @Test
    void aSecondCollectionWaitsForTheFirst() throws Exception {
        try (S3ChunkStore a = node(); S3ChunkStore b = node()) {
            ChunkDeleter.Sweep first = new S3Collection(a).begin(m -> {});
            CountDownLatch told = new CountDownLatch(1);
            AtomicBoolean released = new AtomicBoolean();
            CompletableFuture<Void> second = CompletableFuture.runAsync(() -> {
                try (ChunkDeleter.Sweep s = new S3Collection(b).begin(m -> {
                    assertTrue(m.startsWith("another gc is running on store s3://"), m);
                    told.countDown();
                })) {
                    assertTrue(released.get(), "the second collection started only after the first ended");
                    assertTrue(s.epoch() > first.epoch());
                }
            });
            assertTrue(told.await(60, TimeUnit.SECONDS));
            released.set(true);
            first.close();
            second.get(60, TimeUnit.SECONDS);
        }
    }

    @Test
    void aKilledNodesWriterSessionEndsWithItsProcess() throws Exception {
        String url = stores.indexUrl(dir).toString();
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx256m",
                "-cp", System.getProperty("java.class.path"), S3SessionWorker.class.getName(), stores.storeUrl(dir).toString())
                .redirectError(dir.resolve("worker.err").toFile());
        pb.environment().put("CASK_CATALOG", stores.pg.url(stores.database) + "?currentSchema=" + stores.name(dir));
        pb.environment().putAll(stores.s3.environment());
        Process p = pb.start();
        try (S3ChunkStore b = node()) {
            BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            assertEquals("session", out.readLine(), "worker: " + java.nio.file.Files.readString(dir.resolve("worker.err")) + " " + url);
            CountDownLatch told = new CountDownLatch(1);
            CompletableFuture<ChunkDeleter.Sweep> started = CompletableFuture.supplyAsync(() -> new S3Collection(b).begin(m -> told.countDown()));
            assertTrue(told.await(60, TimeUnit.SECONDS), "the collection waits for the worker's session");
            p.destroyForcibly();
            p.waitFor();
            started.get(120, TimeUnit.SECONDS).close(); // the server let go of the dead connection's lock
            try (Connection c = stores.pg.connect(stores.database); Statement st = c.createStatement()) {
                st.execute("SET search_path = " + stores.name(dir));
                try (ResultSet rs = st.executeQuery("SELECT count(*) FROM writer_sessions")) {
                    rs.next();
                    assertEquals(0, rs.getInt(1), "the dead session's row is gone");
                }
            }
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    void aCollectionDeletesWhatAKilledNodeUploadedButNeverCommittedAndObjectsNoRowNamesButNotALiveNodesUpload() throws Exception {
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx256m",
                "-cp", System.getProperty("java.class.path"), S3SessionWorker.class.getName(), stores.storeUrl(dir).toString(), "upload")
                .redirectError(dir.resolve("worker.err").toFile());
        pb.environment().put("CASK_CATALOG", stores.pg.url(stores.database) + "?currentSchema=" + stores.name(dir));
        pb.environment().putAll(stores.s3.environment());
        Process p = pb.start();
        try (S3ChunkStore live = node(); S3ChunkStore b = node()) {
            String[] ids = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8)).readLine().split(" ");
            int uploaded = Integer.parseInt(ids[0]);
            int begun = Integer.parseInt(ids[1]);
            p.destroyForcibly(); // kill -9 between the upload and the commit
            p.waitFor();
            long end = System.nanoTime() + 60_000_000_000L; // until PostgreSQL noticed the dead connection and let go of its lock
            while (b.index().abandonedPacks().stream().noneMatch(x -> x.id() == uploaded)) {
                assertTrue(System.nanoTime() < end, "the killed node's packs never counted as abandoned");
                Thread.sleep(100);
            }
            // a live node's upload under way: begun and PUT, not committed yet
            int mine = live.index().beginPack(live.url()::packKey);
            byte[] pack = dev.cask.store.local.PackFormat.encodePackHeader(mine);
            live.objects().put(live.url().packKey(mine), pack, pack.length);
            // an object no row names (a collection killed between forgetting a pack and deleting its object), and one that is no pack
            String orphan = b.url().packKey(mine + 1000);
            b.objects().put(orphan, new byte[100], 100);
            String notes = b.url().key("packs/notes.txt");
            b.objects().put(notes, new byte[7], 7);
            assertEquals(16, b.objects().size(b.url().packKey(uploaded)));

            ChunkDeleter.Compacted c;
            try (ChunkDeleter.Sweep sweep = new S3Collection(b).begin(m -> {})) {
                c = sweep.compact(0.1, Progress.NONE);
            }
            assertEquals(3, c.packsDeleted(), c.toString());
            assertEquals(16 + 100, c.bytesBefore(), c.toString());
            assertEquals(-1, b.objects().size(b.url().packKey(uploaded)), "the killed node's upload is deleted");
            assertEquals(-1, b.objects().size(orphan), "the object no row named is deleted");
            assertEquals(7, b.objects().size(notes), "an object that is no pack is left alone");
            assertEquals(16, b.objects().size(live.url().packKey(mine)), "the live node's upload is left alone");
            Set<Integer> rows = new HashSet<>();
            for (var row : b.index().packs()) rows.add(row.id());
            assertTrue(!rows.contains(uploaded) && !rows.contains(begun), "the killed node's rows are gone: " + rows);
            assertTrue(rows.contains(mine), rows.toString());
            // what the killed node left is gone for good: a second collection finds nothing more (and leaves the live upload again)
            try (ChunkDeleter.Sweep sweep = new S3Collection(b).begin(m -> {})) {
                assertEquals(0, sweep.compact(0.1, Progress.NONE).packsDeleted());
            }
            live.index().commitPack(mine, pack.length, List.of(), java.util.Map.of()); // the live node commits its pack afterwards
            assertTrue(b.index().packs().stream().anyMatch(row -> row.id() == mine && row.sealed()));
        } finally {
            p.destroyForcibly();
        }
    }
}
