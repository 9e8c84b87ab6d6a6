package dev.cask.format.qcow2;

import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Reads images made by real qemu-img/qemu-io and compares every byte with
 * {@code qemu-img convert -O raw} of the same file.
 */
class Qcow2DeviceTest {
    private static final int K = 1024, M = 1024 * 1024;

    @TempDir
    Path dir;

    private final List<String> warnings = new ArrayList<>();

    /** Opens {@code image}, checks all bytes against QEMU and the allocation map's contract; returns it open. */
    private Qcow2Device openAndCompare(Path image) {
        byte[] expected = Qemu.toRaw(image);
        Qcow2Device dev = Qcow2Device.open(image, warnings::add);
        assertEquals(expected.length, dev.size(), "size of " + image);
        byte[] actual = Qemu.readAll(dev);
        assertArrayEquals(expected, actual, "bytes of " + image);
        checkStatus(dev, expected, 0, expected.length);
        // unaligned sub-ranges too
        if (expected.length > 3 * M) checkStatus(dev, expected, 12345, 3 * M - 777);
        return dev;
    }

    /** blockStatus covers the range exactly; holes read as zeros. */
    private static void checkStatus(BlockDevice dev, byte[] expected, long offset, long length) {
        List<BlockStatus> status = dev.blockStatus(offset, length);
        long pos = offset;
        for (BlockStatus s : status) {
            assertEquals(pos, s.offset(), "status entries must be contiguous: " + status);
            if (s.hole()) {
                for (long i = s.offset(); i < s.end(); i++) {
                    if (expected[(int) i] != 0) throw new AssertionError("hole " + s + " has non-zero byte at " + i);
                }
            }
            pos = s.end();
        }
        assertEquals(offset + length, pos, "status must cover the range: " + status);
    }

    private static void assertHole(BlockDevice dev, long offset, long length) {
        List<BlockStatus> s = dev.blockStatus(offset, length);
        assertEquals(List.of(new BlockStatus(offset, length, true)), s, "expected a hole at " + offset + "+" + length);
    }

    private static void assertData(BlockDevice dev, long offset, long length) {
        for (BlockStatus s : dev.blockStatus(offset, length)) {
            assertFalse(s.hole(), "expected data at " + offset + "+" + length + ", got " + s);
        }
    }

    private Path create(String name, String options, String size) {
        Path p = dir.resolve(name);
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", options, name, size);
        return p;
    }

