package dev.cask.image;

import dev.cask.local.LocalImages;
import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Garbage collection and compaction racing the store's writers and readers, at the store level:
 * a volume writes (a third of its blocks copies of data that keeps becoming garbage) and
 * checkpoints, and removes its older versions; imports of that garbage (chunks just made
 * unreachable, maybe being swept: dedup hit against sweep) come and go; readers export every kept
 * version over and over (cached locations into packs that compaction deletes: reads through stale
 * locations); and garbage collection with compaction at a low threshold and small packs (so it
 * really rewrites packs while all of that runs) loops, for a bounded number of rounds (at least
 * 40 of the volume, and on until the collector has run 5 times meanwhile).
 *
 * <p>Once in one JVM (one store object shared by every thread, as in a server; no plain-bytes
 * cache, so reads go to the packs), once with the collector in a second process (its compaction
 * deletes packs whose locations this process has cached; its sweep races this process's dedup
 * hits through the index). Every read during the run must return the model's bytes; afterwards
 * every kept version exports exactly, check --deep is clean and a last gc completes. Seeded:
 * -Dcask.seed=N replays the data (not the interleaving).
 */
class GcConcurrencyTest {
    static final int BLOCK = 4096;
    static final int VOLUME_BYTES = 2 << 20;
    /** The volume's rounds: at least this many, and on until the collector ran {@link #GC_RUNS} times meanwhile, at most {@link #MAX_ROUNDS}. */
    static final int MIN_ROUNDS = 40;
    static final int GC_RUNS = 5;
    static final int MAX_ROUNDS = 1000;

    @TempDir
    Path dir;

    /** Where the stores go: a tmpfs when there is one (fsyncs cost nothing there), else under {@link #dir}. */
    Path work;
    String cacheBefore;

    @BeforeEach
    void noPlainCache() throws java.io.IOException {
        work = dev.cask.powercut.PowerCut.scratch(dir);
        cacheBefore = System.getProperty("cask.cache.bytes");
        System.setProperty("cask.cache.bytes", "0"); // reads go to the packs, not to a cache of plain bytes
    }

    @AfterEach
    void restore() throws java.io.IOException {
        if (cacheBefore == null) System.clearProperty("cask.cache.bytes");
        else System.setProperty("cask.cache.bytes", cacheBefore);
        dev.cask.powercut.PowerCut.delete(work);
    }

    static LocalChunkStore.Options options() {
        return new LocalChunkStore.Options(1, 64 << 10, false, 16 << 10, 3, 0);
    }

    /** {@code blocks} 4 KiB blocks of garbage-to-be: random, with every third one text (compressible). */
    static byte[] garbage(long seed, int blocks) {
        Random r = new Random(seed);
        byte[] b = new byte[blocks * BLOCK];
        for (int k = 0; k < blocks; k++) {
            if (k % 3 == 0) {
                byte[] line = ("garbage " + seed + " block " + k + " compresses well\n").getBytes();
                for (int i = 0; i < BLOCK; i++) b[k * BLOCK + i] = line[i % line.length];
            } else {
                for (int i = 0; i < BLOCK; i++) b[k * BLOCK + i] = (byte) r.nextInt();
            }
        }
        return b;
    }

