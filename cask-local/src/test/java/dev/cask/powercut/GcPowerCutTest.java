package dev.cask.powercut;

import dev.cask.catalog.Version;
import dev.cask.common.Progress;
import dev.cask.image.CheckReport;
import dev.cask.image.GarbageCollector;
import dev.cask.image.Images;
import dev.cask.local.LocalImages;
import dev.cask.image.Pruner;
import dev.cask.image.RetentionPolicy;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Clock;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Power cuts during garbage collection: its epoch bump, the sweep (index entries deleted in
 * write transactions) and compaction (live chunks copied into a new pack and fsynced, the index
 * switched to the copies in a durable transaction, the old pack deleted and the pack directory
 * fsynced; segments and records; packs of 64 KiB, so the run rewrites and deletes dozens).
 *
 * <p>The test builds a store (imports sharing blocks, a clone, volumes with several checkpoints,
 * then images, versions and a prune removed, so that most packs hold garbage next to live
 * chunks) and runs {@code gc} on it in a child process under the powercut shim twice: once to log
 * every file operation and the operation numbers where the sweep and compaction start and end,
 * then again with crash points picked by operation number: {@code cask.gcpowercut.points} (30 by
 * default) at random in the sweep and as many in compaction, plus, in compaction, the points
 * right after a pack's copies are fsynced, right after the index switch is durable (its WAL
 * fsync), right after an old pack's unlink and right after the pack directory's fsync, and the
 * first operations (the epoch bump). At every point, after the "reboot" (the store opened from
 * what survived): every version committed before the gc exports exactly; {@code check --deep}
 * finds no problem (garbage left is a note); the next gc completes; and after it every version
 * still exports exactly and check is clean again. Also with torn unsynced pages (fewer points).
 * With punching (the default) and without: then compaction's steps also include the holes
 * files' fsyncs and renames (the punches themselves are not operations the shim models: a
 * punched stretch holds only dead units either way, see {@code HolePuncher}).
 *
 * <p>Seeded: -Dcask.seed=N replays a run (the seed is in every failure); {@code
 * -Dcask.powercut.keep=DIR} keeps the image of a failing point.
 */
class GcPowerCutTest {
    static final int BLOCK = 4096;

    @TempDir
    Path tmp;

    static LocalChunkStore.Options options() {
        return new LocalChunkStore.Options(1, 64 << 10, false, 16 << 10, 3, 0);
    }

    /** The child: one gc with compaction on the store at args[0], saying where its phases start. */
    public static final class Workload {
        public static void main(String[] args) {
            Path root = Path.of(args[0]);
            double threshold = Double.parseDouble(args[1]);
            System.setProperty("cask.gc.punch", args[2]);
            boolean recompress = args.length > 3 && Boolean.parseBoolean(args[3]);
            try (Images images = LocalImages.open(root, options())) {
                PowerCut.say("phase begin " + PowerCut.ops());
                GarbageCollector.Result r = images.collector().compactThreshold(threshold).recompress(recompress).run(false, m -> {}, new Progress() {
                    @Override
                    public void start(String label, long total) {
                        PowerCut.say("phase " + label + " " + PowerCut.ops());
                    }

                    @Override
                    public void advance(long delta) {}

                    @Override
                    public void done() {}
                });
                PowerCut.say("phase done " + PowerCut.ops());
                PowerCut.say("result " + r.chunksFreed() + " " + r.compacted().packsRewritten() + " " + r.compacted().packsDeleted()
                        + " " + r.compacted().chunksCopied() + " " + r.compacted().packsPunched() + " " + r.recompressed().packsRead());
            }
        }
    }

    // ------------------------------------------------------------ the store before the gc

