package dev.cask.powercut;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Simulated power cuts for crash tests: runs a workload in a child JVM under the
 * {@code powercut.so} shim (src/test/native/powercut.c, built here with gcc) and hands back the
 * reboot images it wrote, one directory per crash point, each holding what the store directory
 * would hold after a power cut at that point.
 *
 * <p>Why a shim under libc and not a Java file layer: the index and the catalog are SQLite, whose
 * writes and fsyncs happen in native code that no Java wrapper sees. Below libc, the journal's and
 * the packs' FileChannels and SQLite's VFS meet in the same calls (open, pwrite, fsync, rename,
 * unlink...), so one model covers all four, in a real cask process, with no change to product code.
 * What the model keeps and drops is written at the top of powercut.c: a file's bytes as of its last
 * fsync/fdatasync, a directory entry as of its directory's last fsync, and in torn mode the
 * unsynced pages old, new or mixed by 512-byte sector.
 *
 * <p>A crash point is the moment before an operation on a watched file. The child does not die at
 * each point: the shim writes the image and the process goes on, so one run gives a hundred points
 * for the price of one JVM. {@link #ops()} (in the child) reads the shim's operation count, which
 * a workload prints with each acknowledgement: an acknowledgement printed with count c covers only
 * operations 1..c, so it holds in every image of a point n > c. Points are chosen by the shim with a
 * seeded coin per operation; thread scheduling (checkpoints run on a pool) can still move
 * operations around, so a seed replays the workload and the choice of points exactly, and the
 * interleaving nearly. {@link #runPicked} first counts a workload's operations per file category,
 * then picks exactly the number of points a test asks for in each.
 *
 * <p>The tests fail, never skip, when gcc is missing (scripts/install-deps.sh installs it).
 */
public final class PowerCut {
    private PowerCut() {}

    /** One crash point: image directory, operation number, the file category and operation the shim saw. */
    public record Point(long op, String category, String operation, String path, Path image) {}

    /** What a child run left. */
    public record Run(int exitCode, List<String> lines, String stderr, List<Point> points, Path finalImage) {
        /** The lines starting with {@code prefix + " "}, split on spaces. */
        public List<String[]> lines(String prefix) {
            return lines.stream().filter(l -> l.startsWith(prefix + " ")).map(l -> l.split(" ")).toList();
        }
    }

    private static Path library;

    /** Builds powercut.so from its source (once per JVM, and only when the source is newer). */
    public static synchronized Path library() throws IOException, InterruptedException {
        if (library != null) return library;
        Path base = Path.of(System.getProperty("basedir", System.getProperty("user.dir")));
        Path src = base.resolve("src/test/native/powercut.c");
        if (!Files.exists(src)) src = base.resolve("cask-local/src/test/native/powercut.c");
        if (!Files.exists(src)) throw new AssertionError("cannot find powercut.c (looked under " + base + ")");
        Path target = src.getParent().getParent().getParent().getParent().resolve("target/powercut");
        Files.createDirectories(target);
        Path so = target.resolve("powercut.so");
        if (!Files.exists(so) || Files.getLastModifiedTime(so).compareTo(Files.getLastModifiedTime(src)) < 0) {
            Path tmp = Files.createTempFile(target, "powercut", ".so");
            List<String> cmd = List.of("gcc", "-O2", "-Wall", "-Wextra", "-Wno-format-truncation", "-shared", "-fPIC",
                    "-o", tmp.toString(), src.toString(), "-ldl", "-lpthread");
            Process p;
            try {
                p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            } catch (IOException e) {
                throw new AssertionError("gcc is not installed (run ./run-tests, which installs the test tools): " + e.getMessage(), e);
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (p.waitFor() != 0 || !out.isBlank()) throw new AssertionError("gcc failed to build " + src + ":\n" + out);
            Files.move(tmp, so, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        }
        library = so;
        return so;
    }

    /**
     * How a run is set up: seed, per-path rates ("journals/=0.3,*=0"), per-category picks
     * ("journal=3,17;index=5", see powercut.c), torn mode, an image at exit, a cap on images.
     */
    public record Options(long seed, String rates, String picks, boolean torn, boolean finalImage, int maxImages) {}

    /**
     * Two runs of the same workload: one that only counts the operations per file category, then
     * one with {@code wanted.get(category)} points picked at random (seeded) among that
     * category's operations (the first 90 % of them, since a second run's checkpoint threads may
     * do a few less). {@code args} gives the workload's arguments for a store directory.
     * Everything goes under {@code scratch}; the store of the second run is {@code scratch/store}.
     */
    public static Run runPicked(Path scratch, long seed, java.util.Map<String, Integer> wanted, boolean torn, boolean finalImage,
                                Class<?> main, java.util.function.Function<Path, String[]> args) throws IOException, InterruptedException {
        Path count = scratch.resolve("count");
        Path countRoot = Files.createDirectories(count.resolve("store")).toRealPath();
        run(countRoot, count.resolve("out"), new Options(seed, "*=0", "", false, false, 0), main, args.apply(countRoot));
        java.util.Map<String, Long> ops = new java.util.HashMap<>();
        for (String kv : Files.readString(count.resolve("out/ops")).trim().split(" ")) {
            String[] f = kv.split("=");
            ops.put(f[0], Long.parseLong(f[1]));
        }
        delete(count);
        java.util.Random rnd = new java.util.Random(seed);
        StringBuilder picks = new StringBuilder();
        for (var w : new java.util.TreeMap<>(wanted).entrySet()) {
            long n = ops.getOrDefault(w.getKey(), 0L) * 9 / 10;
            if (n < w.getValue()) {
                throw new AssertionError(main.getSimpleName() + " makes only " + ops.get(w.getKey()) + " operations on " + w.getKey()
                        + " files, too few for " + w.getValue() + " crash points (" + ops + ")");
            }
            java.util.TreeSet<Long> chosen = new java.util.TreeSet<>();
            while (chosen.size() < w.getValue()) chosen.add(1 + (long) (rnd.nextDouble() * n));
            if (!picks.isEmpty()) picks.append(';');
            picks.append(w.getKey()).append('=').append(String.join(",", chosen.stream().map(String::valueOf).toList()));
        }
        Path root = Files.createDirectories(scratch.resolve("store")).toRealPath();
        return run(root, scratch.resolve("out"), new Options(seed, "*=0", picks.toString(), torn, finalImage, 100_000), main, args.apply(root));
    }

    /**
     * Runs {@code main} with {@code args} in a child JVM whose changes under {@code root} (which
     * must exist) the shim watches; images go under {@code out}. Fails when the child fails (other
     * than a crash the shim caused on purpose) or takes more than 5 minutes.
     */
    public static Run run(Path root, Path out, Options o, Class<?> main, String... args) throws IOException, InterruptedException {
        return run(root, out, o, java.util.Map.of(), main, args);
    }

    /**
     * As {@link #run(Path, Path, Options, Class, String...)}, with more environment for the child:
     * {@code CASK_POWERCUT_LOG=1} (every operation in {@code out/log}, see powercut.c), system
     * properties through {@code JAVA_TOOL_OPTIONS}...
     */
    public static Run run(Path root, Path out, Options o, java.util.Map<String, String> env, Class<?> main, String... args)
            throws IOException, InterruptedException {
        Path lib = library();
        root = root.toRealPath();
        Files.createDirectories(out);
        out = out.toRealPath();
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-cp", System.getProperty("java.class.path"), main.getName()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("LD_PRELOAD", lib.toString());
        pb.environment().put("CASK_POWERCUT_LIB", lib.toString());
        pb.environment().put("CASK_POWERCUT_ROOT", root.toString());
        pb.environment().put("CASK_POWERCUT_OUT", out.toString());
        pb.environment().put("CASK_POWERCUT_SEED", Long.toUnsignedString(o.seed()));
        pb.environment().put("CASK_POWERCUT_RATES", o.rates());
        if (!o.picks().isEmpty()) pb.environment().put("CASK_POWERCUT_PICK", o.picks());
        pb.environment().put("CASK_POWERCUT_MAX", String.valueOf(o.maxImages()));
        if (o.torn()) pb.environment().put("CASK_POWERCUT_TORN", "1");
        if (o.finalImage()) pb.environment().put("CASK_POWERCUT_FINAL", "1");
        pb.environment().putAll(env);
        Process p = pb.start();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread pump = pump(p.getErrorStream(), err);
        byte[] stdout = p.getInputStream().readAllBytes();
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError(main.getSimpleName() + " did not finish in 5 minutes");
        }
        pump.join();
        String stderr = err.toString(StandardCharsets.UTF_8);
        List<String> lines = new String(stdout, StandardCharsets.UTF_8).lines().toList();
        if (p.exitValue() != 0) {
            throw new AssertionError(main.getSimpleName() + " exited with " + p.exitValue() + "\nstderr:\n" + stderr
                    + "\nlast stdout lines:\n" + String.join("\n", lines.subList(Math.max(0, lines.size() - 10), lines.size())));
        }
        List<Point> points = new ArrayList<>();
        Path list = out.resolve("points");
        if (Files.exists(list)) {
            for (String l : Files.readAllLines(list)) {
                String[] f = l.split(" ", 4);
                if (f[0].equals("final")) continue;
                points.add(new Point(Long.parseLong(f[0]), f[1], f[2], f.length > 3 ? f[3] : "", out.resolve(f[0])));
            }
        }
        points.sort(Comparator.comparingLong(Point::op));
        Path fin = out.resolve("final");
        return new Run(p.exitValue(), lines, stderr, points, Files.isDirectory(fin) ? fin : null);
    }

    /** Points per file category ("journal", "pack", "index", "catalog", "other"), for the test log. */
    public static java.util.Map<String, Long> byCategory(List<Point> points) {
        return points.stream().collect(java.util.stream.Collectors.groupingBy(Point::category, java.util.TreeMap::new,
                java.util.stream.Collectors.counting()));
    }

    private static Thread pump(InputStream in, ByteArrayOutputStream sink) {
        return Thread.ofPlatform().start(() -> {
            try {
                in.transferTo(sink);
            } catch (IOException ignored) {
                // child gone
            }
        });
    }

    /**
     * A directory for a run's store and images: under /dev/shm when it has room (a tmpfs: the
     * fsyncs of the checks that open each image cost nothing there), else under {@code fallback}.
     * The caller deletes it.
     */
    public static Path scratch(Path fallback) throws IOException {
        Path shm = Path.of("/dev/shm");
        try {
            if (Files.isDirectory(shm) && Files.isWritable(shm) && Files.getFileStore(shm).getUsableSpace() > (4L << 30)) {
                return Files.createTempDirectory(shm, "cask-powercut");
            }
        } catch (IOException e) {
            // no tmpfs to use: fall back
        }
        return Files.createTempDirectory(fallback, "powercut");
    }

    /** Deletes an image (or any tree) once checked, to keep the disk footprint of a run small. */
    public static void delete(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(p);
        }
    }

    /**
     * Runs a check of an image (which may change it: opening a volume replays and checkpoints).
     * When the system property {@code cask.powercut.keep} names a directory, a copy of the image
     * as the power cut left it is kept there if the check fails (a @TempDir vanishes with the test).
     */
    public static void keepOnFailure(Path image, Runnable check) throws IOException {
        String keep = System.getProperty("cask.powercut.keep");
        Path dst = keep == null ? null : Path.of(keep).resolve(image.getFileName().toString());
        if (dst != null) copyTree(image, dst);
        try {
            check.run();
        } catch (AssertionError | RuntimeException e) {
            if (dst != null) throw new AssertionError(e.getMessage() + " (image kept in " + dst + ")", e);
            throw e;
        }
        if (dst != null) delete(dst);
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) {
                Path d = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(d);
                else Files.copy(p, d, StandardCopyOption.REPLACE_EXISTING);
            }
        }
    }

    // ---------------------------------------------------------------- in the child

    private static MethodHandle opsHandle;

    /** In a child run under the shim: the number of watched operations so far. */
    public static synchronized long ops() {
        try {
            if (opsHandle == null) {
                String lib = System.getenv("CASK_POWERCUT_LIB");
                if (lib == null) throw new IllegalStateException("not running under powercut.so");
                System.load(lib); // already loaded by LD_PRELOAD: the same copy, so the same counter
                opsHandle = Linker.nativeLinker().downcallHandle(SymbolLookup.loaderLookup().find("powercut_ops").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_LONG));
            }
            return (long) opsHandle.invokeExact();
        } catch (Throwable t) {
            throw new IllegalStateException("powercut_ops: " + t, t);
        }
    }

    /** In a child: prints one acknowledgement line and flushes it (it must reach the parent even if the child dies next). */
    public static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
