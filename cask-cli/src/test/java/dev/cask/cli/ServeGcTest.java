package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code cask serve --gc-interval}: the server's background garbage collection frees what rm
 * left while a VM (an NBD client) keeps writing and the server checkpoints; it and a {@code cask
 * gc} wait for each other and say so; a failed one is one ERROR line and the server keeps
 * serving; a shutdown stops it at once; kill -9 of the server at random points of its collections
 * (while a VM writes, the server checkpoints and prunes, and rm makes garbage), aimed at mark,
 * sweep and compaction by waiting for their DEBUG lines, leaves a store that checks clean and
 * exports every kept version and every flushed write exactly (seeded: -Dcask.seed=N replays the
 * data and the choice of kill points, not the timing they meet; -Dcask.kill.rounds=N, default 20);
 * and rm of an image a server serves read-only is refused (garbage collection would otherwise
 * free what the server still reads).
 */
class ServeGcTest {
    @TempDir
    Path dir;

    private final ObjectMapper json = new ObjectMapper();

    @AfterEach
    void defaults() {
        System.clearProperty("cask.pack.limit");
        System.clearProperty("cask.gc.rest");
        System.clearProperty("cask.gc.quantum.ms");
        System.clearProperty("cask.gc.rest.busy");
        System.clearProperty("cask.compact.batch");
        System.clearProperty("cask.checkpoint.rest.busy");
    }

    private static final int BLOCK = 4096;
    private static final Pattern VERSION = Pattern.compile("version (\\d+)");

    /**
     * A VM on an NBD connection: batches of writes to distinct random blocks, each batch followed
     * by a FLUSH and a read-back of part of the disk. {@link #flushed} is what the last FLUSH
     * acknowledged; {@link #pending} the blocks written since (after a crash each is old or new).
     */
    private static final class Vm implements AutoCloseable {
        final NbdClient client;
        final byte[] flushed;
        final Map<Integer, byte[]> pending = new HashMap<>();
        final ReentrantLock lock = new ReentrantLock();
        final Random rnd;
        final Thread thread;
        volatile boolean stop;
        volatile boolean dying; // the server is being killed: an I/O error is expected
        volatile String failed;
        int batches;

        final int pauseMillis;

        Vm(int port, String export, byte[] content, long seed) throws IOException {
            this(port, export, content, seed, 3);
        }

        Vm(int port, String export, byte[] content, long seed, int pauseMillis) throws IOException {
            this.pauseMillis = pauseMillis;
            this.client = new NbdClient(port, export);
            this.flushed = content.clone();
            this.rnd = new Random(seed);
            this.thread = new Thread(this::loop, "vm-writer");
            thread.start();
        }

