package dev.cask.format.qcow2;

import dev.cask.common.CaskException;
import dev.cask.device.BlockStatus;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Mutates small valid images at random (seeded) and opens, reads and maps them: the only
 * allowed outcomes are success or a {@link CaskException}; anything else (an unchecked
 * exception, an error, a hang) fails with the seed and the iteration, which reproduce it:
 * run with {@code -Dqcow2.fuzz.seed=S} (and {@code -Dqcow2.fuzz.iterations=N}).
 *
 * <p>Mutations hit the header cluster and the tables (L1, L2, compressed descriptors), where
 * they matter; each iteration reads at most 4 MiB and maps at most 1 GiB of the device.
 */
class Qcow2FuzzTest {
    private static final int K = 1024, M = 1024 * 1024;
    private static final long READ_CAP = 4 * M;
    private static final long MAP_CAP = 1L << 30;
    private static final long ITERATION_LIMIT_NANOS = 5_000_000_000L;

    @TempDir
    static Path dir;

    /** A valid image and the byte ranges worth mutating. */
    private record Seed(String name, byte[] bytes, List<long[]> regions) {}

    private static final List<Seed> seeds = new ArrayList<>();

    @BeforeAll
    static void makeImages() throws IOException {
        // a raw backing file for the extended-L2 overlay
        Path raw = dir.resolve("backing.raw");
        try (RandomAccessFile f = new RandomAccessFile(raw.toFile(), "rw")) {
            byte[] b = new byte[256 * K];
            new Random(1).nextBytes(b);
            f.write(b);
            f.setLength(512 * K);
        }
        Path text = dir.resolve("text.raw");
        Files.write(text, "fuzz me, fuzz me not ".repeat(40_000).getBytes());

        Qemu.img(dir, "create", "-q", "-f", "qcow2", "v3.qcow2", "1M");
        Qemu.io(dir.resolve("v3.qcow2"), "write -P 0xab 0 64k", "write -z 128k 64k", "write -P 0x11 700k 8k");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=512", "v2.qcow2", "256k");
        Qemu.io(dir.resolve("v2.qcow2"), "write -P 0xcd 0 4k", "write -P 0xce 33k 3k", "write -P 0xcf 200k 1k");
        Qemu.img(dir, "convert", "-c", "-O", "qcow2", "-o", "cluster_size=4k", text.toString(), "zlib.qcow2");
        Qemu.img(dir, "convert", "-c", "-O", "qcow2", "-o", "cluster_size=64k,compression_type=zstd", text.toString(), "zstd.qcow2");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=32k", "-b", "backing.raw", "-F", "raw",
                "ext.qcow2", "1M");
        Qemu.io(dir.resolve("ext.qcow2"), "write -P 0x21 2k 2k", "write -z 8k 3k", "write -P 0x22 64k 32k", "write -P 0x23 600k 1k");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", "-b", "v3.qcow2", "-F", "qcow2", "top.qcow2", "1M");
        Qemu.io(dir.resolve("top.qcow2"), "write -P 0x31 4k 4k", "write -z 0 4k");

