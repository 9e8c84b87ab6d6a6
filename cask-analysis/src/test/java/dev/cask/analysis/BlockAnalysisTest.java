package dev.cask.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import com.github.luben.zstd.Zstd;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The analysis of small generated images (known repeats, zero runs and holes, the same partition
 * at sector 2048 and at sector 63, a shared part, an identical non-sparse copy, disjoint random
 * data) against a straightforward computation: SHA-256 of every chunk into hash sets.
 */
class BlockAnalysisTest {
    @TempDir
    Path dir;

    /** A generated disk: its bytes, where it is, and the forced cuts of aligned-N (computed here, not parsed). */
    record Disk(String name, byte[] bytes, Path path, long[] cuts) {}

    static final int SECTOR = 512;

    /** Partition content: random data, a block repeated at several places, zero runs, odd-length pieces. */
    static byte[] partitionContent(Random r) {
        byte[] p = new byte[2 << 20];
        r.nextBytes(p);
        byte[] repeated = new byte[4096];
        r.nextBytes(repeated);
        for (int at : new int[]{4096, 40960, 81920, 512 * 1024, 1 << 20}) System.arraycopy(repeated, 0, p, at, repeated.length);
        byte[] odd = new byte[10_000];
        r.nextBytes(odd);
        for (int at : new int[]{150_001, 700_003, 1_300_007}) System.arraycopy(odd, 0, p, at, odd.length);
        java.util.Arrays.fill(p, 200_000, 200_000 + 300 * 1024, (byte) 0); // a zero run (hole when written sparse)
        java.util.Arrays.fill(p, 1_600_000, 1_600_000 + 70_000, (byte) 0); // a shorter one
        java.util.Arrays.fill(p, 1_800_000, 1_800_000 + 1000, (byte) 0);   // too short for a hole
        return p;
    }

    static void mbr(byte[] disk, long startSector, long sectors, Random r) {
        byte[] code = new byte[440];
        r.nextBytes(code);
        System.arraycopy(code, 0, disk, 0, code.length);
        int e = 446;
        disk[e] = 0;
        disk[e + 4] = (byte) 0x83;
        le32(disk, e + 8, startSector);
        le32(disk, e + 12, sectors);
        disk[510] = 0x55;
        disk[511] = (byte) 0xaa;
    }

    static void le32(byte[] b, int at, long v) {
        for (int i = 0; i < 4; i++) b[at + i] = (byte) (v >>> (8 * i));
    }

