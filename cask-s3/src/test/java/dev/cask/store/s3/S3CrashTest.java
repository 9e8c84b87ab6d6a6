package dev.cask.store.s3;

import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.store.ChunkId;
import dev.cask.store.postgres.PostgresChunkIndex;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kill -9 of a cask process that puts and syncs in a loop ({@link S3PutWorker}, a child JVM), twice
 * on one store, at a random point (after a few syncs, then a random pause): afterwards no index
 * entry names a pack that is not sealed, every sealed pack's object is there with the length its row
 * says, and every chunk of every round a worker reported synced reads back exactly, through
 * {@code get} and {@code getAll}. Packs a killed worker had begun but not sealed may remain (their
 * objects, if any, are garbage for the shared store's GC), and the store goes on working.
 */
class S3CrashTest {
    @TempDir
    Path tmp;

    @Test
    void killedWritersLeaveNoEntryPointingAtAMissingObjectAndLoseNoSyncedChunk() throws Exception {
        PostgresServer pg = PostgresServer.shared();
        String database = pg.createDatabase("s3_crash");
        pg.execute(database, "CREATE SCHEMA crash");
        S3Server s3 = S3Server.shared();
        s3.createBucket("crash");
        String store = "s3://crash/vm-store";
        CatalogUrl indexUrl = CatalogUrl.parse(pg.url(database)).with("currentSchema", "crash");
        long seed = Long.getLong("cask.seed", System.nanoTime());
        Random rnd = new Random(seed);
        System.out.println("seed " + seed + " (-Dcask.seed=" + seed + " replays the kill points)");

        List<Integer> synced = new ArrayList<>();
        for (int run = 0; run < 2; run++) {
            int first = run * 1000; // the second writer starts with new rounds, whose text blocks dedup against the first's
            ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx512m", "-XX:TieredStopAtLevel=1", "-Dcask.s3.pack.limit=" + (192 << 10), "-Dcask.segment.bytes=" + (64 << 10),
                    "-cp", System.getProperty("java.class.path"), S3PutWorker.class.getName(), store, String.valueOf(first))
                    .redirectError(tmp.resolve("worker" + run + ".err").toFile());
            Map<String, String> env = pb.environment();
            env.put("CASK_CATALOG", pg.url(database) + "?currentSchema=crash");
            env.putAll(s3.environment());
            Process p = pb.start();
            int wantSyncs = 2 + rnd.nextInt(4);
            // read in a thread of its own: the kill closes the stream under it
            List<Integer> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
            Thread reader = Thread.ofPlatform().start(() -> {
                try (BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = out.readLine()) != null) if (line.startsWith("synced ")) seen.add(Integer.parseInt(line.substring(7)));
                } catch (java.io.IOException closedByTheKill) {
                    // what was read so far is what the worker acknowledged to us
                }
            });
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (seen.size() < wantSyncs && p.isAlive() && System.nanoTime() < deadline) Thread.sleep(10);
            assertTrue(seen.size() >= wantSyncs, "worker " + run + " synced " + seen.size() + " rounds before it was to be killed; its stderr: "
                    + Files.readString(tmp.resolve("worker" + run + ".err")));
            Thread.sleep(rnd.nextInt(400)); // somewhere in the puts, an upload or a commit of the next round
            p.destroyForcibly();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            reader.join(TimeUnit.SECONDS.toMillis(30));
            synced.addAll(seen);
        }

        try (S3ChunkStore s = S3ChunkStore.open(S3StoreUrl.parse(store), s3.settings(), indexUrl, PostgresCatalog.Options.defaults(),
                S3ChunkStore.Options.defaults())) {
            PostgresChunkIndex index = s.index();
            Map<Integer, PostgresChunkIndex.Pack> packs = new HashMap<>();
            for (PostgresChunkIndex.Pack pack : index.packs()) packs.put(pack.id(), pack);
            int unsealed = 0;
            for (PostgresChunkIndex.Pack pack : packs.values()) {
                if (!pack.sealed()) {
                    unsealed++;
                    continue;
                }
                assertEquals(pack.bytes(), s.objects().size(pack.objectKey()), "sealed pack " + pack.id() + "'s object is whole");
            }
            long[] entries = {0};
            List<ChunkId> all = new ArrayList<>();
            index.forEachId(all::add);
            for (var e : index.locateAll(all).entrySet()) {
                PostgresChunkIndex.Pack pack = packs.get(e.getValue().pack());
                assertTrue(pack != null && pack.sealed(), "entry of " + e.getKey() + " names pack " + e.getValue().pack() + ", which is not sealed");
                entries[0]++;
            }
            System.out.println(synced.size() + " rounds synced, " + entries[0] + " entries, " + packs.size() + " packs of which "
                    + unsealed + " begun and never sealed (killed)");
            assertTrue(synced.size() >= 4);
            List<ChunkId> ids = new ArrayList<>();
            List<byte[]> expected = new ArrayList<>();
            for (int r : synced) {
                byte[][] chunks = S3PutWorker.round(r, null);
                for (byte[] c : chunks) {
                    ChunkId id = ChunkId.of(c);
                    assertArrayEquals(c, s.get(id), "chunk " + id + " of synced round " + r);
                    ids.add(id);
                    expected.add(c);
                }
            }
            byte[][] got = new byte[ids.size()][];
            s.getAll(ids, (i, data, off, len) -> got[i] = java.util.Arrays.copyOfRange(data, off, off + len));
            for (int i = 0; i < ids.size(); i++) assertArrayEquals(expected.get(i), got[i], "getAll of " + ids.get(i));
            // and the store goes on: a round again (all dedup hits) and a new one
            S3PutWorker.round(synced.getFirst(), s);
            S3PutWorker.round(5000, s);
            s.sync();
            for (byte[] c : S3PutWorker.round(5000, null)) assertArrayEquals(c, s.get(ChunkId.of(c)));
            assertTrue(Set.copyOf(all).size() == all.size());
        }
    }
}