        for (String name : List.of("v3.qcow2", "v2.qcow2", "zlib.qcow2", "zstd.qcow2", "ext.qcow2", "top.qcow2")) {
            byte[] bytes = Files.readAllBytes(dir.resolve(name));
            seeds.add(new Seed(name, bytes, metadataRegions(bytes)));
        }
    }

    /** Header cluster, L1 table and the L2 tables it points to. */
    private static List<long[]> metadataRegions(byte[] image) {
        ByteBuffer b = ByteBuffer.wrap(image);
        int clusterSize = 1 << b.getInt(20);
        List<long[]> regions = new ArrayList<>();
        regions.add(new long[] {0, Math.min(clusterSize, image.length)});
        long l1 = b.getLong(40);
        long l1Size = b.getInt(36);
        regions.add(new long[] {l1, l1 + l1Size * 8});
        for (int i = 0; i < l1Size; i++) {
            long l2 = b.getLong((int) (l1 + 8L * i)) & 0x00ff_ffff_ffff_fe00L;
            if (l2 != 0) regions.add(new long[] {l2, l2 + clusterSize});
        }
        return regions;
    }

    @Test
    @Timeout(120)
    void mutatedImagesOpenOrFailCleanly() throws IOException {
        long seed = Long.getLong("qcow2.fuzz.seed", System.nanoTime());
        int iterations = Integer.getInteger("qcow2.fuzz.iterations", 3000);
        System.out.println("Qcow2FuzzTest seed " + seed + " (rerun with -Dqcow2.fuzz.seed=" + seed + ")");
        int opened = 0, refused = 0;
        for (int i = 0; i < iterations; i++) {
            Random rnd = new Random(seed * 1_000_003L + i);
            Seed s = seeds.get(rnd.nextInt(seeds.size()));
            byte[] bytes = s.bytes().clone();
            StringBuilder what = new StringBuilder(s.name());
            int mutations = 1 + rnd.nextInt(4);
            for (int m = 0; m < mutations; m++) mutate(rnd, bytes, s.regions(), what);
            Path p = dir.resolve("fuzz-" + s.name());
            Files.write(p, bytes);

            String context = "seed " + seed + " iteration " + i + " (" + what + ")";
            long start = System.nanoTime();
            try {
                exercise(p, rnd);
                opened++;
            } catch (CaskException e) {
                refused++;
                if (!e.getMessage().contains(p.getFileName().toString()) && !(e instanceof CaskException.NotFound)) {
                    fail(context + ": message does not name the file: " + e.getMessage());
                }
            } catch (Throwable t) {
                throw new AssertionError(context + ": unexpected " + t, t);
            }
            long took = System.nanoTime() - start;
            if (took > ITERATION_LIMIT_NANOS) fail(context + ": took " + took / 1_000_000 + " ms");
        }
        System.out.println("Qcow2FuzzTest: " + opened + " opened, " + refused + " refused");
        assertEquals(iterations, opened + refused);
    }

    private static void exercise(Path image, Random rnd) {
        try (Qcow2Device dev = Qcow2Device.open(image, w -> {})) {
            long readLength = Math.min(dev.size(), READ_CAP);
            byte[] buf = new byte[64 * K];
            for (long pos = 0; pos < readLength; ) {
                int n = (int) Math.min(1 + rnd.nextInt(buf.length), readLength - pos);
                dev.read(pos, buf, 0, n);
                pos += n;
            }
            long mapLength = Math.min(dev.size(), MAP_CAP);
            List<BlockStatus> status = dev.blockStatus(0, mapLength);
            long pos = 0;
            for (BlockStatus st : status) {
                if (st.offset() != pos) throw new AssertionError("blockStatus not contiguous: " + status);
                pos = st.end();
            }
            if (pos != mapLength) throw new AssertionError("blockStatus covers " + pos + " of " + mapLength);
            if (dev.size() > 0) {
                long off = Math.floorMod(rnd.nextLong(), dev.size());
                int n = (int) Math.min(buf.length, dev.size() - off);
                dev.read(off, buf, 0, n);
                dev.blockStatus(off, n);
            }
        }
    }

    private static void mutate(Random rnd, byte[] bytes, List<long[]> regions, StringBuilder what) {
        int pos;
        int choice = rnd.nextInt(10);
        if (choice < 4) {
            pos = rnd.nextInt(Math.min(bytes.length, 512)); // the fixed header and the first extensions
        } else if (choice < 9) {
            long[] r = regions.get(rnd.nextInt(regions.size()));
            long len = Math.max(1, Math.min(r[1], bytes.length) - r[0]);
            if (r[0] >= bytes.length) return;
            pos = (int) (r[0] + rnd.nextLong(len));
        } else {
            pos = rnd.nextInt(Math.min(bytes.length, 64 * K));
        }
        ByteBuffer b = ByteBuffer.wrap(bytes);
        switch (rnd.nextInt(5)) {
            case 0 -> {
                bytes[pos] ^= (byte) (1 << rnd.nextInt(8));
                what.append(" flip@").append(pos);
            }
            case 1 -> {
                bytes[pos] = (byte) rnd.nextInt(256);
                what.append(" byte@").append(pos);
            }
            case 2 -> {
                int at = Math.min(pos & ~3, bytes.length - 4);
                int v = switch (rnd.nextInt(6)) {
                    case 0 -> 0;
                    case 1 -> -1;
                    case 2 -> 1 << rnd.nextInt(31);
                    case 3 -> rnd.nextInt(64);
                    case 4 -> b.getInt(at) + rnd.nextInt(9) - 4;
                    default -> rnd.nextInt();
                };
                b.putInt(at, v);
                what.append(" int@").append(at).append('=').append(v);
            }
            default -> {
                int at = Math.min(pos & ~7, bytes.length - 8);
                long v = switch (rnd.nextInt(8)) {
                    case 0 -> 0;
                    case 1 -> -1;
                    case 2 -> 1L << rnd.nextInt(63);
                    case 3 -> (1L << 63) | ((long) rnd.nextInt(bytes.length) & ~511L); // a plausible table entry
                    case 4 -> (1L << 62) | rnd.nextLong(1L << 40); // a compressed descriptor
                    case 5 -> b.getLong(at) ^ (1L << rnd.nextInt(64));
                    case 6 -> (long) bytes.length + rnd.nextInt(1 << 20);
                    default -> rnd.nextLong();
                };
                b.putLong(at, v);
                what.append(" long@").append(at).append('=').append(Long.toHexString(v));
            }
        }
    }
}