        private void loop() {
            int blocks = flushed.length / BLOCK;
            while (!stop) {
                lock.lock();
                try {
                    List<Integer> chosen = new ArrayList<>();
                    while (chosen.size() < 8) {
                        int b = rnd.nextInt(blocks);
                        if (!chosen.contains(b)) chosen.add(b);
                    }
                    for (int b : chosen) {
                        byte[] data = new byte[BLOCK];
                        rnd.nextBytes(data);
                        pending.put(b, data);
                        client.write((long) b * BLOCK, data);
                    }
                    client.flush();
                    for (var e : pending.entrySet()) System.arraycopy(e.getValue(), 0, flushed, e.getKey() * BLOCK, BLOCK);
                    pending.clear();
                    int off = rnd.nextInt(blocks - 16) * BLOCK;
                    byte[] got = client.read(off, 16 * BLOCK);
                    if (!Arrays.equals(Arrays.copyOfRange(flushed, off, off + 16 * BLOCK), got)) {
                        failed = "a read at " + off + " returned other bytes than were flushed";
                        return;
                    }
                    batches++;
                } catch (IOException e) {
                    if (!dying) failed = "vm: " + e;
                    return;
                } finally {
                    lock.unlock();
                }
                try {
                    Thread.sleep(pauseMillis);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }

        /** Runs {@code work} between two batches (nothing written and not flushed). */
        <T> T quiet(Callable<T> work) throws Exception {
            lock.lock();
            try {
                return work.call();
            } finally {
                lock.unlock();
            }
        }

        /** True when {@code disk} is what a crash may leave: the flushed bytes, each pending block old or new. */
        boolean crashConsistent(byte[] disk) {
            for (int b = 0; b < flushed.length / BLOCK; b++) {
                byte[] got = Arrays.copyOfRange(disk, b * BLOCK, (b + 1) * BLOCK);
                if (Arrays.equals(got, Arrays.copyOfRange(flushed, b * BLOCK, (b + 1) * BLOCK))) continue;
                byte[] p = pending.get(b);
                if (p == null || !Arrays.equals(p, got)) return false;
            }
            return true;
        }

        /** No more batches: returns when the last one is done. */
        void stopWriting() throws InterruptedException {
            stop = true;
            thread.join(30_000);
        }

        @Override
        public void close() throws Exception {
            stopWriting();
            try {
                client.close();
            } catch (IOException e) {
                if (!dying) throw e;
            }
        }
    }

    private JsonNode stats(Cli cli) throws Exception {
        Cli.Result r = cli.run("stats", "--json");
        assertEquals(0, r.code(), r.toString());
        return json.readTree(r.out());
    }

    private byte[] export(Cli cli, String ref) throws Exception {
        Path out = dir.resolve("out.raw");
        Files.deleteIfExists(out);
        Cli.Result r = cli.run("export", ref, out.toString());
        assertEquals(0, r.code(), ref + ": " + r);
        return Files.readAllBytes(out);
    }

    private Path random(String name, long seed, int bytes) throws Exception {
        byte[] b = new byte[bytes];
        new Random(seed).nextBytes(b);
        Path p = dir.resolve(name + ".raw");
        Files.write(p, b);
        return p;
    }

    /** A snapshot of the VM's image between two of its batches; returns the version, recorded with its content in {@code versions}. */
    private int snapshot(Cli cli, Vm vm, String image, Map<Integer, byte[]> versions) throws Exception {
        return vm.quiet(() -> {
            Cli.Result snap = cli.run("snapshot", image, "-m", "kept");
            assertEquals(0, snap.code(), snap.toString());
            Matcher m = VERSION.matcher(snap.out());
            assertTrue(m.find(), snap.out());
            int v = Integer.parseInt(m.group(1));
            versions.put(v, vm.flushed.clone());
            return v;
        });
    }

    private static String log(Server s) {
        return s.log.toString(StandardCharsets.UTF_8);
    }

    /** Waits until the server's log, past {@code from}, matches {@code p}; returns the match's end (or fails). */
    private static int awaitLog(Server s, int from, Pattern p, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            String l = log(s);
            Matcher m = p.matcher(l);
            if (from <= l.length() && m.find(from)) return m.end();
            if (!s.process.isAlive()) break;
            Thread.sleep(10);
        }
        throw new AssertionError("no /" + p + "/ in the server's log in " + seconds + " s: " + log(s).substring(Math.min(from, log(s).length())));
    }

    private static final Pattern GC_DONE = Pattern.compile("INFO cask\\.serve: gc: freed (\\d+) chunks");

