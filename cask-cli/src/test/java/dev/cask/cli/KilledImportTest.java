package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A {@code cask import} that dies (kill -9 at a random point, or Ctrl-C) leaves a store that
 * {@code cask check} calls healthy: what the import wrote is reclaimable, never damage, no image
 * appears, and importing the same file again works and reads back bit for bit. Most rounds kill
 * an import from stdin before its input has ended, so the kill lands mid-import on any machine.
 * Seeded: -Dcask.seed=N replays the data, the cut points and the kill delays (not the timing
 * they meet).
 */
class KilledImportTest {
    @TempDir
    Path dir;

    /** Blocks of 4 KiB: a third random, a third text-like (segments), a third zero. */
    private static byte[] disk(Random rnd, int size) {
        byte[] b = new byte[size];
        byte[] word = "pack segment chunk ".getBytes(StandardCharsets.US_ASCII);
        for (int at = 0; at < size; at += 4096) {
            switch ((at / 4096) % 3) {
                case 0 -> {
                    byte[] noise = new byte[4096];
                    rnd.nextBytes(noise);
                    System.arraycopy(noise, 0, b, at, 4096);
                }
                case 1 -> {
                    int salt = rnd.nextInt();
                    for (int i = 0; i < 4096; i++) b[at + i] = i < 4 ? (byte) (salt >> (8 * i)) : word[i % word.length];
                }
                default -> { } // zeros
            }
        }
        return b;
    }

