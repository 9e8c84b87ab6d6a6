package dev.cask.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A store on a small tmpfs runs out of space mid-import: the import fails with one clear line,
 * no image appears, the images already there stay whole, and the store checks clean.
 * Needs root to mount tmpfs (CI runs as root); it fails rather than skips without it.
 */
class FullDiskTest {
    @TempDir
    Path dir;
    private Path mnt;

    @AfterEach
    void unmount() throws Exception {
        if (mnt != null) Cli.mustTool("umount", "--lazy", mnt.toString());
    }

    @Test
    void importOntoAFullDiskLeavesNoImageAndAWholeStore() throws Exception {
        mnt = dir.resolve("small");
        Files.createDirectories(mnt);
        Cli.mustTool("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt.toString());
        Cli cli = new Cli(mnt.resolve("store"));
        Random rnd = new Random(3);
        byte[] small = new byte[1 << 20];
        rnd.nextBytes(small);
        Path smallFile = dir.resolve("small.raw");
        Files.write(smallFile, small);
        assertEquals(0, cli.run("import", smallFile.toString(), "keep").code());

        byte[] big = new byte[16 << 20]; // random data does not compress: cannot fit
        rnd.nextBytes(big);
        Path bigFile = dir.resolve("big.raw");
        Files.write(bigFile, big);
        Cli.Result r = cli.run("import", bigFile.toString(), "too-big");
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().startsWith("cask: ") && r.err().contains("No space left on device"), r.err());
        assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());

        assertEquals(1, new ObjectMapper().readTree(cli.run("ls", "--json").out()).size());
        Cli.Result check = cli.run("check", "--deep");
        assertEquals(0, check.code(), check.toString());
        Path out = dir.resolve("keep.out");
        assertEquals(0, cli.run("export", "keep", out.toString()).code());
        Cli.mustTool("cmp", smallFile.toString(), out.toString());
    }

    @Test
    void importOfCompressibleDataInSegmentsOntoAFullDiskLeavesNoImageAndAWholeStore() throws Exception {
        // half of every block compresses: the import writes segments when the disk fills up
        mnt = dir.resolve("small");
        Files.createDirectories(mnt);
        Cli.mustTool("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt.toString());
        Cli cli = new Cli(mnt.resolve("store"));
        Random rnd = new Random(4);
        Path smallFile = dir.resolve("small.raw");
        Files.write(smallFile, halfText(rnd, 1 << 20));
        assertEquals(0, cli.run("import", smallFile.toString(), "keep").code());
        Path bigFile = dir.resolve("big.raw");
        Files.write(bigFile, halfText(rnd, 24 << 20));
        Cli.Result r = cli.run("import", bigFile.toString(), "too-big");
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().startsWith("cask: ") && r.err().contains("No space left on device"), r.err());

        assertEquals(1, new ObjectMapper().readTree(cli.run("ls", "--json").out()).size());
        Cli.Result check = cli.run("check", "--deep");
        assertEquals(0, check.code(), check.toString());
        Path out = dir.resolve("keep.out");
        assertEquals(0, cli.run("export", "keep", out.toString()).code());
        Cli.mustTool("cmp", smallFile.toString(), out.toString());
    }

    /** Blocks of 4 KiB whose first half is random and second half repeats a word. */
    private static byte[] halfText(Random rnd, int size) {
        byte[] b = new byte[size];
        byte[] word = "segment ".getBytes();
        for (int at = 0; at < size; at += 4096) {
            byte[] noise = new byte[2048];
            rnd.nextBytes(noise);
            System.arraycopy(noise, 0, b, at, 2048);
            for (int i = 2048; i < 4096; i++) b[at + i] = word[i % word.length];
        }
        return b;
    }
}
