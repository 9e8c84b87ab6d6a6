package dev.cask.store.s3;

import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code check --repair} on a store on S3 ({@link S3StoreTools#rebuildIndex}), on a real s3proxy and
 * PostgreSQL: an entry the index lost comes back from its pack; an entry whose copy is damaged
 * moves to a good copy in another pack; an entry whose only copy is damaged is dropped, and the next
 * put stores the chunk again; a second repair changes nothing; a repair waits for a collection.
 */
class S3RepairTest {
    private static SchemaPerDir stores;

    @TempDir
    Path dir;

    @BeforeAll
    static void servers() {
        stores = new SchemaPerDir("s3_repair", "repair", "r");
    }

    private S3ChunkStore node() {
        return S3ChunkStore.open(stores.storeUrl(dir), stores.s3.settings(), stores.indexUrl(dir), PostgresCatalog.Options.defaults(),
                S3ChunkStore.Options.defaults().withPackLimit(64 << 10));
    }

    private static byte[] block(int seed) {
        byte[] b = new byte[4096];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** Flips the last byte of the record at {@code loc} in its pack object (its CRC no longer matches). */
    private static void damage(S3ChunkStore s, ChunkLocation loc) {
        String key = s.url().packKey(loc.pack());
        byte[] all = s.objects().get(key, () -> "test");
        all[(int) (loc.offset() + loc.length() - 1)] ^= 1;
        s.objects().put(key, all, all.length);
    }

    @Test
    void repairAddsLostEntriesMovesDamagedOnesToGoodCopiesAndDropsThoseNoPackHolds() throws Exception {
        try (S3ChunkStore a = node()) {
            ChunkId lost = a.put(block(1));
            ChunkId twice = a.put(block(2));
            a.sync(); // pack 1: both
            ChunkLocation first = a.index().find(twice);
            // a second copy of `twice` in another pack: its entry forgotten, then the same bytes put again
            stores.pg.execute(stores.database, "DELETE FROM " + stores.name(dir) + ".chunks WHERE id = '\\x" + twice.hex() + "'");
            try (S3ChunkStore b = node()) {
                assertEquals(twice, b.put(block(2)));
                b.sync();
            }
            ChunkLocation second = a.index().find(twice);
            assertNotEquals(first.pack(), second.pack());
            ChunkId only = a.put(block(3));
            a.sync();
            ChunkLocation onlyAt = a.index().find(only);
            // the index loses `lost`'s entry; `twice`'s copy in the index is damaged; `only`'s single copy is damaged
            stores.pg.execute(stores.database, "DELETE FROM " + stores.name(dir) + ".chunks WHERE id = '\\x" + lost.hex() + "'");
            damage(a, second);
            damage(a, onlyAt);
            long before = a.index().count();

            List<String> lines = new ArrayList<>();
            try (S3ChunkStore fresh = node()) {
                long count = new S3StoreTools(fresh).rebuildIndex(lines::add, Progress.NONE);
                assertEquals(before, count, "one entry added, one dropped: " + lines);
                assertEquals(first, fresh.index().find(twice), "moved to the good copy: " + lines);
                assertEquals(first.pack(), fresh.index().find(lost).pack(), "the lost entry is back, in its pack");
                assertArrayEquals(block(1), fresh.get(lost));
                assertArrayEquals(block(2), fresh.get(twice), "read from the good copy");
                assertNull(fresh.index().find(only), "no pack holds it whole: dropped");
                assertTrue(lines.stream().anyMatch(l -> l.contains("1 chunks found in packs had no index entry")), lines.toString());
                assertTrue(lines.stream().anyMatch(l -> l.contains("chunk " + twice.shortHex()) && l.contains("moved to the good copy in " + first)), lines.toString());
                assertTrue(lines.stream().anyMatch(l -> l.contains("chunk " + only.shortHex()) && l.contains("no pack holds it whole")), lines.toString());
                // the next put of its bytes stores it again
                assertEquals(only, fresh.put(block(3)));
                fresh.sync();
                assertArrayEquals(block(3), fresh.get(only));
                // a second repair finds nothing to change
                lines.clear();
                new S3StoreTools(fresh).rebuildIndex(lines::add, Progress.NONE);
                assertTrue(lines.stream().noneMatch(l -> l.contains("moved") || l.contains("dropped") || l.contains("added")), lines.toString());
            }
        }
    }

    @Test
    void aRepairWaitsForARunningCollection() throws Exception {
        try (S3ChunkStore a = node()) {
            ChunkId id = a.put(block(7));
            a.sync();
            List<String> lines = new java.util.concurrent.CopyOnWriteArrayList<>();
            try (var sweep = new S3Collection(a).begin(m -> {})) {
                var repair = java.util.concurrent.CompletableFuture.supplyAsync(() -> new S3StoreTools(a).rebuildIndex(lines::add, Progress.NONE));
                long end = System.nanoTime() + 60_000_000_000L;
                while (lines.stream().noneMatch(l -> l.contains("another gc is running"))) {
                    assertTrue(System.nanoTime() < end, "the repair says it waits: " + lines);
                    Thread.sleep(50);
                }
                assertTrue(!repair.isDone(), "it waits for the collection");
                sweep.close();
                assertEquals(1, repair.get(60, java.util.concurrent.TimeUnit.SECONDS), "then runs: " + lines);
            }
            assertArrayEquals(block(7), a.get(id));
        }
    }
}
