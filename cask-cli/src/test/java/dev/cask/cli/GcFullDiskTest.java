package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The disk fills up while compaction copies a pack's live chunks: gc stops with one clear line,
 * its partial copy is cut back, nothing is lost (check --deep clean, every image exports bit for
 * bit), and once there is room the next gc completes. A tmpfs as in FullDiskTest (needs root; it
 * fails rather than skips without it).
 */
class GcFullDiskTest {
    @TempDir
    Path dir;
    private Path mnt;

    @AfterEach
    void unmount() throws Exception {
        System.clearProperty("cask.pack.limit");
        System.clearProperty("cask.gc.punch");
        if (mnt != null) Cli.mustTool("umount", "--lazy", mnt.toString());
    }

    @Test
    void diskFullDuringCompactionStopsCleanlyAndTheNextGcCompletes() throws Exception {
        System.setProperty("cask.pack.limit", String.valueOf(2 << 20));
        System.setProperty("cask.gc.punch", "false"); // a full disk during the copies (punching needs no room and copies nothing)
        mnt = dir.resolve("small");
        Files.createDirectories(mnt);
        Cli.mustTool("mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", mnt.toString());
        Cli cli = new Cli(mnt.resolve("store"));
        Random rnd = new Random(21);
        List<Path> kept = new ArrayList<>();
        // kept and garbage pieces of 1 MiB in turn, in one process (so into one pack at a time):
        // every 2 MiB pack is about half garbage, none all
        List<String> args = new ArrayList<>(List.of("import"));
        for (int i = 0; i < 8; i++) {
            for (String kind : new String[]{"k", "g"}) {
                byte[] b = new byte[1 << 20];
                rnd.nextBytes(b);
                Path f = dir.resolve(kind + i + ".raw");
                Files.write(f, b);
                args.add(f.toString());
                args.add(kind + i);
                if (kind.equals("k")) kept.add(f);
            }
        }
        assertEquals(0, cli.run(args.toArray(String[]::new)).code());
        for (int i = 0; i < 8; i++) assertEquals(0, cli.run("rm", "g" + i).code());
        // leave about 600 KiB: enough for the sweep's index writes, not for a copy of a pack's live MiB
        Path filler = mnt.resolve("filler");
        long free = Files.getFileStore(mnt).getUsableSpace();
        Files.write(filler, new byte[(int) Math.max(0, free - (600 << 10))]);

        Cli.Result full = cli.run("gc", "--json");
        assertEquals(1, full.code(), full.toString());
        System.out.println("gc on a full disk: " + full.err().strip());
        assertTrue(full.err().startsWith("cask: ") && (full.err().contains("No space left on device") || full.err().contains("disk is full")), full.err());
        assertEquals(1, full.err().strip().lines().count(), "one line: " + full.err());
        Files.delete(filler);
        assertEquals(0, cli.run("check", "--deep").code(), "nothing lost, no torn copy");
        for (int i = 0; i < 8; i++) {
            Path out = dir.resolve("k" + i + ".out");
            assertEquals(0, cli.run("export", "k" + i, out.toString()).code());
            Cli.mustTool("cmp", kept.get(i).toString(), out.toString());
        }

        JsonNode gc = new ObjectMapper().readTree(cli.run("gc", "--json").out());
        assertTrue(gc.get("packs_rewritten").asLong() > 0, gc.toString());
        JsonNode stats = new ObjectMapper().readTree(cli.run("stats", "--json").out());
        assertTrue(stats.get("stored_bytes").asLong() <= 1.12 * stats.get("live_bytes").asLong(), stats.toString());
        assertEquals(0, cli.run("check", "--deep").code());
        for (int i = 0; i < 8; i++) {
            Path out = dir.resolve("k" + i + ".out2");
            assertEquals(0, cli.run("export", "k" + i, out.toString()).code());
            Cli.mustTool("cmp", kept.get(i).toString(), out.toString());
        }
    }
}
