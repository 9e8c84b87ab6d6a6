import com.github.luben.zstd.Zstd;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Devices;
import dev.cask.device.SliceDevice;
import dev.cask.format.Formats;
import dev.cask.layout.LayoutPlanner;
import dev.cask.store.ChunkId;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The least time an import or an export of a set of images can take on this machine with the
 * work the issue prescribes (SHA-256 chunk ids, zstd level 3, a JVM), whatever the code around
 * it: run by bench/store-floor.sh.
 *
 * <p>It times, single-threaded and on the real images' blocks, each unavoidable step: reading the
 * non-zero blocks from the page cache, hashing every non-zero 4 KiB block, compressing each
 * distinct block once (1 MiB segments, as the store does), writing the compressed bytes,
 * decompressing them, and writing the disks' data bytes to a file. The floor then assumes what
 * no program gets: every core busy all the time, no index, no tree, no catalog, no fsync, no
 * compile threads, and each distinct block decompressed only once for the whole set. So a real
 * import or export can only be slower than the floor; when the floor is above the peer's time,
 * the target cannot be met on this machine by any change to cask that keeps that work.
 *
 * <p>Arguments: JVM_START_S QEMU_IMPORT_S QEMU_EXPORT_S IMAGE...; system properties
 * {@code floor.cores} (default: this machine's) and {@code floor.level} (default 3).
 */
public final class StoreFloor {
    private static final int SEGMENT = 1 << 20;

    public static void main(String[] args) throws Exception {
        double start = Double.parseDouble(args[0]);
        double qemuImport = Double.parseDouble(args[1]);
        double qemuExport = Double.parseDouble(args[2]);
        int cores = Integer.getInteger("floor.cores", Runtime.getRuntime().availableProcessors());
        int level = Integer.getInteger("floor.level", 3);
        List<Path> images = Arrays.stream(args, 3, args.length).map(Path::of).toList();

        // the data ranges, read as the importer reads them: each partition an extent of its own
        // (so the image at sector 63 gives the same blocks), 1 MiB at a time into one reused buffer
        double readS = Double.MAX_VALUE;
        byte[] reuse = new byte[SEGMENT];
        for (int rep = 0; rep < 3; rep++) {
            long r0 = System.nanoTime();
            readAll(images, reuse, (buf, n, bs) -> {});
            readS = Math.min(readS, (System.nanoTime() - r0) / 1e9);
        }
        List<byte[]> blocks = new ArrayList<>(); // untimed: the non-zero blocks, kept for the steps below
        readAll(images, reuse, (buf, n, bs) -> {
            for (int o = 0; o + bs <= n; o += bs) if (!Devices.isZero(buf, o, bs)) blocks.add(Arrays.copyOfRange(buf, o, o + bs));
        });
        long nonZero = 0;
        for (byte[] b : blocks) nonZero += b.length;

        // hash every non-zero block (best of 3: the floor takes the fastest)
        double shaS = Double.MAX_VALUE;
        List<byte[]> unique = new ArrayList<>();
        for (int rep = 0; rep < 3; rep++) {
            Set<ChunkId> seen = new HashSet<>();
            List<byte[]> u = new ArrayList<>();
            long h0 = System.nanoTime();
            for (byte[] b : blocks) if (seen.add(ChunkId.of(b))) u.add(b);
            shaS = Math.min(shaS, (System.nanoTime() - h0) / 1e9);
            unique = u;
        }
        long uniqueBytes = 0;
        for (byte[] b : unique) uniqueBytes += b.length;

        // distinct blocks in 1 MiB segments, compressed once (into a reused buffer), then decompressed once
        List<byte[]> segments = new ArrayList<>();
        byte[] seg = new byte[SEGMENT];
        int fill = 0;
        for (byte[] b : unique) {
            if (fill + b.length > SEGMENT) {
                segments.add(Arrays.copyOf(seg, fill));
                fill = 0;
            }
            System.arraycopy(b, 0, seg, fill, b.length);
            fill += b.length;
        }
        if (fill > 0) segments.add(Arrays.copyOf(seg, fill));
        byte[] dst = new byte[(int) Zstd.compressBound(SEGMENT)];
        double zS = Double.MAX_VALUE, dS = Double.MAX_VALUE;
        long compressed = 0;
        for (int rep = 0; rep < 3; rep++) {
            long c = 0;
            long z0 = System.nanoTime();
            for (byte[] sg : segments) c += Math.min(sg.length, Zstd.compressByteArray(dst, 0, dst.length, sg, 0, sg.length, level));
            zS = Math.min(zS, (System.nanoTime() - z0) / 1e9);
            compressed = c; // stored raw when compressing does not pay
        }
        List<byte[]> frames = new ArrayList<>();
        for (byte[] sg : segments) frames.add(Zstd.compress(sg, level)); // untimed: the frames to decompress
        byte[] out = new byte[SEGMENT];
        for (int rep = 0; rep < 3; rep++) {
            long d0 = System.nanoTime();
            for (int i = 0; i < frames.size(); i++) Zstd.decompressByteArray(out, 0, segments.get(i).length, frames.get(i), 0, frames.get(i).length);
            dS = Math.min(dS, (System.nanoTime() - d0) / 1e9);
        }

        // page cache writes: the compressed bytes (import) and the disks' data bytes (export)
        Path tmp = Files.createTempFile("store-floor", ".bin");
        double wPacks = writeS(tmp, compressed);
        double wData = writeS(tmp, nonZero);
        Files.deleteIfExists(tmp);

        double importCpu = readS + shaS + zS + wPacks;
        double exportCpu = dS + wData;
        double importFloor = start + importCpu / cores;
        double exportFloor = start + exportCpu / cores;
        MiB m = new MiB();
        System.out.printf(Locale.ROOT, "images: %d, non-zero data %s, distinct %s (%d blocks), compressed at level %d: %s%n",
                images.size(), m.f(nonZero), m.f(uniqueBytes), unique.size(), level, m.f(compressed));
        System.out.printf(Locale.ROOT, "(blocks per partition as cask cuts them, 4 KiB unless a file system's block size says otherwise)%n");
        System.out.printf(Locale.ROOT, "single-thread steps, best of 3 (s):%n");
        System.out.printf(Locale.ROOT, "  read non-zero data from the page cache  %6.3f  (%s/s)%n", readS, m.f((long) (nonZero / readS)));
        System.out.printf(Locale.ROOT, "  SHA-256 of every non-zero block         %6.3f  (%s/s)%n", shaS, m.f((long) (nonZero / shaS)));
        System.out.printf(Locale.ROOT, "  zstd -%d of the distinct blocks          %6.3f  (%s/s)%n", level, zS, m.f((long) (uniqueBytes / zS)));
        System.out.printf(Locale.ROOT, "  write the compressed bytes              %6.3f%n", wPacks);
        System.out.printf(Locale.ROOT, "  zstd decompress of the distinct blocks  %6.3f  (%s/s)%n", dS, m.f((long) (uniqueBytes / dS)));
        System.out.printf(Locale.ROOT, "  write the disks' non-zero bytes         %6.3f%n", wData);
        System.out.printf(Locale.ROOT, "  JVM start (cask --version, median)      %6.3f%n", start);
        System.out.printf(Locale.ROOT, "floor on %d cores = JVM start + the steps' sum / %d (perfect parallelism, nothing else):%n", cores, cores);
        System.out.printf(Locale.ROOT, "  import floor %.3f s vs qemu-img convert -O qcow2 %.3f s: floor ratio %.2f (target <= 1.00)%n",
                importFloor, qemuImport, importFloor / qemuImport);
        System.out.printf(Locale.ROOT, "  export floor %.3f s vs qemu-img convert -O raw   %.3f s: floor throughput ratio %.2f (target >= 1.00)%n",
                exportFloor, qemuExport, qemuExport / exportFloor);
        System.out.printf(Locale.ROOT, "  cores needed for the floor alone to meet the import target: %s; the export target: %s%n",
                needed(importCpu, qemuImport - start), needed(exportCpu, qemuExport - start));
    }

    private interface BatchSink {
        void batch(byte[] buf, int length, int blockSize);
    }

    /** Reads every data range of every image's extents (LayoutPlanner) in 1 MiB batches of whole blocks into {@code buf}. */
    private static void readAll(List<Path> images, byte[] buf, BatchSink sink) {
        for (Path p : images) {
            try (BlockDevice dev = Formats.open(p, "raw", w -> {})) {
                for (LayoutPlanner.ExtentPlan e : LayoutPlanner.plan(dev, 0, p.getFileName().toString(), w -> {})) {
                    try (SliceDevice s = new SliceDevice(dev, e.offset(), e.length())) {
                        int bs = e.blockSize();
                        long next = 0;
                        for (BlockStatus st : s.blockStatus(0, s.size())) {
                            if (st.hole()) continue;
                            long end = Math.min(s.size(), (st.end() + bs - 1) / bs * bs);
                            for (long pos = Math.max(next, st.offset() / bs * bs); pos < end; pos += SEGMENT) {
                                int n = (int) Math.min(SEGMENT, end - pos);
                                s.read(pos, buf, 0, n);
                                sink.batch(buf, n, bs);
                            }
                            next = Math.max(next, end);
                        }
                    }
                }
            }
        }
    }

    private static String needed(double cpu, double budget) {
        return budget <= 0 ? "none (the JVM start alone is over)" : String.valueOf((int) Math.ceil(cpu / budget));
    }

    /** Best of 3 single-thread times to write {@code bytes} to a file in 8 MiB positional writes (page cache, no fsync). */
    private static double writeS(Path file, long bytes) throws Exception {
        byte[] buf = new byte[8 << 20];
        Arrays.fill(buf, (byte) 1);
        double best = Double.MAX_VALUE;
        for (int rep = 0; rep < 3; rep++) {
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                long w0 = System.nanoTime();
                for (long pos = 0; pos < bytes; ) {
                    ByteBuffer bb = ByteBuffer.wrap(buf, 0, (int) Math.min(buf.length, bytes - pos));
                    pos += ch.write(bb, pos);
                }
                best = Math.min(best, (System.nanoTime() - w0) / 1e9);
            }
        }
        return best;
    }

    private static final class MiB {
        String f(long bytes) {
            return String.format(Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
        }
    }
}