    /** A raw file with text (compressible), random (incompressible), written zeros and holes. */
    private Path mixedRaw(String name, int size, long seed) throws IOException {
        Path p = dir.resolve(name);
        Random rnd = new Random(seed);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
            byte[] text = "the quick brown fox jumps over the lazy dog 0123456789\n".repeat(20000).getBytes(StandardCharsets.US_ASCII);
            f.seek(0);
            f.write(text, 0, Math.min(M, size));
            byte[] random = new byte[M];
            rnd.nextBytes(random);
            if (size >= 2 * M) {
                f.seek(M);
                f.write(random);
            }
            if (size >= 3 * M) {
                f.seek(2 * M);
                f.write(new byte[M]); // zeros written as data
            }
            if (size >= 4 * M) {
                f.seek(3 * M + 4321);
                f.write(random, 0, 10_000);
            }
            if (size >= 8 * M) {
                f.seek(size - 1000);
                f.write(text, 5, 1000);
            }
        }
        return p;
    }

    @Test
    void version2Image() {
        Path img = create("v2.qcow2", "compat=0.10", "4M");
        Qemu.io(img, "write -P 0xab 0 64k", "write -P 0xcd 100000 5000", "write -P 0x11 3M 1M");
        try (Qcow2Device dev = openAndCompare(img)) {
            assertHole(dev, M, 2 * M);
            assertData(dev, 0, 64 * K);
            assertEquals(Capabilities.readOnly(64 * K), dev.capabilities());
            assertNull(dev.backing());
        }
        assertTrue(warnings.isEmpty(), warnings.toString());
    }

    @ParameterizedTest(name = "cluster size {0}")
    @ValueSource(ints = {512, 4096, 65536, 2 * 1024 * 1024})
    void version3ClusterSizes(int clusterSize) {
        Path img = create("v3-" + clusterSize + ".qcow2", "compat=1.1,cluster_size=" + clusterSize, "8M");
        Qemu.io(img, "write -P 0xab 0 64k", "write -P 0x5a 1000 300", "write -P 0x22 30k 40k",
                "write -P 0x33 5M 1000k", "write -P 0x44 7340032 512", "write -P 0x55 8387584 512");
        try (Qcow2Device dev = openAndCompare(img)) {
            assertEquals(clusterSize, dev.clusterSize());
            assertHole(dev, 2 * M, 2 * M);
            assertData(dev, 30 * K, 40 * K);
        }
    }

    @ParameterizedTest(name = "zlib, cluster size {0}")
    @ValueSource(ints = {512, 4096, 65536, 2 * 1024 * 1024})
    void zlibCompressed(int clusterSize) throws IOException {
        Path raw = mixedRaw("src-" + clusterSize + ".raw", 8 * M, clusterSize);
        Path img = dir.resolve("zlib-" + clusterSize + ".qcow2");
        Qemu.img(dir, "convert", "-c", "-O", "qcow2", "-o", "cluster_size=" + clusterSize, raw.toString(), img.toString());
        assertCompressed(img);
        try (Qcow2Device dev = openAndCompare(img)) {
            assertArrayEquals(Files.readAllBytes(raw), Qemu.readAll(dev));
            assertHole(dev, 4 * M, 2 * M);
        }
    }

    @ParameterizedTest(name = "zstd, cluster size {0}")
    @ValueSource(ints = {512, 65536, 2 * 1024 * 1024})
    void zstdCompressed(int clusterSize) throws IOException {
        Path raw = mixedRaw("zsrc-" + clusterSize + ".raw", 8 * M, clusterSize + 1);
        Path img = dir.resolve("zstd-" + clusterSize + ".qcow2");
        Qemu.img(dir, "convert", "-c", "-O", "qcow2", "-o", "cluster_size=" + clusterSize + ",compression_type=zstd",
                raw.toString(), img.toString());
        assertCompressed(img);
        try (Qcow2Device dev = openAndCompare(img)) {
            assertArrayEquals(Files.readAllBytes(raw), Qemu.readAll(dev));
        }
    }

    private void assertCompressed(Path img) {
        String check = Qemu.run(dir, "qemu-img", "check", img.toString());
        assertFalse(check.contains(" 0.00% compressed"), "expected compressed clusters in " + img + ":\n" + check);
    }

    @Test
    void extendedL2WithSubclustersOverRawBacking() throws IOException {
        Path base = mixedRaw("ext-base.raw", 4 * M, 7);
        Path img = dir.resolve("ext.qcow2");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", "-b", base.getFileName().toString(),
                "-F", "raw", img.getFileName().toString(), "6M");
        Qemu.io(img, "write -P 0x11 2k 2k", "write -z 8k 4k", "write -P 0x22 64k 64k", "write -P 0x33 200k 6k",
                "write -z 1M 10k", "write -P 0x44 1030k 2k", "write -P 0x55 5M 2k", "write -z 5200k 8k");
        try (Qcow2Device dev = openAndCompare(img)) {
            assertData(dev, 2 * K, 2 * K);
            assertData(dev, 0, 2 * K); // text of the raw backing file
            assertHole(dev, 8 * K, 4 * K); // zero subclusters
            assertHole(dev, M, 6 * K); // zero subclusters over backing data
            assertData(dev, 1030 * K, 2 * K);
        }
        try (Qcow2Device dev = Qcow2Device.open(img, warnings::add)) {
            assertHole(dev, 4 * M, M); // past the end of the 4 MiB backing file, never written
            assertHole(dev, 5 * M + 2 * K, 6 * K); // unallocated subclusters past the backing file
            assertData(dev, 5 * M, 2 * K);
        }
    }

    @Test
    void extendedL2WithoutBacking() {
        Path img = create("ext2.qcow2", "extended_l2=on,cluster_size=128k", "3M");
        Qemu.io(img, "write -P 0x11 4k 4k", "write -P 0x12 8k 100", "write -z 16k 8k", "write -P 0x13 1M 256k", "write -P 0x14 2M 4k");
        try (Qcow2Device dev = openAndCompare(img)) {
            assertHole(dev, 0, 4 * K);
            assertData(dev, 4 * K, 4 * K);
            assertHole(dev, 16 * K, 8 * K);
            assertHole(dev, 2 * M + 4 * K, M - 4 * K);
        }
    }

    @Test
    void zeroClusters() throws IOException {
        Path base = mixedRaw("zbase.raw", 4 * M, 3);
        Path img = dir.resolve("zero.qcow2");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-b", "zbase.raw", "-F", "raw", "zero.qcow2", "4M");
        Qemu.io(img, "write -P 0xaa 0 1M", "write -z 128k 64k", "write -z -u 256k 128k", "write -z 1M 64k",
                "write -z 1200k 100k", "write -z 3M 512k");
        try (Qcow2Device dev = openAndCompare(img)) {
            assertHole(dev, 128 * K, 64 * K); // zero flag with preallocated offset
            assertHole(dev, 256 * K, 128 * K); // zero flag without offset
            assertHole(dev, M, 64 * K); // zero over backing data: zeros, not the backing file's text
            assertData(dev, 1100 * K, 4 * K); // random bytes of the backing file
            byte[] b = new byte[64 * K];
            dev.read(M, b, 0, b.length);
            assertArrayEquals(new byte[64 * K], b);
        }
        Path plain = create("zero-plain.qcow2", "compat=1.1", "2M");
        Qemu.io(plain, "write -P 1 0 2M", "write -z 64k 1M");
        try (Qcow2Device dev = openAndCompare(plain)) {
            assertHole(dev, 64 * K, M);
        }
        assertTrue(Files.exists(base));
    }

    @Test
    void backingChainQcow2OverQcow2OverShorterRaw() throws IOException {
        Path base = dir.resolve("base.raw");
        byte[] random = new byte[M];
        new Random(11).nextBytes(random);
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            f.write(random);
            f.setLength(2 * M + 12345); // a tail hole, and a size that is not a multiple of 512
        }
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "mid.qcow2", "4M");
        Path mid = dir.resolve("mid.qcow2");
        Qemu.io(mid, "write -P 0x44 512k 64k", "write -P 0x55 3M 4k", "write -P 0x56 2M 4k");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2", "6M");
        Path top = dir.resolve("top.qcow2");
        Qemu.io(top, "write -P 0x66 0 4k", "write -z 100k 64k", "write -P 0x77 5M 64k", "write -P 0x78 540k 1k");
        try (Qcow2Device dev = openAndCompare(top)) {
            assertNotNull(dev.backing());
            assertTrue(dev.backing() instanceof Qcow2Device);
            assertHole(dev, 4 * M, M); // past mid's size
            assertHole(dev, 3 * M + 64 * K, 512 * K); // unallocated in mid, hole in base
            assertHole(dev, 100 * K, 64 * K); // zeroed in top over random base data
            assertData(dev, 200 * K, 4 * K); // base data through two levels
            byte[] expected = Arrays.copyOfRange(random, 200 * K, 204 * K);
            byte[] b = new byte[4 * K];
            dev.read(200 * K, b, 0, b.length);
            assertArrayEquals(expected, b);
        }
        // without the backing format extension: the format is probed
        for (String image : List.of("mid.qcow2", "top.qcow2")) {
            Path p = dir.resolve(image);
            byte[] bytes = Files.readAllBytes(p);
            ByteBuffer bb = ByteBuffer.wrap(bytes);
            int pos = bb.getInt(100);
            boolean found = false;
            while (bb.getInt(pos) != 0) {
                if (bb.getInt(pos) == Qcow2Header.EXT_BACKING_FORMAT) {
                    bb.putInt(pos, 0x12345678); // an unknown extension, ignored
                    found = true;
                }
                pos += 8 + ((bb.getInt(pos + 4) + 7) & ~7);
            }
            assertTrue(found, "backing format extension in " + image);
            Files.write(dir.resolve("probe-" + image), bytes);
        }
        // probe-top names mid.qcow2, the original: rename so the probed chain is used end to end
        Files.move(dir.resolve("probe-mid.qcow2"), dir.resolve("mid.qcow2"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        try (Qcow2Device dev = Qcow2Device.open(dir.resolve("probe-top.qcow2"), warnings::add);
             Qcow2Device ref = Qcow2Device.open(top, warnings::add)) {
            assertArrayEquals(Qemu.readAll(ref), Qemu.readAll(dev));
        }
    }

    @Test
    void internalSnapshotIsIgnoredWithAWarning() {
        Path img = create("snap.qcow2", "compat=1.1", "2M");
        Qemu.io(img, "write -P 0x01 0 1M");
        Qemu.img(dir, "snapshot", "-c", "before", img.toString());
        Qemu.io(img, "write -P 0x02 512k 1M");
        try (Qcow2Device dev = openAndCompare(img)) {
            byte[] b = new byte[1];
            dev.read(600 * K, b, 0, 1);
            assertEquals(2, b[0]);
        }
        assertEquals(List.of(img + ": 1 internal snapshot(s) ignored; importing the active image"), warnings);
    }

    @Test
    void dirtyBitIsReadAnyway() throws IOException {
        Path img = create("dirty.qcow2", "compat=1.1", "1M");
        Qemu.io(img, "write -P 0x0d 0 100k");
        byte[] expected = Qemu.toRaw(img);
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(72);
            long incompatible = f.readLong();
            f.seek(72);
            f.writeLong(incompatible | Qcow2Header.INCOMPAT_DIRTY);
        }
        try (Qcow2Device dev = Qcow2Device.open(img, warnings::add)) {
            assertArrayEquals(expected, Qemu.readAll(dev));
        }
    }

    @Test
    void concurrentReadsOfACompressedImage() throws Exception {
        Path raw = mixedRaw("conc.raw", 8 * M, 99);
        Path img = dir.resolve("conc.qcow2");
        Qemu.img(dir, "convert", "-c", "-O", "qcow2", "-o", "cluster_size=16k", raw.toString(), img.toString());
        byte[] expected = Files.readAllBytes(raw);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try (Qcow2Device dev = Qcow2Device.open(img, warnings::add)) {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                long seed = t;
                futures.add(pool.submit(() -> {
                    Random rnd = new Random(seed);
                    for (int i = 0; i < 300; i++) {
                        int len = 1 + rnd.nextInt(200 * K);
                        int off = rnd.nextInt(expected.length - len);
                        byte[] b = new byte[len];
                        dev.read(off, b, 0, len);
                        assertArrayEquals(Arrays.copyOfRange(expected, off, off + len), b, "read " + off + "+" + len);
                    }
                    return null;
                }));
            }
            for (Future<?> f : futures) f.get();
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void rangeChecksFollowTheBlockDeviceContract() {
        Path img = create("range.qcow2", "compat=1.1", "1M");
        try (Qcow2Device dev = Qcow2Device.open(img, warnings::add)) {
            byte[] b = new byte[10];
            assertThrows(IllegalArgumentException.class, () -> dev.read(M - 5, b, 0, 10));
            assertThrows(IllegalArgumentException.class, () -> dev.read(-1, b, 0, 1));
            assertThrows(IllegalArgumentException.class, () -> dev.blockStatus(0, M + 1));
            assertThrows(UnsupportedOperationException.class, () -> dev.write(0, b, 0, 1, false));
            dev.read(M - 10, b, 0, 10);
            assertHole(dev, 0, M);
        }
    }
}