    /** Builds the store the gc runs on; returns every version it keeps ("name@n") with its content. */
    static Map<String, byte[]> build(Path store, long seed) throws IOException {
        Random rnd = new Random(seed);
        byte[][] pool = new byte[12][];
        for (int i = 0; i < pool.length; i++) pool[i] = block(rnd, i % 2 == 0 ? 4 : 3);
        Map<String, byte[]> kept = new TreeMap<>();
        try (Images images = LocalImages.open(store, options())) {
            for (int i = 0; i < 8; i++) {
                byte[] d = disk(rnd, pool, 96 + rnd.nextInt(64));
                Version v = images.importStream(new ByteArrayInputStream(d), "web-" + i, BLOCK, Progress.NONE);
                kept.put("web-" + i + "@" + v.number(), d);
            }
            Version c = images.cloneImage("web-0", "web-0c").version();
            kept.put("web-0c@" + c.number(), kept.get("web-0@1"));
            volumeRounds(images, rnd, pool, "web-0c", kept.get("web-0@1").clone(), 4, kept);
            images.create("vm", 512 << 10, BLOCK);
            kept.put("vm@1", new byte[512 << 10]);
            volumeRounds(images, rnd, pool, "vm", new byte[512 << 10], 6, kept);
            // garbage next to live chunks in most packs
            for (String gone : List.of("web-1", "web-3", "web-5", "web-6")) {
                images.remove(gone);
                kept.keySet().removeIf(k -> k.startsWith(gone + "@"));
            }
            Pruner pruner = new Pruner(images, Pruner.InUse.NONE, Clock.systemUTC(), ZoneOffset.UTC);
            for (int n : List.of(2, 4, 5)) {
                pruner.remove("vm", n);
                kept.remove("vm@" + n);
            }
            Pruner.Report r = pruner.prune("web-0c", new RetentionPolicy(2, null, 0, 0, 0, 0, 0, true), false, false);
            for (Pruner.ImageResult ir : r.images()) for (Version v : ir.removed()) kept.remove(v.key().toString());
            // an import of garbage removed at once: its chunks are garbage only
            images.importStream(new ByteArrayInputStream(disk(rnd, pool, 400)), "tmp", BLOCK, Progress.NONE);
            images.remove("tmp");
            assertEquals(new TreeSet<>(kept.keySet()), refs(images), "seed " + seed + ": the versions the store keeps");
        }
        return kept;
    }

    static TreeSet<String> refs(Images images) {
        TreeSet<String> out = new TreeSet<>();
        for (Version v : images.catalog().allVersions()) out.add(v.key().toString());
        return out;
    }

    /** A 4 KiB block: 0 zeros, 1-2 text, 3-4 noise. */
    static byte[] block(Random rnd, int kind) {
        byte[] b = new byte[BLOCK];
        if (kind == 0) return b;
        if (kind <= 2) {
            byte[] line = ("text " + rnd.nextInt(1 << 20) + " that compresses, and more words " + rnd.nextInt(100) + "\n").getBytes();
            for (int i = 0; i < BLOCK; i++) b[i] = line[i % line.length];
            return b;
        }
        rnd.nextBytes(b);
        return b;
    }

    static byte[] disk(Random rnd, byte[][] pool, int blocks) {
        byte[] d = new byte[blocks * BLOCK];
        for (int k = 0; k < blocks; k++) {
            int r = rnd.nextInt(10);
            byte[] b = r < 3 ? pool[rnd.nextInt(pool.length)] : block(rnd, r < 4 ? 0 : r < 6 ? 1 : 3);
            System.arraycopy(b, 0, d, k * BLOCK, BLOCK);
        }
        return d;
    }

    static void volumeRounds(Images images, Random rnd, byte[][] pool, String name, byte[] model, int rounds, Map<String, byte[]> kept) {
        try (Volume v = images.openVolume(name)) {
            for (int round = 0; round < rounds; round++) {
                for (int w = 0; w < 16; w++) {
                    int blk = rnd.nextInt(model.length / BLOCK);
                    byte[] b = rnd.nextInt(4) == 0 ? pool[rnd.nextInt(pool.length)] : block(rnd, 1 + rnd.nextInt(4));
                    v.write((long) blk * BLOCK, b, 0, BLOCK, false);
                    System.arraycopy(b, 0, model, blk * BLOCK, BLOCK);
                }
                Version c = v.checkpoint("round " + round);
                kept.put(name + "@" + c.number(), model.clone());
            }
        }
    }

    // ------------------------------------------------------------ the runs

    /** One line of the shim's operation log. */
    record Op(long n, String category, String operation, String path) {}

    static List<Op> readLog(Path log) throws IOException {
        List<Op> ops = new ArrayList<>();
        for (String l : Files.readAllLines(log)) {
            String[] f = l.split(" ", 4);
            ops.add(new Op(Long.parseLong(f[0]), f[1], f[2], f.length > 3 ? f[3] : ""));
        }
        return ops;
    }

    /** Operation counts at the child's phase lines ("phase NAME N"). */
    static Map<String, Long> phases(PowerCut.Run run) {
        Map<String, Long> out = new HashMap<>();
        for (String[] l : run.lines("phase")) out.putIfAbsent(l[1], Long.parseLong(l[2]));
        return out;
    }

