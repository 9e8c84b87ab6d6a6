package dev.cask.image;

import dev.cask.local.LocalImages;
import dev.cask.catalog.Version;
import dev.cask.common.Progress;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Garbage collection: what it frees, what it costs (pointer chunks read, never time), and the
 * safety rule of {@code GcEpochs} under races made on purpose (a dedup hit on a chunk the sweep
 * chose) and at random (a volume writing and checkpointing while GC runs in a loop). Seeded.
 */
class GarbageCollectorTest {
    @TempDir
    Path dir;

    /** {@code mib} MiB of data: {@code seed} decides the bytes; every fourth 4 KiB block is zeros, and each block compresses a bit. */
    static byte[] disk(long seed, int mib) {
        byte[] b = new byte[mib << 20];
        Random r = new Random(seed);
        for (int blk = 0; blk < b.length / 4096; blk++) {
            if (blk % 4 == 3) continue;
            for (int i = 0; i < 4096; i += 8) {
                long v = r.nextLong();
                for (int k = 0; k < 6; k++) b[blk * 4096 + i + k] = (byte) (v >>> (8 * k));
            }
        }
        return b;
    }

    static Version put(Images images, String name, byte[] data) {
        return images.importStream(new ByteArrayInputStream(data), name, 4096, Progress.NONE);
    }

