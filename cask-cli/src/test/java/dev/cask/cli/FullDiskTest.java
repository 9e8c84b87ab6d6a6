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
 * no image appears, the images already there stay whole, and the store checks clean. A served
 * image whose checkpoint meets a full disk checkpoints fine once space is freed, with every byte
 * intact, and a server whose last checkpoints fail on the way out says so in one line each.
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

    /** Fills the file system of {@code mnt} with a ballast file until {@code leave} bytes are free. */
    private static Path fill(Path mnt, long leave) throws Exception {
        Path ballast = mnt.resolve("ballast");
        long free = Files.getFileStore(mnt).getUsableSpace();
        byte[] mib = new byte[1 << 20];
        try (var out = Files.newOutputStream(ballast, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND)) {
            for (long n = 0; n + mib.length <= free - leave; n += mib.length) out.write(mib);
        }
        return ballast;
    }

    @Test
    void aServedCheckpointThatMetAFullDiskSucceedsOnceSpaceIsFreed() throws Exception {
        mnt = dir.resolve("small");
        Files.createDirectories(mnt);
        Cli.mustTool("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt.toString());
        Cli cli = new Cli(mnt.resolve("store"));
        int size = 8 << 20;
        assertEquals(0, cli.run("create", "vm", String.valueOf(size)).code());
        Random rnd = new Random(5);
        byte[] disk = new byte[size];
        byte[] first = new byte[6 << 20]; // random: does not compress, needs 6 MiB of pack
        rnd.nextBytes(first);
        System.arraycopy(first, 0, disk, 0, first.length);
        Server server = new Server(cli, "--checkpoint-interval", "0", "--no-warmup");
        try {
            try (NbdClient c = new NbdClient(server.port, "vm")) {
                c.write(0, first);
                c.flush(); // in the journal now: 6 MiB of the tmpfs
                Path ballast = fill(mnt, 1 << 20);
                Cli.Result full = cli.run("snapshot", "vm", "-m", "on a full disk");
                assertEquals(1, full.code(), full.toString());
                assertTrue(full.err().contains("No space left on device"), full.toString());
                assertEquals(1, full.err().strip().lines().count(), "one line: " + full.err());

                Files.delete(ballast);
                Cli.Result snap = cli.run("snapshot", "vm", "-m", "space freed");
                assertEquals(0, snap.code(), "the first checkpoint after space is freed: " + snap + "\nserver: " + server.log);
                assertTrue(java.util.Arrays.equals(first, c.read(0, first.length)), "the image reads back whole");

                // and it goes on: more writes, another checkpoint
                byte[] more = new byte[1 << 20];
                rnd.nextBytes(more);
                System.arraycopy(more, 0, disk, 7 << 20, more.length);
                c.write(7 << 20, more);
                Cli.Result snap2 = cli.run("snapshot", "vm", "-m", "more");
                assertEquals(0, snap2.code(), snap2.toString());
            }
        } finally {
            server.close();
        }
        String log = server.log.toString();
        assertTrue(!log.contains("\tat ") && !log.contains("Exception"), "no stack trace in the server's log: " + log);
        Cli.Result check = cli.run("check", "--deep");
        assertEquals(0, check.code(), check.toString());
        Path out = dir.resolve("vm.out");
        assertEquals(0, cli.run("export", "vm", out.toString()).code());
        assertTrue(java.util.Arrays.equals(disk, Files.readAllBytes(out)), "every byte of every checkpoint is intact");
        assertEquals(3, new ObjectMapper().readTree(cli.run("log", "vm", "--json").out()).size(),
                "create, space freed, more: " + cli.run("log", "vm").out());
    }

    @Test
    void aServerWhoseLastCheckpointMeetsAFullDiskStopsWithoutAStackTraceAndLosesNothingFlushed() throws Exception {
        mnt = dir.resolve("small");
        Files.createDirectories(mnt);
        Cli.mustTool("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt.toString());
        Cli cli = new Cli(mnt.resolve("store"));
        int size = 8 << 20;
        assertEquals(0, cli.run("create", "vm", String.valueOf(size)).code());
        byte[] data = new byte[6 << 20];
        new Random(6).nextBytes(data);
        Server server = new Server(cli, "--checkpoint-interval", "0", "--no-warmup");
        Path ballast;
        try (NbdClient c = new NbdClient(server.port, "vm")) {
            c.write(0, data);
            c.flush();
            ballast = fill(mnt, 1 << 20);
            server.close(); // SIGTERM: its checkpoint on the way out meets the full disk
        }
        // (whether its one line per failure reaches the log is up to serve's shutdown logging)
        String log = server.log.toString();
        assertTrue(!log.contains("\tat ") && !log.contains("Exception"), "no stack trace: " + log);

        Files.delete(ballast);
        // the journal held the flushed writes: the next open replays them, and its checkpoint makes them a version
        try (Server again = new Server(cli, "--checkpoint-interval", "0", "--no-warmup");
             NbdClient c = new NbdClient(again.port, "vm")) {
            assertTrue(java.util.Arrays.equals(data, c.read(0, data.length)), "flushed writes survive");
        }
        Cli.Result check = cli.run("check", "--deep");
        assertEquals(0, check.code(), check.toString());
        Path out = dir.resolve("vm.out");
        assertEquals(0, cli.run("export", "vm", out.toString()).code());
        assertTrue(java.util.Arrays.equals(data, java.util.Arrays.copyOf(Files.readAllBytes(out), data.length)));
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
