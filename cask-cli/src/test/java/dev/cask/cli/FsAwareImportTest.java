package dev.cask.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code cask import --fs-aware} with real mkfs.ext4, debugfs, dumpe2fs, e2fsck and sfdisk. The
 * "dirty" file systems hold a big random file that was deleted, so their free blocks are full of
 * old data. After an fs-aware import and an export: e2fsck -fn is clean, every file reads back
 * the same, every block dumpe2fs lists as free is zeros and every other byte is the source's;
 * the dirty image stores at most 5 % more than the same files with clean free space; so does a
 * recycled volume (old data everywhere, then mkfs), whose free blocks are mostly in BLOCK_UNINIT
 * groups, but for the used blocks mkfs leaves unwritten. A file
 * system that looks mounted, or whose superblock or descriptors are damaged, is stored whole
 * with a warning and exports bit for bit; without --fs-aware everything exports bit for bit.
 */
class FsAwareImportTest {
    @TempDir
    Path dir;
    private final ObjectMapper json = new ObjectMapper();

    /** 30 random files (seeded; a few MiB) in two directories, plus a big random one when {@code big > 0}. */
    private Path rootfs(String name, int big) throws Exception {
        Path root = dir.resolve(name);
        Files.createDirectories(root.resolve("sub"));
        Random rnd = new Random(11);
        for (int i = 0; i < 30; i++) {
            byte[] b = new byte[1 + rnd.nextInt(400_000)];
            rnd.nextBytes(b);
            Files.write(root.resolve(i % 3 == 0 ? "sub/f" + i : "f" + i), b);
        }
        if (big > 0) {
            byte[] b = new byte[big];
            new Random(99).nextBytes(b);
            Files.write(root.resolve("big"), b);
        }
        return root;
    }

    /**
     * An ext4 image of {@code size} holding the files of {@link #rootfs}; when {@code dirty}, a
     * {@code big}-byte random file was written and deleted, so its blocks are free but not zero.
     */
    private Path ext4(String name, String size, boolean dirty, int big, String... mkfsOptions) throws Exception {
        Path root = rootfs(name + ".root", dirty ? big : 0);
        Path img = dir.resolve(name);
        Cli.mustTool("truncate", "-s", size, img.toString());
        List<String> cmd = new ArrayList<>(List.of("mkfs.ext4", "-q", "-F", "-U", "clear",
                "-E", "hash_seed=00000000-0000-0000-0000-000000000000"));
        cmd.addAll(List.of(mkfsOptions));
        cmd.addAll(List.of("-d", root.toString(), img.toString()));
        Cli.mustTool(cmd.toArray(String[]::new));
        if (dirty) Cli.mustTool("debugfs", "-w", "-R", "rm /big", img.toString());
        Cli.mustTool("e2fsck", "-fn", img.toString());
        return img;
    }

