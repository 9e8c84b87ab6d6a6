package dev.cask.image;

import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.catalog.postgres.PostgresJournals;
import dev.cask.catalog.postgres.PostgresLeases;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.common.Progress;
import dev.cask.store.s3.S3ChunkStore;
import dev.cask.store.s3.S3Server;
import dev.cask.store.s3.S3StoreTools;
import dev.cask.store.s3.S3StoreUrl;
import dev.cask.volume.LocalJournals;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link GcConcurrencyTest}'s race on a shared store, across nodes: node A (an {@link Images} over
 * its own {@link S3ChunkStore}, catalog, leases and journals) runs the volume that writes,
 * checkpoints and removes its older versions, the imports of data that keeps becoming garbage, and
 * a reader exporting every kept version; node B, another set of the same objects on the same
 * PostgreSQL and s3proxy, collects and compacts (threshold 0: it rewrites every pack with garbage)
 * in a loop. So B's sweeps race A's dedup hits through the index, B waits for A's writer sessions
 * through PostgreSQL, and B's compaction deletes objects whose locations A has cached. Every read
 * must return the model's bytes; afterwards every kept version exports exactly, check --deep is
 * clean, and a last gc completes. Seeded: -Dcask.seed=N replays the data (not the interleaving).
 */
class SharedGcConcurrencyTest {
    private static final String BUCKET = "shared-gc";

    @TempDir
    Path dir;

    private static Images node(CatalogUrl url, S3StoreUrl store, Path journals, S3Server s3) {
        PostgresCatalog catalog = PostgresCatalog.open(url, PostgresCatalog.Options.defaults(), dev.cask.common.Clocks.system());
        PostgresLeases leases = PostgresLeases.open(url, PostgresCatalog.Options.defaults(), Duration.ofSeconds(30));
        PostgresJournals journalStore = PostgresJournals.open(url, PostgresCatalog.Options.defaults(), new LocalJournals(journals));
        // small packs and segments, no cache of plain bytes: reads go to the objects, compaction has packs to rewrite
        S3ChunkStore chunks = S3ChunkStore.open(store, s3.settings(), url, PostgresCatalog.Options.defaults(),
                new S3ChunkStore.Options(64 << 10, 1, 16 << 10, 3, 0));
        return new Images(new ImageParts(chunks, catalog, journalStore, leases, store.toString(), List.of(new S3StoreTools(chunks))));
    }

    @Test
    void aNodeWritesImportsAndReadsWhileAnotherCollectsAndCompacts() throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        String at = "seed=" + seed + " (replay the data with -Dcask.seed=" + seed + ")";
        Random rnd = new Random(seed);
        byte[][] garbage = new byte[4][];
        for (int g = 0; g < garbage.length; g++) garbage[g] = GcConcurrencyTest.garbage(seed + g, 96);
        PostgresServer pg = PostgresServer.shared();
        S3Server s3 = S3Server.shared();
        s3.createBucket(BUCKET);
        String database = pg.createDatabase("shared_gc");
        CatalogUrl url = CatalogUrl.parse(pg.url(database));
        S3StoreUrl store = S3StoreUrl.parse("s3://" + BUCKET + "/race");
        long t0 = System.nanoTime();
        try (Images a = node(url, store, dir.resolve("a"), s3); Images b = node(url, store, dir.resolve("b"), s3)) {
            a.create("vm", GcConcurrencyTest.VOLUME_BYTES, GcConcurrencyTest.BLOCK);
            GcConcurrencyTest.Shared s = new GcConcurrencyTest.Shared(a);
            Thread gc = s.start("gc on node b", () -> {
                while (!s.stop.get()) {
                    GarbageCollector.Result r = b.collector().compactThreshold(0.0).run(false, m -> {}, Progress.NONE);
                    s.gcs.incrementAndGet();
                    s.freed.addAndGet(r.chunksFreed());
                    s.rewritten.addAndGet(r.compacted().packsRewritten() + r.compacted().packsDeleted());
                }
            });
            long importSeed = rnd.nextLong();
            long readSeed = rnd.nextLong();
            Thread importer = s.start("imports on node a", () -> GcConcurrencyTest.importRounds(s, new Random(importSeed), garbage, seed));
            Thread reader = s.start("reader on node a", () -> GcConcurrencyTest.readRounds(s, new Random(readSeed)));
            Thread volume = s.start("volume on node a", () -> GcConcurrencyTest.volumeRounds(s, rnd, garbage, s.gcs::get));
            volume.join();
            s.stop.set(true);
            for (Thread t : List.of(importer, reader, gc)) t.join(TimeUnit.MINUTES.toMillis(2));
            if (s.failed.get() != null) throw new AssertionError(at + ": " + s.failed.get().getMessage(), s.failed.get());
            System.out.println("SharedGcConcurrencyTest " + at + ": " + s.gcs + " gcs on node b freed " + s.freed
                    + " chunks and rewrote or deleted " + s.rewritten + " packs while " + s.reads + " exports read on node a; "
                    + s.kept.size() + " versions kept, " + (System.nanoTime() - t0) / 1_000_000 + " ms");
            assertTrue(s.gcs.get() >= GcConcurrencyTest.GC_RUNS, at + ": only " + s.gcs + " gc runs overlapped the writers");
            assertTrue(s.rewritten.get() > 0, at + ": compaction never ran into a pack with garbage");
            GcConcurrencyTest.verifyEverything(s, at + ": after the run");
            b.collector().compactThreshold(0.0).run(false, m -> {}, Progress.NONE);
            GcConcurrencyTest.verifyEverything(s, at + ": after a last gc");
        }
    }
}
