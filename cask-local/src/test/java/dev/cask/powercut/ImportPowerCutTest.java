package dev.cask.powercut;

import dev.cask.common.Progress;
import dev.cask.image.CheckReport;
import dev.cask.image.Images;
import dev.cask.local.LocalImages;
import dev.cask.store.local.LocalChunkStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Power cuts under imports: the packs (records and segments appended through a buffer, fsynced
 * at the store's sync, sealed at a 128 KiB limit and new ones created with their directory
 * entry synced), the index (SQLite, entries added after the pack sync) and the catalog (the
 * version committed last). A child imports small raw disks one after another into a new store:
 * unique incompressible blocks, compressible ones (segments), zero blocks, and blocks shared
 * with earlier disks (deduplicated), printing each returned import with the operation count.
 *
 * <p>At every crash point (110 on pack files, 110 on the index, 25 others; with torn unsynced pages,
 * 60, 60 and 30), the store must
 * open; every import that returned must be there and export its exact bytes; the import in
 * flight must be absent or whole; and {@code cask check} must find nothing wrong. Seeded:
 * -Dcask.seed=N.
 */
class ImportPowerCutTest {
    static final int DISKS = 48;
    static final int DISK_BYTES = 128 << 10;
    static final int BLOCK = 4096;

    @TempDir
    Path tmp;

    /** Disk {@code k} of a run: its blocks drawn from a shared pool, fresh noise, text and zeros. */
    static byte[] disk(long seed, int k) {
        Random shared = new Random(seed);
        byte[][] pool = new byte[16][BLOCK];
        for (byte[] b : pool) shared.nextBytes(b);
        Random rnd = new Random(seed * 7919 + k);
        byte[] d = new byte[DISK_BYTES];
        for (int b = 0; b < DISK_BYTES / BLOCK; b++) {
            int r = rnd.nextInt(10);
            if (r < 3) {
                System.arraycopy(pool[rnd.nextInt(pool.length)], 0, d, b * BLOCK, BLOCK);
            } else if (r < 5) {
                byte[] noise = new byte[BLOCK];
                rnd.nextBytes(noise);
                System.arraycopy(noise, 0, d, b * BLOCK, BLOCK);
            } else if (r < 9) {
                String line = "disk " + k + " block " + b + " holds text that compresses well " + rnd.nextInt(1000) + "\n";
                for (int i = 0; i < BLOCK; i++) d[b * BLOCK + i] = (byte) line.charAt(i % line.length());
            } // else zeros: a hole
        }
        return d;
    }

    static LocalChunkStore.Options options() {
        return new LocalChunkStore.Options(1, 128 << 10, false);
    }

    /** The child: imports the disks into the store at args[0]; sources are written under args[1]. */
    public static final class Workload {
        public static void main(String[] args) throws Exception {
            Path root = Path.of(args[0]);
            Path sources = Path.of(args[1]);
            long seed = Long.parseLong(args[2]);
            try (Images images = LocalImages.open(root, options())) {
                for (int k = 0; k < DISKS; k++) {
                    Path src = sources.resolve("disk-" + k + ".raw");
                    Files.write(src, disk(seed, k));
                    PowerCut.say("start " + k + " " + PowerCut.ops());
                    images.importFile(src, "disk-" + k, "raw", 0, true, Progress.NONE, w -> { });
                    PowerCut.say("end " + k + " " + PowerCut.ops());
                    Files.delete(src);
                }
            }
        }
    }

    @Test
    void everyReturnedImportSurvivesAPowerCutAtEveryPoint() throws Exception {
        run(false);
    }

    /** Torn unsynced pages: a pack may end in a torn record (no index entry reaches it), SQLite's files in torn pages. */
    @Test
    void tornUnsyncedPagesNeverCorruptAReturnedImport() throws Exception {
        run(true);
    }

