package dev.cask.format.qcow2;

import dev.cask.common.Posix;

import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Devices;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes any {@link BlockDevice} as a plain qcow2 version 3 (compat 1.1) file: 64 KiB clusters,
 * 16-bit refcounts, no compression, no backing file, no extensions.
 *
 * <p><b>Layout</b>, in cluster order, decided while streaming once over the source:
 * <pre>
 *   0            header
 *   1 .. L       L1 table (L = ceil(l1Size * 8 / 64 KiB) clusters)
 *   ...          for each 512 MiB stretch of the disk: its non-zero data clusters, then its L2
 *                table (only when the stretch has data)
 *   then         refcount table (T clusters), refcount blocks (R clusters)
 * </pre>
 * Every cluster is referenced exactly once, so every refcount is 1 and the refcount structures
 * can be written last, once the number of clusters N before them is known: the smallest R and T
 * with {@code N + R + T <= R * 32768} (a refcount block holds 32768 16-bit counts) and
 * {@code R <= T * 8192} (a table cluster holds 8192 block offsets) are found by iterating from
 * zero, which converges in a few steps. L1 and L2 entries, whose refcount is 1, carry the
 * "copied" flag (bit 63), as {@code qemu-img check} expects.
 *
 * <p><b>What is skipped.</b> Ranges the source reports as holes are never read; a cluster that
 * touches data is read whole and left unallocated when all its bytes are zero. Unallocated
 * clusters read as zeros because the image has no backing file.
 *
 * <p><b>Sizing.</b> Memory is the L1 table ({@code 8 bytes per 512 MiB} of disk: 32 KiB for
 * 2 TiB), one L2 table (64 KiB) and a 1 MiB read buffer, whatever the disk size. The virtual
 * size is the source size rounded up to 512 bytes, because QEMU counts qcow2 sizes in whole
 * sectors; the padding reads as zeros. Sizes needing an L1 table over 32 MiB (above 2 PiB) are
 * refused.
 *
 * <p><b>Durability.</b> The image is written to a temporary file in the destination's
 * directory, fsynced, renamed over {@code dest} atomically and the directory fsynced; on any
 * failure the temporary file is removed and {@code dest} is untouched. Stateless and
 * thread-safe; the source must not change while it is written.
 */
public final class Qcow2Writer {
    static final int CLUSTER_BITS = 16;
    static final int CLUSTER_SIZE = 1 << CLUSTER_BITS;
    static final int L2_ENTRIES = CLUSTER_SIZE / 8;
    static final long L1_ENTRY_COVERAGE = (long) CLUSTER_SIZE * L2_ENTRIES; // 512 MiB
    static final int REFCOUNT_ORDER = 4;
    static final int REFCOUNTS_PER_BLOCK = CLUSTER_SIZE * 8 / (1 << REFCOUNT_ORDER);
    static final int REFTABLE_ENTRIES_PER_CLUSTER = CLUSTER_SIZE / 8;
    static final long COPIED = 1L << 63;
    private static final int BATCH_CLUSTERS = 16; // 1 MiB reads

    private Qcow2Writer() {}

    /**
     * Writes {@code source} to {@code dest} as qcow2, replacing {@code dest} atomically.
     *
     * @param progress told the virtual disk bytes covered so far
     * @throws CaskException.InvalidInput when the source is too large for qcow2
     * @throws CaskException.Io           when writing fails; {@code dest} is then unchanged
     */
    public static void write(BlockDevice source, Path dest, Progress progress) {
        write(source, dest, progress, true);
    }

