package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code cask gc} as a user runs it: what it frees, --json and --dry-run, a second gc and a
 * running writer make it wait (and say so), a writer that died does not, and kill -9 of a real
 * gc process at random points leaves a store that checks clean and whose next gc completes.
 * -Dcask.seed=N replays the data and the kill delays (not the timing they meet).
 */
class GcTest {
    @TempDir
    Path dir;

    private Path store() {
        return dir.resolve("store");
    }

    private Path raw(String name, long seed, int mib) throws Exception {
        byte[] disk = new byte[mib << 20];
        new Random(seed).nextBytes(disk);
        Path p = dir.resolve(name + ".raw");
        Files.write(p, disk);
        return p;
    }

    @Test
    void freesWhatRmHeldDryRunChangesNothingAndCheckStaysClean() throws Exception {
        Cli cli = new Cli(store());
        Path a = raw("a", 1, 2);
        Path b = raw("b", 2, 2);
        assertEquals(0, cli.run("import", a.toString(), "a").code());
        assertEquals(0, cli.run("import", b.toString(), "b").code());
        assertEquals(0, cli.run("clone", "a", "a2").code());
        assertEquals(0, cli.run("rm", "b").code());
        long reclaimable = Cli.json(cli.run("check", "--json")).get("reclaimable_bytes").asLong();
        JsonNode stats = Cli.json(cli.run("stats", "--json"));
        assertEquals(reclaimable, stats.get("reclaimable_bytes").asLong(), "stats and check agree: " + stats);
        assertEquals(stats.get("stored_bytes").asLong(), stats.get("live_bytes").asLong() + stats.get("reclaimable_bytes").asLong()
                + 16L * stats.get("packs").asLong(), stats.toString());
        assertTrue(stats.get("live_bytes").asLong() > 2L << 20, "a's 2 MiB of random data and its pointer chunks: " + stats);
        JsonNode dry = Cli.json(cli.run("gc", "--dry-run", "--json"));
        assertTrue(dry.get("dry_run").asBoolean());
        assertEquals(512 + 5, dry.get("chunks_freed").asLong(), dry.toString()); // b's 512 data chunks, 4 level-1 pointer chunks, its top
        JsonNode gc = Cli.json(cli.run("gc", "--json"));
        assertEquals(dry.get("chunks_freed").asLong(), gc.get("chunks_freed").asLong(), gc.toString());
        assertEquals(reclaimable, gc.get("bytes_freed").asLong(), "what check called reclaimable is what gc freed");
        for (String f : new String[]{"chunks_marked", "chunks_freed", "bytes_freed", "packs_rewritten", "seconds"}) assertTrue(gc.has(f), f);
        assertEquals(0, cli.run("check", "--deep").code());
        cli.assertExports("a", a);
        cli.assertExports("a2", a);
        assertEquals(0, Cli.json(cli.run("gc", "--json")).get("chunks_freed").asLong());
        // b's data can come back
        assertEquals(0, cli.run("import", b.toString(), "b").code());
        cli.assertExports("b", b);
        assertEquals(0, cli.run("check", "--deep").code());
    }