    static byte[] read(Images images, Version v) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        images.export(v, out, Progress.NONE);
        return out.toByteArray();
    }

    @Test
    void freesWhatRemovedImagesHeldAndKeepsTheRest() {
        byte[] a = disk(1, 4);
        byte[] b = disk(2, 4);
        System.arraycopy(a, 0, b, 0, 1 << 20); // b shares its first MiB with a
        try (Images images = LocalImages.open(dir)) {
            Version va = put(images, "a", a);
            put(images, "b", b);
            Version vc = images.cloneImage("b", "c").version();
            images.remove("b");
            GarbageCollector.Result nothing = images.collector().run(false, m -> {}, Progress.NONE);
            assertEquals(0, nothing.chunksFreed(), "c still holds all of b");
            long before = LocalImages.store(images).chunkCount();
            images.remove("c");
            GarbageCollector.Result r = images.collector().run(false, m -> {}, Progress.NONE);
            assertTrue(r.chunksFreed() >= 3 * 192, "b's 3 MiB of its own data blocks: " + r);
            assertTrue(r.bytesFreed() > 0, r.toString());
            assertEquals(before - r.chunksFreed(), LocalImages.store(images).chunkCount());
            assertArrayEquals(a, read(images, va));
            assertTrue(images.check(true, Progress.NONE).ok(), "check --deep after gc");
            assertEquals(0, images.collector().run(false, m -> {}, Progress.NONE).chunksFreed(), "a second gc finds nothing");
            // the freed data can come back: the put finds no entry and stores it again
            Version again = put(images, "b2", b);
            assertArrayEquals(b, read(images, again));
            assertArrayEquals(b, read(images, vc.number() > 0 ? again : again));
            assertTrue(images.check(true, Progress.NONE).ok());
        }
    }

    /** Small packs, so that images span several and compaction has packs to choose from. */
    static final dev.cask.store.local.LocalChunkStore.Options SMALL_PACKS = new dev.cask.store.local.LocalChunkStore.Options(3, 256 << 10, false);

    /**
     * With punching (the default) the dead records of sealed packs are punched out and only what
     * punching cannot give back is copied; without it ({@code -Dcask.gc.punch=false}, a file
     * system that cannot punch) the packs shared by removed and kept images are rewritten. Either
     * way the bytes come back, and every kept chunk reads back, also through locations cached before.
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "punch={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {true, false})
    void compactionGivesTheBytesBackAndMovedChunksReadBack(boolean punch) {
        System.setProperty("cask.gc.punch", Boolean.toString(punch));
        try {
            compactionGivesTheBytesBack(punch);
        } finally {
            System.clearProperty("cask.gc.punch");
        }
    }

    private void compactionGivesTheBytesBack(boolean punch) {
        byte[] a = disk(11, 3);
        byte[] b = disk(12, 3);
        try (Images images = LocalImages.open(dir, SMALL_PACKS)) {
            Version va = put(images, "a", a);
            put(images, "b", b);
            Version vc = put(images, "c", disk(13, 1));
            assertArrayEquals(a, read(images, va)); // the caches now hold a's locations
            images.remove("b");
            long before = LocalImages.store(images).storedBytes();
            GarbageCollector.Result r = images.collector().run(false, m -> {}, Progress.NONE);
            long after = LocalImages.store(images).storedBytes();
            assertTrue(r.compacted().packsDeleted() + r.compacted().packsRewritten() > 0, r.toString());
            if (punch) assertTrue(r.compacted().packsPunched() > 0 && r.compacted().bytesPunched() > 0, "b's records in packs it shared: " + r);
            else assertTrue(r.compacted().packsRewritten() > 0, "the pack shared by a and b, b and c: " + r);
            assertTrue(before - after >= r.bytesFreed() * 8 / 10, "stored " + before + " -> " + after + ": " + r);
            assertArrayEquals(a, read(images, va));
            assertArrayEquals(disk(13, 1), read(images, vc));
            assertTrue(images.check(true, Progress.NONE).ok(), "check --deep after compaction");
            GarbageCollector.Result again = images.collector().run(false, m -> {}, Progress.NONE);
            assertEquals(0, again.compacted().packsRewritten() + again.compacted().packsDeleted(), "nothing left to compact: " + again);
        }
        try (Images images = LocalImages.open(dir, SMALL_PACKS)) { // a fresh process: no cache
            assertArrayEquals(a, read(images, images.resolve("a")));
            assertTrue(images.check(true, Progress.NONE).ok());
        }
    }

    @Test
    void dryRunChangesNothing() {
        try (Images images = LocalImages.open(dir)) {
            put(images, "a", disk(3, 2));
            images.remove("a");
            long chunks = LocalImages.store(images).chunkCount();
            GarbageCollector.Result r = images.collector().run(true, m -> {}, Progress.NONE);
            assertTrue(r.dryRun() && r.chunksFreed() > 0, r.toString());
            assertEquals(chunks, LocalImages.store(images).chunkCount());
            assertEquals(r.chunksFreed(), images.collector().run(false, m -> {}, Progress.NONE).chunksFreed());
        }
    }

    @Test
    void aThousandClonesCostAboutOneImage() {
        try (Images images = LocalImages.open(dir)) {
            put(images, "base", disk(4, 8)); // 2048 blocks: 16 level-1 pointer chunks and a top
            long one = images.collector().run(false, m -> {}, Progress.NONE).pointerReads();
            assertTrue(one >= 17, "pointer chunks of one image: " + one);
            for (int i = 0; i < 1000; i++) images.cloneImage("base", "clone/" + i);
            // a collection that marks from nothing: every pointer chunk once however many trees share it
            GarbageCollector.Result r = images.collector().full(true).run(false, m -> {}, Progress.NONE);
            assertEquals(1001, r.versions());
            assertFalse(r.markedByDifference(), r.toString());
            assertEquals(one, r.pointerReads(), "clones share the top: no pointer chunk is read twice");
            // the next one in this process marks by difference: a thousand more clones add no pointer chunk to read
            for (int i = 1000; i < 2000; i++) images.cloneImage("base", "clone/" + i);
            GarbageCollector.Result next = images.collector().run(false, m -> {}, Progress.NONE);
            assertTrue(next.markedByDifference(), next.toString());
            assertEquals(2001, next.versions());
            assertEquals(0, next.pointerReads(), "the clones' trees are all counted already: " + next);
            // removing every clone reads nothing either (the base still holds each pointer chunk); removing the base reads each once
            for (int i = 0; i < 2000; i++) images.remove("clone/" + i);
            assertEquals(0, images.collector().run(false, m -> {}, Progress.NONE).pointerReads());
            long chunks = LocalImages.store(images).chunkCount();
            images.remove("base");
            GarbageCollector.Result last = images.collector().run(false, m -> {}, Progress.NONE);
            assertEquals(one, last.pointerReads(), "the base's pointer chunks, each once, to take their children off: " + last);
            assertEquals(chunks, last.chunksFreed(), "every block and pointer chunk of the base: " + last);
            assertEquals(0, LocalImages.store(images).chunkCount());
        }
    }

    /**
     * The race the rule is for: the sweep has chosen a garbage chunk, then an import of the same
     * bytes (a writer that registers after the GC started, whose caches know every one of those
     * chunks) dedups on exactly the chunks being swept, and commits. Without the stamp (or without
     * testing it in the delete's transaction) the new image would lose its chunks. (One store object
     * in this JVM; other processes are CLI tests.)
     */
    @Test
    void aDedupHitOnAChunkBeingSweptIsNotLost() {
        byte[] g = disk(5, 2);
        try (Images images = LocalImages.open(dir)) {
            Images other = images;
            put(images, "g", g);
            read(other, other.resolve("g")); // the caches now know g's chunks
            images.remove("g");
            AtomicReference<Version> raced = new AtomicReference<>();
            GarbageCollector.Result r = images.collector()
                    .beforeSweep(() -> raced.set(put(other, "again", g)))
                    .run(false, m -> {}, Progress.NONE);
            assertEquals(0, r.chunksFreed(), "every garbage chunk was hit by the racing import: " + r);
            assertArrayEquals(g, read(other, raced.get()));
            assertArrayEquals(g, read(images, images.resolve("again")));
            assertTrue(images.check(true, Progress.NONE).ok());
        }
    }

    /** A cache that still believes a swept chunk exists must not make a put skip storing it. */
    @Test
    void aCacheOfASweptChunkDoesNotFoolAPut() {
        byte[] g = disk(6, 1);
        try (Images images = LocalImages.open(dir)) {
            Images other = images;
            put(images, "g", g);
            read(other, other.resolve("g")); // the location and plain caches hold g's chunks
            images.remove("g");
            assertTrue(images.collector().run(false, m -> {}, Progress.NONE).chunksFreed() > 0);
            Version v = put(other, "g2", g); // through other's caches
            images.store().sync();
            assertArrayEquals(g, read(images, v));
            assertTrue(images.check(true, Progress.NONE).ok(), "every chunk of g2 is indexed again");
        }
    }

    /**
     * A volume writes and checkpoints, and imports deduplicate against garbage, while GC runs in a
     * loop in another thread; afterwards every committed version reads back exactly. Seeded.
     */
    @Test
    void volumeAndImportsWhileGcLoops() throws Exception {
        long seed = Long.getLong("cask.test.seed", 42);
        System.out.println("seed " + seed);
        Random rnd = new Random(seed);
        byte[] garbage = disk(seed + 100, 1);
        try (Images images = LocalImages.open(dir, SMALL_PACKS)) {
            Images gcSide = images;
            images.create("vm", 4 << 20, 4096);
            AtomicBoolean stop = new AtomicBoolean();
            AtomicReference<Throwable> failed = new AtomicReference<>();
            int[] gcs = {0};
            long[] compacted = {0, 0};
            Thread gc = new Thread(() -> {
                try {
                    while (!stop.get()) {
                        GarbageCollector.Result r = gcSide.collector().run(false, m -> {}, Progress.NONE);
                        compacted[0] += r.compacted().packsRewritten();
                        compacted[1] += r.chunksFreed();
                        gcs[0]++;
                    }
                } catch (Throwable t) {
                    failed.set(t);
                }
            });
            gc.start();
            Map<Integer, byte[]> expected = new HashMap<>();
            List<Version> imported = new ArrayList<>();
            byte[] model = new byte[4 << 20];
            try (Volume vol = images.openVolume("vm")) {
                for (int round = 0; round < 30; round++) {
                    for (int w = 0; w < 20; w++) {
                        int blk = rnd.nextInt(1024);
                        byte[] data = new byte[4096];
                        if (rnd.nextInt(3) == 0) System.arraycopy(garbage, 4096 * rnd.nextInt(256), data, 0, 4096); // dedups against garbage
                        else rnd.nextBytes(data);
                        vol.write(blk * 4096L, data, 0, 4096, false);
                        System.arraycopy(data, 0, model, blk * 4096, 4096);
                    }
                    Version v = vol.checkpoint("round " + round);
                    if (v != null) expected.put(v.number(), model.clone());
                    put(images, "tmp" + round, disk(seed * 1000 + round, 1)); // unique garbage, between the volume's chunks in the packs
                    images.remove("tmp" + round);
                    if (round % 5 == 0) {
                        put(images, "imp" + round, garbage); // the same bytes each time: garbage again after each rm
                        images.remove("imp" + round);
                    }
                    if (round == 17) imported.add(put(images, "kept", garbage)); // dedups against garbage, kept
                }
            }
            stop.set(true);
            gc.join();
            if (failed.get() != null) throw new AssertionError("gc failed", failed.get());
            assertTrue(gcs[0] > 0);
            System.out.println(gcs[0] + " gc runs, " + compacted[1] + " chunks freed, " + compacted[0] + " packs rewritten");
            gcSide.collector().run(false, m -> {}, Progress.NONE);
            for (var e : expected.entrySet()) {
                assertArrayEquals(e.getValue(), read(images, images.catalog().version("vm", e.getKey())), "vm@" + e.getKey() + " seed " + seed);
            }
            for (Version v : imported) assertArrayEquals(garbage, read(images, v), v.key() + " seed " + seed);
            assertTrue(images.check(true, Progress.NONE).ok(), "seed " + seed);
            assertNull(failed.get());
        }
    }

    /**
     * A paced collection (a server's) stopped at random points (seeded), with packs compacted in
     * many small batches: every stop leaves a store that checks clean and reads back, and the next
     * collection carries on until nothing is left to free or compact.
     */
    @Test
    void aPacedGcStoppedAtRandomPointsLosesNothingAndTheNextCarriesOn() throws Exception {
        long seed = Long.getLong("cask.test.seed", 7);
        Random rnd = new Random(seed);
        System.setProperty("cask.compact.batch", String.valueOf(16 << 10));
        try (Images images = LocalImages.open(dir, SMALL_PACKS)) {
            Map<String, byte[]> kept = new HashMap<>();
            int stopped = 0;
            for (int round = 0; round < 8; round++) {
                byte[] k = disk(seed * 100 + round, 1);
                byte[] g = disk(seed * 100 + 50 + round, 2);
                // interleaved in the packs: compaction must copy k's chunks out of packs g leaves
                byte[] both = new byte[3 << 20];
                System.arraycopy(k, 0, both, 0, 1 << 20);
                System.arraycopy(g, 0, both, 1 << 20, 2 << 20);
                put(images, "mix" + round, both);
                put(images, "k" + round, k);
                kept.put("k" + round, k);
                images.remove("mix" + round);
                dev.cask.common.Pacer pacer = new dev.cask.common.Pacer(4, 20_000_000L); // resting 4x after every 20 ms: a collection lasts long enough for a stop within 120 ms to land in it
                AtomicReference<Throwable> outcome = new AtomicReference<>();
                Thread t = new Thread(() -> {
                    try {
                        images.collector().paced("test", pacer).run(false, m -> {}, Progress.NONE);
                    } catch (Throwable e) {
                        outcome.set(e);
                    }
                });
                t.start();
                Thread.sleep(rnd.nextInt(120));
                pacer.stop("test stop");
                t.join(10_000);
                assertTrue(!t.isAlive(), "a stop ends the run at its next step");
                if (outcome.get() instanceof dev.cask.common.Pacer.Stopped) stopped++;
                else assertNull(outcome.get(), "round " + round + " seed " + seed);
                assertTrue(images.check(true, Progress.NONE).ok(), "round " + round + " seed " + seed);
                for (var e : kept.entrySet()) assertArrayEquals(e.getValue(), read(images, images.resolve(e.getKey())), e.getKey() + " seed " + seed);
            }
            System.out.println(stopped + " of 8 paced collections stopped while running");
            assertTrue(stopped >= 3, "seed " + seed + ": stops land while collections run");
            images.collector().run(false, m -> {}, Progress.NONE);
            // that one's copies filled this process's pack, which held garbage of its own: the next takes it
            images.collector().run(false, m -> {}, Progress.NONE);
            GarbageCollector.Result last = images.collector().run(false, m -> {}, Progress.NONE);
            assertEquals(0, last.chunksFreed(), last.toString());
            assertEquals(0, last.compacted().packsRewritten() + last.compacted().packsDeleted(), "nothing left: " + last);
            assertTrue(images.check(true, Progress.NONE).ok());
            for (var e : kept.entrySet()) assertArrayEquals(e.getValue(), read(images, images.resolve(e.getKey())), e.getKey());
        } finally {
            System.clearProperty("cask.compact.batch");
        }
    }

    @Test
    void aPacerRestsInProportionAndAStopWakesItAtOnce() throws Exception {
        dev.cask.common.Pacer p = new dev.cask.common.Pacer(2, 20_000_000L);
        long t0 = System.nanoTime();
        long busyUntil = t0 + 60_000_000L;
        while (System.nanoTime() < busyUntil) Thread.onSpinWait(); // 60 ms of work
        p.step();
        double took = (System.nanoTime() - t0) / 1e9;
        assertTrue(took >= 0.17 && took < 2, "60 ms of work, then about 120 ms of rest: " + took);
        assertTrue(p.restedSeconds() >= 0.11, String.valueOf(p.restedSeconds()));
        // work below the quantum (here 10 s) gathers: no rest yet
        dev.cask.common.Pacer bursts = new dev.cask.common.Pacer(2, 10_000_000_000L);
        busyUntil = System.nanoTime() + 60_000_000L;
        while (System.nanoTime() < busyUntil) Thread.onSpinWait();
        bursts.step();
        assertEquals(0.0, bursts.restedSeconds(), "60 ms of work, a 10 s quantum: no rest");
        dev.cask.common.Pacer slow = new dev.cask.common.Pacer(1000, 20_000_000L);
        Thread stopper = new Thread(() -> {
            try {
                Thread.sleep(100);
            } catch (InterruptedException ignored) {
                // stop now
            }
            slow.stop("enough");
        });
        long t1 = System.nanoTime();
        busyUntil = t1 + 25_000_000L;
        while (System.nanoTime() < busyUntil) Thread.onSpinWait();
        stopper.start();
        dev.cask.common.Pacer.Stopped s = org.junit.jupiter.api.Assertions.assertThrows(dev.cask.common.Pacer.Stopped.class, slow::step);
        assertEquals("enough", s.getMessage());
        assertTrue((System.nanoTime() - t1) / 1e9 < 5, "a 25 s rest ends at the stop");
        org.junit.jupiter.api.Assertions.assertThrows(dev.cask.common.Pacer.Stopped.class, () -> slow.waitFor(10_000));
    }
}
