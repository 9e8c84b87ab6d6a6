package dev.cask.format;

import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Raw export writes every data window, in parallel, to its offset; a failed read leaves no file. */
class RawExportTest {
    @TempDir
    Path dir;

    /** An in-memory disk with data runs between holes; reading past {@code failAt} fails. */
    private static final class MemDisk implements BlockDevice {
        final byte[] bytes;
        final List<BlockStatus> map = new ArrayList<>();
        volatile long failAt = Long.MAX_VALUE;

        MemDisk(int size, long seed) {
            bytes = new byte[size];
            Random rnd = new Random(seed);
            long pos = 0;
            while (pos < size) {
                int hole = rnd.nextInt(3 << 20);
                int data = 4096 + rnd.nextInt(12 << 20); // runs longer than one 8 MiB window too
                long h = Math.min(hole, size - pos);
                if (h > 0) map.add(new BlockStatus(pos, h, true));
                pos += h;
                long d = Math.min(data, size - pos);
                if (d > 0) {
                    byte[] run = new byte[(int) d];
                    rnd.nextBytes(run);
                    System.arraycopy(run, 0, bytes, (int) pos, (int) d);
                    map.add(new BlockStatus(pos, d, false));
                }
                pos += d;
            }
        }

        @Override
        public long size() {
            return bytes.length;
        }

        @Override
        public Capabilities capabilities() {
            return Capabilities.readOnly(4096);
        }

        @Override
        public void read(long offset, byte[] buffer, int bufferOffset, int length) {
            BlockDevice.checkRange(this, offset, length);
            if (offset + length > failAt) throw new CaskException.Io("disk: read at " + offset + " failed (injected)", null);
            System.arraycopy(bytes, (int) offset, buffer, bufferOffset, length);
        }

        @Override
        public List<BlockStatus> blockStatus(long offset, long length) {
            List<BlockStatus> out = new ArrayList<>();
            for (BlockStatus s : map) {
                long a = Math.max(s.offset(), offset), b = Math.min(s.end(), offset + length);
                if (a < b) out.add(new BlockStatus(a, b - a, s.hole()));
            }
            return out;
        }

        @Override
        public void close() {}
    }

    @Test
    void aFileOfManyWindowsIsTheDiskBitForBitAndSparse() throws Exception {
        for (long seed = 1; seed <= 3; seed++) {
            MemDisk disk = new MemDisk((64 << 20) + 777, seed);
            Path out = dir.resolve("d" + seed + ".raw");
            AtomicLong progressed = new AtomicLong();
            RawExport.toFile(disk, out, new Progress() {
                @Override
                public void start(String label, long total) {}

                @Override
                public void advance(long delta) {
                    progressed.addAndGet(delta);
                }

                @Override
                public void done() {}
            }, false);
            assertArrayEquals(disk.bytes, Files.readAllBytes(out), "seed " + seed);
            assertEquals(disk.size(), progressed.get(), "progress counts every byte once, holes too (seed " + seed + ")");
            long holes = disk.map.stream().filter(BlockStatus::hole).mapToLong(BlockStatus::length).sum();
            Process stat = new ProcessBuilder("stat", "-c", "%b", out.toString()).start();
            long allocated = Long.parseLong(new String(stat.getInputStream().readAllBytes()).trim()) * 512;
            assertEquals(0, stat.waitFor());
            assertTrue(allocated <= disk.size() - holes + (4L << 20), "holes stay unallocated: " + allocated + " bytes on disk");
        }
    }

    @Test
    void aFailedReadLeavesNeitherTheFileNorItsTemporary() throws Exception {
        MemDisk disk = new MemDisk(48 << 20, 9);
        disk.failAt = 30L << 20;
        Path out = dir.resolve("broken.raw");
        CaskException e = assertThrows(CaskException.class, () -> RawExport.toFile(disk, out, Progress.NONE, false));
        assertTrue(e.getMessage().contains("injected"), e.getMessage());
        assertFalse(Files.exists(out));
        try (var files = Files.list(dir)) {
            assertEquals(List.of(), files.toList(), "no temporary file left behind");
        }
    }

    @Test
    void aStreamGetsHolesAsZeros() {
        MemDisk disk = new MemDisk(20 << 20, 4);
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        RawExport.toStream(disk, o, Progress.NONE);
        assertArrayEquals(disk.bytes, o.toByteArray());
    }
}