    /** Holds a lock as another process would (this JVM is not the cask child). */
    private static FileLock lock(Path file) throws Exception {
        Files.createDirectories(file.getParent());
        return FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE).lock();
    }

    private static String waitForLine(Process p, ByteArrayOutputStream err, String words) throws Exception {
        for (int i = 0; i < 1200 && p.isAlive(); i++) {
            String s = err.toString(StandardCharsets.UTF_8);
            if (s.contains(words)) return s;
            Thread.sleep(50);
        }
        throw new AssertionError("no '" + words + "' on stderr: " + err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void aSecondGcWaitsAndSaysSo() throws Exception {
        Cli cli = new Cli(store());
        assertEquals(0, cli.run("import", raw("a", 3, 1).toString(), "a").code());
        FileLock held = lock(store().resolve("gc.lock")); // a gc "running"
        Process p = cli.start("gc", "--json");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Cli.pump(p.getErrorStream(), err);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Cli.pump(p.getInputStream(), out);
        waitForLine(p, err, "another gc is running");
        assertTrue(p.isAlive(), "it waits");
        held.channel().close();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), err.toString());
    }

    @Test
    void aRunningWriterIsWaitedForAndADeadOneIsNot() throws Exception {
        Cli cli = new Cli(store());
        assertEquals(0, cli.run("import", raw("a", 4, 1).toString(), "a").code());
        Path dead = store().resolve("sessions").resolve("1-1.session");
        Files.createDirectories(dead.getParent());
        Files.writeString(dead, "import of a writer killed long ago\n");
        FileLock live = lock(store().resolve("sessions").resolve("2-1.session"));
        Process p = cli.start("gc");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Cli.pump(p.getErrorStream(), err);
        Cli.pump(p.getInputStream(), new ByteArrayOutputStream());
        String said = waitForLine(p, err, "waiting for writer 2-1.session");
        assertFalse(said.contains("1-1.session"), "a session nobody holds is dead: " + said);
        assertTrue(p.isAlive());
        live.channel().close();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), err.toString());
        assertFalse(Files.exists(dead), "the dead session's file is gone");
    }

    @org.junit.jupiter.api.AfterEach
    void defaultPacks() {
        System.clearProperty("cask.pack.limit");
    }

    /** Small packs (here and in the child processes), so that compaction has packs to rewrite and kills land in it. */
    @Test
    void killNineAtRandomPointsThenCheckIsCleanAndTheNextGcCompletes() throws Exception {
        System.setProperty("cask.pack.limit", String.valueOf(256 << 10));
        long seed = Long.getLong("cask.seed", System.nanoTime());
        System.out.println("GcTest seed " + seed);
        Random rnd = new Random(seed);
        Cli cli = new Cli(store());
        Path kept = raw("kept", seed, 4);
        assertEquals(0, cli.run("import", kept.toString(), "kept").code());
        java.util.Map<String, Path> keptToo = new java.util.LinkedHashMap<>();
        int killedRunning = 0;
        for (int round = 0; round < 10; round++) {
            // garbage and kept data in one process, so into the same packs: compaction must copy
            Path g = raw("g" + round, seed + round + 1, 1);
            Path k = raw("k" + round + "x", seed + round + 1001, 1);
            Path g2 = raw("g" + round + "b", seed + round + 2001, 1);
            assertEquals(0, cli.run("import", g.toString(), "g" + round, k.toString(), "kx" + round, g2.toString(), "gb" + round).code());
            keptToo.put("kx" + round, k);
            assertEquals(0, cli.run("clone", "kept", "k" + round).code());
            assertEquals(0, cli.run("rm", "g" + round).code());
            assertEquals(0, cli.run("rm", "gb" + round).code());
            Process p = cli.start("gc");
            Cli.pump(p.getErrorStream(), new ByteArrayOutputStream());
            Cli.pump(p.getInputStream(), new ByteArrayOutputStream());
            // a JVM start is ~0.5 s here; the delays spread over 0.3-1.8 s, one slot a round, so
            // the first rounds kill early on any machine and the last ones late in the gc
            long delay = 300 + round * 150L + rnd.nextInt(150);
            boolean done = p.waitFor(delay, TimeUnit.MILLISECONDS);
            if (!done) killedRunning++;
            p.destroyForcibly();
            p.waitFor(30, TimeUnit.SECONDS);
            Cli.Result check = cli.run("check", "--deep");
            assertEquals(0, check.code(), "seed " + seed + " round " + round + " killed after " + delay + " ms: " + check);
        }
        System.out.println("GcTest: " + killedRunning + " of 10 gc processes killed while running");
        assertTrue(killedRunning >= 1, "seed " + seed + ": at least one kill must land while gc runs");
        Cli.Result next = cli.run("gc", "--json");
        assertEquals(0, next.code(), "seed " + seed + ": " + next);
        // a killed gc's copies that were never switched to sit in its pack; while that is the highest
        // numbered pack compaction leaves it (pack numbers are never used twice): the gc after next takes it
        assertEquals(0, Cli.json(cli.run("gc", "--json")).get("chunks_freed").asLong());
        JsonNode last = Cli.json(cli.run("gc", "--json"));
        assertEquals(0, last.get("chunks_freed").asLong());
        assertEquals(0, last.get("packs_rewritten").asLong() + last.get("packs_deleted").asLong(), "then nothing is left to compact: " + last);
        JsonNode stats = Cli.json(cli.run("stats", "--json"));
        assertTrue(stats.get("stored_bytes").asLong() <= 1.12 * stats.get("live_bytes").asLong(), "after gc the store is close to its live bytes: " + stats);
        assertEquals(0, cli.run("check", "--deep").code());
        cli.assertExports("kept", kept);
        cli.assertExports("k9", kept);
        for (var e : keptToo.entrySet()) cli.assertExports(e.getKey(), e.getValue());
    }
}