    /** Writes the disk sparse: only 64 KiB regions with a non-zero byte are written, the rest are holes. */
    static void writeSparse(Path path, byte[] d) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            f.setLength(d.length);
            for (int at = 0; at < d.length; at += 65536) {
                int n = Math.min(65536, d.length - at);
                boolean zero = true;
                for (int i = at; i < at + n && zero; i++) zero = d[i] == 0;
                if (!zero) {
                    f.seek(at);
                    f.write(d, at, n);
                }
            }
        }
    }

    List<Disk> disks() throws Exception {
        Random r = new Random(20261125);
        byte[] part = partitionContent(r);
        byte[] boot = new byte[20 * SECTOR];
        r.nextBytes(boot);
        List<Disk> out = new ArrayList<>();

        byte[] a = new byte[4 << 20];
        mbr(a, 2048, part.length / SECTOR, r);
        System.arraycopy(boot, 0, a, SECTOR, boot.length);
        System.arraycopy(part, 0, a, 2048 * SECTOR, part.length);
        out.add(disk("a-2048.raw", a, true, new long[]{0, 2048 * SECTOR, 2048 * SECTOR + part.length, a.length}));

        byte[] b = new byte[(5 << 20) + 3 * SECTOR];
        mbr(b, 63, part.length / SECTOR, r);
        System.arraycopy(boot, 0, b, SECTOR, boot.length);
        System.arraycopy(part, 0, b, 63 * SECTOR, part.length);
        byte[] tail = new byte[300_000];
        r.nextBytes(tail);
        System.arraycopy(tail, 0, b, (4 << 20) + 1, tail.length);
        out.add(disk("b-63.raw", b, true, new long[]{0, 63 * SECTOR, 63 * SECTOR + part.length, b.length}));

        byte[] c = new byte[(3 << 20) + 777];
        System.arraycopy(part, 0, c, 0, part.length / 2);
        byte[] rest = new byte[c.length - part.length / 2 - 100_000];
        r.nextBytes(rest);
        System.arraycopy(rest, 0, c, part.length / 2 + 100_000, rest.length);
        c[510] = 0; // no partition table
        out.add(disk("c-shared-half.raw", c, true, new long[]{0, c.length}));

        out.add(disk("d-copy-of-a-not-sparse.raw", a.clone(), false, out.getFirst().cuts()));

        byte[] e = new byte[1 << 20];
        r.nextBytes(e);
        e[510] = 0;
        out.add(disk("e-random.raw", e, true, new long[]{0, e.length}));
        return out;
    }

    Disk disk(String name, byte[] bytes, boolean sparse, long[] cuts) throws Exception {
        Path p = dir.resolve(name);
        if (sparse) writeSparse(p, bytes);
        else Files.write(p, bytes);
        return new Disk(name, bytes, p, cuts);
    }

    // ------------------------------------------------------------------ the independent computation

    record Expected(long[] logical, long[] zero, long[] unique, long[] chunks, long[] uniqueChunks, long collectionUnique,
                    long collectionUniqueChunks, long compressed, long[] growth, double[][] overlap) {}

    static Expected expected(List<Disk> disks, int n, boolean aligned) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        int k = disks.size();
        long[] logical = new long[k], zero = new long[k], unique = new long[k], chunks = new long[k], uniqueChunks = new long[k];
        long[] growth = new long[k];
        Map<String, Integer> sizes = new HashMap<>();
        List<Set<String>> sets = new ArrayList<>();
        long compressed = 0;
        for (int i = 0; i < k; i++) {
            Disk d = disks.get(i);
            long[] cuts = aligned ? d.cuts() : new long[]{0, d.bytes().length};
            Set<String> set = new HashSet<>();
            for (int s = 0; s + 1 < cuts.length; s++) {
                for (long o = cuts[s]; o < cuts[s + 1]; o += n) {
                    int len = (int) Math.min(n, cuts[s + 1] - o);
                    byte[] chunk = java.util.Arrays.copyOfRange(d.bytes(), (int) o, (int) o + len);
                    chunks[i]++;
                    logical[i] += len;
                    boolean allZero = true;
                    for (byte x : chunk) if (x != 0) { allZero = false; break; }
                    if (allZero) {
                        zero[i] += len;
                        continue;
                    }
                    String h = HexFormat.of().formatHex(sha.digest(chunk));
                    if (set.add(h)) {
                        unique[i] += len;
                        uniqueChunks[i]++;
                    }
                    if (sizes.putIfAbsent(h, len) == null) compressed += Math.min(len, Zstd.compress(chunk, 1).length);
                }
            }
            sets.add(set);
            growth[i] = sizes.values().stream().mapToLong(Integer::longValue).sum();
        }
        double[][] overlap = new double[k][k];
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) {
                if (i == j) {
                    overlap[i][j] = 1.0;
                    continue;
                }
                long both = 0, either = 0;
                Set<String> all = new HashSet<>(sets.get(i));
                all.addAll(sets.get(j));
                for (String h : all) {
                    either += sizes.get(h);
                    if (sets.get(i).contains(h) && sets.get(j).contains(h)) both += sizes.get(h);
                }
                overlap[i][j] = either == 0 ? 0.0 : (double) both / either;
            }
        }
        long total = growth[k - 1];
        return new Expected(logical, zero, unique, chunks, uniqueChunks, total, sizes.size(), compressed, growth, overlap);
    }

    static BlockReport analyse(List<Disk> disks, List<Strategy> strategies) {
        List<BlockAnalysis.Input> inputs = disks.stream().map(d -> BlockAnalysis.file(d.path())).toList();
        return BlockAnalysis.run(inputs, strategies, Progress.NONE, w -> { throw new AssertionError("warning: " + w); });
    }

    @Test
    void fixedAndAlignedMatchAnIndependentComputationExactly() throws Exception {
        List<Disk> disks = disks();
        List<Integer> sizes = List.of(512, 4096, 16384, 65536);
        AtomicLong progressed = new AtomicLong();
        Progress progress = new Progress() {
            @Override public void start(String label, long total) {}
            @Override public void advance(long delta) { progressed.addAndGet(delta); }
            @Override public void done() {}
        };
        BlockReport report = BlockAnalysis.run(disks.stream().map(d -> BlockAnalysis.file(d.path())).toList(),
                Strategy.all(List.of(Strategy.Kind.FIXED, Strategy.Kind.ALIGNED, Strategy.Kind.CDC), sizes), progress,
                w -> { throw new AssertionError(w); });
        long logicalAll = disks.stream().mapToLong(d -> d.bytes().length).sum();
        assertEquals(logicalAll, progressed.get(), "progress counts every logical byte once");

        // the partition tables were found where they were written
        assertEquals(List.of(new BlockReport.Partition(2048 * 512, 2 << 20, "mbr", "0x83")), report.images().get(0).partitions());
        assertEquals(63 * 512, report.images().get(1).partitions().getFirst().offset());
        assertTrue(report.images().get(2).partitions().isEmpty());
        assertEquals("raw", report.images().get(0).format());

        for (Strategy.Kind kind : List.of(Strategy.Kind.FIXED, Strategy.Kind.ALIGNED)) {
            for (int n : sizes) {
                Expected e = expected(disks, n, kind == Strategy.Kind.ALIGNED);
                BlockReport.StrategyResult s = report.strategy(kind.label() + "-" + n);
                assertNotNull(s);
                String what = s.name();
                for (int i = 0; i < disks.size(); i++) {
                    BlockReport.ImageTotals t = s.perImage().get(i);
                    assertEquals(e.logical()[i], t.logicalBytes(), what + " logical " + i);
                    assertEquals(disks.get(i).bytes().length, t.logicalBytes(), what + " logical is the size " + i);
                    assertEquals(e.zero()[i], t.zeroBytes(), what + " zero " + i);
                    assertEquals(e.unique()[i], t.uniqueBytes(), what + " unique " + i);
                    assertEquals(e.logical()[i] - e.zero()[i] - e.unique()[i], t.internalDuplicateBytes(), what + " internal dup " + i);
                    assertEquals(e.chunks()[i], t.chunks(), what + " chunks " + i);
                    assertEquals(e.uniqueChunks()[i], t.uniqueChunks(), what + " unique chunks " + i);
                    assertEquals(e.growth()[i], s.growth().get(i).uniqueBytes(), what + " growth " + i);
                    for (int j = 0; j < disks.size(); j++) {
                        assertEquals(e.overlap()[i][j], s.overlap()[i][j], 1e-12, what + " overlap " + i + "," + j);
                    }
                }
                BlockReport.Totals c = s.collection();
                assertEquals(logicalAll, c.logicalBytes(), what);
                assertEquals(java.util.Arrays.stream(e.zero()).sum(), c.zeroBytes(), what);
                assertEquals(e.collectionUnique(), c.uniqueBytes(), what);
                assertEquals(e.collectionUniqueChunks(), c.uniqueChunks(), what);
                assertEquals(java.util.Arrays.stream(e.chunks()).sum(), c.chunks(), what);
                assertEquals(e.compressed(), c.compressedBytes(), what + " compressed");
                assertEquals(e.compressed(), s.growth().getLast().compressedBytes(), what);
            }
        }

        // what the images were built to show
        assertTrue(report.strategy("aligned-4096").overlap()[0][1] > 0.8, "aligned-4K finds the partition at sector 63");
        assertTrue(report.strategy("fixed-4096").overlap()[0][1] < 0.1, "fixed-4K does not");
        for (BlockReport.StrategyResult s : report.strategies()) {
            assertEquals(1.0, s.overlap()[0][3], s.name() + ": sparse and non-sparse copies are identical");
            assertEquals(s.perImage().get(0).uniqueBytes(), s.perImage().get(3).uniqueBytes(), s.name());
            assertEquals(s.perImage().get(0).zeroBytes(), s.perImage().get(3).zeroBytes(), s.name());
            assertEquals(s.perImage().get(0).chunks(), s.perImage().get(3).chunks(), s.name());
            for (int i = 0; i < 4; i++) assertEquals(0.0, s.overlap()[i][4], s.name() + ": random data shares nothing");
            assertTrue(s.perImage().get(0).internalDuplicateBytes() > 0 || s.strategy().blockSize() > 4096 || s.strategy().kind() == Strategy.Kind.CDC,
                    s.name() + ": the repeated block is an internal duplicate");
            long sum = 0;
            for (BlockReport.ImageTotals t : s.perImage()) sum += t.logicalBytes();
            assertEquals(sum, s.collection().logicalBytes(), s.name());
            assertEquals(s.collection().nonzeroBytes() / (double) s.collection().uniqueBytes(), s.collection().dedupRatio(), 1e-12);
        }
        // cdc finds the shared half of the partition in c, and the partition in b, whatever the offset
        for (int n : List.of(4096, 16384)) {
            BlockReport.StrategyResult cdc = report.strategy("cdc-" + n);
            double ideal = report.strategy("aligned-" + n).overlap()[0][1]; // same chunks in both partitions
            assertTrue(cdc.overlap()[0][1] > 0.85 * ideal, cdc.name() + " a~b " + cdc.overlap()[0][1] + " vs " + ideal);
            double aligned = report.strategy("fixed-4096").overlap()[0][2]; // c's half partition is 4K-aligned at 0
            assertTrue(aligned > 0.15 && cdc.overlap()[0][2] > 0.8 * aligned, cdc.name() + " a~c " + cdc.overlap()[0][2] + " vs " + aligned);
        }
        JsonNode json = report.toJson();
        assertEquals("blocks", json.get("kind").asText());
        assertEquals(12, json.get("strategies").size());
    }

    @Test
    void cdcDedupsContentShiftedByAnOddOffsetAndFixedDoesNot() throws Exception {
        Random r = new Random(77);
        byte[] x = new byte[6 << 20];
        r.nextBytes(x);
        java.util.Arrays.fill(x, 1 << 20, 2 << 20, (byte) 0);
        x[510] = 0;
        byte[] y = new byte[x.length + 777];
        r.nextBytes(y);
        System.arraycopy(x, 0, y, 777, x.length);
        y[510] = 0;
        List<Disk> disks = List.of(disk("x.raw", x, true, null), disk("y.raw", y, true, null));
        BlockReport rep = analyse(disks, Strategy.all(List.of(Strategy.Kind.FIXED, Strategy.Kind.CDC), List.of(4096, 16384)));
        for (int n : List.of(4096, 16384)) {
            BlockReport.StrategyResult cdc = rep.strategy("cdc-" + n);
            long one = cdc.perImage().get(0).uniqueBytes();
            assertTrue(cdc.collection().uniqueBytes() < one * 1.03 + 64 * n,
                    cdc.name() + ": " + cdc.collection().uniqueBytes() + " unique for " + one + " of distinct content");
            assertTrue(cdc.overlap()[0][1] > 0.95, cdc.name() + " overlap " + cdc.overlap()[0][1]);
            BlockReport.StrategyResult fixed = rep.strategy("fixed-" + n);
            assertTrue(fixed.collection().uniqueBytes() > fixed.perImage().get(0).uniqueBytes() * 1.9, fixed.name());
            assertTrue(fixed.overlap()[0][1] < 0.01, fixed.name());
        }
    }

    @Test
    void identicalImagesOverlapFullyAndAllZeroImagesAreEmpty() throws Exception {
        Random r = new Random(3);
        byte[] x = new byte[(2 << 20) + 333];
        r.nextBytes(x);
        x[510] = 0;
        List<Disk> disks = List.of(disk("x1.raw", x, false, null), disk("x2.raw", x, true, null),
                disk("zero.raw", new byte[1 << 20], true, null), disk("zero2.raw", new byte[100], false, null));
        BlockReport rep = analyse(disks, Strategy.all(List.of(Strategy.Kind.FIXED, Strategy.Kind.ALIGNED, Strategy.Kind.CDC), List.of(4096)));
        for (BlockReport.StrategyResult s : rep.strategies()) {
            assertEquals(1.0, s.overlap()[0][1], s.name());
            assertEquals(0.0, s.overlap()[2][3], s.name() + ": two empty images");
            assertEquals(0.0, s.overlap()[0][2], s.name());
            assertEquals(1.0, s.overlap()[2][2], s.name());
            assertEquals(s.perImage().get(0).uniqueBytes(), s.collection().uniqueBytes(), s.name());
            assertEquals(s.growth().get(0).uniqueBytes(), s.growth().get(3).uniqueBytes(), s.name());
            assertEquals(1 << 20, s.perImage().get(2).zeroBytes(), s.name());
            assertEquals(0, s.perImage().get(2).uniqueBytes(), s.name());
            assertEquals(x.length, s.perImage().get(0).nonzeroBytes(), s.name() + ": random data has no zero chunk");
            assertEquals(2.0, s.collection().dedupRatio(), 1e-9, s.name());
        }
    }

    @Test
    void manyImagesUseSeveralMaskWords() throws Exception {
        // 70 images: image i holds block 0 and block i+1 of a pool; image membership needs two words
        Random r = new Random(11);
        byte[][] pool = new byte[72][4096];
        for (byte[] b : pool) r.nextBytes(b);
        List<Disk> disks = new ArrayList<>();
        for (int i = 0; i < 70; i++) {
            byte[] d = new byte[8192];
            System.arraycopy(pool[0], 0, d, 0, 4096);
            System.arraycopy(pool[i + 1], 0, d, 4096, 4096);
            d[510] = 0;
            disks.add(disk("m" + i + ".raw", d, false, null));
        }
        BlockReport rep = analyse(disks, List.of(new Strategy(Strategy.Kind.FIXED, 4096)));
        BlockReport.StrategyResult s = rep.strategies().getFirst();
        assertEquals(71 * 4096L, s.collection().uniqueBytes());
        for (int i = 0; i < 70; i++) {
            assertEquals((i + 1) * 4096L + 4096, s.growth().get(i).uniqueBytes());
            for (int j = 0; j < 70; j++) assertEquals(i == j ? 1.0 : 1.0 / 3, s.overlap()[i][j], 1e-12, i + "," + j);
        }
    }

    @Test
    void badInputIsOneLineNamingTheFile() throws Exception {
        Path vmdk = dir.resolve("x.vmdk");
        Files.write(vmdk, "KDMV and more".getBytes());
        Path ok = dir.resolve("ok.raw");
        Files.write(ok, new byte[4096]);
        CaskException e = assertThrows(CaskException.class, () -> BlockAnalysis.run(
                List.of(BlockAnalysis.file(ok), BlockAnalysis.file(dir.resolve("missing.raw"))),
                List.of(new Strategy(Strategy.Kind.FIXED, 4096)), Progress.NONE, w -> {}));
        assertTrue(e.getMessage().contains("missing.raw") && e.getMessage().contains("no such file"), e.getMessage());
        e = assertThrows(CaskException.class, () -> BlockAnalysis.run(List.of(BlockAnalysis.file(vmdk)),
                List.of(new Strategy(Strategy.Kind.FIXED, 4096)), Progress.NONE, w -> {}));
        assertTrue(e.getMessage().contains("vmdk"), e.getMessage());
        assertThrows(CaskException.InvalidInput.class, () -> Strategy.parseBlockSizes("4K,3000"));
        assertThrows(CaskException.InvalidInput.class, () -> Strategy.parseBlockSizes("2M"));
        assertThrows(CaskException.InvalidInput.class, () -> Strategy.parseBlockSizes("256"));
        assertThrows(CaskException.InvalidInput.class, () -> Strategy.parseKinds("fixed,rolling"));
        assertEquals(List.of(512, 4096, 65536), Strategy.parseBlockSizes("64K, 4k,512,4096"));
    }

    @Test
    void aBrokenPartitionTableWarnsAndAlignedCutsTheWholeDisk() throws Exception {
        Random r = new Random(5);
        byte[] d = new byte[1 << 20];
        r.nextBytes(d);
        for (int i = 446; i < 510; i++) d[i] = 0;
        d[446] = (byte) 0x80;
        d[446 + 4] = 0x05; // an extended partition whose boot record is garbage
        le32(d, 446 + 8, 100);
        le32(d, 446 + 12, 200);
        d[510] = 0x55;
        d[511] = (byte) 0xaa;
        d[100 * 512 + 510] = 0;
        Path p = dir.resolve("broken.raw");
        Files.write(p, d);
        List<String> warnings = new ArrayList<>();
        BlockReport rep = BlockAnalysis.run(List.of(BlockAnalysis.file(p)),
                Strategy.all(List.of(Strategy.Kind.FIXED, Strategy.Kind.ALIGNED), List.of(4096)), Progress.NONE, warnings::add);
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(warnings.getFirst().contains("broken.raw"), warnings.getFirst());
        assertNotNull(rep.images().getFirst().partitionError());
        assertEquals(rep.strategy("fixed-4096").collection(), rep.strategy("aligned-4096").collection());
    }

    /** A device of random data that breaks after {@code failAt} bytes, or whose allocation map covers the disk twice. */
    static final class BadDevice implements dev.cask.device.BlockDevice {
        final long size = 64L << 20;
        final long failAt;
        final boolean doubleMap;
        volatile boolean closed;

        BadDevice(long failAt, boolean doubleMap) {
            this.failAt = failAt;
            this.doubleMap = doubleMap;
        }

        @Override public long size() { return size; }
        @Override public dev.cask.device.Capabilities capabilities() { return dev.cask.device.Capabilities.readOnly(4096); }
        @Override public void read(long offset, byte[] buffer, int bufferOffset, int length) {
            if (offset + length > failAt) throw new CaskException.Io("bad device: read at offset " + offset + " failed", null);
            byte[] b = new byte[length];
            new Random(offset).nextBytes(b);
            System.arraycopy(b, 0, buffer, bufferOffset, length);
        }
        @Override public List<dev.cask.device.BlockStatus> blockStatus(long offset, long length) {
            var one = new dev.cask.device.BlockStatus(offset, length, false);
            return doubleMap ? List.of(one, one) : List.of(one);
        }
        @Override public void close() { closed = true; }
    }

    @Test
    void aReadErrorOrAChunkerErrorStopsEveryThreadAndIsRethrown() {
        List<Strategy> all = Strategy.all(List.of(Strategy.Kind.FIXED, Strategy.Kind.ALIGNED, Strategy.Kind.CDC), List.of(512, 4096, 65536));
        org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(60), () -> {
            for (long failAt : new long[]{0, 5 << 20, 50L << 20}) {
                BadDevice bad = new BadDevice(failAt, false);
                CaskException e = assertThrows(CaskException.Io.class, () -> BlockAnalysis.run(
                        List.of(BlockAnalysis.device("bad", "raw", bad)), all, Progress.NONE, w -> {}));
                assertTrue(e.getMessage().contains("bad device"), e.getMessage());
                assertTrue(bad.closed, "the device is closed after a failure");
            }
            BadDevice twice = new BadDevice(Long.MAX_VALUE, true);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> BlockAnalysis.run(
                    List.of(BlockAnalysis.device("twice", "raw", twice)), all, Progress.NONE, w -> {}));
            assertTrue(e.getMessage().contains("past the end"), e.getMessage());
        });
        // no analysis thread is left behind
        long left = Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().startsWith("cask-analyze-")).count();
        assertEquals(0, left);
    }
}