    @Test
    void importsKilledAtRandomPointsLeaveAStoreThatChecksClean() throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        Cli cli = new Cli(dir.resolve("store"));
        Path raw = dir.resolve("disk.raw");
        Files.write(raw, disk(rnd, 48 << 20));
        ObjectMapper json = new ObjectMapper();
        byte[] data = Files.readAllBytes(raw);
        for (int round = 0; round < 6; round++) {
            String at = "seed=" + seed + " round=" + round;
            // two rounds in three import from stdin and are killed while it still has data to
            // come: surely mid-import, whatever the machine's speed; the third imports the file
            // and is killed after a random delay (mid-import, mid-commit or after it finished)
            boolean fromStdin = round % 3 != 2;
            Process p = fromStdin ? cli.start("import", "-", "killed-" + round) : cli.start("import", raw.toString(), "killed-" + round);
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            Cli.pump(p.getErrorStream(), err);
            Cli.pump(p.getInputStream(), new ByteArrayOutputStream());
            if (fromStdin) {
                // a pipe holds 64 KiB: once the write returns, the import has taken all but that
                int fed = 4096 * rnd.nextInt(data.length / 4096 - 32);
                try {
                    p.getOutputStream().write(data, 0, fed);
                    p.getOutputStream().flush();
                } catch (java.io.IOException e) {
                    throw new AssertionError(at + ": cask import stopped reading stdin: " + err, e);
                }
                Thread.sleep(rnd.nextInt(300));
            } else {
                Thread.sleep(300 + rnd.nextInt(2500));
            }
            p.destroyForcibly();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), at);
            boolean finished = p.exitValue() == 0;
            assertTrue(!fromStdin || !finished, at + ": an import whose stdin is still open cannot finish: " + err);
            boolean torn = round % 2 == 1 && tearNewestPack(rnd);

            Cli.Result check = cli.run("check");
            assertEquals(0, check.code(), at + ": check after kill -9: " + check);
            assertTrue(!check.out().contains("problem"), at + ": " + check);
            if (torn) {
                // the killed writer's pack: cut when the store opened; a sealed one: a note, reclaimable
                assertTrue(check.err().contains("cut a torn tail of ") || check.out().contains("note: pack "), at + ": " + check);
            }
            JsonNode images = json.readTree(cli.run("ls", "--json").out());
            // killed mid-import: no image; a kill after the commit but before the exit (closing,
            // the summary) leaves the image: then it must be whole; a finished import always leaves it
            if (fromStdin) assertEquals(0, images.size(), at + ": killed with stdin open, yet an image: " + images);
            if (finished) assertEquals(1, images.size(), at + ": " + images);
            assertTrue(images.size() <= 1, at + ": " + images);
            if (images.size() == 1) {
                Path back = dir.resolve("killed.raw");
                assertEquals(0, cli.run("export", "killed-" + round, back.toString()).code(), at);
                Cli.mustTool("cmp", raw.toString(), back.toString());
                Files.delete(back);
                assertEquals(0, cli.run("rm", "killed-" + round).code());
            }
        }

        // the same file imports again, reads back whole, and the store checks clean (deep)
        Cli.Result again = cli.run("import", raw.toString(), "again");
        assertEquals(0, again.code(), "seed=" + seed + ": " + again);
        Path out = dir.resolve("again.raw");
        assertEquals(0, cli.run("export", "again", out.toString()).code());
        Cli.mustTool("cmp", raw.toString(), out.toString());
        Cli.Result deep = cli.run("check", "--deep");
        assertEquals(0, deep.code(), "seed=" + seed + ": " + deep);
    }

    @Test
    void ctrlCOfAnImportSaysSoExits130AndLeavesNoImage() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "other", "1M").code());
        // import from stdin, and stop feeding it after 8 MiB: the import is surely under way, waiting for more
        Process p = cli.startInterruptible("import", "-", "half");
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Thread errPump = Cli.pump(p.getErrorStream(), err);
        Thread outPump = Cli.pump(p.getInputStream(), out);
        OutputStream stdin = p.getOutputStream();
        byte[] data = disk(new Random(5), 8 << 20);
        stdin.write(data);
        stdin.flush();
        // the import has read them once its pack holds some of them (or give it 60 s)
        Path packs = dir.resolve("store").resolve("packs");
        for (int i = 0; i < 600 && packBytes(packs) < (2 << 20); i++) Thread.sleep(100);
        assertTrue(packBytes(packs) >= (2 << 20), "the import did not start writing: " + err);
        Cli.mustTool("kill", "-INT", String.valueOf(p.pid()));
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "cask import did not stop on SIGINT");
        errPump.join();
        outPump.join();
        stdin.close();
        String e = err.toString(StandardCharsets.UTF_8);
        assertEquals(130, p.exitValue(), e);
        assertEquals("cask: interrupted", e.strip(), "one line, no stack trace");
        JsonNode images = new ObjectMapper().readTree(cli.run("ls", "--json").out());
        assertEquals(1, images.size(), "only the image that was there: " + images);
        Cli.Result check = cli.run("check");
        assertEquals(0, check.code(), check.toString());
        assertTrue(check.out().contains("reclaimable"), "the interrupted import's chunks are reclaimable: " + check.out());
    }

    /**
     * Appends the start of a record to the newest pack, as the kernel leaves it when a process is
     * killed in the middle of a write (a fatal signal between pages cuts the write short) or a
     * power cut keeps part of the unsynced pages: a torn tail.
     */
    private boolean tearNewestPack(Random rnd) throws java.io.IOException {
        Path packs = dir.resolve("store").resolve("packs");
        if (!Files.isDirectory(packs)) return false; // killed before it made the store
        Path newest;
        try (var s = Files.list(packs)) {
            newest = s.filter(f -> f.toString().endsWith(".pack")).max(java.util.Comparator.naturalOrder()).orElse(null);
        }
        if (newest == null || Files.size(newest) < 16) return false; // killed before its first pack had a header: nothing to tear
        byte[] torn = new byte[1 + rnd.nextInt(3000)];
        rnd.nextBytes(torn);
        byte[] magic = "crec".getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(magic, 0, torn, 0, Math.min(magic.length, torn.length));
        Files.write(newest, torn, java.nio.file.StandardOpenOption.APPEND);
        return true;
    }

    private static long packBytes(Path packs) throws java.io.IOException {
        if (!Files.isDirectory(packs)) return 0;
        long sum = 0;
        try (var s = Files.list(packs)) {
            for (Path f : s.toList()) if (f.toString().endsWith(".pack")) sum += Files.size(f);
        }
        return sum;
    }
}