    /** The seconds the collection whose GC_DONE line ends at {@code at} rested beside busy clients. */
    private static double busyRested(Server s, int at) {
        String l = log(s);
        String line = l.substring(at, l.indexOf('\n', at) < 0 ? l.length() : l.indexOf('\n', at));
        Matcher m = Pattern.compile("s of it resting, (\\d+\\.\\d) s of that beside busy clients\\)").matcher(line);
        assertTrue(m.find(), line);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void backgroundGcFreesWhatRmLeftWhileAVmWritesAndTheServerCheckpoints() throws Exception {
        System.setProperty("cask.pack.limit", String.valueOf(256 << 10));
        // a rest after every millisecond of work, 19 times as long while the VM writes (199 by
        // default: that gc would take minutes here), 3 times once it is gone
        System.setProperty("cask.gc.quantum.ms", "1");
        System.setProperty("cask.gc.rest.busy", "19");
        long seed = Long.getLong("cask.seed", System.nanoTime());
        System.out.println("ServeGcTest seed " + seed);
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "vm", "2M").code());
        // garbage-to-be and kept data imported by one process, so into the same packs: compaction must copy
        Path keep = random("keep", seed, 1 << 20);
        List<String> importArgs = new ArrayList<>(List.of("import"));
        for (int i = 0; i < 4; i++) importArgs.addAll(List.of(random("g" + i, seed + 1 + i, 2 << 20).toString(), "g" + i));
        importArgs.addAll(List.of(keep.toString(), "keep"));
        assertEquals(0, cli.run(importArgs.toArray(String[]::new)).code());
        Map<Integer, byte[]> versions = new LinkedHashMap<>();
        byte[] last;
        try (Server server = new Server(cli, "--gc-interval", "2s", "--checkpoint-interval", "1s", "--no-warmup", "--log-level", "debug")) {
            try (Vm vm = new Vm(server.port, "vm", new byte[2 << 20], seed)) {
                for (int i = 0; i < 4; i++) {
                    Thread.sleep(300);
                    snapshot(cli, vm, "vm", versions);
                    Cli.Result rm = cli.run("rm", "g" + i);
                    assertEquals(0, rm.code(), rm.toString());
                }
                int from = log(server).length();
                // a collection that started after the last rm: it frees the garbage (or the one before it did)
                int done = awaitLog(server, awaitLog(server, from, Pattern.compile("DEBUG cask\\.serve: gc: starting"), 30), GC_DONE, 120);
                assertTrue(busyRested(server, done) > 0, "the gc the VM wrote through rested at the busy rest: " + log(server));
                snapshot(cli, vm, "vm", versions);
                assertNull(vm.failed, vm.failed);
                assertTrue(vm.batches > 10, "the VM kept writing: " + vm.batches);
                System.out.println("ServeGcTest: the VM wrote " + vm.batches + " batches meanwhile");
                vm.stopWriting();
                last = vm.flushed.clone();
            }
            // the VM is gone (its image checkpointed and closed): two more collections leave nothing to compact
            int from = log(server).length();
            int after = awaitLog(server, awaitLog(server, from, Pattern.compile("DEBUG cask\\.serve: gc: starting"), 30), GC_DONE, 60);
            int idle = awaitLog(server, after, GC_DONE, 60);
            assertEquals(0.0, busyRested(server, idle), "a gc that starts 2 s after the VM left: no client is busy");
            String l = log(server);
            Matcher m = GC_DONE.matcher(l);
            long freed = 0;
            while (m.find()) freed += Long.parseLong(m.group(1));
            assertTrue(freed >= 4 * 512, "the garbage images' 2048 data chunks were freed: " + l);
            assertTrue(l.matches("(?s).*INFO cask\\.serve: gc: freed \\d+ chunks \\([^)]*\\); punched [^;]* in \\d+ packs; compacted \\d+ packs \\(\\d+ rewritten, \\d+ deleted whole: .* became .*\\);"
                    + " \\d+ chunks marked from \\d+ versions; \\d+\\.\\d s \\(\\d+\\.\\d s of it resting, \\d+\\.\\d s of that beside busy clients\\).*"), l);
            assertFalse(l.contains("ERROR cask.serve"), l); // (sqlite-jdbc may log its own, about other processes' native libraries in /tmp)
            JsonNode st = stats(cli);
            System.out.println("ServeGcTest: after the background gc: " + st);
            long live = st.get("live_bytes").asLong();
            long stored = st.get("stored_bytes").asLong();
            // 8 MiB of random garbage was imported; what is left over is at most the packs compaction leaves
            // (the highest-numbered one, the server's own) and the share under the 10 % threshold
            assertTrue(st.get("reclaimable_bytes").asLong() < (1 << 20), "the background gc gave the garbage back: " + st);
            assertTrue(stored <= 1.12 * live + (512 << 10), "stored bytes close to live bytes: " + st);
        }
        assertEquals(0, cli.run("check", "--deep").code());
        for (var e : versions.entrySet()) assertArrayEquals(e.getValue(), export(cli, "vm@" + e.getKey()), "vm@" + e.getKey() + " seed " + seed);
        assertArrayEquals(last, export(cli, "vm"), "seed " + seed);
        assertArrayEquals(Files.readAllBytes(keep), export(cli, "keep"));
    }

