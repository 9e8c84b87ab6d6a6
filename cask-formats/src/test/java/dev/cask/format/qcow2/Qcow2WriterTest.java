package dev.cask.format.qcow2;

import dev.cask.common.Progress;
import dev.cask.format.RawFileDevice;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Writes qcow2 files and lets real qemu-img judge them: check, compare, map. */
class Qcow2WriterTest {
    private static final int K = 1024, M = 1024 * 1024;

    @TempDir
    Path dir;

    /** Records what the writer reports. */
    private static final class Recorder implements Progress {
        final AtomicLong advanced = new AtomicLong();
        final List<String> events = new ArrayList<>();
        long total = -1;

        @Override public synchronized void start(String label, long total) {
            events.add("start");
            this.total = total;
        }

        @Override public void advance(long delta) {
            assertTrue(delta > 0, "advance by " + delta);
            advanced.addAndGet(delta);
        }

        @Override public synchronized void done() {
            events.add("done");
        }
    }

    /** {@code qemu-img check} must find no errors and no leaks. */
    private void assertClean(Path image) {
        Qemu.Result r = Qemu.exec(dir, "qemu-img", "check", image.toString());
        assertEquals(0, r.exit(), "qemu-img check " + image + ":\n" + r.output());
        assertTrue(r.output().contains("No errors were found"), r.output());
        assertFalse(r.output().contains("leaked"), r.output());
    }