    /**
     * Like {@link #write(BlockDevice, Path, Progress)}; with {@code fsync} false the data is left
     * to the page cache (as {@code qemu-img convert} does by default) and only renamed into place.
     */
    public static void write(BlockDevice source, Path dest, Progress progress, boolean fsync) {
        if (dev.cask.common.Posix.isBlockDevice(dest)) {
            throw new CaskException.InvalidInput("block device " + dest + ": cask writes raw bytes into block devices (--format raw),"
                    + " qcow2 only into files");
        }
        long size = source.size();
        long virtualSize = (size + 511) & ~511L;
        long l1Size = Qcow2Header.requiredL1Entries(virtualSize, CLUSTER_BITS + 13);
        if (l1Size * 8 > Qcow2Header.MAX_L1_BYTES) {
            throw new CaskException.InvalidInput(dest + ": disk of " + size + " bytes is too large for a qcow2 image with "
                    + CLUSTER_SIZE + "-byte clusters (L1 table over " + (Qcow2Header.MAX_L1_BYTES >> 20) + " MiB)");
        }
        Path absolute = dest.toAbsolutePath();
        Path dir = absolute.getParent();
        Path temp = dir.resolve("." + absolute.getFileName() + ".tmp-" + Long.toHexString(ThreadLocalRandom.current().nextLong()));
        boolean ok = false;
        progress.start("writing " + dest.getFileName(), size);
        try {
            try (FileChannel ch = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                new Pass(source, ch, size, (int) l1Size, progress).run(virtualSize);
                if (fsync) ch.force(true);
            }
            try {
                Files.move(temp, absolute, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new CaskException.Io(dest + ": cannot rename " + temp.getFileName() + " into place atomically", e);
            }
            ok = true;
            syncDirectory(dir);
            progress.done();
        } catch (IOException e) {
            throw new CaskException.Io(dest + ": write failed: " + e.getMessage(), e);
        } finally {
            if (!ok) {
                try {
                    Files.deleteIfExists(temp);
                } catch (IOException e) {
                    // best effort: the temporary file has a hidden name
                }
            }
        }
    }

    /**
     * The smallest number of refcount blocks R and refcount table clusters T that count
     * {@code clusters} clusters plus themselves: {@code clusters + R + T <= R * 32768} and
     * {@code R <= T * 8192}. Returns {@code {R, T}}.
     */
    static long[] refcountLayout(long clusters) {
        long blocks = 0, tableClusters = 0;
        while (true) {
            long total = clusters + blocks + tableClusters;
            long b = (total + REFCOUNTS_PER_BLOCK - 1) / REFCOUNTS_PER_BLOCK;
            long t = (b + REFTABLE_ENTRIES_PER_CLUSTER - 1) / REFTABLE_ENTRIES_PER_CLUSTER;
            if (b == blocks && t == tableClusters) return new long[] {blocks, tableClusters};
            blocks = b;
            tableClusters = t;
        }
    }

    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            // some file systems cannot fsync a directory; the rename is still atomic
        }
    }

    /** One streaming pass: its state is the next free cluster, the L1 table and one L2 table. */
    private static final class Pass {
        private final BlockDevice source;
        private final FileChannel ch;
        private final long size;
        private final long[] l1;
        private final int l1Clusters;
        private final Progress progress;
        private final ByteBuffer l2 = ByteBuffer.allocate(CLUSTER_SIZE);
        private final byte[] buf = new byte[BATCH_CLUSTERS * CLUSTER_SIZE];
        private long nextCluster; // first free cluster index of the file
        private long reported; // disk bytes reported to progress

        Pass(BlockDevice source, FileChannel ch, long size, int l1Size, Progress progress) {
            this.source = source;
            this.ch = ch;
            this.size = size;
            this.l1 = new long[l1Size];
            this.l1Clusters = (int) ((l1Size * 8L + CLUSTER_SIZE - 1) / CLUSTER_SIZE);
            this.progress = progress;
            this.nextCluster = 1 + l1Clusters;
        }

        void run(long virtualSize) throws IOException {
            for (int i = 0; i < l1.length; i++) {
                stretch(i);
            }
            long dataClusters = nextCluster;

            long[] refcounts = refcountLayout(dataClusters);
            long blocks = refcounts[0], tableClusters = refcounts[1];
            long total = dataClusters + blocks + tableClusters;
            long tableStart = dataClusters;
            long blocksStart = dataClusters + tableClusters;
            writeRefcountTable(tableStart, tableClusters, blocksStart, blocks);
            writeRefcountBlocks(blocksStart, blocks, total);

            ByteBuffer l1Bytes = ByteBuffer.allocate(l1Clusters * CLUSTER_SIZE);
            for (long e : l1) l1Bytes.putLong(e);
            l1Bytes.clear();
            writeAt(l1Bytes, CLUSTER_SIZE);

            Qcow2Header header = new Qcow2Header(3, 0, 0, CLUSTER_BITS, virtualSize, 0, l1.length, l1.length == 0 ? 0 : CLUSTER_SIZE,
                    tableStart * CLUSTER_SIZE, tableClusters, 0, 0, 0, 0, 0, REFCOUNT_ORDER, Qcow2Header.V3_HEADER_LENGTH,
                    Qcow2Header.COMPRESSION_ZLIB, null, null);
            writeAt(ByteBuffer.wrap(header.encode()), 0);
            if (ch.size() != total * CLUSTER_SIZE) {
                throw new IllegalStateException("qcow2 writer: file is " + ch.size() + " bytes, expected " + total * CLUSTER_SIZE);
            }
        }

        /** Writes the data clusters of L1 entry {@code index} (512 MiB of disk), then its L2 table. */
        private void stretch(int index) throws IOException {
            long start = index * L1_ENTRY_COVERAGE;
            long end = Math.min(start + L1_ENTRY_COVERAGE, size);
            Arrays.fill(l2.array(), (byte) 0);
            boolean any = false;
            if (end > start) {
                List<BlockStatus> status = Devices.coalesce(source.blockStatus(start, end - start));
                long done = start >>> CLUSTER_BITS; // first cluster not yet handled
                for (BlockStatus s : status) {
                    if (s.hole()) continue;
                    long first = Math.max(s.offset() >>> CLUSTER_BITS, done);
                    long last = (s.end() + CLUSTER_SIZE - 1) >>> CLUSTER_BITS; // exclusive
                    for (long c = first; c < last; c += BATCH_CLUSTERS) {
                        int n = (int) Math.min(BATCH_CLUSTERS, last - c);
                        any |= batch(start, c, n);
                        report(Math.min((c + n) << CLUSTER_BITS, end));
                    }
                    done = Math.max(done, last);
                }
            }
            if (any) {
                long l2Offset = nextCluster++ * CLUSTER_SIZE;
                l2.clear();
                writeAt(l2, l2Offset);
                l1[index] = l2Offset | COPIED;
            }
            report(Math.max(end, start));
        }

        /** Reads {@code n} clusters from cluster {@code c} and appends the non-zero ones. */
        private boolean batch(long stretchStart, long c, int n) throws IOException {
            long offset = c << CLUSTER_BITS;
            int bytes = (int) Math.min((long) n * CLUSTER_SIZE, size - offset);
            source.read(offset, buf, 0, bytes);
            Arrays.fill(buf, bytes, n * CLUSTER_SIZE, (byte) 0);
            boolean any = false;
            int k = 0;
            while (k < n) {
                if (Devices.isZero(buf, k * CLUSTER_SIZE, CLUSTER_SIZE)) {
                    k++;
                    continue;
                }
                int runStart = k;
                while (k < n && !Devices.isZero(buf, k * CLUSTER_SIZE, CLUSTER_SIZE)) {
                    long host = (nextCluster + (k - runStart)) * CLUSTER_SIZE;
                    int l2Index = (int) ((c + k) - (stretchStart >>> CLUSTER_BITS));
                    l2.putLong(l2Index * 8, host | COPIED);
                    k++;
                }
                writeAt(ByteBuffer.wrap(buf, runStart * CLUSTER_SIZE, (k - runStart) * CLUSTER_SIZE), nextCluster * CLUSTER_SIZE);
                nextCluster += k - runStart;
                any = true;
            }
            return any;
        }

        private void writeRefcountTable(long tableStart, long tableClusters, long blocksStart, long blocks) throws IOException {
            ByteBuffer cluster = ByteBuffer.allocate(CLUSTER_SIZE);
            long block = 0;
            for (long t = 0; t < tableClusters; t++) {
                Arrays.fill(cluster.array(), (byte) 0);
                for (int i = 0; i < REFTABLE_ENTRIES_PER_CLUSTER && block < blocks; i++, block++) {
                    cluster.putLong(i * 8, (blocksStart + block) * CLUSTER_SIZE);
                }
                cluster.clear();
                writeAt(cluster, (tableStart + t) * CLUSTER_SIZE);
            }
        }

        private void writeRefcountBlocks(long blocksStart, long blocks, long totalClusters) throws IOException {
            ByteBuffer cluster = ByteBuffer.allocate(CLUSTER_SIZE);
            for (long b = 0; b < blocks; b++) {
                long firstCluster = b * REFCOUNTS_PER_BLOCK;
                int used = (int) Math.min(REFCOUNTS_PER_BLOCK, totalClusters - firstCluster);
                Arrays.fill(cluster.array(), (byte) 0);
                for (int i = 0; i < used; i++) cluster.putShort(i * 2, (short) 1);
                cluster.clear();
                writeAt(cluster, (blocksStart + b) * CLUSTER_SIZE);
            }
        }

        private void writeAt(ByteBuffer b, long position) throws IOException {
            long pos = position;
            while (b.hasRemaining()) pos += ch.write(b, pos);
        }

        private void report(long coveredTo) {
            if (coveredTo > reported) {
                progress.advance(coveredTo - reported);
                reported = coveredTo;
            }
        }
    }
}
