package dev.cask.cli;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code cask serve}'s timer checkpoints are paced beside busy clients: while a VM keeps writing,
 * the server's automatic checkpoints rest (their log line says how long, all of it beside busy
 * clients), every version they make holds what the VM had flushed, and a {@code cask snapshot}
 * meanwhile is answered (it hurries a paced checkpoint rather than waiting out its rests). The
 * close when the VM leaves is not paced. A bad {@code cask.checkpoint.rest.busy} stops the server
 * at its start with one line naming it.
 */
class ServeCheckpointPaceTest {
    @TempDir
    Path dir;

    private static final Pattern PACED = Pattern.compile(
            "automatic checkpoint -> version (\\d+) \\([^)]*\\) in \\d+\\.\\d+ s \\(paced: (\\d+\\.\\d+) s of it resting, (\\d+\\.\\d+) s of that beside busy clients");

    /** Far above what a test writes: no journal-full checkpoint hurries a paced one here, only what the test means to. */
    private static final String JOURNAL_LIMIT = "32G";

    @AfterEach
    void clear() {
        System.clearProperty("cask.checkpoint.rest.busy");
    }

    @Test
    void timerCheckpointsRestBesideAWritingVm() throws Exception {
        System.setProperty("cask.checkpoint.rest.busy", "3"); // short rests: several checkpoints in the test's time
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "vm", "16M").code());
        byte[] flushed = new byte[16 << 20];
        AtomicReference<String> failed = new AtomicReference<>();
        try (Server server = new Server(cli, "--checkpoint-interval", "1s", "--gc-interval", "0", "--no-warmup", "--journal-limit", JOURNAL_LIMIT)) {
            var done = new java.util.concurrent.atomic.AtomicBoolean();
            Thread vm = writer(server, 7, flushed, null, done, done, failed);
            Matcher m = awaitLog(server, PACED, 120);
            assertTrue(Double.parseDouble(m.group(3)) > 0, "a checkpoint beside the writing VM rested: " + m.group());
            assertEquals(m.group(2), m.group(3), "all of its rest beside busy clients: " + m.group());
            Cli.Result snap = cli.run("snapshot", "vm", "-m", "while paced");
            assertEquals(0, snap.code(), snap.toString());
            done.set(true);
            vm.join(60_000);
            assertNull(failed.get(), failed.get());
            Path out = dir.resolve("out.raw");
            assertEquals(0, cli.run("export", "vm", out.toString()).code()); // a checkpoint for the export, then the content
            byte[] got = Files.readAllBytes(out);
            synchronized (flushed) {
                assertArrayEquals(flushed, got, "the exported content is what the VM flushed");
            }
            Matcher close = awaitLog(server, Pattern.compile("closed image 'vm'"), 60);
            assertTrue(close.start() > 0);
            for (String line : server.log.toString(StandardCharsets.UTF_8).split("\n")) {
                if (line.contains("checkpoint on close -> version")) assertTrue(!line.contains("(paced:"), "a close is not paced: " + line);
            }
        }
    }

    /**
     * A server stopped (SIGTERM) while its timer checkpoint rests beside a writing VM (at a rest
     * of 1000 x, minutes away from done) stops at once: the checkpoint is hurried, not interrupted
     * (an interrupt failed it, "checkpoint failed: interrupted", and one in a FileChannel call
     * would close the store's packs under every thread), and every flushed write is in the image.
     */
    @Test
    void aStopHurriesAPacedCheckpoint() throws Exception {
        System.setProperty("cask.checkpoint.rest.busy", "1000");
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "vm", "16M").code());
        byte[] flushed = new byte[16 << 20];
        AtomicReference<java.util.Map.Entry<Integer, byte[]>> inFlight = new AtomicReference<>();
        var stopping = new java.util.concurrent.atomic.AtomicBoolean();
        AtomicReference<String> failed = new AtomicReference<>();
        Server server = new Server(cli, "--checkpoint-interval", "1s", "--gc-interval", "0", "--no-warmup", "--journal-limit", JOURNAL_LIMIT);
        try {
            Thread vm = writer(server, 11, flushed, inFlight, new java.util.concurrent.atomic.AtomicBoolean(), stopping, failed); // until the stop cuts it off
            Thread.sleep(4000); // the first timer checkpoints beside the VM: one is resting now (20 s or more per 20 ms of work)
            stopping.set(true);
            assertEquals(0, server.stop("TERM"), server.log.toString(StandardCharsets.UTF_8));
            vm.join(60_000);
        } finally {
            server.close();
        }
        assertNull(failed.get(), failed.get());
        String log = server.log.toString(StandardCharsets.UTF_8);
        assertTrue(!log.contains("checkpoint failed"), log);
        assertTrue(Pattern.compile("automatic checkpoint -> version \\d+ .*; hurried\\)").matcher(log).find(), "the stop hurried the paced checkpoint: " + log);
        Path out = dir.resolve("out.raw");
        assertEquals(0, cli.run("export", "vm", out.toString()).code());
        byte[] got = Files.readAllBytes(out);
        synchronized (flushed) {
            // the write the stop cut off before its flush returned may be in the image or not: the
            // server took it (a stop checkpoints what it has), the VM never heard
            var cut = inFlight.get();
            if (cut != null && !java.util.Arrays.equals(flushed, got)) System.arraycopy(cut.getValue(), 0, flushed, cut.getKey(), cut.getValue().length);
            assertArrayEquals(flushed, got, "every flushed write is in the image" + (cut != null ? " (and maybe the write at " + cut.getKey() + " the stop cut off)" : ""));
        }
    }

    /**
     * {@code cask gc} beside a paced timer checkpoint (a rest of 1000 x: tens of seconds per rest)
     * hurries it: a collection waits for the checkpoints under way when it starts, and someone
     * waits for this one.
     */
    @Test
    void caskGcHurriesAPacedCheckpoint() throws Exception {
        System.setProperty("cask.checkpoint.rest.busy", "1000");
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "vm", "16M").code());
        var done = new java.util.concurrent.atomic.AtomicBoolean();
        AtomicReference<String> failed = new AtomicReference<>();
        try (Server server = new Server(cli, "--checkpoint-interval", "1s", "--gc-interval", "0", "--no-warmup", "--journal-limit", JOURNAL_LIMIT)) {
            Thread vm = writer(server, 13, null, null, done, done, failed);
            Thread.sleep(4000); // a timer checkpoint beside the VM is resting now
            Cli.Result gc = cli.run("gc");
            assertEquals(0, gc.code(), gc.toString());
            assertTrue(gc.out().contains("(in cask serve, pid "), gc.out());
            Matcher m = awaitLog(server, Pattern.compile("automatic checkpoint -> version \\d+ .*; hurried\\)"), 60);
            assertTrue(m.start() > 0, "the gc hurried the paced checkpoint");
            done.set(true);
            vm.join(60_000);
            assertNull(failed.get(), failed.get());
        }
    }

    @Test
    void aBadRestIsOneLineAtTheStart() throws Exception {
        System.setProperty("cask.checkpoint.rest.busy", "-1");
        Cli cli = new Cli(dir.resolve("store"));
        Process p = cli.startInterruptible("serve", "--listen", "127.0.0.1:0", "--no-warmup");
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(1, p.exitValue(), err);
        assertTrue(err.contains("cask: system property cask.checkpoint.rest.busy: '-1' is not a number from 0 to 1000"), err);
    }

    /**
     * A VM on its own thread: 1 MiB of new data at a time (a batch of a checkpoint) at a random
     * MiB of the 16 MiB disk, each followed by a FLUSH, copied into {@code flushed} (if not null)
     * once the FLUSH returned; until {@code done}, or until the connection fails, which is a
     * failure ({@code failed}) unless {@code ending} was set before.
     */
    /**
     * A VM writing 1 MiB of random data at a random place of the 16 MiB image, then flushing, until
     * {@code done}; each flushed write goes into {@code flushed} (when given), and the write whose
     * flush has not returned yet is in {@code inFlight} (when given).
     */
    private static Thread writer(Server server, long seed, byte[] flushed, AtomicReference<java.util.Map.Entry<Integer, byte[]>> inFlight,
                                 java.util.concurrent.atomic.AtomicBoolean done, java.util.concurrent.atomic.AtomicBoolean ending, AtomicReference<String> failed) {
        return Thread.ofPlatform().start(() -> {
            Random rnd = new Random(seed);
            try (NbdClient c = new NbdClient(server.port, "vm")) {
                while (!done.get()) {
                    int at = rnd.nextInt(16) << 20;
                    byte[] data = new byte[1 << 20];
                    rnd.nextBytes(data);
                    if (inFlight != null) inFlight.set(java.util.Map.entry(at, data));
                    c.write(at, data);
                    c.flush();
                    if (flushed != null) {
                        synchronized (flushed) {
                            System.arraycopy(data, 0, flushed, at, data.length);
                        }
                    }
                    if (inFlight != null) inFlight.set(null);
                }
            } catch (Exception e) {
                if (!ending.get()) failed.set(e.toString());
            }
        });
    }

    private static Matcher awaitLog(Server s, Pattern p, int seconds) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < deadline) {
            Matcher m = p.matcher(s.log.toString(StandardCharsets.UTF_8));
            if (m.find()) return m;
            if (!s.process.isAlive()) break;
            Thread.sleep(20);
        }
        throw new AssertionError("no /" + p + "/ in the server's log in " + seconds + " s: " + s.log.toString(StandardCharsets.UTF_8));
    }
}
