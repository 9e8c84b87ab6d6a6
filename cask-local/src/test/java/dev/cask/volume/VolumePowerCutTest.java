package dev.cask.volume;

import dev.cask.local.LocalImages;
import dev.cask.common.Progress;
import dev.cask.image.CheckReport;
import dev.cask.image.Images;
import dev.cask.powercut.PowerCut;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Power cuts under a live volume: the journal (appends, in-place rewrites, fdatasync on FLUSH,
 * generations created and renamed into place, deleted after their checkpoint) and, through the
 * checkpoints (explicit ones, and those a 256 KiB journal limit starts in the background), the
 * packs, the index and the catalog. A child process creates an image in an empty store, writes
 * (whole blocks, partial blocks, zeroes, FUA writes), flushes and checkpoints, closes the volume
 * and finally rolls the image back to its empty first version, printing each acknowledgement
 * with the shim's operation count.
 *
 * <p>At every crash point (110 on journal files and 43 on the others, or 100 on journal files
 * with torn pages: each unsynced page old, new or mixed by sector) the image is opened as the next
 * {@code cask serve} would open it, replaying the journal, and must hold every write a FLUSH,
 * a FUA write, a checkpoint or the close acknowledged before the point; every other block must be
 * its acknowledged content or one of the later writes to it, never torn or garbage; and
 * {@code cask check} must find nothing wrong. Invariant 3 of DESIGN.md, at every point.
 *
 * <p>Seeded: -Dcask.seed=N replays a run (the seed is printed in every failure).
 */
class VolumePowerCutTest {
    static final int SIZE = 4 << 20;
    static final int BLOCK = 4096;
    static final int STEPS = 300;

    @TempDir
    Path tmp;

    enum Kind { WRITE, FUA_WRITE, ZERO, FLUSH, CHECKPOINT }

    record Step(Kind kind, long offset, int length) {}

    /** The workload, the same in the child and in the test. */
    static List<Step> plan(long seed) {
        Random rnd = new Random(seed);
        List<Step> steps = new ArrayList<>();
        for (int i = 0; i < STEPS; i++) {
            int r = rnd.nextInt(100);
            if (r < 15) {
                steps.add(new Step(Kind.FLUSH, 0, 0));
            } else if (r < 18) {
                steps.add(new Step(Kind.CHECKPOINT, 0, 0));
            } else {
                // a few hot blocks (rewritten in place between flushes) and the rest anywhere
                long block = rnd.nextInt(4) == 0 ? rnd.nextInt(8) : rnd.nextInt(SIZE / BLOCK);
                boolean partial = rnd.nextInt(4) == 0;
                int off = partial ? rnd.nextInt(BLOCK - 100) : 0;
                int len = partial ? 1 + rnd.nextInt(3000) : BLOCK * (1 + rnd.nextInt(3));
                long at = block * BLOCK + off;
                if (at + len > SIZE) len = (int) (SIZE - at);
                Kind k = r < 25 ? Kind.ZERO : r < 30 ? Kind.FUA_WRITE : Kind.WRITE;
                steps.add(new Step(k, at, len));
            }
        }
        return steps;
    }

    static byte[] data(long seed, int step, int length) {
        byte[] b = new byte[length];
        new Random(seed * 31 + step).nextBytes(b);
        return b;
    }

    /** The child: runs the plan on a volume in the store at args[0]. */
    public static final class Workload {
        public static void main(String[] args) {
            Path root = Path.of(args[0]);
            long seed = Long.parseLong(args[1]);
            List<Step> steps = plan(seed);
            try (Images images = LocalImages.open(root)) {
                images.create("vm", SIZE, BLOCK);
                PowerCut.say("created " + PowerCut.ops());
                Volume v = images.openVolume("vm", 256 << 10);
                for (int i = 0; i < steps.size(); i++) {
                    Step s = steps.get(i);
                    PowerCut.say("start " + i + " " + PowerCut.ops());
                    switch (s.kind()) {
                        case WRITE, FUA_WRITE -> v.write(s.offset(), data(seed, i, s.length()), 0, s.length(), s.kind() == Kind.FUA_WRITE);
                        case ZERO -> v.zero(s.offset(), s.length(), false);
                        case FLUSH -> v.flush();
                        case CHECKPOINT -> v.checkpoint("step " + i);
                    }
                    PowerCut.say("end " + i + " " + PowerCut.ops());
                }
                v.close();
                PowerCut.say("closed " + PowerCut.ops());
                images.rollback("vm", "1");
                PowerCut.say("rolledback " + PowerCut.ops());
            }
        }
    }