    /**
     * A pause of 0 to 20 ms between the mark and the sweep, as on a store of many chunks (and on
     * a disk whose fsyncs take time): the writers' dedup hits land between the sweep's choice of
     * candidates and its deletes, which is the race the epochs are for.
     */
    static void slowSweep(Random pause) {
        try {
            Thread.sleep(pause.nextInt(21));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** What every thread shares: the store, the versions that must stay, the first failure. */
    static final class Shared {
        final Images images;
        final Map<String, byte[]> kept = new ConcurrentHashMap<>(); // "name@n" -> content
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicReference<Throwable> failed = new AtomicReference<>();
        final AtomicLong reads = new AtomicLong();
        final AtomicInteger gcs = new AtomicInteger();
        final AtomicLong freed = new AtomicLong();
        final AtomicLong rewritten = new AtomicLong();
        final AtomicLong recompressed = new AtomicLong();

        Shared(Images images) {
            this.images = images;
        }

        Thread start(String name, ThrowingRunnable body) {
            Thread t = new Thread(() -> {
                try {
                    body.run();
                } catch (Throwable e) {
                    failed.compareAndSet(null, new AssertionError(name + " failed: " + e, e));
                    stop.set(true);
                }
            }, name);
            t.start();
            return t;
        }

        void exportEquals(String ref, byte[] want, String at) {
            int i = ref.indexOf('@');
            Version v = images.catalog().version(ref.substring(0, i), Integer.parseInt(ref.substring(i + 1)));
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            images.export(v, out, Progress.NONE);
            reads.incrementAndGet();
            if (!Arrays.equals(want, out.toByteArray())) throw new AssertionError(at + ": " + ref + " exports other bytes");
        }
    }

    interface ThrowingRunnable {
        void run() throws Exception;
    }

    /**
     * The volume: rounds of block writes (a third copies of blocks of the garbage sets, which the imports
     * keep making unreachable), each checkpointed; every third version is kept, the others are
     * removed once they are two versions old. Reads back blocks it wrote as it goes.
     */
    static void volumeRounds(Shared s, Random rnd, byte[][] sets, java.util.function.IntSupplier gcRuns) {
        Images images = s.images;
        byte[] model = new byte[VOLUME_BYTES];
        List<Integer> doomed = new ArrayList<>();
        Pruner pruner = new Pruner(images, Pruner.InUse.NONE, Clock.systemUTC(), ZoneOffset.UTC);
        try (Volume vol = images.openVolume("vm")) {
            // at least MIN_ROUNDS, and on until the collector has run GC_RUNS times meanwhile (at most MAX_ROUNDS)
            int gcBefore = gcRuns.getAsInt();
            for (int round = 0; round < MAX_ROUNDS && !s.stop.get() && (round < MIN_ROUNDS || gcRuns.getAsInt() - gcBefore < GC_RUNS); round++) {
                for (int w = 0; w < 24; w++) {
                    int blk = rnd.nextInt(VOLUME_BYTES / BLOCK);
                    byte[] data = new byte[BLOCK];
                    byte[] garbage = sets[rnd.nextInt(sets.length)];
                    if (rnd.nextInt(3) == 0) System.arraycopy(garbage, BLOCK * rnd.nextInt(garbage.length / BLOCK), data, 0, BLOCK);
                    else rnd.nextBytes(data);
                    vol.write((long) blk * BLOCK, data, 0, BLOCK, false);
                    System.arraycopy(data, 0, model, blk * BLOCK, BLOCK);
                }
                int at = BLOCK * rnd.nextInt(VOLUME_BYTES / BLOCK - 16);
                byte[] got = new byte[16 * BLOCK];
                vol.read(at, got, 0, got.length); // through the base tree: cached locations
                if (!Arrays.equals(Arrays.copyOfRange(model, at, at + got.length), got)) {
                    throw new AssertionError("round " + round + ": the volume reads other bytes at " + at);
                }
                Version v = vol.checkpoint("round " + round);
                if (v == null) continue;
                if (round % 3 == 0) s.kept.put("vm@" + v.number(), model.clone());
                else doomed.add(v.number());
                for (var it = doomed.iterator(); it.hasNext(); ) {
                    int n = it.next();
                    if (n >= v.number() - 2) continue; // the base and the one before may be named by journal headers
                    try {
                        pruner.remove("vm", n);
                        it.remove();
                    } catch (CaskException.Conflict inUse) {
                        // a journal still names it: later
                    }
                }
            }
        }
    }

    /**
     * Imports of the garbage sets in turn (each, or a variant of it, imported, exported at once and
     * removed again: its chunks are garbage again by the next gc, and the next import of the set
     * dedups against them, maybe while a sweep deletes them); every fifth round an import of data
     * of its own that is kept.
     */
    static void importRounds(Shared s, Random rnd, byte[][] garbage, long seed) throws Exception {
        for (int k = 0; !s.stop.get(); k++) {
            byte[] content = garbage[(k / 3) % garbage.length];
            if (rnd.nextBoolean()) {
                content = content.clone();
                for (int j = 0; j < 8; j++) {
                    byte[] b = new byte[BLOCK];
                    rnd.nextBytes(b);
                    System.arraycopy(b, 0, content, BLOCK * rnd.nextInt(content.length / BLOCK), BLOCK);
                }
            }
            String name = "imp-" + k;
            Version v = s.images.importStream(new ByteArrayInputStream(content), name, BLOCK, Progress.NONE);
            s.exportEquals(name + "@" + v.number(), content, "import " + name);
            s.images.remove(name);
            if (k % 5 == 2) {
                byte[] own = garbage(seed * 31 + k, 32);
                Version o = s.images.importStream(new ByteArrayInputStream(own), "own-" + k, BLOCK, Progress.NONE);
                s.kept.put("own-" + k + "@" + o.number(), own);
            }
        }
    }

    /** Exports kept versions, over and over. */
    static void readRounds(Shared s, Random rnd) throws InterruptedException {
        while (!s.stop.get()) {
            List<Map.Entry<String, byte[]>> all = new ArrayList<>(s.kept.entrySet());
            if (all.isEmpty()) {
                Thread.sleep(5);
                continue;
            }
            var e = all.get(rnd.nextInt(all.size()));
            s.exportEquals(e.getKey(), e.getValue(), "reader");
        }
    }

    static void verifyEverything(Shared s, String at) {
        for (var e : s.kept.entrySet()) s.exportEquals(e.getKey(), e.getValue(), at);
        CheckReport c = s.images.check(true, Progress.NONE);
        assertEquals(List.of(), c.problems().stream().map(CheckReport.Finding::message).toList(), at + ": check --deep");
    }

    @Test
    void volumeImportsReadersAndGcInOneProcess() throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        String at = "seed=" + seed + " (replay the data with -Dcask.seed=" + seed + ")";
        Random rnd = new Random(seed);
        double threshold = new double[] {0.0, 0.05, 0.2}[rnd.nextInt(3)];
        byte[][] garbage = new byte[4][];
        for (int g = 0; g < garbage.length; g++) garbage[g] = garbage(seed + g, 96);
        long t0 = System.nanoTime();
        try (Images images = LocalImages.open(work.resolve("store"), options())) {
            images.create("vm", VOLUME_BYTES, BLOCK);
            Shared s = new Shared(images);
            Thread gc = s.start("gc", () -> {
                Random pause = new Random(seed);
                while (!s.stop.get()) {
                    // every other run also recompresses (gc --recompress): packs the volume and the imports
                    // are still filling and reading are rewritten under them
                    GarbageCollector.Result r = images.collector().compactThreshold(threshold).beforeSweep(() -> slowSweep(pause))
                            .recompress(s.gcs.get() % 2 == 1).run(false, m -> {}, Progress.NONE);
                    s.gcs.incrementAndGet();
                    s.freed.addAndGet(r.chunksFreed());
                    s.rewritten.addAndGet(r.compacted().packsRewritten() + r.compacted().packsDeleted());
                    s.recompressed.addAndGet(r.recompressed().packsRead());
                }
            });
            long importSeed = rnd.nextLong();
            long readSeed = rnd.nextLong();
            Thread importer = s.start("imports", () -> importRounds(s, new Random(importSeed), garbage, seed));
            Thread reader = s.start("reader", () -> readRounds(s, new Random(readSeed)));
            Thread volume = s.start("volume", () -> volumeRounds(s, rnd, garbage, s.gcs::get));
            volume.join();
            // the last rounds of the others overlap the collector's too
            s.stop.set(true);
            for (Thread t : List.of(importer, reader, gc)) t.join(TimeUnit.MINUTES.toMillis(2));
            if (s.failed.get() != null) throw new AssertionError(at + ": " + s.failed.get().getMessage(), s.failed.get());
            System.out.println("GcConcurrencyTest one process " + at + ": threshold " + threshold + ", " + s.gcs + " gcs freed " + s.freed
                    + " chunks and rewrote or deleted " + s.rewritten + " packs (recompressed " + s.recompressed + ") while " + s.reads + " exports read; "
                    + s.kept.size() + " versions kept, " + (System.nanoTime() - t0) / 1_000_000 + " ms");
            assertTrue(s.gcs.get() >= GC_RUNS, at + ": only " + s.gcs + " gc runs overlapped the writers");
            assertTrue(s.recompressed.get() > 0, at + ": the recompressing runs rewrote no pack");
            verifyEverything(s, at + ": after the run");
            images.collector().compactThreshold(0.0).run(false, m -> {}, Progress.NONE);
            verifyEverything(s, at + ": after a last gc");
        }
    }

    /**
     * A rollback resolves its target version, then commits its content as the new head. If the
     * target is removed and a gc marks and sweeps in between, the commit must fail: it must not
     * make a head of chunks the gc could not see (the commit names the target as its parent, in
     * the transaction that checks that it exists: GcEpochs' rule for versions made of another
     * version's chunks). Made deterministic with a hook between the two.
     */
    @Test
    void aRollbackToAVersionRemovedMeanwhileFailsInsteadOfMakingAHeadOfSweptChunks() {
        byte[] one = garbage(7, 32);
        byte[] two = garbage(8, 32);
        try (Images images = LocalImages.open(work.resolve("store"), options())) {
            images.importStream(new ByteArrayInputStream(one), "vm", BLOCK, Progress.NONE);
            Path src = dir.resolve("two.raw");
            try {
                Files.write(src, two);
            } catch (java.io.IOException e) {
                throw new AssertionError(e);
            }
            new ImageAdmin(images).importAsVersion(src, "vm", "raw", 0, true, false, "two", Progress.NONE, w -> {});
            AtomicReference<GarbageCollector.Result> gc = new AtomicReference<>();
            images.beforeRollbackCommit(() -> {
                new Pruner(images, Pruner.InUse.NONE, Clock.systemUTC(), ZoneOffset.UTC).remove("vm", 1);
                gc.set(images.collector().compactThreshold(0.0).run(false, m -> {}, Progress.NONE));
            });
            Version v = null;
            try {
                v = images.rollback("vm", "1");
            } catch (CaskException.NotFound expected) {
                assertTrue(expected.getMessage().contains("no version 1"), expected.getMessage());
            }
            if (v != null) {
                String reads;
                try {
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    images.export(v, out, Progress.NONE);
                    reads = Arrays.equals(one, out.toByteArray()) ? "exports its bytes" : "exports other bytes";
                } catch (CaskException e) {
                    reads = "cannot be read: " + e.getMessage();
                }
                throw new AssertionError("the rollback committed version " + v.number() + " after its target was removed and "
                        + gc.get().chunksFreed() + " chunks swept; the head " + reads);
            }
            assertTrue(gc.get().chunksFreed() > 0, gc.get().toString());
            assertEquals(2, images.image("vm").head(), "no version was committed");
            assertEquals(List.of(), images.check(true, Progress.NONE).problems().stream().map(CheckReport.Finding::message).toList());
        }
    }

    /** The second process: gc with compaction in a loop until a stop file appears; prints what it did. */
    public static final class GcLoop {
        public static void main(String[] args) throws Exception {
            Path store = Path.of(args[0]);
            Path stopFile = Path.of(args[1]);
            double threshold = Double.parseDouble(args[2]);
            int runs = 0;
            long freed = 0;
            long packs = 0;
            try (Images images = LocalImages.open(store, options())) {
                System.out.println("ready");
                System.out.flush();
                Random pause = new Random(threshold > 0 ? 5 : 7);
                while (!Files.exists(stopFile)) {
                    GarbageCollector.Result r = images.collector().compactThreshold(threshold).beforeSweep(() -> slowSweep(pause))
                            .run(false, m -> {}, Progress.NONE);
                    runs++;
                    freed += r.chunksFreed();
                    packs += r.compacted().packsRewritten() + r.compacted().packsDeleted();
                    System.out.println("run " + runs);
                    System.out.flush();
                }
            }
            System.out.println("gcs " + runs + " freed " + freed + " packs " + packs);
        }
    }

    /** The collector process's runs so far (it prints "run N" after each). */
    static int runsOf(Path out) {
        try {
            return (int) Files.readAllLines(out).stream().filter(l -> l.startsWith("run ")).count();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void volumeImportsAndReadersWhileAnotherProcessCollects() throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        String at = "seed=" + seed + " (replay the data with -Dcask.seed=" + seed + ")";
        Random rnd = new Random(seed);
        double threshold = new double[] {0.0, 0.05, 0.2}[rnd.nextInt(3)];
        byte[][] garbage = new byte[4][];
        for (int g = 0; g < garbage.length; g++) garbage[g] = garbage(seed + g, 96);
        Path store = work.resolve("store");
        Path stopFile = dir.resolve("stop");
        long t0 = System.nanoTime();
        try (Images images = LocalImages.open(store, options())) {
            images.create("vm", VOLUME_BYTES, BLOCK);
            Process child = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "--enable-native-access=ALL-UNNAMED", "-Xmx512m", "-Dcask.cache.bytes=0",
                    "-cp", System.getProperty("java.class.path"), GcLoop.class.getName(),
                    store.toString(), stopFile.toString(), String.valueOf(threshold))
                    .redirectError(dir.resolve("child.err").toFile()).redirectOutput(dir.resolve("child.out").toFile()).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (!Files.readString(dir.resolve("child.out")).contains("ready")) {
                    if (!child.isAlive() || System.nanoTime() > deadline) {
                        throw new AssertionError("the gc process did not start: " + Files.readString(dir.resolve("child.err")));
                    }
                    Thread.sleep(20);
                }
                Shared s = new Shared(images);
                long importSeed = rnd.nextLong();
                long readSeed = rnd.nextLong();
                Thread importer = s.start("imports", () -> importRounds(s, new Random(importSeed), garbage, seed));
                Thread reader = s.start("reader", () -> readRounds(s, new Random(readSeed)));
                Path out = dir.resolve("child.out");
                Thread volume = s.start("volume", () -> volumeRounds(s, rnd, garbage, () -> runsOf(out)));
                volume.join();
                s.stop.set(true);
                for (Thread t : List.of(importer, reader)) t.join(TimeUnit.MINUTES.toMillis(2));
                Files.writeString(stopFile, "stop");
                assertTrue(child.waitFor(2, TimeUnit.MINUTES), at + ": the gc process did not stop");
                String err = Files.readString(dir.resolve("child.err"));
                assertEquals(0, child.exitValue(), at + ": the gc process failed:\n" + err);
                if (s.failed.get() != null) throw new AssertionError(at + ": " + s.failed.get().getMessage(), s.failed.get());
                String done = Files.readString(dir.resolve("child.out")).lines().filter(l -> l.startsWith("gcs ")).findFirst().orElse("?");
                System.out.println("GcConcurrencyTest two processes " + at + ": threshold " + threshold + ", the other process's " + done
                        + "; " + s.reads + " exports read here; " + s.kept.size() + " versions kept, " + (System.nanoTime() - t0) / 1_000_000 + " ms");
                int runs = Integer.parseInt(done.split(" ")[1]);
                assertTrue(runs >= GC_RUNS, at + ": only " + runs + " gc runs overlapped the writers");
                verifyEverything(s, at + ": after the run");
                images.collector().compactThreshold(0.0).run(false, m -> {}, Progress.NONE);
                verifyEverything(s, at + ": after a last gc");
            } finally {
                child.destroyForcibly();
            }
        }
    }
}