    /** A disk of {@code size} with the sfdisk script and {@code fs} copied to sector {@code sector}. */
    private Path disk(String name, String size, String sfdiskScript, Path fs, long sector) throws Exception {
        Path d = dir.resolve(name);
        Cli.mustTool("truncate", "-s", size, d.toString());
        Process p = new ProcessBuilder("sfdisk", "-q", d.toString()).redirectErrorStream(true).start();
        try (OutputStream in = p.getOutputStream()) {
            in.write(sfdiskScript.getBytes());
        }
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), "sfdisk: " + out);
        try (FileChannel src = FileChannel.open(fs); FileChannel dst = FileChannel.open(d, StandardOpenOption.WRITE)) {
            src.transferTo(0, src.size(), dst.position(sector * 512));
        }
        return d;
    }

    /** {@code length} bytes at {@code offset} of {@code disk} as a file of their own. */
    private Path cut(Path disk, long offset, long length, String name) throws Exception {
        Path out = dir.resolve(name);
        try (FileChannel src = FileChannel.open(disk); FileChannel dst = FileChannel.open(out, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            long done = 0;
            while (done < length) done += src.transferTo(offset + done, length - done, dst);
        }
        return out;
    }

    private Path export(Cli cli, String image) throws Exception {
        Path out = dir.resolve(image.replace('/', '_') + ".out");
        Cli.Result r = cli.run("export", image, out.toString());
        assertEquals(0, r.code(), r.toString());
        return out;
    }

    private Cli.Result mustImport(Cli cli, String... args) {
        String[] all = new String[args.length + 1];
        all[0] = "import";
        System.arraycopy(args, 0, all, 1, args.length);
        Cli.Result r = cli.run(all);
        assertEquals(0, r.code(), r.toString());
        return r;
    }

    private long stored(Cli cli) throws Exception {
        return json.readTree(cli.run("stats", "--json").out()).get("stored_bytes").asLong();
    }

    /** dumpe2fs's free blocks, of every group (for a BLOCK_UNINIT group, the bitmap e2fsprogs computes). */
    record FreeMap(int blockSize, long blocks, BitSet free) {}

    static FreeMap dumpe2fs(Path fs) throws Exception {
        String out = Cli.mustTool("dumpe2fs", fs.toString()).out();
        Matcher bs = Pattern.compile("(?m)^Block size:\\s+(\\d+)").matcher(out);
        Matcher bc = Pattern.compile("(?m)^Block count:\\s+(\\d+)").matcher(out);
        assertTrue(bs.find() && bc.find(), out);
        BitSet free = new BitSet();
        Pattern group = Pattern.compile("^Group \\d+: \\(Blocks \\d+-\\d+\\).*$");
        boolean inGroups = false;
        for (String line : out.split("\n")) {
            if (group.matcher(line).matches()) {
                inGroups = true;
                continue;
            }
            if (!inGroups || !line.startsWith("  Free blocks:")) continue;
            for (String r : line.substring("  Free blocks:".length()).split(",")) {
                if (r.isBlank()) continue;
                String[] ab = r.trim().split("-");
                int a = Integer.parseInt(ab[0]);
                free.set(a, (ab.length > 1 ? Integer.parseInt(ab[1]) : a) + 1);
            }
        }
        return new FreeMap(Integer.parseInt(bs.group(1)), Long.parseLong(bc.group(1)), free);
    }

    /**
     * Checks an fs-aware export of the file system {@code src} (both files hold just the file
     * system): e2fsck -fn clean, every file the same as in {@code root}, free blocks zeros, all
     * other bytes the source's. Returns how many free blocks held data in the source.
     */
    private long checkExport(Path src, Path exported, Path root) throws Exception {
        Cli.Result fsck = Cli.tool("e2fsck", "-fn", exported.toString());
        assertEquals(0, fsck.code(), "e2fsck -fn on the export: " + fsck);

        Path files = dir.resolve(exported.getFileName() + ".files");
        Files.createDirectories(files);
        Cli.mustTool("debugfs", "-R", "rdump / " + files, exported.toString());
        int compared = 0;
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path f : walk.filter(Files::isRegularFile).filter(f -> !f.equals(root.resolve("big"))).toList()) {
                Path back = files.resolve(root.relativize(f).toString());
                assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(back), "file " + root.relativize(f) + " reads back the same");
                compared++;
            }
        }
        assertTrue(compared >= 30, "compared " + compared + " files");
        assertTrue(Files.notExists(files.resolve("big")), "the deleted file stays deleted");

        FreeMap map = dumpe2fs(src);
        byte[] a = Files.readAllBytes(src);
        byte[] b = Files.readAllBytes(exported);
        assertEquals(a.length, b.length);
        int bs = map.blockSize();
        long dirtyFree = 0;
        for (long blk = 0; blk * bs < a.length; blk++) {
            int from = (int) (blk * bs);
            int to = (int) Math.min(a.length, from + (long) bs);
            boolean free = blk < map.blocks() && map.free().get((int) blk);
            if (free) {
                for (int i = from; i < to; i++) if (b[i] != 0) throw new AssertionError("free block " + blk + " is not zeros in the export");
                for (int i = from; i < to; i++) {
                    if (a[i] != 0) {
                        dirtyFree++;
                        break;
                    }
                }
            } else if (Arrays.mismatch(a, from, to, b, from, to) >= 0) {
                throw new AssertionError("used block " + blk + " differs from the source");
            }
        }
        return dirtyFree;
    }

    @Test
    void dirtyFreeBlocksBecomeZerosAndStoreLikeCleanOnes() throws Exception {
        Path clean = ext4("clean.img", "64M", false, 0, "-b", "4096");
        Path dirty = ext4("dirty.img", "64M", true, 40 << 20, "-b", "4096");

        // (7) without --fs-aware the dirty image is kept bit for bit, old data and all
        Cli plain = new Cli(dir.resolve("plain"));
        mustImport(plain, dirty.toString(), "d");
        Cli.mustTool("cmp", dirty.toString(), export(plain, "d").toString());
        long plainStored = stored(plain);

        Cli a = new Cli(dir.resolve("a"));
        Cli.Result ra = mustImport(a, "--fs-aware", clean.toString(), "c");
        assertTrue(ra.out().contains("of free file system blocks stored as holes"), ra.out());
        Cli b = new Cli(dir.resolve("b"));
        Cli.Result rb = mustImport(b, "--fs-aware", dirty.toString(), "d");
        assertEquals("", rb.err(), "no warning for a clean file system");

        long dirtyFree = checkExport(dirty, export(b, "d"), dir.resolve("dirty.img.root"));
        assertTrue(dirtyFree * 4096 > 30 << 20, "the deleted file's blocks held data and were dropped: " + dirtyFree + " blocks");
        checkExport(clean, export(a, "c"), dir.resolve("clean.img.root"));

        long storedClean = stored(a);
        long storedDirty = stored(b);
        assertTrue(storedDirty <= storedClean * 1.05, "dirty " + storedDirty + " <= 1.05 x clean " + storedClean);
        assertTrue(plainStored > storedDirty + (30 << 20), "without --fs-aware the old data is stored: " + plainStored + " vs " + storedDirty);
        assertTrue(a.run("log", "c").out().contains("fs-aware"), "the version says it was fs-aware");
    }

    @Test
    void oneKibBlocksSixtyFourBitAndNoFlexBg() throws Exception {
        for (String[] opts : List.of(new String[]{"-b", "1024", "-O", "64bit"}, new String[]{"-b", "2048", "-O", "^flex_bg,^64bit"},
                new String[]{"-b", "1024", "-O", "^metadata_csum,^flex_bg"})) {
            String name = "v" + String.join("", opts).replaceAll("[^a-z0-9]", "") + ".img";
            Path img = ext4(name, "48M", true, 24 << 20, opts);
            Cli cli = new Cli(dir.resolve(name + ".store"));
            Cli.Result r = mustImport(cli, "--fs-aware", img.toString(), "x");
            assertEquals("", r.err(), name);
            long dirtyFree = checkExport(img, export(cli, "x"), dir.resolve(name + ".root"));
            assertTrue(dirtyFree * 2048 > 10 << 20, name + ": " + dirtyFree + " dirty free blocks dropped");
        }
    }

    /**
     * An ext4 image of {@code size} holding the files of {@link #rootfs}, made by mkfs without
     * discard over {@code garbage} (seeded random bytes everywhere, as on a recycled volume, when
     * true; zeros when false); inode tables and journal written by mkfs, so only free blocks differ.
     */
    private Path recycled(String name, String size, boolean garbage, String... mkfsOptions) throws Exception {
        Path root = rootfs(name + ".root", 0);
        Path img = dir.resolve(name);
        Cli.mustTool("truncate", "-s", size, img.toString());
        if (garbage) {
            Random rnd = new Random(name.hashCode());
            byte[] b = new byte[1 << 20];
            try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
                for (long at = 0; at < ch.size(); at += b.length) {
                    rnd.nextBytes(b);
                    ch.write(ByteBuffer.wrap(b), at);
                }
            }
        }
        List<String> cmd = new ArrayList<>(List.of("mkfs.ext4", "-q", "-F", "-U", "clear",
                "-E", "hash_seed=00000000-0000-0000-0000-000000000000,nodiscard,lazy_itable_init=0,lazy_journal_init=0"));
        cmd.addAll(List.of(mkfsOptions));
        cmd.addAll(List.of("-d", root.toString(), img.toString()));
        Cli.mustTool(cmd.toArray(String[]::new));
        Cli.mustTool("e2fsck", "-fn", img.toString());
        return img;
    }

    /**
     * A recycled volume (old data in every block) formatted fresh: most of it is groups mkfs left
     * BLOCK_UNINIT, whose free blocks must become holes too. The export is e2fsck-clean with every
     * file the same and every free block (as dumpe2fs computes them) zeros; the store holds no
     * more than the same file system made on a zeroed volume plus the used blocks mkfs leaves
     * unwritten (they keep old data: backup reserved descriptor blocks, uninitialised groups'
     * bitmaps), under 2 % of the volume. For each layout that changes what an uninitialised
     * group holds.
     */
    @Test
    void recycledVolumeStoresLikeAZeroedOne() throws Exception {
        List<String[]> layouts = List.of(
                new String[]{"160M", "-b", "4096", "-g", "8192"}, // flex_bg: every group's tables in group 0
                new String[]{"96M", "-b", "1024", "-O", "^flex_bg"},
                new String[]{"96M", "-b", "1024", "-O", "^sparse_super,^resize_inode"},
                new String[]{"96M", "-b", "1024", "-O", "sparse_super2"},
                new String[]{"96M", "-b", "2048", "-O", "meta_bg,^resize_inode,^64bit"});
        StringBuilder ratios = new StringBuilder();
        for (String[] layout : layouts) {
            String[] opts = Arrays.copyOfRange(layout, 1, layout.length);
            String name = "r" + String.join("", opts).replaceAll("[^a-z0-9]", "");
            Path clean = recycled(name + "-zeroed.img", layout[0], false, opts);
            Path old = recycled(name + "-recycled.img", layout[0], true, opts);
            String dump = Cli.mustTool("dumpe2fs", old.toString()).out();
            assertTrue(dump.contains("BLOCK_UNINIT"), name + ": mkfs left groups uninitialised");

            Cli a = new Cli(dir.resolve(name + ".zeroed.store"));
            assertEquals("", mustImport(a, "--fs-aware", clean.toString(), "x").err(), name);
            Cli b = new Cli(dir.resolve(name + ".recycled.store"));
            Cli.Result r = mustImport(b, "--fs-aware", old.toString(), "x");
            assertEquals("", r.err(), name + ": no warning");
            long dirtyFree = checkExport(old, export(b, "x"), dir.resolve(name + "-recycled.img.root"));
            long fsBlocks = dumpe2fs(old).blocks();
            assertTrue(dirtyFree > fsBlocks * 7 / 10, name + ": the old data in " + dirtyFree + " of " + fsBlocks + " blocks was dropped");
            // what mkfs never writes stays old data: backup reserved descriptor blocks, uninitialised
            // groups' bitmaps, the boot block. Used blocks: stored; nothing else may cost bytes
            FreeMap map = dumpe2fs(old);
            byte[] z = Files.readAllBytes(clean);
            byte[] o = Files.readAllBytes(old);
            int bs = map.blockSize();
            long usedOld = 0;
            for (int blk = 0; (long) blk * bs < o.length; blk++) {
                if (!map.free().get(blk) && Arrays.mismatch(z, blk * bs, (blk + 1) * bs, o, blk * bs, (blk + 1) * bs) >= 0) usedOld++;
            }
            assertTrue(usedOld * 50 < fsBlocks, name + ": " + usedOld + " used blocks of " + fsBlocks + " differ");
            long storedClean = stored(a);
            long storedOld = stored(b);
            ratios.append(String.format(" %s %.3f (%d KiB of used blocks with old data)", name, (double) storedOld / storedClean, usedOld * bs / 1024));
            assertTrue(storedOld <= storedClean + usedOld * bs + (64 << 10),
                    name + ": recycled " + storedOld + " <= zeroed " + storedClean + " + " + usedOld + " used blocks with old data");
        }
        System.out.println("FsAwareImportTest: stored bytes, recycled / zeroed volume:" + ratios);
    }

    /** MBR at sector 63, GPT at sector 2048: the file system in the partition is fs-aware, everything around it bit for bit. */
    @Test
    void partitionsAtSector63And2048() throws Exception {
        Path fs = ext4("part.img", "40M", true, 20 << 20, "-b", "4096");
        long fsBytes = Files.size(fs);
        Path m63 = disk("m63.raw", "48M", "start=63, size=" + fsBytes / 512 + ", type=83\n", fs, 63);
        Path g2048 = disk("g2048.raw", "48M", "label: gpt\nstart=2048, size=" + fsBytes / 512 + "\n", fs, 2048);
        // non-zero bytes in the gaps and the table area must survive as they are
        for (Path d : List.of(m63, g2048)) {
            try (FileChannel ch = FileChannel.open(d, StandardOpenOption.WRITE)) {
                ch.write(ByteBuffer.wrap("boot loader bytes".getBytes()), 0x80);
                ch.write(ByteBuffer.wrap("after the partition".getBytes()), Files.size(d) - (1 << 20));
            }
        }
        Cli cli = new Cli(dir.resolve("store"));
        for (Path d : List.of(m63, g2048)) {
            long at = d == m63 ? 63 * 512 : 2048 * 512;
            String name = d.getFileName().toString().replace(".raw", "");
            Cli.Result r = mustImport(cli, "--fs-aware", d.toString(), name);
            assertEquals("", r.err(), name);
            Path out = export(cli, name);
            long dirtyFree = checkExport(fs, cut(out, at, fsBytes, name + ".fs"), dir.resolve("part.img.root"));
            assertTrue(dirtyFree * 4096 > 15 << 20, name + ": " + dirtyFree);
            byte[] src = Files.readAllBytes(d);
            byte[] back = Files.readAllBytes(out);
            assertEquals(-1, Arrays.mismatch(src, 0, (int) at, back, 0, (int) at), name + ": bytes before the partition");
            int end = (int) (at + fsBytes);
            assertEquals(-1, Arrays.mismatch(src, end, src.length, back, end, back.length), name + ": bytes after the partition");
        }
        // the same file system at sector 63 and 2048 still deduplicates with fs-aware on
        long both = stored(cli);
        Cli one = new Cli(dir.resolve("one"));
        mustImport(one, "--fs-aware", m63.toString(), "m63");
        assertTrue(both <= stored(one) * 1.1, "sector 63 and 2048 share their blocks: " + both + " vs " + stored(one));

        // --whole-disk changes the cut, not which blocks are free
        mustImport(cli, "--fs-aware", "--whole-disk", m63.toString(), "m63-whole");
        checkExport(fs, cut(export(cli, "m63-whole"), 63 * 512, fsBytes, "m63-whole.fs"), dir.resolve("part.img.root"));

        // without --fs-aware both disks round-trip bit for bit, old data in free blocks and all
        for (Path d : List.of(m63, g2048)) {
            String name = d.getFileName().toString().replace(".raw", "-plain");
            mustImport(cli, d.toString(), name);
            Cli.mustTool("cmp", d.toString(), export(cli, name).toString());
        }
    }

    /** (5) A file system that looks mounted is stored whole, with a warning; the export is bit for bit. */
    @Test
    void mountedLookingFileSystemsAreStoredWhole() throws Exception {
        String[][] marks = {{"feature needs_recovery", "needs_recovery"}, {"ssv state 0", "state 0x0 lacks VALID_FS"},
                {"ssv mtime 20991231", "last mount time"}};
        for (String[] mark : marks) {
            String name = mark[1].replaceAll("[^a-z]", "") + ".img";
            Path img = ext4(name, "32M", true, 16 << 20, "-b", "4096");
            Cli.mustTool("debugfs", "-w", "-R", mark[0], img.toString());
            Cli cli = new Cli(dir.resolve(name + ".store"));
            Cli.Result r = mustImport(cli, "--fs-aware", img.toString(), "m");
            assertTrue(r.err().contains("looks mounted or in use") && r.err().contains(mark[1])
                    && r.err().contains("at byte 0") && r.err().contains("storing every block"), r.err());
            assertTrue(r.out().contains("; 0 B of free file system blocks stored as holes"), r.out());
            Cli.mustTool("cmp", img.toString(), export(cli, "m").toString());
        }
    }

    /** (6) Damaged superblock numbers or descriptors: stored whole with a warning, exported bit for bit. */
    @Test
    void corruptSuperblockOrDescriptorsAreStoredWhole() throws Exception {
        record Damage(String name, String mkfs, long at, byte[] bytes, String expect) {}
        byte[] garbage = new byte[256];
        new Random(3).nextBytes(garbage);
        List<Damage> damages = List.of(
                new Damage("count", "^metadata_csum", 1024 + 4, new byte[]{(byte) 0xff, (byte) 0xff, (byte) 0xff, 0x7f}, "blocks count 2147483647"),
                new Damage("csum", "metadata_csum", 1024 + 4, new byte[]{(byte) 0xff, (byte) 0xff, (byte) 0xff, 0x7f}, "superblock checksum"),
                new Damage("gdt", "metadata_csum", 4096, garbage, "descriptor checksum"),
                new Damage("gdtplain", "^metadata_csum,^uninit_bg", 4096, garbage, "group 0"));
        for (Damage d : damages) {
            Path img = ext4(d.name() + ".img", "32M", true, 16 << 20, "-b", "4096", "-O", d.mkfs());
            try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
                ch.write(ByteBuffer.wrap(d.bytes()), d.at());
            }
            Cli cli = new Cli(dir.resolve(d.name() + ".store"));
            Cli.Result r = mustImport(cli, "--fs-aware", img.toString(), "x");
            assertTrue(r.err().contains(d.expect()) && r.err().contains("storing every block"), d.name() + ": " + r.err());
            Cli.mustTool("cmp", img.toString(), export(cli, "x").toString());
        }
    }

    @Test
    void offByDefaultAndRefusedOnStdin() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Cli.Result help = cli.run("import", "--help");
        assertTrue(help.out().contains("--fs-aware") && help.out().contains("Off by default"), help.out());
        Cli.Result r = cli.process(new byte[4096], "import", "--fs-aware", "-", "s");
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().contains("--fs-aware needs a file"), r.err());
        assertEquals(1, cli.run("info", "s").code(), "nothing imported");
    }
}