    /** What the child acknowledged, as operation counts. */
    record Acks(long created, long[] start, long[] end, long closed, long rolledBack) {
        static Acks of(PowerCut.Run run, int steps) {
            long[] start = new long[steps];
            long[] end = new long[steps];
            Arrays.fill(start, Long.MAX_VALUE);
            Arrays.fill(end, Long.MAX_VALUE);
            for (String[] l : run.lines("start")) start[Integer.parseInt(l[1])] = Long.parseLong(l[2]);
            for (String[] l : run.lines("end")) end[Integer.parseInt(l[1])] = Long.parseLong(l[2]);
            return new Acks(one(run, "created"), start, end, one(run, "closed"), one(run, "rolledback"));
        }

        private static long one(PowerCut.Run run, String what) {
            return run.lines(what).stream().mapToLong(l -> Long.parseLong(l[1])).findFirst().orElse(Long.MAX_VALUE);
        }
    }

    @Test
    void everyFlushedWriteSurvivesAPowerCutAtEveryPoint() throws Exception {
        run(false);
    }

    @Test
    void tornUnsyncedPagesNeverTearABlock() throws Exception {
        run(true);
    }

    private void run(boolean torn) throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        String at = "seed=" + seed + (torn ? " torn" : "") + " (replay with -Dcask.seed=" + seed + ")";
        Path scratch = PowerCut.scratch(tmp);
        try {
            run(seed, at, scratch, torn);
        } finally {
            PowerCut.delete(scratch);
        }
    }

    private void run(long seed, String at, Path scratch, boolean torn) throws Exception {
        List<Step> steps = plan(seed);
        // torn: the journal's pages are what tearing is about; strict: every kind of file
        Map<String, Integer> wanted = torn ? Map.of("journal", 100) : Map.of("journal", 110, "pack", 10, "index", 15, "catalog", 15, "other", 3);
        PowerCut.Run run = PowerCut.runPicked(scratch, seed, wanted, torn, !torn, Workload.class,
                root -> new String[] {root.toString(), String.valueOf(seed)});
        Acks acks = Acks.of(run, steps.size());
        System.out.println(at + ": " + run.points().size() + " crash points " + PowerCut.byCategory(run.points()));
        assertTrue(PowerCut.byCategory(run.points()).getOrDefault("journal", 0L) >= 100, at + ": too few points on journal files");
        for (PowerCut.Point p : run.points()) {
            PowerCut.keepOnFailure(p.image(), () -> check(seed, steps, acks, p.op(), p.image(),
                    at + " point " + p.op() + " (" + p.operation() + " " + p.path() + ")", torn));
            PowerCut.delete(p.image());
        }
        if (!torn) check(seed, steps, acks, Long.MAX_VALUE, run.finalImage(), at + " after the process ended", false);
    }

    /** Opens the image of point {@code point} and checks it against what was acknowledged before it. */
    static void check(long seed, List<Step> steps, Acks acks, long point, Path image, String at, boolean torn) {
        if (acks.created() >= point) {
            // the image was not acknowledged yet: the store must still open, and hold nothing broken
            try (Images images = LocalImages.open(image)) {
                checkClean(images, at, torn);
            }
            return;
        }
        byte[] durable = new byte[SIZE];
        byte[] current = new byte[SIZE];
        Map<Integer, List<byte[]>> since = new HashMap<>();
        for (int i = 0; i < steps.size(); i++) {
            if (acks.start()[i] + 1 >= point) break; // its first operation is at or after the point: it left nothing
            Step s = steps.get(i);
            switch (s.kind()) {
                case WRITE, FUA_WRITE, ZERO -> {
                    byte[] d = s.kind() == Kind.ZERO ? new byte[s.length()] : data(seed, i, s.length());
                    System.arraycopy(d, 0, current, (int) s.offset(), s.length());
                    for (long b = s.offset() / BLOCK; b * BLOCK < s.offset() + s.length(); b++) {
                        since.computeIfAbsent((int) b, k -> new ArrayList<>()).add(Arrays.copyOfRange(current, (int) b * BLOCK, (int) (b + 1) * BLOCK));
                    }
                }
                default -> { }
            }
            boolean acknowledged = acks.end()[i] < point;
            if (acknowledged && (s.kind() == Kind.FLUSH || s.kind() == Kind.CHECKPOINT || s.kind() == Kind.FUA_WRITE)) {
                System.arraycopy(current, 0, durable, 0, SIZE);
                since.clear();
            }
        }
        if (acks.closed() < point) {
            System.arraycopy(current, 0, durable, 0, SIZE);
            since.clear();
        }
        if (acks.rolledBack() < point) { // back to version 1: all zeros
            Arrays.fill(durable, (byte) 0);
            since.clear();
        }
        try (Images images = LocalImages.open(image)) {
            Volume v = images.openVolume("vm");
            byte[] got = new byte[SIZE];
            v.read(0, got, 0, SIZE);
            v.abandon(); // no checkpoint: the image is thrown away
            for (int b = 0; b < SIZE / BLOCK; b++) {
                if (Arrays.equals(got, b * BLOCK, (b + 1) * BLOCK, durable, b * BLOCK, (b + 1) * BLOCK)) continue;
                boolean later = false;
                for (byte[] c : since.getOrDefault(b, List.of())) later |= Arrays.equals(got, b * BLOCK, (b + 1) * BLOCK, c, 0, BLOCK);
                if (!later) {
                    fail(at + ": block " + b + " is neither its acknowledged content nor a later write"
                            + (since.containsKey(b) ? "" : " (no write after the last acknowledgement touched it)")
                            + "; " + history(seed, steps, acks, point, b, Arrays.copyOfRange(got, b * BLOCK, (b + 1) * BLOCK)));
                }
            }
            checkClean(images, at, torn);
        } catch (dev.cask.common.CaskException e) {
            throw new AssertionError(at + ": " + e, e);
        }
    }

    /** For a failure: which steps wrote the block, which were acknowledged, and which one's content was read. */
    static String history(long seed, List<Step> steps, Acks acks, long point, int block, byte[] got) {
        byte[] disk = new byte[SIZE];
        StringBuilder sb = new StringBuilder("history of the block:");
        for (int i = 0; i < steps.size(); i++) {
            Step s = steps.get(i);
            boolean ended = acks.end()[i] < point;
            if (s.kind() == Kind.FLUSH || s.kind() == Kind.CHECKPOINT) {
                if (ended) sb.append(' ').append(i).append(s.kind() == Kind.FLUSH ? ":flush" : ":checkpoint");
                continue;
            }
            byte[] d = s.kind() == Kind.ZERO ? new byte[s.length()] : data(seed, i, s.length());
            System.arraycopy(d, 0, disk, (int) s.offset(), s.length());
            if (s.offset() / BLOCK <= block && block < (s.offset() + s.length() + BLOCK - 1) / BLOCK) {
                boolean match = Arrays.equals(got, 0, BLOCK, disk, block * BLOCK, (block + 1) * BLOCK);
                sb.append(' ').append(i).append(':').append(s.kind().name().toLowerCase()).append(s.length() < BLOCK ? "(partial)" : "")
                        .append(ended ? "" : "(not ended)").append(match ? "=READ" : "");
            }
            if (acks.start()[i] + 1 >= point) break;
        }
        if (Arrays.equals(got, new byte[BLOCK])) sb.append(" (read zeros)");
        return sb.toString();
    }

    /**
     * {@code cask check} finds nothing. With torn pages a pack may end in a torn record or segment
     * that no index entry reaches (a write the crash cut short); that one kind is allowed there.
     */
    static void checkClean(Images images, String at, boolean torn) {
        CheckReport r = images.check(false, Progress.NONE);
        List<String> problems = r.problems().stream()
                .filter(p -> !(torn && (p.kind() == CheckReport.Kind.TORN_TAIL || p.kind() == CheckReport.Kind.BAD_RECORD))).map(CheckReport.Finding::message).toList();
        assertEquals(List.of(), problems, at + ": check");
    }
}
