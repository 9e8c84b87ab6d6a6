package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code cask gc --recompress} as a user runs it: images that are look-alikes of each other
 * (every block of one is a block of the other with a few bytes changed, so nothing dedups)
 * take far fewer bytes once their chunks sit next to each other; every version exports bit for
 * bit, {@code check --deep} is clean, and a second run leaves the packs the first one wrote. And
 * kill -9 of a real recompressing gc at random points leaves a store that checks clean, whose
 * next run completes and whose every image still exports bit for bit. -Dcask.seed=N replays the
 * data and the kill delays.
 */
class RecompressTest {
    @TempDir
    Path dir;

    @AfterEach
    void defaults() {
        System.clearProperty("cask.pack.limit");
        System.clearProperty("cask.recompress.batch");
    }

    private static final String[] WORDS = ("the quick brown fox jumps over lazy dog package version debian linux kernel module"
            + " config file system user group daemon service network address port route table entry value").split(" ");

    /** {@code mib} MiB of text-like blocks (random words: each 4 KiB block compresses about 3 x alone, and is unique). */
    private Path text(String name, long seed, int mib) throws Exception {
        Random rnd = new Random(seed);
        StringBuilder b = new StringBuilder((mib << 20) + 64);
        while (b.length() < mib << 20) b.append(WORDS[rnd.nextInt(WORDS.length)]).append(rnd.nextInt(10) == 0 ? '\n' : ' ');
        byte[] disk = java.util.Arrays.copyOf(b.toString().getBytes(StandardCharsets.US_ASCII), mib << 20);
        Path p = dir.resolve(name + ".raw");
        Files.write(p, disk);
        return p;
    }

    /** A look-alike of {@code of}: every 4 KiB block with a few bytes changed at random places. */
    private Path lookAlike(Path of, String name, long seed) throws Exception {
        byte[] disk = Files.readAllBytes(of);
        Random rnd = new Random(seed);
        for (int block = 0; block < disk.length; block += 4096) {
            for (int k = 0; k < 3; k++) disk[block + rnd.nextInt(4096)] = (byte) ('A' + rnd.nextInt(26));
        }
        Path p = dir.resolve(name + ".raw");
        Files.write(p, disk);
        return p;
    }

    @Test
    void lookAlikeImagesShrinkAndEveryVersionExportsExactly() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Path a = text("a", 1, 4);
        Path b = lookAlike(a, "b", 2);
        Path c = lookAlike(b, "c", 3);
        // one process each, so each image's chunks are in packs of their own, none next to its look-alikes
        assertEquals(0, cli.run("import", a.toString(), "team/a").code());
        assertEquals(0, cli.run("import", b.toString(), "team/b").code());
        assertEquals(0, cli.run("import", c.toString(), "team/c").code());
        long storedBefore = Cli.json(cli.run("stats", "--json")).get("stored_bytes").asLong();

        JsonNode r = Cli.json(cli.run("gc", "--recompress", "--json"));
        assertEquals(r.get("chunks_marked").asLong(), r.get("chunks_recompressed").asLong(), "every chunk of the three images, and their trees': " + r);
        assertTrue(r.get("chunks_marked").asLong() > 3 * 1024, r.toString());
        assertTrue(r.get("packs_recompressed").asLong() >= 3, r.toString());
        long before = r.get("recompress_bytes_before").asLong();
        long after = r.get("recompress_bytes_after").asLong();
        // alone, each image compresses about 3 x; next to its look-alike, b and c cost little more than their changes
        assertTrue(after < 0.6 * before, "recompressed " + before + " -> " + after + " bytes: " + r);
        long storedAfter = Cli.json(cli.run("stats", "--json")).get("stored_bytes").asLong();
        assertTrue(storedAfter < 0.6 * storedBefore, "stored bytes " + storedBefore + " -> " + storedAfter);
        assertEquals(0, cli.run("check", "--deep").code());
        cli.assertExports("team/a", a);
        cli.assertExports("team/b", b);
        cli.assertExports("team/c", c);

        JsonNode again = Cli.json(cli.run("gc", "--recompress", "--json"));
        assertEquals(0, again.get("packs_recompressed").asLong(), "the packs a recompression wrote are left: " + again);
        Cli.Result text = cli.run("gc", "--recompress");
        assertEquals(0, text.code(), text.toString());
        assertTrue(text.out().contains("recompressed: 0 packs"), text.out());
        assertEquals(storedAfter, Cli.json(cli.run("stats", "--json")).get("stored_bytes").asLong());
    }

    @Test
    void aSharedStoreIsAUsageErrorBeforeAnythingRuns() {
        Cli shared = new Cli(java.util.List.of("--store", "s3://bucket/prefix", "--catalog", "postgresql://127.0.0.1:1/nothing"), Map.of());
        Cli.Result r = shared.run("gc", "--recompress");
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains("--recompress works on a local store only (this store is s3://bucket/prefix)"), r.err());
    }

    /** Small packs and batches (here and in the child processes), so that a run has many steps for the kills to land in. */
    @Test
    void killNineAtRandomPointsThenCheckIsCleanAndTheNextRunCompletes() throws Exception {
        System.setProperty("cask.pack.limit", String.valueOf(512 << 10));
        System.setProperty("cask.recompress.batch", String.valueOf(64 << 10));
        long seed = Long.getLong("cask.seed", System.nanoTime());
        System.out.println("RecompressTest seed " + seed);
        Random rnd = new Random(seed);
        Cli cli = new Cli(dir.resolve("store"));
        Map<String, Path> images = new LinkedHashMap<>();
        Path base = text("base", seed, 4);
        images.put("base", base);
        assertEquals(0, cli.run("import", base.toString(), "base").code());
        int killedRunning = 0;
        for (int round = 0; round < 8; round++) {
            Path next = lookAlike(base, "v" + round, seed + round + 1);
            images.put("v" + round, next);
            assertEquals(0, cli.run("import", next.toString(), "v" + round).code());
            Process p = cli.start("gc", "--recompress");
            Cli.pump(p.getErrorStream(), new ByteArrayOutputStream());
            Cli.pump(p.getInputStream(), new ByteArrayOutputStream());
            // a JVM start is ~0.5 s here: the delays spread over 0.4-2.5 s, one slot a round
            long delay = 400 + round * 250L + rnd.nextInt(250);
            boolean done = p.waitFor(delay, TimeUnit.MILLISECONDS);
            if (!done) killedRunning++;
            p.destroyForcibly();
            p.waitFor(30, TimeUnit.SECONDS);
            Cli.Result check = cli.run("check", "--deep");
            assertEquals(0, check.code(), "seed " + seed + " round " + round + " killed after " + delay + " ms: " + check);
        }
        System.out.println("RecompressTest: " + killedRunning + " of 8 recompressing gc processes killed while running");
        assertTrue(killedRunning >= 1, "seed " + seed + ": at least one kill must land while the gc runs");
        JsonNode last = Cli.json(cli.run("gc", "--recompress", "--json"));
        assertEquals(0, cli.run("check", "--deep").code(), "after the last run: " + last);
        for (var e : images.entrySet()) cli.assertExports(e.getKey(), e.getValue());
        JsonNode stats = Cli.json(cli.run("stats", "--json"));
        assertTrue(stats.get("stored_bytes").asLong() <= 1.12 * stats.get("live_bytes").asLong(),
                "the copies killed runs left are garbage the next gc gives back: " + stats + " after " + last);
    }
}