    /** Holds a lock as another process would (this JVM is not the cask child). */
    private static FileLock lock(Path file) throws Exception {
        Files.createDirectories(file.getParent());
        return FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE).lock();
    }

    private static String awaitErr(Process p, ByteArrayOutputStream err, String words) throws Exception {
        for (int i = 0; i < 1200 && p.isAlive(); i++) {
            String s = err.toString(StandardCharsets.UTF_8);
            if (s.contains(words)) return s;
            Thread.sleep(50);
        }
        throw new AssertionError("no '" + words + "' on stderr: " + err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void theBackgroundGcAndCaskGcWaitForEachOtherAndSaySo() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("import", random("a", 1, 1 << 20).toString(), "a").code());
        Path store = dir.resolve("store");
        // a cask gc "running" (this JVM holds gc.lock): the server's gc logs that it waits
        FileLock gcLock = lock(store.resolve("gc.lock"));
        Path conf = dir.resolve("serve.conf"); // the interval from the config file, as an operator sets it
        Files.writeString(conf, "gc-interval = 1s\n");
        try (Server server = new Server(cli, "--config", conf.toString(), "--no-warmup")) {
            int at = awaitLog(server, 0, Pattern.compile("INFO cask\\.serve: gc: another gc is running on store .*; waiting for it"), 30);
            Thread.sleep(500);
            assertFalse(GC_DONE.matcher(log(server)).find(at), "it waits: " + log(server));
            gcLock.channel().close();
            at = awaitLog(server, at, GC_DONE, 30);
            // a writer that was running when the server's gc began (this JVM holds its session): the
            // server's gc waits for it, holding gc.lock, and a cask gc meanwhile says it waits for the server's
            FileLock writer = lock(store.resolve("sessions").resolve("999999-1.session"));
            // through the locked channel: closing any other descriptor of the file would drop this process's fcntl lock
            writer.channel().write(java.nio.ByteBuffer.wrap("import of a test\n".getBytes(StandardCharsets.UTF_8)), 0);
            at = awaitLog(server, at, Pattern.compile("INFO cask\\.serve: gc: waiting for writer 999999-1\\.session"), 30);
            Process p = cli.start("gc", "--in-process"); // a JVM of its own (in the server it would wait in-process)
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            Cli.pump(p.getErrorStream(), err);
            Cli.pump(p.getInputStream(), new ByteArrayOutputStream());
            String said = awaitErr(p, err, "waiting for it");
            assertTrue(said.matches("(?s).*cask: gc: another gc is running on store \\S+ \\(pid " + server.process.pid()
                    + ": cask serve \\(background gc\\)\\); waiting for it.*"), said);
            Thread.sleep(300);
            assertTrue(p.isAlive(), "cask gc waits");
            writer.channel().close();
            awaitLog(server, at, GC_DONE, 30);
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
            assertEquals(0, p.exitValue(), err.toString());
        }
        assertEquals(0, cli.run("check", "--deep").code());
    }

    @Test
    void aShutdownStopsARunningGcAtOnce() throws Exception {
        System.setProperty("cask.pack.limit", String.valueOf(64 << 10));
        System.setProperty("cask.gc.rest", "50"); // a crawling gc: it is surely running when SIGTERM comes
        System.setProperty("cask.gc.quantum.ms", "20"); // resting after every 20 ms of work, whatever the default quantum
        Cli cli = new Cli(dir.resolve("store"));
        Path kept = random("k", 7, 2 << 20);
        assertEquals(0, cli.run("import", random("g", 8, 4 << 20).toString(), "g", kept.toString(), "k").code());
        assertEquals(0, cli.run("rm", "g").code());
        Server server = new Server(cli, "--gc-interval", "1s", "--no-warmup", "--log-level", "debug");
        try {
            // a crawling gc reaches compaction after 51 x its busy time: minutes on a loaded machine (CI at load 9 took over 60 s)
            awaitLog(server, 0, Pattern.compile("DEBUG cask\\.serve: gc: compact \\([1-9]"), 240);
        } catch (Throwable t) {
            server.kill(); // not left crawling after the test (a failed wait once left it running for good)
            throw t;
        }
        Thread.sleep(200);
        long t0 = System.nanoTime();
        assertEquals(0, server.stop("TERM"));
        double seconds = (System.nanoTime() - t0) / 1e9;
        String l = log(server);
        assertTrue(l.contains("the running gc stops at its next step"), l);
        assertTrue(l.contains("INFO cask.serve: gc: stopped (SIGTERM) after"), l);
        assertTrue(seconds < 5, "stopped in " + seconds + " s: " + l);
        assertEquals(0, cli.run("check", "--deep").code());
        assertArrayEquals(Files.readAllBytes(kept), export(cli, "k"));
        System.clearProperty("cask.gc.rest");
        System.clearProperty("cask.gc.quantum.ms");
        System.clearProperty("cask.gc.rest.busy");
        Cli.Result gc = cli.run("gc", "--json");
        assertEquals(0, gc.code(), gc.toString());
        assertArrayEquals(Files.readAllBytes(kept), export(cli, "k"));
    }

    @Test
    void aFailedGcIsOneErrorLineAndTheServerKeepsServing() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Path a = random("a", 9, 256 << 10);
        assertEquals(0, cli.run("import", a.toString(), "a").code());
        Path lock = dir.resolve("store").resolve("gc.lock");
        Files.createDirectories(lock); // a gc cannot open it: each one fails
        try (Server server = new Server(cli, "--gc-interval", "1s", "--no-warmup")) {
            int at = awaitLog(server, 0, Pattern.compile("ERROR cask\\.serve: gc failed after \\d+\\.\\d s \\(still serving; the next gc runs in 1s\\): [^\\n]*gc\\.lock[^\\n]*\\n"), 30);
            String line = log(server).substring(log(server).lastIndexOf('\n', at - 2) + 1, at);
            String next = log(server).substring(at);
            assertFalse(next.startsWith("\tat ") || next.startsWith("java.") || next.startsWith("Caused by"), "one line, no stack trace: " + log(server));
            try (NbdClient c = new NbdClient(server.port, "a")) {
                assertArrayEquals(Files.readAllBytes(a), c.read(0, 256 << 10), "still serving after: " + line);
            }
            Files.delete(lock);
            awaitLog(server, at, GC_DONE, 30);
        }
    }

    @Test
    void aBadGcIntervalIsAUsageError() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Cli.Result r = cli.run("serve", "--gc-interval", "banana", "--no-warmup");
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().startsWith("cask: "), r.err());
        assertTrue(r.err().contains("--gc-interval") && r.err().contains("banana"), r.err());
        Path conf = dir.resolve("serve.conf");
        Files.writeString(conf, "gc-interval = banana\n");
        r = cli.run("serve", "--config", conf.toString(), "--no-warmup");
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains("--gc-interval") && r.err().contains("banana"), r.err());
    }

    @Test
    void rmOfAnImageARunningServerServesIsRefused() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Path a = random("a", 3, 1 << 20);
        assertEquals(0, cli.run("import", a.toString(), "a").code());
        assertEquals(0, cli.run("clone", "a", "b").code());
        byte[] want = Files.readAllBytes(a);
        // NAME@VER served read-only by a server that has nothing open read-write
        try (Server server = new Server(cli, "--gc-interval", "0", "--no-warmup");
             NbdClient ro = new NbdClient(server.port, "a@1")) {
            Cli.Result rm = cli.run("rm", "a");
            assertEquals(1, rm.code(), "rm of an image whose version a server exports: " + rm);
            assertTrue(rm.err().contains("in use") && rm.err().contains("'a'"), rm.err());
            assertEquals(0, cli.run("gc").code());
            assertArrayEquals(want, ro.read(0, want.length), "the export reads what it served");
        }
        // the head of an image, served by a --read-only server
        try (Server server = new Server(cli, "--read-only", "--no-warmup");
             NbdClient ro = new NbdClient(server.port, "b")) {
            Cli.Result rm = cli.run("rm", "b");
            assertEquals(1, rm.code(), "rm of an image a --read-only server serves: " + rm);
            assertTrue(rm.err().contains("in use"), rm.err());
            assertEquals(0, cli.run("gc").code());
            assertArrayEquals(want, ro.read(0, want.length));
        }
        // nobody serves them now
        assertEquals(0, cli.run("rm", "a").code());
        assertEquals(0, cli.run("rm", "b").code());
        assertEquals(0, cli.run("check", "--deep").code());
    }

    // ------------------------------------------------------------------ kill -9

    private static final Pattern GC_LINE = Pattern.compile("cask\\.serve: gc: (starting|waiting|another gc|mark|sweep|compact|freed|stopped|failed)");

    /** Where the server's last gc was when it died: the last gc line of its log. */
    private static String phase(String log) {
        Matcher m = GC_LINE.matcher(log);
        String last = "idle";
        while (m.find()) last = m.group(1);
        return switch (last) {
            case "freed", "stopped", "failed" -> "idle";
            case "waiting", "another gc", "starting" -> "begin";
            default -> last;
        };
    }

    @Test
    void killNineOfTheServerWhileItsGcRunsLosesNothing() throws Exception {
        long started = System.nanoTime();
        System.setProperty("cask.pack.limit", String.valueOf(128 << 10));
        System.setProperty("cask.compact.batch", String.valueOf(32 << 10)); // several batches per pack: kills land between them too
        System.setProperty("cask.gc.rest", "1"); // shorter collections, so more of them in the time the test has
        System.setProperty("cask.gc.rest.busy", "1"); // also while its VM writes
        // the timer checkpoints beside the writing VM at a short rest too: at the default (19) they run
        // about 20 times as long, a gc waits for those running when it starts, and fewer collections
        // reached sweep and compaction in the test's time (one run: 2 kills there of 20, 13 in mark)
        System.setProperty("cask.checkpoint.rest.busy", "1");
        long seed = Long.getLong("cask.seed", System.nanoTime());
        System.out.println("ServeGcTest kill seed " + seed);
        Random rnd = new Random(seed);
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "vm", "1M").code());
        // the server's checkpoints (every second) are pruned to the last two: their chunks are garbage too
        assertEquals(0, cli.run("retention", "vm", "--keep-last", "2").code());
        byte[] disk = new byte[1 << 20];
        Map<Integer, byte[]> versions = new TreeMap<>(); // kept versions of vm and their content
        Map<String, Path> kept = new LinkedHashMap<>(); // kept images and their content
        Map<String, Integer> landed = new TreeMap<>();
        int rounds = Integer.getInteger("cask.kill.rounds", 20);
        for (int round = 0; round < rounds; round++) {
            long roundStart = System.nanoTime();
            Server server = new Server(cli, "--gc-interval", "1s", "--checkpoint-interval", "1s", "--prune-interval", "1s",
                    "--no-warmup", "--log-level", "debug");
            Vm vm = new Vm(server.port, "vm", disk, seed * 31 + round, 10);
            String where;
            String killedAt;
            try {
                // garbage: two images imported with a kept one (so into the same packs), then rm'd; an old kept image and an
                // old version of vm go too
                Path g = random("g", seed + 3 * round, 512 << 10);
                Path k = random("k" + round, seed + 3 * round + 1, 128 << 10);
                Path g2 = random("g2", seed + 3 * round + 2, 256 << 10);
                assertEquals(0, cli.run("import", g.toString(), "g" + round, k.toString(), "k" + round, g2.toString(), "h" + round).code());
                kept.put("k" + round, k);
                assertEquals(0, cli.run("rm", "g" + round).code());
                assertEquals(0, cli.run("rm", "h" + round).code());
                if (kept.size() > 3) {
                    String old = kept.keySet().iterator().next();
                    assertEquals(0, cli.run("rm", old).code());
                    kept.remove(old);
                }
                snapshot(cli, vm, "vm", versions);
                while (versions.size() > 3) {
                    int old = versions.keySet().iterator().next();
                    Cli.Result rm = cli.run("rm", "vm@" + old);
                    assertEquals(0, rm.code(), rm.toString());
                    versions.remove(old);
                }
                int from = log(server).length();
                int target = rnd.nextInt(4);
                int extra = rnd.nextInt(target == 1 ? 15 : 60); // a sweep of this much garbage is short
                if (target < 3) {
                    String phase = new String[]{"mark", "sweep", "compact"}[target];
                    try {
                        awaitLog(server, from, Pattern.compile("DEBUG cask\\.serve: gc: " + phase), 3);
                    } catch (AssertionError e) {
                        // that phase did not come in time (a long compaction, nothing to compact): kill where it is
                    }
                    Thread.sleep(extra);
                } else {
                    Thread.sleep(rnd.nextInt(1500));
                }
                killedAt = String.format(java.util.Locale.ROOT, "aimed at %s, killed at %.1f s",
                        target < 3 ? new String[]{"mark", "sweep", "compact"}[target] : "a random time", (System.nanoTime() - roundStart) / 1e9);
                vm.dying = true;
                server.kill();
                where = phase(log(server));
                landed.merge(where, 1, Integer::sum);
            } finally {
                vm.close();
                if (server.process.isAlive()) server.kill();
            }
            assertNull(vm.failed, "seed " + seed + " round " + round + ": " + vm.failed);
            String context = "seed " + seed + " round " + round + " (killed during " + where + ")";
            Cli.Result check = cli.run("check", "--deep");
            assertEquals(0, check.code(), context + ": " + check + "\n" + log(server));
            // what the VM flushed (a crash's journal, folded into a version by the export)
            byte[] now = export(cli, "vm");
            assertTrue(vm.crashConsistent(now), context + ": vm's content is not what it flushed");
            disk = now;
            for (var e : versions.entrySet()) assertArrayEquals(e.getValue(), export(cli, "vm@" + e.getKey()), context + ": vm@" + e.getKey());
            for (var e : kept.entrySet()) assertArrayEquals(Files.readAllBytes(e.getValue()), export(cli, e.getKey()), context + ": " + e.getKey());
            System.out.println(String.format(java.util.Locale.ROOT, "ServeGcTest: round %d: %s, during %s; round %.1f s", round, killedAt, where,
                    (System.nanoTime() - roundStart) / 1e9));
        }
        System.out.println("ServeGcTest: " + rounds + " kills, landed " + landed + " in "
                + String.format(java.util.Locale.ROOT, "%.1f s", (System.nanoTime() - started) / 1e9));
        int inGc = landed.getOrDefault("mark", 0) + landed.getOrDefault("sweep", 0) + landed.getOrDefault("compact", 0) + landed.getOrDefault("begin", 0);
        assertTrue(inGc >= rounds / 2, "seed " + seed + ": most kills land while a gc runs: " + landed);
        assertTrue(landed.getOrDefault("sweep", 0) + landed.getOrDefault("compact", 0) >= 3, "seed " + seed + ": kills land in sweep and compaction: " + landed);
        // a last server: its gc completes on what the kills left, and a clean stop
        try (Server server = new Server(cli, "--gc-interval", "1s", "--no-warmup", "--log-level", "debug")) {
            int at = awaitLog(server, 0, GC_DONE, 60);
            awaitLog(server, at, GC_DONE, 60);
        }
        assertEquals(0, cli.run("check", "--deep").code(), "seed " + seed);
        for (var e : versions.entrySet()) assertArrayEquals(e.getValue(), export(cli, "vm@" + e.getKey()), "seed " + seed + ": vm@" + e.getKey());
        for (var e : kept.entrySet()) assertArrayEquals(Files.readAllBytes(e.getValue()), export(cli, e.getKey()), "seed " + seed + ": " + e.getKey());
        assertArrayEquals(disk, export(cli, "vm"), "seed " + seed);
        System.out.println(String.format(java.util.Locale.ROOT, "ServeGcTest: kill test took %.1f s", (System.nanoTime() - started) / 1e9));
    }
}
