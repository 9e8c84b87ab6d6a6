package dev.cask.cli;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Import from and export into real block devices (loop devices over files in a temporary
 * directory; each detached after the test). The export tests write through a device node made
 * with mknod in the temporary directory, so a cask that replaced the node with a file would
 * replace that copy, never /dev/loopN.
 */
class BlockDeviceTest {
    @TempDir
    Path dir;
    private final List<String> loops = new ArrayList<>();

    @AfterEach
    void detach() throws Exception {
        for (String l : loops) Cli.tool("losetup", "-d", l);
    }

    private Cli cli() {
        return new Cli(dir.resolve("store"));
    }

    private String attach(Path file) throws Exception {
        String dev = Cli.mustTool("losetup", "-f", "--show", file.toString()).out().strip();
        loops.add(dev);
        return dev;
    }

    /** A node of our own for the loop device (same major and minor), in the temporary directory. */
    private Path node(String loop, String name) throws Exception {
        String[] mm = Cli.mustTool("stat", "-c", "%t %T", loop).out().strip().split(" ");
        Path node = dir.resolve(name);
        Cli.mustTool("mknod", node.toString(), "b", String.valueOf(Integer.parseInt(mm[0], 16)), String.valueOf(Integer.parseInt(mm[1], 16)));
        return node;
    }

    private static String fileType(Path p) throws Exception {
        return Cli.mustTool("stat", "-c", "%F", p.toString()).out().strip();
    }

    /** 8 MiB: random 4 KiB blocks with all-zero stretches between them. */
    private static byte[] disk(long seed) {
        byte[] d = new byte[8 << 20];
        Random rnd = new Random(seed);
        for (int off = 0; off < d.length; off += 4096) {
            if (rnd.nextInt(4) == 0) {
                byte[] b = new byte[4096];
                rnd.nextBytes(b);
                System.arraycopy(b, 0, d, off, 4096);
            }
        }
        return d;
    }

    @Test
    void importFromALoopDeviceStoresItsDataAndFindsItsZeroBlocks() throws Exception {
        Cli cli = cli();
        byte[] disk = disk(1);
        Path backing = dir.resolve("backing.raw");
        Files.write(backing, disk);
        String loop = attach(backing);

        Cli.Result r = cli.run("import", loop, "team/from-dev");
        assertEquals(0, r.code(), r.toString());
        Path out = dir.resolve("out.raw");
        assertEquals(0, cli.run("export", "team/from-dev", out.toString()).code());
        assertArrayEquals(disk, Files.readAllBytes(out), "the export must be the device's bytes");
        long nonZero = 0;
        for (int off = 0; off < disk.length; off += 4096) if (!allZero(disk, off, 4096)) nonZero += 4096;
        Cli.Result info = cli.run("info", "team/from-dev", "--json");
        assertTrue(info.out().contains("\"allocated_bytes\":" + nonZero) || info.out().contains("\"allocated_bytes\" : " + nonZero),
                "zero blocks of the device are holes: " + info.out());
    }

    @Test
    void exportWritesIntoABlockDeviceInPlaceZeroingHolesAndLeavingTheTail() throws Exception {
        Cli cli = cli();
        byte[] disk = disk(2);
        Path src = dir.resolve("src.raw");
        Files.write(src, disk);
        assertEquals(0, cli.run("import", src.toString(), "vm").code());

        byte[] old = new byte[12 << 20]; // bigger than the image, full of old data
        new Random(3).nextBytes(old);
        Path backing = dir.resolve("target.raw");
        Files.write(backing, old);
        Path node = node(attach(backing), "target-dev");

        Cli.Result r = cli.run("export", "vm", node.toString());
        assertEquals(0, r.code(), r.toString());
        assertEquals("block special file", fileType(node), "the device node must stay a device node");
        Cli.mustTool("losetup", "-d", loops.removeLast());
        byte[] now = Files.readAllBytes(backing);
        assertEquals(old.length, now.length);
        assertArrayEquals(disk, Arrays.copyOf(now, disk.length), "the device's first 8 MiB are the image, its holes zeroed");
        assertArrayEquals(Arrays.copyOfRange(old, disk.length, old.length), Arrays.copyOfRange(now, disk.length, now.length),
                "bytes past the image's end are left as they were");
    }

    @Test
    void exportIntoASmallerBlockDeviceIsRefusedAndWritesNothing() throws Exception {
        Cli cli = cli();
        Path src = dir.resolve("src.raw");
        Files.write(src, disk(4));
        assertEquals(0, cli.run("import", src.toString(), "vm").code());
        byte[] old = new byte[4 << 20];
        new Random(5).nextBytes(old);
        Path backing = dir.resolve("small.raw");
        Files.write(backing, old);
        Path node = node(attach(backing), "small-dev");

        Cli.Result r = cli.run("export", "vm", node.toString());
        assertEquals(1, r.code(), r.toString());
        assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
        assertTrue(r.err().contains(node.toString()) && r.err().contains("4194304") && r.err().contains("8388608"), r.err());
        assertEquals("block special file", fileType(node));
        Cli.mustTool("losetup", "-d", loops.removeLast());
        assertArrayEquals(old, Files.readAllBytes(backing), "nothing written to the device");
    }

    private static boolean allZero(byte[] b, int off, int len) {
        for (int i = off; i < off + len; i++) if (b[i] != 0) return false;
        return true;
    }
}