    private void run(boolean torn) throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        String at = "seed=" + seed + (torn ? " torn" : "") + " (replay with -Dcask.seed=" + seed + ")";
        Path scratch = PowerCut.scratch(tmp);
        try {
            Path sources = Files.createDirectories(scratch.resolve("sources")).toRealPath();
            long t0 = System.nanoTime();
            var wanted = torn ? java.util.Map.of("pack", 60, "index", 60, "catalog", 30)
                    : java.util.Map.of("pack", 110, "index", 110, "catalog", 20, "other", 5);
            PowerCut.Run run = PowerCut.runPicked(scratch, seed, wanted, torn, !torn, Workload.class, root -> new String[] {root.toString(), sources.toString(), String.valueOf(seed)});
            System.out.println(at + ": " + run.points().size() + " crash points " + PowerCut.byCategory(run.points())
                    + ", child runs " + (System.nanoTime() - t0) / 1_000_000 + " ms");
            long[] start = new long[DISKS];
            long[] end = new long[DISKS];
            Arrays.fill(start, Long.MAX_VALUE);
            Arrays.fill(end, Long.MAX_VALUE);
            for (String[] l : run.lines("start")) start[Integer.parseInt(l[1])] = Long.parseLong(l[2]);
            for (String[] l : run.lines("end")) end[Integer.parseInt(l[1])] = Long.parseLong(l[2]);
            assertEquals(DISKS, run.lines("end").size(), at + ": the workload did not finish: " + run.stderr());
            var counts = PowerCut.byCategory(run.points());
            assertTrue(torn || counts.getOrDefault("pack", 0L) >= 100 && counts.getOrDefault("index", 0L) >= 100, at + ": too few crash points: " + counts);
            Random pick = new Random(seed);
            for (PowerCut.Point p : run.points()) {
                String where = at + " point " + p.op() + " (" + p.operation() + " " + p.path() + ")";
                PowerCut.keepOnFailure(p.image(), () -> check(seed, start, end, p.op(), p.image(), where, pick, torn));
                PowerCut.delete(p.image());
            }
            if (!torn) check(seed, start, end, Long.MAX_VALUE, run.finalImage(), at + " after the process ended", pick, false);
        } finally {
            PowerCut.delete(scratch);
        }
    }

    /**
     * Every returned import is listed; the last returned one, the one in flight (when present)
     * and one other returned at random export their exact bytes; check is clean (it verifies
     * every record and that every chunk of every version is indexed and readable).
     */
    static void check(long seed, long[] start, long[] end, long point, Path image, String at, Random pick, boolean torn) {
        try (Images images = LocalImages.open(image, options())) {
            List<String> names = images.list("").stream().map(dev.cask.catalog.Image::name).toList();
            int lastDone = -1;
            for (int k = 0; k < DISKS; k++) {
                boolean done = end[k] < point;
                boolean started = start[k] + 1 < point;
                boolean present = names.contains("disk-" + k);
                if (done) {
                    assertTrue(present, at + ": disk-" + k + " was imported, and is gone");
                    lastDone = k;
                } else if (present) {
                    assertTrue(started, at + ": disk-" + k + " is there before its import started");
                    exportEquals(images, seed, k, at + " (in flight)");
                }
            }
            if (lastDone >= 0) {
                exportEquals(images, seed, lastDone, at);
                exportEquals(images, seed, pick.nextInt(lastDone + 1), at);
            }
            // torn: a pack may end in a torn record or segment that no index entry reaches (the write the cut tore)
            assertEquals(List.of(), images.check(false, Progress.NONE).problems().stream()
                    .filter(p -> !(torn && (p.kind() == CheckReport.Kind.TORN_TAIL || p.kind() == CheckReport.Kind.BAD_RECORD))).map(CheckReport.Finding::message).toList(), at + ": check");
        } catch (dev.cask.common.CaskException e) {
            throw new AssertionError(at + ": " + e, e);
        }
    }

    static void exportEquals(Images images, long seed, int k, String at) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        images.export("disk-" + k, out, Progress.NONE);
        assertArrayEquals(disk(seed, k), out.toByteArray(), at + ": disk-" + k + " exports other bytes");
    }
}
