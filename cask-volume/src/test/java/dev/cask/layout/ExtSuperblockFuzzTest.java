package dev.cask.layout;

import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.ByteRanges;
import dev.cask.device.Capabilities;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The ext superblock reader ({@link ExtFreeBlocks#read}) against superblocks whose fields say
 * anything: counts, sizes, feature flags, group geometry, descriptor size, meta_bg start, MMP
 * block, checksum seed and type, set to edge values (0, 1, all ones, 2^31, one off, random), one
 * or two at a time, on real file systems (mkfs.ext4 with 1 KiB and 4 KiB blocks, with and
 * without 64-bit descriptors and metadata_csum), with the superblock checksum recomputed so that
 * the checks behind it are what is tested, and read through a partition cut shorter than the file
 * system at random. It must never throw, and never report a block free that the undamaged file
 * system uses (dumpe2fs's free blocks are the bound): wrong values give the undamaged answer, a
 * subset of it, or nothing with a warning. Seeded: -Dcask.seed=N replays a run.
 */
class ExtSuperblockFuzzTest {
    @TempDir
    Path dir;

    /** Superblock fields: offset and width in bytes. */
    private static final int[][] FIELDS = {
            {0x00, 4}, {0x04, 4}, {0x14, 4}, {0x18, 4}, {0x1c, 4}, {0x20, 4}, {0x24, 4}, {0x28, 4},
            {0x2c, 4}, {0x30, 4}, {0x3a, 2}, {0x4c, 4}, {0x58, 2}, {0x5c, 4}, {0x60, 4}, {0x64, 4},
            {0xfe, 2}, {0x104, 4}, {0x150, 4}, {0x168, 8}, {0x175, 1}, {0x24c, 4}, {0x250, 4}, {0x270, 4},
    };

    @Test
    void edgeValuedSuperblocksNeverGiveAWrongHoleOrAnException() throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        String[][] kinds = {
                {"-b", "1024"},
                {"-b", "4096", "-O", "64bit"},
                {"-b", "1024", "-O", "^metadata_csum,^uninit_bg,^64bit"},
                {"-b", "2048", "-O", "meta_bg,^resize_inode"},
        };
        int refused = 0, total = 0;
        for (String[] options : kinds) {
            Path img = fs("fs" + total, options);
            int blockSize = Integer.parseInt(options[1]);
            byte[] orig = Files.readAllBytes(img);
            ExtFreeBlocksTest.Dump dump = ExtFreeBlocksTest.dumpe2fs(img);
            BitSet want;
            try (var d = new PartitionTableFuzzTest.Mem(orig)) {
                List<String> w = new ArrayList<>();
                want = ExtFreeBlocksTest.blocks(ExtFreeBlocks.read(d, 0, d.size(), "fuzz", w::add), blockSize);
                assertEquals(List.of(), w, "the undamaged file system is read without doubt");
            }
            assertTrue(want.equals(dump.free()) && want.cardinality() > 100, "the undamaged answer is dumpe2fs's");
            boolean csum = (u32(orig, 1024 + 0x64) & 0x400) != 0;
            for (int iter = 0; iter < 500; iter++, total++) {
                String at = "seed " + seed + " mkfs " + String.join(" ", options) + " iteration " + iter;
                byte[] b = java.util.Arrays.copyOf(orig, 2048); // the superblock's copy; the rest is read from orig
                StringBuilder what = new StringBuilder();
                for (int k = 1 + rnd.nextInt(2); k > 0; k--) {
                    int[] f = FIELDS[rnd.nextInt(FIELDS.length)];
                    long v = value(rnd, get(b, 1024 + f[0], f[1]), f[1]);
                    put(b, 1024 + f[0], f[1], v);
                    what.append(String.format(" [0x%x]=%d", f[0], v));
                }
                if (csum && rnd.nextInt(8) != 0) { // the checksum made to match, most of the time
                    CRC32C c = new CRC32C();
                    c.update(b, 1024, 0x3fc);
                    put(b, 1024 + 0x3fc, 4, ~c.getValue() & 0xffffffffL);
                }
                long length = rnd.nextInt(4) == 0 ? 2048 + rnd.nextLong(orig.length - 2048) : orig.length;
                List<String> w = new ArrayList<>();
                ByteRanges got;
                try (var d = new Patched(orig, b)) {
                    got = ExtFreeBlocks.read(d, 0, length, "fuzz", w::add);
                } catch (RuntimeException e) {
                    throw new AssertionError(at + what + " length " + length + ": " + e, e);
                }
                if (got.count() > 0 && got.end(got.count() - 1) > length) fail(at + what + ": a free range past the partition's end");
                BitSet wrong = ExtFreeBlocksTest.blocks(got, blockSize);
                wrong.andNot(dump.free());
                if (!wrong.isEmpty()) fail(at + what + " length " + length + ": blocks " + wrong + " reported free but are used");
                if (!w.isEmpty()) {
                    if (!got.isEmpty()) fail(at + what + ": a warning but free ranges: " + w);
                    refused++;
                }
            }
        }
        System.out.println("ExtSuperblockFuzzTest seed " + seed + ": " + refused + " of " + total + " superblocks refused with a warning");
        assertTrue(refused > total / 4, "edge values are mostly refused: " + refused + " of " + total);
    }

    /** A disk image with its first {@code head.length} bytes replaced, without copying the rest. */
    private static final class Patched implements BlockDevice {
        private final byte[] image;
        private final byte[] head;

        Patched(byte[] image, byte[] head) {
            this.image = image;
            this.head = head;
        }

        @Override public long size() { return image.length; }
        @Override public Capabilities capabilities() { return Capabilities.readOnly(4096); }
        @Override public void read(long off, byte[] dst, int o, int n) {
            BlockDevice.checkRange(this, off, n);
            for (int i = 0; i < n; i++) {
                long at = off + i;
                dst[o + i] = at < head.length ? head[(int) at] : image[(int) at];
            }
        }
        @Override public List<BlockStatus> blockStatus(long off, long n) { return List.of(new BlockStatus(off, n, false)); }
        @Override public void close() {}
    }

    private Path fs(String name, String... options) throws Exception {
        Path root = Files.createDirectories(dir.resolve(name + ".d"));
        Random rnd = new Random(name.hashCode());
        for (int i = 0; i < 12; i++) {
            byte[] data = new byte[5_000 + rnd.nextInt(200_000)];
            rnd.nextBytes(data);
            Files.write(root.resolve("f" + i), data);
        }
        Path img = dir.resolve(name);
        ExtFreeBlocksTest.run("truncate", "-s", "16M", img.toString());
        List<String> cmd = new ArrayList<>(List.of("mkfs.ext4", "-q", "-F"));
        cmd.addAll(List.of(options));
        cmd.addAll(List.of("-d", root.toString(), img.toString()));
        ExtFreeBlocksTest.run(cmd.toArray(String[]::new));
        Path script = dir.resolve(name + ".debugfs");
        Files.writeString(script, "rm /f0\nrm /f3\nrm /f6\nrm /f9\n"); // free runs between used ones
        ExtFreeBlocksTest.run("debugfs", "-w", "-f", script.toString(), img.toString());
        return img;
    }

    private static long value(Random rnd, long old, int width) {
        long max = width == 8 ? Long.MAX_VALUE : (1L << (8 * width)) - 1;
        long[] edges = {0, 1, 2, max, max - 1, old + 1, old - 1, old * 2, old / 2, 1L << 31, 1L << 16, 7, 64, 65536};
        long v = rnd.nextInt(3) == 0 ? rnd.nextLong() : rnd.nextInt(4) == 0 ? old ^ (1L << rnd.nextInt(8 * width)) : edges[rnd.nextInt(edges.length)];
        return width == 8 ? v : v & max;
    }

    private static long get(byte[] b, int at, int width) {
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        return switch (width) {
            case 1 -> b[at] & 0xff;
            case 2 -> bb.getShort(at) & 0xffff;
            case 4 -> bb.getInt(at) & 0xffffffffL;
            default -> bb.getLong(at);
        };
    }

    private static void put(byte[] b, int at, int width, long v) {
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        switch (width) {
            case 1 -> b[at] = (byte) v;
            case 2 -> bb.putShort(at, (short) v);
            case 4 -> bb.putInt(at, (int) v);
            default -> bb.putLong(at, v);
        }
    }

    private static long u32(byte[] b, int at) {
        return get(b, at, 4);
    }
}
