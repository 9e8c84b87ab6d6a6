package dev.cask.cli;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Several processes at once: a VM (an NBD client) writes through {@code cask serve} and the server
 * checkpoints on {@code cask snapshot}, while {@code cask gc} processes (with compaction) run in a
 * loop (every other one in the server, asked through its control socket, the others in their own JVM) and imports of data that is garbage (rm'd after) dedup against it; some of the VM's blocks
 * are copies of that garbage. Afterwards every version the snapshots made exports exactly as the
 * model says, every read through the server during the run returned the model's bytes, and check
 * --deep is clean. Seeded (-Dcask.seed=N replays the data, not the timing).
 */
class GcServeTest {
    @TempDir
    Path dir;

    @AfterEach
    void defaultPacks() {
        System.clearProperty("cask.pack.limit");
        System.clearProperty("cask.cache.bytes");
    }

    @Test
    void aServedVolumeKeepsEveryVersionWhileGcLoops() throws Exception {
        System.setProperty("cask.pack.limit", String.valueOf(256 << 10));
        System.setProperty("cask.cache.bytes", "0"); // the server reads packs, not a cache of plain bytes
        long seed = Long.getLong("cask.seed", System.nanoTime());
        System.out.println("GcServeTest seed " + seed);
        Random rnd = new Random(seed);
        Cli cli = new Cli(dir.resolve("store"));
        byte[] garbage = new byte[1 << 20];
        rnd.nextBytes(garbage);
        Path garbageFile = dir.resolve("garbage.raw");
        Files.write(garbageFile, garbage);
        assertEquals(0, cli.run("create", "vm", "4M").code());
        byte[] model = new byte[4 << 20];
        Map<Integer, byte[]> versions = new LinkedHashMap<>();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<String> gcFailed = new AtomicReference<>();
        AtomicInteger gcs = new AtomicInteger();
        Thread gcLoop = new Thread(() -> {
            try {
                while (!stop.get()) {
                    // in the server (its control socket) and in a JVM of its own, in turn
                    Process p = gcs.get() % 2 == 0 ? cli.start("gc") : cli.start("gc", "--in-process");
                    ByteArrayOutputStream err = new ByteArrayOutputStream();
                    Thread t = Cli.pump(p.getErrorStream(), err);
                    Cli.pump(p.getInputStream(), new ByteArrayOutputStream());
                    if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                        t.join(5000);
                        gcFailed.set("gc: " + err);
                        return;
                    }
                    gcs.incrementAndGet();
                }
            } catch (Exception e) {
                gcFailed.set(e.toString());
            }
        });
        try (Server server = new Server(cli, "--checkpoint-interval", "0", "--no-warmup")) {
            gcLoop.start();
            Pattern ver = Pattern.compile("version (\\d+)");
            try (NbdClient c = new NbdClient(server.port, "vm")) {
                for (int round = 0; round < 12; round++) {
                    for (int w = 0; w < 32; w++) {
                        int blk = rnd.nextInt(1024);
                        byte[] data = new byte[4096];
                        if (rnd.nextInt(3) == 0) System.arraycopy(garbage, 4096 * rnd.nextInt(256), data, 0, 4096);
                        else rnd.nextBytes(data);
                        c.write(blk * 4096L, data);
                        System.arraycopy(data, 0, model, blk * 4096, 4096);
                    }
                    c.flush();
                    // the whole disk read back through the server, whose cached locations point into
                    // packs the gc processes compact and delete
                    for (int off = 0; off < model.length; off += 256 << 10) {
                        assertArrayEquals(java.util.Arrays.copyOfRange(model, off, off + (256 << 10)), c.read(off, 256 << 10),
                                "round " + round + " offset " + off + " seed " + seed);
                    }
                    Cli.Result snap = cli.run("snapshot", "vm", "-m", "round " + round);
                    assertEquals(0, snap.code(), snap.toString());
                    Matcher m = ver.matcher(snap.out());
                    assertTrue(m.find(), snap.out());
                    versions.put(Integer.parseInt(m.group(1)), model.clone());
                    // garbage again after each round; its chunks are what the next writes dedup against
                    assertEquals(0, cli.run("import", garbageFile.toString(), "g" + round).code());
                    assertEquals(0, cli.run("rm", "g" + round).code());
                }
            }
            stop.set(true);
            gcLoop.join(180_000);
        }
        assertEquals(null, gcFailed.get());
        System.out.println("GcServeTest: " + gcs.get() + " gc runs");
        assertTrue(gcs.get() >= 1);
        assertEquals(0, cli.run("gc").code());
        assertEquals(0, cli.run("check", "--deep").code(), "seed " + seed);
        for (var e : versions.entrySet()) {
            Path out = dir.resolve("v" + e.getKey() + ".raw");
            Cli.Result r = cli.run("export", "vm@" + e.getKey(), out.toString());
            assertEquals(0, r.code(), "seed " + seed + ": " + r);
            assertArrayEquals(e.getValue(), Files.readAllBytes(out), "vm@" + e.getKey() + " seed " + seed);
        }
    }
}