    /** Guest ranges that {@code qemu-img map} reports as allocated data, as [start, end) pairs. */
    private List<long[]> allocated(Path image) {
        String json = Qemu.run(dir, "qemu-img", "map", "--output=json", image.toString());
        List<long[]> out = new ArrayList<>();
        Matcher m = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+),[^}]*\"data\": (true|false)").matcher(json);
        while (m.find()) {
            if (m.group(3).equals("true")) {
                long start = Long.parseLong(m.group(1));
                out.add(new long[] {start, start + Long.parseLong(m.group(2))});
            }
        }
        return out;
    }

    private static void assertUnallocated(List<long[]> allocated, long start, long end) {
        for (long[] a : allocated) {
            assertTrue(a[1] <= start || a[0] >= end,
                    "range " + start + ".." + end + " should be unallocated but " + a[0] + ".." + a[1] + " is data");
        }
    }

    @Test
    void rawSourceWithHolesZerosAndAnOddSize() throws IOException {
        int size = 10 * M + 1000; // not a multiple of 512, let alone of the cluster size
        Path raw = dir.resolve("src.raw");
        Random rnd = new Random(5);
        byte[] random = new byte[M];
        rnd.nextBytes(random);
        try (RandomAccessFile f = new RandomAccessFile(raw.toFile(), "rw")) {
            f.setLength(size);
            f.write(random);                     // [0, 1M) data
            f.write(new byte[M]);                // [1M, 2M) zeros written as data
            f.seek(5 * M + 3);                   // [2M, 5M) hole
            f.write(random, 0, 100 * K);         // unaligned data
            f.seek(size - 1000);
            f.write(random, 7, 1000);            // tail in the last, partial cluster
        }
        Path out = dir.resolve("out.qcow2");
        Recorder progress = new Recorder();
        try (RawFileDevice src = RawFileDevice.open(raw)) {
            Qcow2Writer.write(src, out, progress);
        }
        assertEquals(List.of("start", "done"), progress.events);
        assertEquals(size, progress.total);
        assertEquals(size, progress.advanced.get());
        assertClean(out);
        Qemu.run(dir, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw.toString(), out.toString());

        List<long[]> allocated = allocated(out);
        assertUnallocated(allocated, M, 5 * M);
        assertUnallocated(allocated, 5 * M + 128 * K, size - 64 * K);
        assertFalse(allocated.isEmpty());

        byte[] expected = Files.readAllBytes(raw);
        try (Qcow2Device back = Qcow2Device.open(out, w -> {})) {
            assertEquals((size + 511) & ~511, back.size());
            byte[] all = Qemu.readAll(back);
            assertArrayEquals(expected, Arrays.copyOf(all, size));
            for (int i = size; i < all.length; i++) assertEquals(0, all[i]);
        }
        // only the data clusters were stored: 16 + 2 + 1 of 64 KiB plus metadata
        assertTrue(Files.size(out) < 2 * M, "file size " + Files.size(out));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(), files.filter(p -> p.getFileName().toString().contains(".tmp-")).toList(), "temporary files left");
        }
    }

    @Test
    void qcow2ChainSourceMatchesQemu() throws IOException {
        Path base = dir.resolve("base.raw");
        byte[] random = new byte[3 * M];
        new Random(8).nextBytes(random);
        Files.write(base, random);
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "base.raw", "-F", "raw", "top.qcow2", "700M");
        Path top = dir.resolve("top.qcow2");
        Qemu.io(top, "write -P 0x11 100k 8k", "write -z 1M 256k", "write -P 0x22 520M 64k", "write -P 0x23 699M 4k");
        Path out = dir.resolve("copy.qcow2");
        try (Qcow2Device src = Qcow2Device.open(top, w -> {})) {
            Qcow2Writer.write(src, out, Progress.NONE);
        }
        assertClean(out);
        Qemu.run(dir, "qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", top.toString(), out.toString());
        List<long[]> allocated = allocated(out);
        assertUnallocated(allocated, 3 * M, 520 * M);
        assertUnallocated(allocated, M, M + 256 * K);
    }

    @Test
    void hugeSparseDiskIsStreamed() throws IOException {
        long size = 1L << 40; // 1 TiB, almost all hole
        Path raw = dir.resolve("huge.raw");
        byte[] block = new byte[64 * K];
        new Random(1).nextBytes(block);
        long[] at = {0, 300L << 30, 512L << 20, size - 64 * K};
        try (RandomAccessFile f = new RandomAccessFile(raw.toFile(), "rw")) {
            f.setLength(size);
            for (long a : at) {
                f.seek(a);
                f.write(block);
            }
        }
        Path out = dir.resolve("huge.qcow2");
        Recorder progress = new Recorder();
        try (RawFileDevice src = RawFileDevice.open(raw)) {
            Qcow2Writer.write(src, out, progress);
        }
        assertEquals(size, progress.advanced.get());
        assertClean(out);
        assertTrue(Files.size(out) < 2 * M, "file size " + Files.size(out));
        try (Qcow2Device back = Qcow2Device.open(out, w -> {})) {
            assertEquals(size, back.size());
            byte[] b = new byte[64 * K];
            for (long a : at) {
                back.read(a, b, 0, b.length);
                assertArrayEquals(block, b, "block at " + a);
            }
            long data = back.blockStatus(0, size).stream().filter(s -> !s.hole()).mapToLong(s -> s.length()).sum();
            assertEquals(at.length * 64L * K, data);
        }
        List<long[]> allocated = allocated(out);
        assertEquals(at.length, allocated.size());
    }

    @Test
    void tinyAndEmptyDisks() throws IOException {
        for (int size : new int[] {0, 1, 1000, 512, 64 * K, 64 * K + 512}) {
            Path raw = dir.resolve("tiny-" + size + ".raw");
            byte[] bytes = new byte[size];
            Arrays.fill(bytes, (byte) 0x5c);
            Files.write(raw, bytes);
            Path out = dir.resolve("tiny-" + size + ".qcow2");
            try (RawFileDevice src = RawFileDevice.open(raw)) {
                Qcow2Writer.write(src, out, Progress.NONE);
            }
            assertClean(out);
            Qemu.run(dir, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw.toString(), out.toString());
            try (Qcow2Device back = Qcow2Device.open(out, w -> {})) {
                assertArrayEquals(bytes, Arrays.copyOf(Qemu.readAll(back), size));
            }
        }
    }

    @Test
    void replacesAnExistingFile() throws IOException {
        Path raw = dir.resolve("r.raw");
        Files.write(raw, new byte[] {1, 2, 3});
        Path out = dir.resolve("existing.qcow2");
        Files.writeString(out, "old contents");
        try (RawFileDevice src = RawFileDevice.open(raw)) {
            Qcow2Writer.write(src, out, Progress.NONE);
        }
        assertClean(out);
        try (Qcow2Device back = Qcow2Device.open(out, w -> {})) {
            byte[] b = new byte[3];
            back.read(0, b, 0, 3);
            assertArrayEquals(new byte[] {1, 2, 3}, b);
        }
    }

    @Test
    void refcountLayoutCoversItselfMinimally() {
        assertArrayEquals(new long[] {1, 1}, Qcow2Writer.refcountLayout(1));
        assertArrayEquals(new long[] {1, 1}, Qcow2Writer.refcountLayout(32766));
        assertArrayEquals(new long[] {2, 1}, Qcow2Writer.refcountLayout(32767));
        long perBlock = Qcow2Writer.REFCOUNTS_PER_BLOCK, perTable = Qcow2Writer.REFTABLE_ENTRIES_PER_CLUSTER;
        Random rnd = new Random(3);
        for (int i = 0; i < 10_000; i++) {
            long n = i < 5000 ? 1 + rnd.nextLong(1L << 20) : 1 + rnd.nextLong(1L << 36); // up to 4 EiB of 64 KiB clusters
            long[] rt = Qcow2Writer.refcountLayout(n);
            long r = rt[0], t = rt[1];
            assertTrue(n + r + t <= r * perBlock && r <= t * perTable, n + " -> " + r + ", " + t);
            // one block fewer cannot count everything
            assertTrue(n + (r - 1) + t > (r - 1) * perBlock || r - 1 > t * perTable, n + " not minimal: " + r + ", " + t);
        }
    }

    @Test
    void headerEncodeDecodeRoundTrip() {
        Qcow2Header h = new Qcow2Header(3, 0, 0, 16, 123456789, 0, 1, 65536, 131072, 1, 0, 0,
                Qcow2Header.INCOMPAT_COMPRESSION, 1, 0, 4, 112, Qcow2Header.COMPRESSION_ZSTD, "base image.qcow2", "qcow2");
        byte[] bytes = h.encode();
        assertEquals(65536, bytes.length);
        Qcow2Header d = Qcow2Header.decode("h", bytes, bytes.length, 1 << 20);
        assertEquals(h.size(), d.size());
        assertEquals(h.backingFile(), d.backingFile());
        assertEquals(h.backingFormat(), d.backingFormat());
        assertEquals(h.compressionType(), d.compressionType());
        assertEquals(h.headerLength(), d.headerLength());
        assertArrayEquals(bytes, d.encode());
        Qcow2Header v2 = new Qcow2Header(2, 0, 0, 9, 1 << 20, 0, 32, 512, 1024, 1, 0, 0, 0, 0, 0, 4, 72, 0, null, null);
        byte[] b2 = v2.encode();
        assertEquals(v2, Qcow2Header.decode("v2", b2, b2.length, 1 << 20));
    }
}
