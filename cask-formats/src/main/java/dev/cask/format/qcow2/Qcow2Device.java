package dev.cask.format.qcow2;

import com.github.luben.zstd.Zstd;
import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import dev.cask.device.Devices;
import dev.cask.format.RawFileDevice;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * A qcow2 image (version 2 or 3) as a read-only {@link BlockDevice}: the active image as the
 * guest sees it, with its backing chain folded in.
 *
 * <p><b>What it owns.</b> An open read-only channel on the file, the active L1 table (in memory,
 * at most 32 MiB, checked entry by entry at open), a small LRU cache of L2 tables and of
 * decompressed clusters, and the backing device (another {@code Qcow2Device} or a
 * {@link RawFileDevice}), which it closes with itself. Refcounts, internal snapshots and bitmaps
 * are never read: a reader does not need them, and the dirty bit is therefore harmless.
 *
 * <p><b>Mapping.</b> A guest offset splits into {@code l1Index = cluster / l2Entries},
 * {@code l2Index = cluster % l2Entries} and the offset inside the cluster. An L2 entry is a
 * standard cluster (host offset, bits 9-55, cluster aligned), a zero cluster (bit 0, version 3
 * only), unallocated (offset 0: read the backing file, or zeros), or compressed (bit 62; the
 * low {@code x = 62 - (clusterBits - 8)} bits are the byte offset of the compressed data, the
 * next {@code clusterBits - 8} bits the number of additional 512-byte sectors it spans). With
 * extended L2 entries each entry is 128 bits: the same first word plus a bitmap word whose low
 * 32 bits mark allocated subclusters and high 32 bits zero subclusters (32 subclusters per
 * cluster). {@code lookup} turns this into runs of one kind (hole-for-backing, zero, contiguous
 * host data, one compressed cluster) that {@link #read} and {@link #blockStatus} walk; a run
 * never crosses an L2 table.
 *
 * <p><b>Validation.</b> The header and L1 table are checked at {@link #open}; L2 entries are
 * checked when first used (reserved bits, alignment, offsets inside the file), so a corrupt
 * table becomes a {@link CaskException.InvalidInput} naming the file, the guest offset and the
 * entry, never wrong data and never an unchecked exception. Data clusters whose tail lies past
 * the end of the file read as zeros there, as in QEMU. Backing chains are at most
 * {@value #MAX_CHAIN_DEPTH} images deep and may not visit one file (by real path) twice; an
 * error in a backing file names the top image, the image that names the backing file, and the
 * backing file itself. Backing file names resolve against the directory of the image naming
 * them; the format comes from the backing format extension, else from probing the magic.
 *
 * <p><b>Thread-safety.</b> Reads use positional channel reads and immutable tables; the caches
 * are synchronized and hold immutable arrays. Any number of threads may read concurrently.
 * Memory per image of the chain: the L1 table (8 bytes per L1 entry), at most
 * {@code max(2, min(64, 4 MiB / clusterSize))} cached L2 tables (4 MiB with 64 KiB clusters,
 * two 2 MiB tables with 2 MiB clusters) and {@code max(2, min(8, 1 MiB / clusterSize))}
 * decompressed clusters.
 */
public final class Qcow2Device implements BlockDevice {
    /** Deepest backing chain accepted, counting the top image. */
    public static final int MAX_CHAIN_DEPTH = 64;

    private static final long L1E_OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    private static final long L1E_RESERVED_MASK = 0x7f00_0000_0000_01ffL;
    private static final long L2E_OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    private static final long L2E_STD_RESERVED_MASK = 0x3f00_0000_0000_01feL;
    private static final long L2E_COMPRESSED = 1L << 62;
    private static final long L2E_ZERO = 1L;
    private static final int SUBCLUSTERS = 32;
    private static final int L2_CACHE_BYTES = 4 << 20;
    private static final int CLUSTER_CACHE_BYTES = 1 << 20;

    private static final int UNALLOCATED = 0, ZERO = 1, DATA = 2, COMPRESSED = 3;

    /** One run of guest bytes with one meaning; {@code host} is the file offset (DATA) or the descriptor (COMPRESSED). */
    private record Run(int kind, long length, long host) {}

    private final Path path;
    private final String name;
    private final FileChannel channel;
    private final long fileSize;
    private final Qcow2Header header;
    private final int clusterBits;
    private final int clusterSize;
    private final int l2Bits;
    private final boolean extendedL2;
    private final int subclusterBits;
    private final long[] l1; // host offsets of L2 tables, 0 when unallocated; only the entries that map the disk
    private final BlockDevice backing; // null when none
    private final Lru<Long, long[]> l2Cache;
    private final Lru<Long, byte[]> clusterCache;

    private Qcow2Device(Path path, FileChannel channel, long fileSize, Qcow2Header header, long[] l1, BlockDevice backing) {
        this.path = path;
        this.name = path.toString();
        this.channel = channel;
        this.fileSize = fileSize;
        this.header = header;
        this.clusterBits = header.clusterBits();
        this.clusterSize = header.clusterSize();
        this.l2Bits = header.l2Bits();
        this.extendedL2 = header.extendedL2();
        this.subclusterBits = clusterBits - 5;
        this.l1 = l1;
        this.backing = backing;
        this.l2Cache = new Lru<>(Math.max(2, Math.min(64, L2_CACHE_BYTES >> clusterBits)));
        this.clusterCache = new Lru<>(Math.max(2, Math.min(8, CLUSTER_CACHE_BYTES >> clusterBits)));
    }

    /**
     * Opens a qcow2 image and its backing chain read-only.
     *
     * @param warnings receives one line per harmless oddity (internal snapshots are ignored)
     * @throws CaskException.InvalidInput when the file (or a file of its chain) is not a qcow2
     *         image cask can read; the message names the file and the values
     * @throws CaskException.NotFound     when the file or a backing file does not exist
     * @throws CaskException.Io           when the operating system fails
     */
    public static Qcow2Device open(Path path, Consumer<String> warnings) {
        try {
            return open(path, warnings, new Chain(path.toString(), new ArrayList<>()));
        } catch (ChainFailure f) {
            throw f.error;
        }
    }

    /** The images opened so far, top first, by real path; errors about the chain name the top image. */
    private record Chain(String top, List<Path> images) {}

    /** A finished error from below the top image, carried up through the levels unchanged. */
    private static final class ChainFailure extends RuntimeException {
        final CaskException error;

        ChainFailure(CaskException error) {
            super(error.getMessage(), error, false, false);
            this.error = error;
        }
    }

    private static Qcow2Device open(Path path, Consumer<String> warnings, Chain chain) {
        String name = path.toString();
        Path real;
        try {
            real = path.toRealPath();
        } catch (NoSuchFileException e) {
            throw new CaskException.NotFound(name + ": no such file");
        } catch (IOException e) {
            throw new CaskException.Io(name + ": cannot resolve path: " + e.getMessage(), e);
        }
        if (chain.images().contains(real)) {
            StringBuilder loop = new StringBuilder();
            for (Path p : chain.images()) loop.append(p).append(" -> ");
            throw new ChainFailure(new CaskException.InvalidInput(chain.top() + ": backing chain loops: " + loop + real));
        }
        if (chain.images().size() >= MAX_CHAIN_DEPTH) {
            throw new ChainFailure(new CaskException.InvalidInput(chain.top() + ": backing chain deeper than " + MAX_CHAIN_DEPTH
                    + " images (" + name + " would be image " + (chain.images().size() + 1) + ")"));
        }
        if (Files.isDirectory(real)) throw new CaskException.InvalidInput(name + ": is a directory, not a qcow2 image");
        chain.images().add(real);

        FileChannel ch;
        try {
            ch = FileChannel.open(path, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new CaskException.NotFound(name + ": no such file");
        } catch (IOException e) {
            throw new CaskException.Io(name + ": cannot open: " + e.getMessage(), e);
        }
        BlockDevice backing = null;
        try {
            long fileSize = ch.size();
            byte[] prefix = new byte[Qcow2Header.V3_HEADER_LENGTH];
            int n = readFully(ch, name, ByteBuffer.wrap(prefix), 0);
            int clusterBits = Qcow2Header.peekClusterBits(name, prefix, n);
            byte[] head = new byte[(int) Math.min(1L << clusterBits, fileSize)];
            int headLength = readFully(ch, name, ByteBuffer.wrap(head), 0);
            Qcow2Header header = Qcow2Header.decode(name, head, headLength, fileSize);

            long[] l1 = readL1(ch, name, header, fileSize);
            if (header.nbSnapshots() > 0) {
                warnings.accept(name + ": " + header.nbSnapshots() + " internal snapshot(s) ignored; importing the active image");
            }
            if (header.backingFile() != null) {
                backing = openBacking(path, header, warnings, chain);
            }
            return new Qcow2Device(path, ch, fileSize, header, l1, backing);
        } catch (RuntimeException e) {
            closeQuietly(ch);
            if (backing != null) backing.close();
            if (e instanceof CaskException || e instanceof ChainFailure) throw e;
            throw new CaskException.InvalidInput(name + ": malformed qcow2 image: " + e, e);
        } catch (IOException e) {
            closeQuietly(ch);
            if (backing != null) backing.close();
            throw new CaskException.Io(name + ": read failed: " + e.getMessage(), e);
        }
    }

    /** Reads and checks the part of the L1 table that maps the virtual disk. */
    private static long[] readL1(FileChannel ch, String name, Qcow2Header header, long fileSize) throws IOException {
        int entries = (int) header.requiredL1Entries(); // <= l1Size <= 4 Mi, checked by decode
        ByteBuffer buf = ByteBuffer.allocate(entries * 8);
        if (readFully(ch, name, buf, header.l1TableOffset()) != entries * 8) {
            throw Qcow2Header.invalid(name, "L1 table at offset " + header.l1TableOffset() + " is cut short by the end of the file");
        }
        buf.flip();
        long[] l1 = new long[entries];
        int clusterSize = header.clusterSize();
        for (int i = 0; i < entries; i++) {
            long e = buf.getLong();
            if ((e & L1E_RESERVED_MASK) != 0) {
                throw Qcow2Header.invalid(name, "L1 entry " + i + " (0x" + Long.toHexString(e) + ") has reserved bits set");
            }
            long off = e & L1E_OFFSET_MASK;
            if (off == 0) continue;
            if ((off & (clusterSize - 1)) != 0) {
                throw Qcow2Header.invalid(name, "L1 entry " + i + ": L2 table offset 0x" + Long.toHexString(off)
                        + " is not aligned to the cluster size " + clusterSize);
            }
            if (off > fileSize - clusterSize) {
                throw Qcow2Header.invalid(name, "L1 entry " + i + ": L2 table at offset " + off + " extends past the end of the file ("
                        + fileSize + " bytes)");
            }
            l1[i] = off;
        }
        return l1;
    }

    private static BlockDevice openBacking(Path path, Qcow2Header header, Consumer<String> warnings, Chain chain) {
        String name = path.toString();
        String backingName = header.backingFile();
        if (backingName.startsWith("json:") || backingName.contains("://")) {
            throw Qcow2Header.invalid(name, "backing file '" + backingName + "' is not a local file, which is not supported");
        }
        Path dir = path.toAbsolutePath().getParent();
        Path backingPath;
        try {
            backingPath = dir == null ? Path.of(backingName) : dir.resolve(backingName);
        } catch (java.nio.file.InvalidPathException e) {
            throw Qcow2Header.invalid(name, "backing file name '" + backingName + "' is not a valid path");
        }
        String format = header.backingFormat();
        try {
            if (format == null) format = probe(backingPath);
            return switch (format) {
                case "qcow2" -> open(backingPath, warnings, chain);
                case "raw" -> RawFileDevice.open(backingPath);
                default -> throw new CaskException.InvalidInput(backingPath + ": backing format '" + format
                        + "' is not supported (qcow2 and raw are)");
            };
        } catch (CaskException e) {
            // The backing file itself is bad: say which image names it, and, below the top, which chain it is in.
            String msg = name + ": backing file '" + backingName + "': " + e.getMessage();
            if (!name.equals(chain.top())) msg = chain.top() + ": in its backing chain: " + msg;
            CaskException wrapped = switch (e) {
                case CaskException.NotFound nf -> new CaskException.NotFound(msg);
                case CaskException.Io io -> new CaskException.Io(msg, io.getCause());
                default -> new CaskException.InvalidInput(msg, e);
            };
            throw new ChainFailure(wrapped);
        }
    }

    /** qcow2 when the file starts with the qcow2 magic, raw otherwise. */
    private static String probe(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer magic = ByteBuffer.allocate(4);
            int n = readFully(ch, file.toString(), magic, 0);
            return n == 4 && magic.getInt(0) == Qcow2Header.MAGIC ? "qcow2" : "raw";
        } catch (NoSuchFileException e) {
            throw new CaskException.NotFound(file + ": no such file");
        } catch (IOException e) {
            throw new CaskException.Io(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    /** Reads until {@code buf} is full or the file ends; returns the bytes read. */
    private static int readFully(FileChannel ch, String name, ByteBuffer buf, long position) throws IOException {
        int total = 0;
        while (buf.hasRemaining()) {
            int n = ch.read(buf, position + total);
            if (n < 0) break;
            total += n;
        }
        return total;
    }

    public Path path() {
        return path;
    }

    /** The cluster size in bytes (512 B .. 2 MiB). */
    public int clusterSize() {
        return clusterSize;
    }

    /** The backing device, or null when the image has none. */
    public BlockDevice backing() {
        return backing;
    }

    @Override
    public long size() {
        return header.size();
    }

    @Override
    public Capabilities capabilities() {
        return Capabilities.readOnly(clusterSize);
    }

    @Override
    public void read(long offset, byte[] buffer, int bufferOffset, int length) {
        BlockDevice.checkRange(this, offset, length);
        java.util.Objects.checkFromIndexSize(bufferOffset, length, buffer.length);
        try {
            long pos = offset;
            int off = bufferOffset;
            int left = length;
            while (left > 0) {
                Run run = lookup(pos, left);
                int n = (int) Math.min(left, run.length());
                switch (run.kind()) {
                    case DATA -> readHost(run.host(), buffer, off, n, pos);
                    case ZERO -> Arrays.fill(buffer, off, off + n, (byte) 0);
                    case UNALLOCATED -> readBacking(pos, buffer, off, n);
                    case COMPRESSED -> {
                        byte[] cluster = compressedCluster(run.host(), pos);
                        System.arraycopy(cluster, (int) (pos & (clusterSize - 1)), buffer, off, n);
                    }
                    default -> throw new AssertionError(run);
                }
                pos += n;
                off += n;
                left -= n;
            }
        } catch (CaskException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new CaskException.InvalidInput(name + ": malformed qcow2 image reading offset " + offset + ": " + e, e);
        }
    }

    @Override
    public List<BlockStatus> blockStatus(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        try {
            List<BlockStatus> out = new ArrayList<>();
            long pos = offset;
            long end = offset + length;
            while (pos < end) {
                Run run = lookup(pos, end - pos);
                long n = Math.min(end - pos, run.length());
                switch (run.kind()) {
                    case DATA, COMPRESSED -> out.add(new BlockStatus(pos, n, false));
                    case ZERO -> out.add(new BlockStatus(pos, n, true));
                    case UNALLOCATED -> backingStatus(pos, n, out);
                    default -> throw new AssertionError(run);
                }
                pos += n;
            }
            return Devices.coalesce(out);
        } catch (CaskException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new CaskException.InvalidInput(name + ": malformed qcow2 image mapping offset " + offset + ": " + e, e);
        }
    }

    private void backingStatus(long pos, long n, List<BlockStatus> out) {
        long covered = backing == null ? 0 : Math.max(0, Math.min(n, backing.size() - pos));
        if (covered > 0) out.addAll(backing.blockStatus(pos, covered));
        if (covered < n) out.add(new BlockStatus(pos + covered, n - covered, true));
    }

    private void readBacking(long pos, byte[] buffer, int off, int n) {
        int covered = backing == null ? 0 : (int) Math.max(0, Math.min(n, backing.size() - pos));
        if (covered > 0) backing.read(pos, buffer, off, covered);
        if (covered < n) Arrays.fill(buffer, off + covered, off + n, (byte) 0);
    }

    private void readHost(long host, byte[] buffer, int off, int n, long guest) {
        try {
            int got = readFully(channel, name, ByteBuffer.wrap(buffer, off, n), host);
            if (got < n) Arrays.fill(buffer, off + got, off + n, (byte) 0); // past the end of the file: zeros, as QEMU
        } catch (IOException e) {
            throw new CaskException.Io(name + ": read of " + n + " bytes at host offset " + host + " (guest offset " + guest
                    + ") failed: " + e.getMessage(), e);
        }
    }

    /**
     * The run that starts at guest offset {@code pos}: at most {@code max} bytes, never crossing
     * an L2 table, extended over following clusters of the same kind (and, for data, contiguous
     * host offsets).
     */
    private Run lookup(long pos, long max) {
        long cluster = pos >>> clusterBits;
        int l1Index = (int) (cluster >>> l2Bits);
        long tableStart = (long) l1Index << (l2Bits + clusterBits);
        long limit = Math.min(pos + max, tableStart + (1L << (l2Bits + clusterBits)));
        long l2Offset = l1[l1Index];
        if (l2Offset == 0) return new Run(UNALLOCATED, limit - pos, 0);
        long[] l2 = l2Table(l2Offset, l1Index);
        int entries = 1 << l2Bits;
        int index = (int) (cluster & (entries - 1));
        int inCluster = (int) (pos & (clusterSize - 1));

        Run first = piece(l2, index, inCluster, pos);
        long runEnd = (cluster << clusterBits) + first.length(); // first.length counts from the cluster start
        int kind = first.kind();
        long host = first.host();
        if (kind != COMPRESSED) {
            while (runEnd < limit && (runEnd & (clusterSize - 1)) == 0 && ++index < entries) {
                Run next = piece(l2, index, 0, runEnd);
                if (next.kind() != kind) break;
                if (kind == DATA && next.host() != host + (runEnd - pos)) break;
                runEnd += next.length();
            }
        }
        long length = Math.min(runEnd, limit) - pos;
        return new Run(kind, length, host);
    }

    /**
     * Decodes L2 entry {@code index} at byte {@code inCluster} of its cluster: kind, the end of the
     * same-kind piece measured from the cluster start, and the host offset of byte {@code inCluster}
     * (DATA) or the compressed descriptor.
     */
    private Run piece(long[] l2, int index, int inCluster, long guest) {
        if (!extendedL2) {
            long e = l2[index];
            if ((e & L2E_COMPRESSED) != 0) return new Run(COMPRESSED, clusterSize, e);
            if ((e & L2E_STD_RESERVED_MASK) != 0) throw badEntry(guest, e, "reserved bits set");
            long off = e & L2E_OFFSET_MASK;
            if ((e & L2E_ZERO) != 0) {
                if (header.version() < 3) throw badEntry(guest, e, "zero flag in a version 2 image");
                return new Run(ZERO, clusterSize, 0);
            }
            if (off == 0) return new Run(UNALLOCATED, clusterSize, 0);
            checkDataCluster(off, guest, e);
            return new Run(DATA, clusterSize, off + inCluster);
        }
        long e = l2[2 * index];
        long bitmap = l2[2 * index + 1];
        if ((e & L2E_COMPRESSED) != 0) return new Run(COMPRESSED, clusterSize, e);
        if ((e & (L2E_STD_RESERVED_MASK | L2E_ZERO)) != 0) throw badEntry(guest, e, "reserved bits set");
        int alloc = (int) bitmap;
        int zeros = (int) (bitmap >>> 32);
        if ((alloc & zeros) != 0) {
            throw badEntry(guest, e, "subclusters both allocated and zero (bitmap 0x" + Long.toHexString(bitmap) + ")");
        }
        long off = e & L2E_OFFSET_MASK;
        if (alloc != 0) {
            if (off == 0) throw badEntry(guest, e, "allocated subclusters without a host offset (bitmap 0x" + Long.toHexString(bitmap) + ")");
            checkDataCluster(off, guest, e);
        }
        int sc = inCluster >>> subclusterBits;
        int kind = subclusterKind(alloc, zeros, sc);
        int end = sc + 1;
        while (end < SUBCLUSTERS && subclusterKind(alloc, zeros, end) == kind) end++;
        return new Run(kind, (long) end << subclusterBits, kind == DATA ? off + inCluster : 0);
    }

    private static int subclusterKind(int alloc, int zeros, int sc) {
        if ((alloc >>> sc & 1) != 0) return DATA;
        if ((zeros >>> sc & 1) != 0) return ZERO;
        return UNALLOCATED;
    }

    private void checkDataCluster(long off, long guest, long entry) {
        if ((off & (clusterSize - 1)) != 0) {
            throw badEntry(guest, entry, "data cluster offset 0x" + Long.toHexString(off) + " not aligned to the cluster size " + clusterSize);
        }
        if (off >= fileSize) {
            throw badEntry(guest, entry, "data cluster at offset " + off + " past the end of the file (" + fileSize + " bytes)");
        }
    }

    private CaskException.InvalidInput badEntry(long guest, long entry, String what) {
        return Qcow2Header.invalid(name, "L2 entry 0x" + Long.toHexString(entry) + " for guest offset " + guest + ": " + what);
    }

    private long[] l2Table(long offset, int l1Index) {
        long[] table = l2Cache.get(offset);
        if (table != null) return table;
        ByteBuffer buf = ByteBuffer.allocate(clusterSize);
        try {
            if (readFully(channel, name, buf, offset) != clusterSize) {
                throw Qcow2Header.invalid(name, "L2 table of L1 entry " + l1Index + " at offset " + offset + " is cut short by the end of the file");
            }
        } catch (IOException e) {
            throw new CaskException.Io(name + ": read of L2 table at offset " + offset + " failed: " + e.getMessage(), e);
        }
        buf.flip();
        table = new long[clusterSize / 8];
        buf.asLongBuffer().get(table);
        l2Cache.put(offset, table);
        return table;
    }

    /** Decompresses the cluster of compressed descriptor {@code descriptor}; the result must not be modified. */
    private byte[] compressedCluster(long descriptor, long guest) {
        byte[] cached = clusterCache.get(descriptor);
        if (cached != null) return cached;
        int offsetBits = 62 - (clusterBits - 8);
        long hostOffset = descriptor & ((1L << offsetBits) - 1);
        long sectors = ((descriptor >>> offsetBits) & ((1L << (clusterBits - 8)) - 1)) + 1;
        long compressedSize = sectors * 512 - (hostOffset & 511);
        if (hostOffset >= 1L << 56) {
            throw badEntry(guest, descriptor, "compressed data offset 0x" + Long.toHexString(hostOffset) + " beyond 2^56");
        }
        if (hostOffset >= fileSize) {
            throw badEntry(guest, descriptor, "compressed data at offset " + hostOffset + " past the end of the file (" + fileSize + " bytes)");
        }
        if (hostOffset < clusterSize) {
            throw badEntry(guest, descriptor, "compressed data at offset " + hostOffset + " inside the header cluster");
        }
        // compressedSize <= 2 * clusterSize by the bit widths, so this fits an int.
        byte[] input = new byte[(int) Math.min(compressedSize, fileSize - hostOffset)];
        int got;
        try {
            got = readFully(channel, name, ByteBuffer.wrap(input), hostOffset);
        } catch (IOException e) {
            throw new CaskException.Io(name + ": read of compressed cluster at offset " + hostOffset + " failed: " + e.getMessage(), e);
        }
        byte[] out = new byte[clusterSize];
        String error = header.compressionType() == Qcow2Header.COMPRESSION_ZSTD
                ? zstd(input, got, out) : zlib(input, got, out);
        if (error != null) {
            throw badEntry(guest, descriptor, "compressed cluster at offset " + hostOffset + " (" + compressedSize + " bytes, "
                    + (header.compressionType() == Qcow2Header.COMPRESSION_ZSTD ? "zstd" : "zlib") + ") does not decompress: " + error);
        }
        clusterCache.put(descriptor, out);
        return out;
    }

    /** Raw deflate, as QEMU writes it; stops once a whole cluster came out. Returns an error or null. */
    private static String zlib(byte[] input, int length, byte[] out) {
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(input, 0, length);
            int produced = 0;
            int stalls = 0;
            while (produced < out.length) {
                int n = inflater.inflate(out, produced, out.length - produced);
                produced += n;
                if (n == 0) {
                    if (inflater.finished() || inflater.needsInput() || inflater.needsDictionary() || ++stalls > 2) break;
                }
            }
            return produced == out.length ? null : "only " + produced + " of " + out.length + " bytes";
        } catch (DataFormatException e) {
            return e.getMessage();
        } finally {
            inflater.end();
        }
    }

    /** One zstd frame that must yield exactly one cluster, as QEMU writes it; trailing bytes are ignored. */
    private static String zstd(byte[] input, int length, byte[] out) {
        try {
            long frame = Zstd.findFrameCompressedSize(input, 0, length);
            if (Zstd.isError(frame)) return Zstd.getErrorName(frame);
            if (frame <= 0 || frame > length) return "bad frame size " + frame;
            long n = Zstd.decompressByteArray(out, 0, out.length, input, 0, (int) frame);
            if (Zstd.isError(n)) return Zstd.getErrorName(n);
            return n == out.length ? null : "only " + n + " of " + out.length + " bytes";
        } catch (RuntimeException e) { // ZstdException
            return e.getMessage();
        }
    }

    @Override
    public void close() {
        closeQuietly(channel);
        if (backing != null) backing.close();
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException e) {
            // read-only: nothing to lose
        }
    }

    @Override
    public String toString() {
        return name + " (" + header + ")";
    }

    /** A small synchronized LRU map; values are immutable once put. */
    private static final class Lru<K, V> {
        private final int capacity;
        private final LinkedHashMap<K, V> map;

        Lru(int capacity) {
            this.capacity = capacity;
            this.map = new LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<K, V> eldest) {
                    return size() > Lru.this.capacity;
                }
            };
        }

        synchronized V get(K key) {
            return map.get(key);
        }

        synchronized void put(K key, V value) {
            map.put(key, value);
        }
    }
}
