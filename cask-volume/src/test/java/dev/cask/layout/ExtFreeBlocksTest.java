package dev.cask.layout;

import dev.cask.device.ByteRanges;
import dev.cask.format.RawFileDevice;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@link ExtFreeBlocks} against real file systems made by mkfs.ext4 and changed by debugfs: its
 * free ranges must be exactly the free blocks dumpe2fs lists, in BLOCK_UNINIT groups (bitmaps
 * computed, as e2fsprogs and the kernel compute them) as in the others, for every block size,
 * descriptor size and layout option (flex_bg, sparse_super, sparse_super2, meta_bg, resize2fs);
 * and every doubt (a looks-mounted state, damaged numbers, damaged descriptors or bitmaps, metadata
 * marked free) must give no free ranges and a warning, never a wrong one; an uninitialised group
 * that does not add up is stored whole. Seeded damage: replay with -Dcask.seed=N.
 */
class ExtFreeBlocksTest {
    @TempDir
    Path dir;

    static String run(String... cmd) throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new AssertionError(cmd[0] + " is not installed (run ./run-tests, which installs e2fsprogs): " + e.getMessage(), e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) throw new AssertionError(String.join(" ", cmd) + " failed: " + out);
        return out;
    }

    /**
     * A file system of {@code size} made with {@code mkfs} and {@code options} from a directory of
     * 24 random files (seeded), then every third file deleted with debugfs, so the bitmaps hold
     * free runs between used ones in initialised groups.
     */
    private Path fs(String name, String size, String mkfs, String... options) throws Exception {
        Path root = dir.resolve(name + ".d");
        Files.createDirectories(root);
        Random rnd = new Random(name.hashCode());
        for (int i = 0; i < 24; i++) {
            byte[] b = new byte[10_000 + rnd.nextInt(400_000)];
            rnd.nextBytes(b);
            Files.write(root.resolve("f" + i), b);
        }
        Path img = dir.resolve(name);
        run("truncate", "-s", size, img.toString());
        List<String> cmd = new ArrayList<>(List.of(mkfs, "-q", "-F"));
        cmd.addAll(List.of(options));
        cmd.addAll(List.of("-d", root.toString(), img.toString()));
        run(cmd.toArray(String[]::new));
        StringBuilder rm = new StringBuilder();
        for (int i = 0; i < 24; i += 3) rm.append("rm /f").append(i).append('\n');
        Path script = dir.resolve(name + ".debugfs");
        Files.writeString(script, rm.toString());
        run("debugfs", "-w", "-f", script.toString(), img.toString());
        run("e2fsck", "-fn", img.toString());
        return img;
    }

    /**
     * dumpe2fs's view: block size, the free blocks of every group (for a BLOCK_UNINIT group, the
     * bitmap e2fsprogs computes), and those of the BLOCK_UNINIT groups alone.
     */
    record Dump(int blockSize, BitSet free, BitSet uninitFree, int uninitGroups, int groups) {
        @Override
        public String toString() {
            return "dumpe2fs: " + blockSize + "-byte blocks, " + groups + " groups (" + uninitGroups + " BLOCK_UNINIT), "
                    + free.cardinality() + " free blocks (" + uninitFree.cardinality() + " in BLOCK_UNINIT groups)";
        }
    }

    static Dump dumpe2fs(Path img) throws Exception {
        String out = run("dumpe2fs", img.toString());
        Matcher bs = Pattern.compile("(?m)^Block size:\\s+(\\d+)").matcher(out);
        assertTrue(bs.find(), out);
        BitSet free = new BitSet();
        BitSet uninitFree = new BitSet();
        Pattern group = Pattern.compile("^Group (\\d+): \\(Blocks (\\d+)-(\\d+)\\)(.*)$");
        boolean uninit = false;
        int uninitGroups = 0;
        int groups = 0;
        for (String line : out.split("\n")) {
            Matcher g = group.matcher(line);
            if (g.matches()) {
                groups++;
                uninit = g.group(4).contains("BLOCK_UNINIT");
                if (uninit) uninitGroups++;
                continue;
            }
            if (groups == 0 || !line.startsWith("  Free blocks:")) continue; // not the superblock's "Free blocks:"
            for (String r : line.substring("  Free blocks:".length()).split(",")) {
                if (r.isBlank()) continue;
                String[] ab = r.trim().split("-");
                long a = Long.parseLong(ab[0]);
                long b = ab.length > 1 ? Long.parseLong(ab[1]) : a;
                free.set((int) a, (int) b + 1);
                if (uninit) uninitFree.set((int) a, (int) b + 1);
            }
        }
        assertTrue(groups > 0, out);
        return new Dump(Integer.parseInt(bs.group(1)), free, uninitFree, uninitGroups, groups);
    }

    static BitSet blocks(ByteRanges r, int blockSize) {
        BitSet b = new BitSet();
        for (int i = 0; i < r.count(); i++) {
            assertEquals(0, r.start(i) % blockSize, "range starts inside a block: " + r);
            assertEquals(0, r.end(i) % blockSize, "range ends inside a block: " + r);
            b.set((int) (r.start(i) / blockSize), (int) (r.end(i) / blockSize));
        }
        return b;
    }

    private ByteRanges free(Path img, List<String> warnings) {
        try (RawFileDevice d = RawFileDevice.open(img)) {
            return ExtFreeBlocks.read(d, 0, d.size(), img.getFileName().toString(), warnings::add);
        }
    }

    /** Free ranges equal dumpe2fs's free blocks, BLOCK_UNINIT groups included; no warning. */
    private Dump matchesDumpe2fs(Path img) throws Exception {
        List<String> w = new ArrayList<>();
        ByteRanges r = free(img, w);
        assertEquals(List.of(), w);
        Dump d = dumpe2fs(img);
        BitSet got = blocks(r, d.blockSize());
        assertTrue(d.free().cardinality() > 100, "the fixture has free blocks in initialised groups: " + d);
        if (!d.free().equals(got)) {
            BitSet missing = (BitSet) d.free().clone();
            missing.andNot(got);
            BitSet extra = (BitSet) got.clone();
            extra.andNot(d.free());
            fail(img.getFileName() + ": free blocks differ from " + d + ": " + missing.cardinality() + " missing (first "
                    + missing.nextSetBit(0) + "), " + extra.cardinality() + " extra (first " + extra.nextSetBit(0) + ")");
        }
        return d;
    }

    @Test
    void defaultExt4() throws Exception {
        matchesDumpe2fs(fs("default", "64M", "mkfs.ext4", "-b", "4096"));
    }

    @Test
    void oneKibBlocksStartAtBlockOne() throws Exception {
        Path img = fs("1k", "48M", "mkfs.ext4", "-b", "1024");
        matchesDumpe2fs(img);
        List<String> w = new ArrayList<>();
        assertTrue(free(img, w).start(0) >= 1024, "block 0 (boot block) is never free");
    }

    @Test
    void twoKibBlocks() throws Exception {
        matchesDumpe2fs(fs("2k", "48M", "mkfs.ext4", "-b", "2048"));
    }

    @Test
    void withoutFlexBg() throws Exception {
        matchesDumpe2fs(fs("noflex", "96M", "mkfs.ext4", "-b", "1024", "-O", "^flex_bg"));
    }

    @Test
    void thirtyTwoAndSixtyFourBitDescriptors() throws Exception {
        matchesDumpe2fs(fs("d32", "64M", "mkfs.ext4", "-b", "1024", "-O", "^64bit"));
        matchesDumpe2fs(fs("d64", "64M", "mkfs.ext4", "-b", "1024", "-O", "64bit"));
        matchesDumpe2fs(fs("d128", "64M", "mkfs.ext4", "-b", "1024", "-O", "64bit", "-E", "desc_size=128"));
    }

    @Test
    void olderChecksumsAndNone() throws Exception {
        matchesDumpe2fs(fs("gdtcsum", "64M", "mkfs.ext4", "-b", "1024", "-O", "^metadata_csum,uninit_bg"));
        matchesDumpe2fs(fs("nocsum", "64M", "mkfs.ext4", "-b", "1024", "-O", "^metadata_csum,^uninit_bg"));
        matchesDumpe2fs(fs("ext2", "64M", "mkfs.ext2", "-b", "1024"));
        matchesDumpe2fs(fs("ext3", "64M", "mkfs.ext3", "-b", "4096"));
    }

    @Test
    void metaBg() throws Exception {
        // 1 KiB blocks, 32-byte descriptors: 32 per block, so 40 groups need two meta groups
        matchesDumpe2fs(fs("metabg", "320M", "mkfs.ext4", "-b", "1024", "-O", "meta_bg,^resize_inode,^64bit"));
    }

    @Test
    void shortLastGroup() throws Exception {
        // 4 KiB blocks: 32768 per group; 150 MiB is 38400 blocks, so the last group has 5632
        Path img = fs("short", "150M", "mkfs.ext4", "-b", "4096", "-O", "^flex_bg");
        matchesDumpe2fs(img);
        Dump d = dumpe2fs(img);
        assertTrue(d.free().get(38399), "the end of the short last group is free (and its padding bits are not blocks)");
    }

    // ------------------------------------------------------------------ BLOCK_UNINIT groups

    /**
     * A file system fresh from mkfs (with lazy_itable_init, as on a large volume), whose
     * BLOCK_UNINIT groups' free blocks must be exactly the ones e2fsprogs computes for them, and
     * at least {@code minUninitFree} of them.
     */
    private Dump uninitMatches(String name, String size, long minUninitFree, String... options) throws Exception {
        Path img = dir.resolve(name);
        run("truncate", "-s", size, img.toString());
        List<String> cmd = new ArrayList<>(List.of("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1"));
        cmd.addAll(List.of(options));
        cmd.add(img.toString());
        run(cmd.toArray(String[]::new));
        Dump d = matchesDumpe2fs(img);
        assertTrue(d.uninitGroups() > 0 && d.uninitFree().cardinality() >= minUninitFree,
                name + ": mkfs left BLOCK_UNINIT groups with free blocks: " + d);
        return d;
    }

    @Test
    void freshFileSystemsUninitialisedGroupsAreFreeButTheirMetadata() throws Exception {
        // 4 KiB blocks, flex_bg (bitmaps and inode tables of groups 1 to 7 in group 0), sparse
        // super (backups in groups 1, 3, 5, 7) with reserved descriptor blocks: 2 GiB, 16 groups
        Dump d = uninitMatches("fresh4k", "2G", 200_000, "-b", "4096");
        assertTrue(d.uninitGroups() >= 12, d.toString());
        // without flex_bg each group holds its own bitmaps and inode table
        uninitMatches("noflex4k", "512M", 30_000, "-b", "4096", "-O", "^flex_bg");
        uninitMatches("noflex1k", "96M", 50_000, "-b", "1024", "-O", "^flex_bg");
    }

    @Test
    void uninitialisedGroupsWithoutSparseSuper() throws Exception {
        // every group has a superblock backup and a descriptor table copy
        Dump d = uninitMatches("nosparse", "96M", 50_000, "-b", "1024", "-O", "^sparse_super,^resize_inode");
        assertTrue(d.uninitGroups() >= 8, d.toString());
        uninitMatches("nosparse-noflex", "96M", 50_000, "-b", "1024", "-O", "^sparse_super,^resize_inode,^flex_bg");
    }

    @Test
    void uninitialisedGroupsWithSparseSuper2() throws Exception {
        // backups only in the groups s_backup_bgs names: group 1 and the last, or group 1 alone
        uninitMatches("sparse2", "96M", 50_000, "-b", "1024", "-O", "sparse_super2");
        uninitMatches("sparse2-one", "96M", 50_000, "-b", "1024", "-O", "sparse_super2", "-E", "num_backup_sb=1");
        uninitMatches("sparse2-none", "96M", 50_000, "-b", "1024", "-O", "sparse_super2", "-E", "num_backup_sb=0");
    }

    @Test
    void uninitialisedGroupsWithMetaBg() throws Exception {
        // one descriptor block per meta group, in its first, second and last group: 64-byte
        // descriptors, 16 per 1 KiB block; 32-byte ones, 32 per block; 40 groups either way
        uninitMatches("metabg64", "320M", 200_000, "-b", "1024", "-O", "meta_bg,^resize_inode,64bit");
        uninitMatches("metabg32", "320M", 200_000, "-b", "1024", "-O", "meta_bg,^resize_inode,^64bit");
        uninitMatches("metabg-noflex", "320M", 200_000, "-b", "1024", "-O", "meta_bg,^resize_inode,^flex_bg");
    }

    @Test
    void uninitialisedGroupsWithEveryDescriptorSizeAndChecksum() throws Exception {
        uninitMatches("u32", "96M", 50_000, "-b", "1024", "-O", "^64bit");
        uninitMatches("u128", "96M", 50_000, "-b", "1024", "-O", "64bit", "-E", "desc_size=128");
        uninitMatches("ucrc16", "96M", 50_000, "-b", "1024", "-O", "^metadata_csum,uninit_bg");
        uninitMatches("u2k", "192M", 40_000, "-b", "2048");
    }

    @Test
    void uninitialisedGroupsAddedByResize2fs() throws Exception {
        // grown offline from 64 MiB to 400 MiB: new groups, BLOCK_UNINIT, some using reserved descriptor blocks
        Path img = dir.resolve("grown");
        run("truncate", "-s", "64M", img.toString());
        run("mkfs.ext4", "-q", "-F", "-b", "1024", img.toString());
        run("truncate", "-s", "400M", img.toString());
        run("resize2fs", img.toString());
        run("e2fsck", "-fn", img.toString());
        Dump d = matchesDumpe2fs(img);
        assertTrue(d.groups() >= 50 && d.uninitGroups() >= 30 && d.uninitFree().cardinality() > 250_000, d.toString());
    }

    /**
     * mkfs and resize2fs never leave the last group uninitialised, and e2fsck calls it an error
     * ("last group block bitmap uninitialized"): flagged so with debugfs (checksum recomputed),
     * that group is stored whole with a warning, the others are read as before.
     */
    @Test
    void anUninitialisedLastGroupIsStoredWhole() throws Exception {
        Path img = dir.resolve("lastuninit");
        run("truncate", "-s", "150M", img.toString());
        run("mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^flex_bg", "-g", "8192", img.toString());
        Dump before = dumpe2fs(img);
        int last = before.groups() - 1;
        Path script = dir.resolve("lastuninit.debugfs");
        Files.writeString(script, "set_bg " + last + " flags 7\nset_bg " + last + " checksum calc\n");
        run("debugfs", "-w", "-f", script.toString(), img.toString());
        List<String> w = new ArrayList<>();
        BitSet got = blocks(free(img, w), 4096);
        assertEquals(List.of("lastuninit: ext2/3/4 file system at byte 0: 1 BLOCK_UNINIT group stored whole, their computed bitmaps"
                + " do not hold together (group " + last + " is the last group, which e2fsck never leaves uninitialised)"), w);
        BitSet want = (BitSet) before.free().clone();
        want.clear(last * 8192, 38400);
        assertEquals(want, got);
        assertTrue(got.get(8192 + 2000) && !got.get(38399), "the other groups are read as before, the last stored whole");
    }

    @Test
    void anUninitialisedGroupThatDoesNotAddUpIsStoredWhole() throws Exception {
        // group 3's free count is made 100 (checksum recomputed): its computed bitmap no longer agrees
        Path img = dir.resolve("badcount");
        run("truncate", "-s", "96M", img.toString());
        run("mkfs.ext4", "-q", "-F", "-b", "1024", img.toString());
        Dump before = dumpe2fs(img);
        Path script = dir.resolve("badcount.debugfs");
        Files.writeString(script, "set_bg 3 free_blocks_count 100\nset_bg 3 checksum calc\n");
        run("debugfs", "-w", "-f", script.toString(), img.toString());
        List<String> w = new ArrayList<>();
        BitSet got = blocks(free(img, w), 1024);
        assertEquals(1, w.size(), w.toString());
        assertTrue(w.getFirst().contains("at byte 0: 1 BLOCK_UNINIT group stored whole")
                && w.getFirst().contains("group 3: computed bitmap marks " + before.free().get(3 * 8192 + 1, 4 * 8192 + 1).cardinality()
                + " blocks free, its descriptor says 100"), w.getFirst());
        BitSet want = (BitSet) before.free().clone();
        want.clear(3 * 8192 + 1, 4 * 8192 + 1); // group 3 (blocks 24577 to 32768) stored whole; the others as before
        assertEquals(want, got);
        assertTrue(got.get(2 * 8192 + 4000), "the other uninitialised groups are still free");
    }

    // ------------------------------------------------------------------ looks mounted or in use

    private void refused(Path img, String expect) {
        List<String> w = new ArrayList<>();
        ByteRanges r = free(img, w);
        assertTrue(r.isEmpty(), "no free ranges for " + img.getFileName() + ": " + r);
        assertEquals(1, w.size(), w.toString());
        assertTrue(w.getFirst().contains(expect) && w.getFirst().contains("at byte 0"), w.getFirst());
    }

    @Test
    void refusesAFileSystemThatLooksMounted() throws Exception {
        Path a = fs("state", "32M", "mkfs.ext4");
        run("debugfs", "-w", "-R", "ssv state 0", a.toString());
        refused(a, "looks mounted or in use (state 0x0");

        Path b = fs("recover", "32M", "mkfs.ext4");
        run("debugfs", "-w", "-R", "feature needs_recovery", b.toString());
        refused(b, "needs_recovery");

        Path c = fs("mtime", "32M", "mkfs.ext4");
        run("debugfs", "-w", "-R", "ssv mtime 20991231", c.toString());
        refused(c, "last mount time");

        Path e = fs("errors", "32M", "mkfs.ext4");
        run("debugfs", "-w", "-R", "ssv state 3", e.toString());
        refused(e, "errors recorded");
    }

    @Test
    void refusesBigalloc() throws Exception {
        Path img = dir.resolve("bigalloc");
        run("truncate", "-s", "64M", img.toString());
        run("mkfs.ext4", "-q", "-F", "-O", "bigalloc", "-C", "16384", img.toString());
        refused(img, "bigalloc");
    }

    @Test
    void cleanMmpIsUsedButAnInUseOneIsRefused() throws Exception {
        // mkfs only: debugfs -w would wait out the MMP interval (11 s) for each change
        Path img = dir.resolve("mmp");
        run("truncate", "-s", "64M", img.toString());
        run("mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "mmp", img.toString());
        matchesDumpe2fs(img);
        String out = run("dumpe2fs", "-h", img.toString());
        Matcher m = Pattern.compile("(?m)^MMP block number:\\s+(\\d+)").matcher(out);
        assertTrue(m.find(), out);
        long at = Long.parseLong(m.group(1)) * 4096 + 4;
        patch(img, at, le32(0x12345678)); // a sequence number a live node would write
        refused(img, "MMP sequence 0x12345678");
    }

    // ------------------------------------------------------------------ damage

    static byte[] le32(long v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) v).array();
    }

    static void patch(Path img, long at, byte[] bytes) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(bytes), at);
        }
    }

    @Test
    void damagedNumbersAreRefused() throws Exception {
        // without checksums each number must be caught by its own check
        String[] nocsum = {"-b", "4096", "-O", "^metadata_csum,^uninit_bg"};
        Path a = fs("count", "32M", "mkfs.ext4", nocsum);
        patch(a, 1024 + 0x4, le32(0x7fffffff));
        refused(a, "blocks count 2147483647");

        Path b = fs("log", "32M", "mkfs.ext4", nocsum);
        patch(b, 1024 + 0x18, le32(9));
        refused(b, "block size log 9");

        Path c = fs("bpg", "32M", "mkfs.ext4", nocsum);
        patch(c, 1024 + 0x20, le32(4096));
        refused(c, "blocks per group 4096");

        Path d = fs("inodes", "32M", "mkfs.ext4", nocsum);
        patch(d, 1024 + 0x0, le32(12345));
        refused(d, "inodes count 12345");

        // with metadata_csum the superblock checksum catches it first
        Path e = fs("csum", "32M", "mkfs.ext4", "-b", "4096");
        patch(e, 1024 + 0x4, le32(0x7fffffff));
        refused(e, "superblock checksum");
    }

    @Test
    void damagedDescriptorsAreRefused() throws Exception {
        byte[] garbage = new byte[64];
        new Random(7).nextBytes(garbage);
        Path a = fs("gd", "32M", "mkfs.ext4", "-b", "4096");
        patch(a, 4096, garbage); // group 0's descriptor: its checksum no longer matches
        refused(a, "group 0 descriptor checksum");

        Path b = fs("gd16", "32M", "mkfs.ext4", "-b", "4096", "-O", "^metadata_csum,uninit_bg");
        patch(b, 4096, garbage);
        refused(b, "crc16");

        // no checksums at all: a block bitmap pointer into another group's inode table
        Path c = fs("gdplain", "32M", "mkfs.ext4", "-b", "4096", "-O", "^metadata_csum,^uninit_bg");
        String out = run("dumpe2fs", c.toString());
        Matcher m = Pattern.compile("Inode table at (\\d+)-").matcher(out);
        assertTrue(m.find(), out);
        patch(c, 4096, le32(Long.parseLong(m.group(1)) + 3));
        refused(c, "group 0 block bitmap");
    }

    @Test
    void damagedBitmapsAreRefused() throws Exception {
        Path a = fs("bm", "32M", "mkfs.ext4", "-b", "4096");
        long bitmap = firstBitmap(a);
        patch(a, bitmap * 4096 + 100, new byte[]{0x00, 0x00});
        refused(a, "block bitmap checksum");

        Path b = fs("bmplain", "32M", "mkfs.ext4", "-b", "4096", "-O", "^metadata_csum,^uninit_bg");
        long bm = firstBitmap(b);
        patch(b, bm * 4096, new byte[]{0x00}); // blocks 0 to 7 (superblock, descriptors) now "free"
        refused(b, "marks");
    }

    @Test
    void aBackupSuperblockMarkedFreeIsRefused() throws Exception {
        // group 1's backup superblock marked free, its free count and checksums made to agree: only
        // where the backups belong gives it away (e2fsck: "block bitmap differences: +8192")
        for (String csum : List.of("metadata_csum", "^metadata_csum,^uninit_bg")) {
            Path img = dir.resolve("freeb" + csum.length());
            run("truncate", "-s", "64M", img.toString());
            run("mkfs.ext4", "-q", "-F", "-b", "4096", "-g", "8192", "-O", csum, img.toString());
            Path script = dir.resolve("freeb" + csum.length() + ".debugfs");
            Files.writeString(script, "freeb 8192\nset_bg 1 free_blocks_count 7136\nset_bg 1 checksum calc\n");
            run("debugfs", "-w", "-f", script.toString(), img.toString());
            refused(img, "group 1 superblock backup and descriptor blocks (blocks 8192 to ");
        }
    }

    private static long firstBitmap(Path img) throws Exception {
        Matcher m = Pattern.compile("Block bitmap at (\\d+)").matcher(run("dumpe2fs", img.toString()));
        assertTrue(m.find());
        return Long.parseLong(m.group(1));
    }

    /**
     * Seeded random damage to the metadata of a file system: the answer is the undamaged one,
     * or (with a warning) nothing, never other free blocks. With metadata_csum, 1 to 4 bytes of
     * the superblock, the descriptors or the block bitmaps: every byte that matters is under a
     * checksum. Without checksums, one byte of the superblock or the descriptors: the range and
     * cross checks must catch it (a bitmap itself has no protection but its free count).
     */
    @Test
    void randomDamageNeverGivesAWrongHole() throws Exception {
        long seed = Long.getLong("cask.seed", System.nanoTime());
        System.out.println("ExtFreeBlocksTest.randomDamageNeverGivesAWrongHole seed " + seed + " (replay: -Dcask.seed=" + seed + ")");
        Random rnd = new Random(seed);
        for (boolean csum : new boolean[]{true, false}) {
            Path img = csum ? fs("fuzz-csum", "24M", "mkfs.ext4", "-b", "1024")
                    : fs("fuzz-plain", "24M", "mkfs.ext4", "-b", "1024", "-O", "^metadata_csum,^uninit_bg");
            byte[] orig = Files.readAllBytes(img);
            BitSet want;
            try (var d = new PartitionTableFuzzTest.Mem(orig)) {
                List<String> w = new ArrayList<>();
                want = blocks(ExtFreeBlocks.read(d, 0, d.size(), "fuzz", w::add), 1024);
                assertEquals(List.of(), w);
            }
            Dump dump = dumpe2fs(img);
            assertTrue(dump.free().equals(want) && want.cardinality() > 1000, "undamaged answer matches dumpe2fs");
            long bitmaps = firstBitmap(img) * 1024;
            long[][] regions = csum ? new long[][]{{1024, 1024}, {2048, 1024}, {bitmaps, 1024L * dump.groups()}}
                    : new long[][]{{1024, 1024}, {2048, 64L * dump.groups()}};
            int refusedCount = 0;
            for (int iter = 0; iter < 400; iter++) {
                byte[] b = orig.clone();
                int n = csum ? 1 + rnd.nextInt(4) : 1;
                for (int k = 0; k < n; k++) {
                    long[] r = regions[rnd.nextInt(regions.length)];
                    int at = (int) (r[0] + rnd.nextInt((int) r[1]));
                    b[at] = (byte) (rnd.nextBoolean() ? rnd.nextInt(256) : b[at] ^ (1 << rnd.nextInt(8)));
                }
                List<String> w = new ArrayList<>();
                BitSet got;
                try (var d = new PartitionTableFuzzTest.Mem(b)) {
                    got = blocks(ExtFreeBlocks.read(d, 0, d.size(), "fuzz", w::add), 1024);
                } catch (RuntimeException e) {
                    throw new AssertionError("seed " + seed + " iteration " + iter + ": " + e, e);
                }
                BitSet wrong = (BitSet) got.clone();
                wrong.andNot(dump.free());
                if (!wrong.isEmpty()) fail("seed " + seed + " iteration " + iter + ": blocks " + wrong + " reported free but are used");
                if (csum && !got.equals(want) && !got.isEmpty()) fail("seed " + seed + " iteration " + iter + ": damage changed the answer");
                if (!w.isEmpty()) {
                    if (!got.isEmpty()) fail("seed " + seed + " iteration " + iter + ": a warning but free ranges: " + w);
                    refusedCount++;
                } // else nothing, or the same answer: damage to the magic, or to bytes that do not matter
            }
            System.out.println("ExtFreeBlocksTest: " + (csum ? "metadata_csum" : "no checksums") + ": " + refusedCount + " of 400 damaged copies refused");
            assertTrue(refusedCount > 40, "damage that matters is caught: " + refusedCount + " of 400");
        }
    }

    @Test
    void notExtIsQuietlyNothing() throws Exception {
        Path img = dir.resolve("zeros");
        run("truncate", "-s", "8M", img.toString());
        List<String> w = new ArrayList<>();
        assertTrue(free(img, w).isEmpty());
        assertEquals(List.of(), w);
    }
}