    static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) {
                Path d = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(d);
                else Files.copy(p, d, StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }

    /** Compaction by copying only ({@code -Dcask.gc.punch=false}, a file system that cannot punch). */
    @Test
    void aPowerCutDuringTheSweepOrCompactionLosesNoVersion() throws Exception {
        run(false, false, Integer.getInteger("cask.gcpowercut.points", 30));
    }

    /** The default: dead records punched out of sealed packs (holes files), then the rest compacted by copying. */
    @Test
    void aPowerCutWhilePunchingAndCompactingLosesNoVersion() throws Exception {
        run(false, true, Integer.getInteger("cask.gcpowercut.points", 30));
    }

    @Test
    void tornUnsyncedPagesDuringGcLoseNoVersion() throws Exception {
        run(true, true, Math.max(1, Integer.getInteger("cask.gcpowercut.points", 30) / 2));
    }

    private void run(boolean torn, boolean punch, int perPhase) throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        String at = "seed=" + seed + (torn ? " torn" : "") + (punch ? " punching" : " copying only") + " (replay with -Dcask.seed=" + seed + ")";
        Random rnd = new Random(seed);
        // low thresholds: compaction must rewrite packs here (with 0.3 its allowance, 15 % of the
        // store as garbage, may leave every pack as it is once the empty ones are deleted)
        double threshold = new double[] {0.0, 0.02, 0.05}[rnd.nextInt(3)];
        Path scratch = PowerCut.scratch(tmp);
        try {
            long t0 = System.nanoTime();
            Path base = scratch.resolve("base");
            Map<String, byte[]> kept = build(base, seed);
            Files.deleteIfExists(base.resolve("gc.lock"));

            // run 1: every operation logged, and where the phases start
            Path countRoot = Files.createDirectories(scratch.resolve("count/store")).toRealPath();
            copyTree(base, countRoot);
            PowerCut.Run count = PowerCut.run(countRoot, scratch.resolve("count/out"), new PowerCut.Options(seed, "*=0", "", false, false, 0),
                    Map.of("CASK_POWERCUT_LOG", "1"), Workload.class, countRoot.toString(), String.valueOf(threshold), String.valueOf(punch));
            List<Op> log = readLog(scratch.resolve("count/out/log"));
            Map<String, Long> ph = phases(count);
            // compaction's region begins with the punching, when there is any
            long begin = ph.get("begin"), sweep = ph.get("sweep"), compact = Math.min(ph.get("compact"), ph.getOrDefault("punch", Long.MAX_VALUE)),
                    done = ph.get("done");
            String rewritten = count.lines("result").getFirst()[2];
            String result = count.lines("result").getFirst()[1] + " chunks freed, " + count.lines("result").getFirst()[2] + " packs rewritten, "
                    + count.lines("result").getFirst()[3] + " deleted, " + count.lines("result").getFirst()[5] + " punched";
            PowerCut.delete(scratch.resolve("count"));
            assertTrue(compact - sweep >= 5 && done - compact >= 20, at + ": too few operations in the phases " + ph + " (" + result + ")");

            // the points: the epoch bump, the sweep and compaction at random, and compaction's steps
            java.util.TreeSet<Long> picks = new java.util.TreeSet<>();
            pickIn(rnd, picks, begin + 1, sweep + 1, 6);
            pickIn(rnd, picks, sweep + 1, compact + 1, perPhase);
            pickIn(rnd, picks, compact + 1, done + 1, perPhase);
            Map<String, List<Long>> steps = new TreeMap<>();
            for (Op o : log) {
                if (o.n() <= compact || o.n() > done) continue;
                String kind = stepKind(o);
                if (kind != null) steps.computeIfAbsent(kind, k -> new ArrayList<>()).add(o.n() + 1);
            }
            Map<String, Integer> stepPicks = new TreeMap<>();
            for (var e : steps.entrySet()) {
                List<Long> l = e.getValue();
                java.util.Collections.shuffle(l, rnd);
                int n = Math.min(l.size(), torn ? Math.max(3, perPhase / 5) : Math.max(6, perPhase / 5));
                picks.addAll(l.subList(0, n));
                stepPicks.put(e.getKey(), n);
            }
            // with punching, compaction may find nothing left to copy (the seed's threshold decides): its
            // steps are required when it rewrote a pack, the copying-only test requires them always
            boolean copied = Long.parseLong(rewritten) > 0;
            List<String> expected = new ArrayList<>();
            if (!punch || copied) expected.addAll(List.of("after copies fsynced", "after an index commit", "after an old pack's unlink",
                    "after the pack directory's fsync"));
            if (punch) expected.addAll(List.of("after a holes file's fsync", "after a holes file's rename"));
            assertTrue(steps.keySet().containsAll(expected), at + ": compaction's steps not all seen: " + steps.keySet() + " (" + result + ")");

            // run 2: the cuts
            Path root = Files.createDirectories(scratch.resolve("store")).toRealPath();
            copyTree(base, root);
            PowerCut.Run run = PowerCut.run(root, scratch.resolve("out"), new PowerCut.Options(seed, "*=0",
                            "op=" + String.join(",", picks.stream().map(String::valueOf).toList()), torn, !torn, 100_000),
                    Map.of(), Workload.class, root.toString(), String.valueOf(threshold), String.valueOf(punch));
            Map<String, Long> ph2 = phases(run);
            assertEquals(ph, ph2, at + ": the second run's phases moved (the workload is not deterministic)");
            System.out.println("GcPowerCutTest " + at + ": threshold " + threshold + ", gc " + result + "; phases " + new TreeMap<>(ph)
                    + ", " + run.points().size() + " crash points " + PowerCut.byCategory(run.points()) + " (of them in compaction's steps "
                    + stepPicks + "), child runs "
                    + (System.nanoTime() - t0) / 1_000_000 + " ms");
            int inSweep = 0, inCompaction = 0;
            for (PowerCut.Point p : run.points()) {
                if (p.op() > sweep && p.op() <= compact) inSweep++;
                if (p.op() > compact && p.op() <= done) inCompaction++;
                String where = at + " point " + p.op() + " (" + p.operation() + " " + p.path() + ", "
                        + (p.op() <= sweep ? "before the sweep" : p.op() <= compact ? "sweep" : "compaction") + ")";
                PowerCut.keepOnFailure(p.image(), () -> check(p.image(), kept, where));
                PowerCut.delete(p.image());
            }
            assertTrue(inSweep >= Math.min(perPhase, compact - sweep) && inCompaction >= perPhase,
                    at + ": points in the sweep " + inSweep + ", in compaction " + inCompaction);
            if (!torn) check(run.finalImage(), kept, at + " after the gc ended");
            System.out.println("GcPowerCutTest " + at + ": " + inSweep + " points in the sweep, " + inCompaction + " in compaction checked, "
                    + (System.nanoTime() - t0) / 1_000_000 + " ms in all");
        } finally {
            PowerCut.delete(scratch);
        }
    }

    /**
     * Recompression ({@code gc --recompress}, no compaction): cuts at random in it, and right after
     * each kind of its durable steps (copies fsynced, an index commit, an old pack's unlink, the
     * pack directory's fsync); every version exports exactly after the reboot, check is clean, and
     * the next recompressing gc completes.
     */
    @Test
    void aPowerCutDuringRecompressionLosesNoVersion() throws Exception {
        int perPhase = Integer.getInteger("cask.gcpowercut.points", 30);
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        String at = "seed=" + seed + " recompressing (replay with -Dcask.seed=" + seed + ")";
        Random rnd = new Random(seed);
        Path scratch = PowerCut.scratch(tmp);
        try {
            Path base = scratch.resolve("base");
            Map<String, byte[]> kept = build(base, seed);
            Files.deleteIfExists(base.resolve("gc.lock"));
            String[] args = {null, "2", "false", "true"}; // threshold above 1: no compaction, the recompression alone
            Path countRoot = Files.createDirectories(scratch.resolve("count/store")).toRealPath();
            copyTree(base, countRoot);
            args[0] = countRoot.toString();
            PowerCut.Run count = PowerCut.run(countRoot, scratch.resolve("count/out"), new PowerCut.Options(seed, "*=0", "", false, false, 0),
                    Map.of("CASK_POWERCUT_LOG", "1"), Workload.class, args);
            List<Op> log = readLog(scratch.resolve("count/out/log"));
            Map<String, Long> ph = phases(count);
            long from = ph.get("recompress"), done = ph.get("done");
            String packs = count.lines("result").getFirst()[6];
            PowerCut.delete(scratch.resolve("count"));
            assertTrue(Long.parseLong(packs) >= 5 && done - from >= 20, at + ": " + packs + " packs recompressed, phases " + ph);
            java.util.TreeSet<Long> picks = new java.util.TreeSet<>();
            pickIn(rnd, picks, from + 1, done + 1, perPhase);
            Map<String, List<Long>> steps = new TreeMap<>();
            for (Op o : log) {
                if (o.n() <= from || o.n() > done) continue;
                String kind = stepKind(o);
                if (kind != null) steps.computeIfAbsent(kind, k -> new ArrayList<>()).add(o.n() + 1);
            }
            assertEquals(List.of("after an index commit", "after an old pack's unlink", "after copies fsynced", "after the pack directory's fsync"),
                    List.copyOf(steps.keySet()), at + ": the recompression's steps");
            for (List<Long> l : steps.values()) {
                java.util.Collections.shuffle(l, rnd);
                picks.addAll(l.subList(0, Math.min(l.size(), Math.max(6, perPhase / 5))));
            }
            Path root = Files.createDirectories(scratch.resolve("store")).toRealPath();
            copyTree(base, root);
            args[0] = root.toString();
            PowerCut.Run run = PowerCut.run(root, scratch.resolve("out"), new PowerCut.Options(seed, "*=0",
                    "op=" + String.join(",", picks.stream().map(String::valueOf).toList()), false, true, 100_000), Map.of(), Workload.class, args);
            assertEquals(ph, phases(run), at + ": the second run's phases moved (the workload is not deterministic)");
            int checked = 0;
            for (PowerCut.Point p : run.points()) {
                if (p.op() <= from) continue;
                String where = at + " point " + p.op() + " (" + p.operation() + " " + p.path() + ")";
                PowerCut.keepOnFailure(p.image(), () -> check(p.image(), kept, where, true));
                PowerCut.delete(p.image());
                checked++;
            }
            assertTrue(checked >= perPhase, at + ": " + checked + " points in the recompression");
            check(run.finalImage(), kept, at + " after the gc ended", true);
            System.out.println("GcPowerCutTest " + at + ": " + packs + " packs recompressed, " + checked + " points checked");
        } finally {
            PowerCut.delete(scratch);
        }
    }

    /** Which of compaction's (or a recompression's) durable steps operation {@code o} ends, or null. */
    static String stepKind(Op o) {
        boolean pack = o.path().matches("packs/\\d{8}\\.pack");
        if (pack && (o.operation().equals("fdatasync") || o.operation().equals("fsync"))) return "after copies fsynced";
        if (o.path().equals("index.db-wal") && o.operation().startsWith("fsync")) return "after an index commit";
        if (pack && o.operation().equals("unlink")) return "after an old pack's unlink";
        if (o.path().equals("packs") && o.operation().startsWith("fsync")) return "after the pack directory's fsync";
        if (o.path().matches("packs/\\d{8}\\.holes\\.tmp") && o.operation().startsWith("fsync")) return "after a holes file's fsync";
        if (o.path().matches("packs/\\d{8}\\.holes(\\.tmp)?") && o.operation().equals("rename")) return "after a holes file's rename";
        return null;
    }

    private static void pickIn(Random rnd, java.util.TreeSet<Long> picks, long from, long to, int n) {
        List<Long> all = new ArrayList<>();
        for (long i = from; i < to; i++) all.add(i);
        java.util.Collections.shuffle(all, rnd);
        picks.addAll(all.subList(0, Math.min(n, all.size())));
    }

    /**
     * After the reboot: every version kept before the gc exports exactly, check --deep has no
     * problem, the next gc completes, and after it the same again.
     */
    static void check(Path image, Map<String, byte[]> kept, String at) {
        check(image, kept, at, false);
    }

    /** As {@link #check(Path, Map, String)}; with {@code recompress}, the next gc recompresses too. */
    static void check(Path image, Map<String, byte[]> kept, String at, boolean recompress) {
        try (Images images = LocalImages.open(image, options())) {
            assertEquals(new TreeSet<>(kept.keySet()), refs(images), at + ": the versions after the reboot");
            exportAll(images, kept, at);
            assertEquals(List.of(), problems(images), at + ": check --deep after the reboot");
            GarbageCollector.Result r = images.collector().compactThreshold(0.05).recompress(recompress).run(false, m -> {}, Progress.NONE);
            exportAll(images, kept, at + ", after the next gc (" + r + ")");
            assertEquals(List.of(), problems(images), at + ": check --deep after the next gc");
        } catch (dev.cask.common.CaskException e) {
            throw new AssertionError(at + ": " + e, e);
        }
    }

    static List<String> problems(Images images) {
        return images.check(true, Progress.NONE).problems().stream().map(CheckReport.Finding::message).toList();
    }

    static void exportAll(Images images, Map<String, byte[]> kept, String at) {
        for (var e : kept.entrySet()) {
            String ref = e.getKey();
            int i = ref.indexOf('@');
            Version v = images.catalog().version(ref.substring(0, i), Integer.parseInt(ref.substring(i + 1)));
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            images.export(v, out, Progress.NONE);
            if (!Arrays.equals(e.getValue(), out.toByteArray())) throw new AssertionError(at + ": " + ref + " exports other bytes");
        }
    }
}
