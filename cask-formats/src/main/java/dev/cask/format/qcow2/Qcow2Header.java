package dev.cask.format.qcow2;

import dev.cask.common.CaskException;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The header cluster of a qcow2 file: the fixed header (72 bytes for version 2, at least 104 for
 * version 3), the header extensions that follow it, and the backing file name, decoded and
 * encoded symmetrically.
 *
 * <p>{@link #decode} is the edge where a file's first cluster enters cask: it checks every field
 * that a reader relies on against the spec and against the file's size, and refuses with a
 * one-line {@link CaskException.InvalidInput} that names the file and the values. After decode,
 * these invariants hold and the rest of the package asserts rather than re-checks them:
 * <ul>
 *   <li>{@code version} is 2 or 3; {@code 9 <= clusterBits <= 21} (512 B .. 2 MiB clusters, QEMU's
 *       limit); extended L2 entries imply {@code clusterBits >= 14}.
 *   <li>no encryption, no external data file, the corrupt bit is clear, no unknown incompatible
 *       feature bit is set; {@code compressionType} is 0 (zlib) or 1 (zstd) and agrees with
 *       incompatible bit 3.
 *   <li>{@code size <= 2^56}; the L1 table is cluster aligned, at most 32 MiB (QEMU's limit),
 *       large enough to map {@code size}, and lies wholly inside the file.
 *   <li>the backing file name, when present, lies inside the header cluster and the file, is at
 *       most 1023 bytes and holds no NUL.
 * </ul>
 *
 * <p>Sizing: one L2 table maps {@code l2Entries = clusterSize / 8} clusters ({@code / 16} with
 * extended L2 entries), so one L1 entry covers {@code clusterSize * l2Entries} bytes of the
 * virtual disk: 512 MiB with 64 KiB clusters, 32 KiB with 512-byte clusters. The L1 table needs
 * {@code ceil(size / that)} entries. Immutable and thread-safe.
 */
record Qcow2Header(
        int version,
        long backingFileOffset,
        long backingFileSize,
        int clusterBits,
        long size,
        long cryptMethod,
        long l1Size,
        long l1TableOffset,
        long refcountTableOffset,
        long refcountTableClusters,
        long nbSnapshots,
        long snapshotsOffset,
        long incompatibleFeatures,
        long compatibleFeatures,
        long autoclearFeatures,
        int refcountOrder,
        int headerLength,
        int compressionType,
        String backingFile,
        String backingFormat) {

    static final int MAGIC = 0x514649fb; // "QFI\xfb"
    static final int V2_HEADER_LENGTH = 72;
    static final int V3_HEADER_LENGTH = 104;
    static final int MIN_CLUSTER_BITS = 9;
    static final int MAX_CLUSTER_BITS = 21;
    static final int MIN_EXTENDED_L2_CLUSTER_BITS = 14;
    static final long MAX_SIZE = 1L << 56;
    static final long MAX_L1_BYTES = 32L << 20;
    static final int MAX_BACKING_FILE_NAME = 1023;

    static final long INCOMPAT_DIRTY = 1L;
    static final long INCOMPAT_CORRUPT = 1L << 1;
    static final long INCOMPAT_DATA_FILE = 1L << 2;
    static final long INCOMPAT_COMPRESSION = 1L << 3;
    static final long INCOMPAT_EXTENDED_L2 = 1L << 4;
    static final long INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE
            | INCOMPAT_COMPRESSION | INCOMPAT_EXTENDED_L2;

    static final int COMPRESSION_ZLIB = 0;
    static final int COMPRESSION_ZSTD = 1;

    static final int EXT_END = 0;
    static final int EXT_BACKING_FORMAT = 0xe2792aca;
    static final int EXT_FEATURE_NAMES = 0x6803f857;
    static final int FEATURE_NAME_ENTRY = 48;

    int clusterSize() {
        return 1 << clusterBits;
    }

    boolean extendedL2() {
        return (incompatibleFeatures & INCOMPAT_EXTENDED_L2) != 0;
    }

    /** log2 of the number of entries in one L2 table. */
    int l2Bits() {
        return clusterBits - (extendedL2() ? 4 : 3);
    }

    /** Number of L1 entries needed to map {@code size} bytes. */
    long requiredL1Entries() {
        return requiredL1Entries(size, clusterBits + l2Bits());
    }

    static long requiredL1Entries(long size, int l1EntryCoverageBits) {
        return (size + (1L << l1EntryCoverageBits) - 1) >>> l1EntryCoverageBits;
    }

    /**
     * Reads {@code clusterBits} from the first bytes of a file, checking magic, version and the
     * cluster size first, so the caller knows how much to read for {@link #decode}.
     */
    static int peekClusterBits(String name, byte[] prefix, int length) {
        ByteBuffer b = ByteBuffer.wrap(prefix, 0, length);
        checkMagicAndVersion(name, b, length);
        if (length < V2_HEADER_LENGTH) {
            throw invalid(name, "file too short for a qcow2 header (" + length + " bytes, need at least " + V2_HEADER_LENGTH + ")");
        }
        return checkClusterBits(name, b.getInt(20));
    }

    private static void checkMagicAndVersion(String name, ByteBuffer b, int length) {
        int magic = length >= 4 ? b.getInt(0) : 0;
        if (magic != MAGIC) {
            throw invalid(name, "bad magic 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(MAGIC)
                    + " (not a qcow2 file)");
        }
        int version = length >= 8 ? b.getInt(4) : 0;
        if (version != 2 && version != 3) {
            throw invalid(name, "unsupported qcow2 version " + Integer.toUnsignedString(version) + " (2 and 3 are supported)");
        }
    }

    private static int checkClusterBits(String name, int clusterBits) {
        if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
            throw invalid(name, "cluster_bits " + Integer.toUnsignedString(clusterBits) + " out of range "
                    + MIN_CLUSTER_BITS + ".." + MAX_CLUSTER_BITS);
        }
        return clusterBits;
    }

    /**
     * Decodes and validates the header cluster.
     *
     * @param name     the file, for messages
     * @param head     the file's first cluster, or the whole file when it is shorter
     * @param length   number of valid bytes in {@code head}
     * @param fileSize the size of the file
     */
    static Qcow2Header decode(String name, byte[] head, int length, long fileSize) {
        ByteBuffer b = ByteBuffer.wrap(head, 0, length); // big endian, as qcow2
        int clusterBits = peekClusterBits(name, head, length);
        int clusterSize = 1 << clusterBits;
        if (length < Math.min(clusterSize, fileSize)) {
            throw new IllegalArgumentException("decode needs the whole header cluster");
        }
        int version = b.getInt(4);
        long backingFileOffset = b.getLong(8);
        long backingFileSize = Integer.toUnsignedLong(b.getInt(16));
        long size = b.getLong(24);
        long cryptMethod = Integer.toUnsignedLong(b.getInt(32));
        long l1Size = Integer.toUnsignedLong(b.getInt(36));
        long l1TableOffset = b.getLong(40);
        long refcountTableOffset = b.getLong(48);
        long refcountTableClusters = Integer.toUnsignedLong(b.getInt(56));
        long nbSnapshots = Integer.toUnsignedLong(b.getInt(60));
        long snapshotsOffset = b.getLong(64);

        long incompatible = 0, compatible = 0, autoclear = 0;
        int refcountOrder = 4, headerLength = V2_HEADER_LENGTH, compressionType = COMPRESSION_ZLIB;
        if (version >= 3) {
            if (length < V3_HEADER_LENGTH) {
                throw invalid(name, "file too short for a version 3 header (" + length + " bytes, need " + V3_HEADER_LENGTH + ")");
            }
            incompatible = b.getLong(72);
            compatible = b.getLong(80);
            autoclear = b.getLong(88);
            refcountOrder = b.getInt(96);
            long hl = Integer.toUnsignedLong(b.getInt(100));
            if (hl < V3_HEADER_LENGTH || hl % 8 != 0 || hl > Math.min(clusterSize, length)) {
                throw invalid(name, "bad header_length " + hl + " (must be a multiple of 8, at least " + V3_HEADER_LENGTH
                        + " and inside the first cluster of " + Math.min(clusterSize, length) + " bytes)");
            }
            headerLength = (int) hl;
            if (headerLength > V3_HEADER_LENGTH) compressionType = head[V3_HEADER_LENGTH] & 0xff;
        }

        // Header extensions: between the header and the backing file name (or the end of the cluster).
        int extEnd = Math.min(clusterSize, length);
        if (backingFileOffset > headerLength && backingFileOffset < extEnd) extEnd = (int) backingFileOffset;
        String backingFormat = null;
        List<String> featureNames = new ArrayList<>();
        int pos = headerLength;
        while (pos + 8 <= extEnd) {
            int type = b.getInt(pos);
            long len = Integer.toUnsignedLong(b.getInt(pos + 4));
            if (type == EXT_END) break;
            if (len > extEnd - pos - 8) {
                throw invalid(name, "header extension 0x" + Integer.toHexString(type) + " at offset " + pos + " has length "
                        + len + ", past the end of the header area at " + extEnd);
            }
            int data = pos + 8;
            if (type == EXT_BACKING_FORMAT) {
                backingFormat = new String(head, data, (int) len, StandardCharsets.UTF_8);
            } else if (type == EXT_FEATURE_NAMES) {
                for (int e = data; e + FEATURE_NAME_ENTRY <= data + len; e += FEATURE_NAME_ENTRY) {
                    int kind = head[e] & 0xff;
                    int bit = head[e + 1] & 0xff;
                    int n = 0;
                    while (n < FEATURE_NAME_ENTRY - 2 && head[e + 2 + n] != 0) n++;
                    if (kind == 0 && bit < 64) {
                        featureNames.add(bit + "=" + new String(head, e + 2, n, StandardCharsets.UTF_8));
                    }
                }
            }
            pos = data + (int) ((len + 7) & ~7L);
        }

        // Incompatible features: anything we do not implement is refused, by name when the file names it.
        long unknown = incompatible & ~INCOMPAT_KNOWN;
        if (unknown != 0) {
            StringBuilder names = new StringBuilder();
            for (int bit = 0; bit < 64; bit++) {
                if ((unknown & (1L << bit)) == 0) continue;
                for (String f : featureNames) {
                    if (f.startsWith(bit + "=")) names.append(names.isEmpty() ? " (" : ", ").append(f.substring(f.indexOf('=') + 1));
                }
            }
            if (!names.isEmpty()) names.append(')');
            throw invalid(name, "unknown incompatible feature bits 0x" + Long.toHexString(unknown) + names + " in 0x"
                    + Long.toHexString(incompatible));
        }
        if ((incompatible & INCOMPAT_CORRUPT) != 0) {
            throw invalid(name, "image is marked corrupt (incompatible feature bit 1); repair it with 'qemu-img check -r all' first");
        }
        if ((incompatible & INCOMPAT_DATA_FILE) != 0) {
            throw invalid(name, "image keeps its data in an external data file (incompatible feature bit 2), which is not supported;"
                    + " convert it with 'qemu-img convert' first");
        }
        if ((incompatible & INCOMPAT_EXTENDED_L2) != 0 && clusterBits < MIN_EXTENDED_L2_CLUSTER_BITS) {
            throw invalid(name, "extended L2 entries need cluster_bits >= " + MIN_EXTENDED_L2_CLUSTER_BITS + ", found " + clusterBits);
        }
        boolean compressionBit = (incompatible & INCOMPAT_COMPRESSION) != 0;
        if (compressionType != COMPRESSION_ZLIB && compressionType != COMPRESSION_ZSTD) {
            throw invalid(name, "unknown compression_type " + compressionType + " (0 = zlib and 1 = zstd are supported)");
        }
        if (compressionBit != (compressionType != COMPRESSION_ZLIB)) {
            throw invalid(name, "compression_type " + compressionType + " disagrees with incompatible feature bit 3 ("
                    + (compressionBit ? "set" : "clear") + ")");
        }
        if (cryptMethod != 0) {
            String method = cryptMethod == 1 ? "AES" : cryptMethod == 2 ? "LUKS" : "unknown";
            throw invalid(name, "image is encrypted (crypt_method " + cryptMethod + " = " + method + "), which is not supported");
        }
        if (version >= 3 && (refcountOrder < 0 || refcountOrder > 6)) {
            throw invalid(name, "refcount_order " + Integer.toUnsignedString(refcountOrder) + " out of range 0..6");
        }

        // Sizes and the L1 table.
        if (size < 0 || size > MAX_SIZE) {
            throw invalid(name, "virtual size " + Long.toUnsignedString(size) + " larger than 2^56");
        }
        int l2Bits = clusterBits - ((incompatible & INCOMPAT_EXTENDED_L2) != 0 ? 4 : 3);
        long required = requiredL1Entries(size, clusterBits + l2Bits);
        if (l1Size * 8 > MAX_L1_BYTES) {
            throw invalid(name, "L1 table of " + l1Size + " entries is larger than " + (MAX_L1_BYTES >> 20) + " MiB");
        }
        if (l1Size < required) {
            throw invalid(name, "L1 table of " + l1Size + " entries too small for virtual size " + size + " (needs " + required + ")");
        }
        if (l1Size > 0) {
            if (l1TableOffset <= 0 || (l1TableOffset & (clusterSize - 1)) != 0) {
                throw invalid(name, "L1 table offset 0x" + Long.toHexString(l1TableOffset) + " is not a non-zero multiple of the cluster size "
                        + clusterSize);
            }
            if (l1TableOffset > fileSize - l1Size * 8) {
                throw invalid(name, "L1 table at offset " + l1TableOffset + " with " + l1Size + " entries extends past the end of the file ("
                        + fileSize + " bytes)");
            }
        }

        // Backing file name.
        String backingFile = null;
        if (backingFileOffset != 0 && backingFileSize != 0) {
            if (backingFileSize > MAX_BACKING_FILE_NAME) {
                throw invalid(name, "backing file name of " + backingFileSize + " bytes is longer than " + MAX_BACKING_FILE_NAME);
            }
            if (backingFileOffset < headerLength || backingFileOffset > Math.min(clusterSize, length) - backingFileSize) {
                throw invalid(name, "backing file name at offset " + Long.toUnsignedString(backingFileOffset) + " with length "
                        + backingFileSize + " is outside the header cluster (" + Math.min(clusterSize, length) + " bytes)");
            }
            backingFile = new String(head, (int) backingFileOffset, (int) backingFileSize, StandardCharsets.UTF_8);
            if (backingFile.indexOf('\0') >= 0) {
                throw invalid(name, "backing file name contains a NUL byte");
            }
        }

        return new Qcow2Header(version, backingFileOffset, backingFileSize, clusterBits, size, cryptMethod, l1Size, l1TableOffset,
                refcountTableOffset, refcountTableClusters, nbSnapshots, snapshotsOffset, incompatible, compatible, autoclear,
                refcountOrder, headerLength, compressionType, backingFile, backingFormat);
    }

    /**
     * Encodes the header cluster: header, header extensions (backing format when set, then the end
     * marker), backing file name when set. The result is exactly one cluster; {@link #decode} of it
     * yields this record back (for a file large enough to hold the L1 table).
     * {@code backingFileOffset} and {@code backingFileSize} are computed here, not taken from the record.
     */
    byte[] encode() {
        int clusterSize = clusterSize();
        byte[] out = new byte[clusterSize];
        ByteBuffer b = ByteBuffer.wrap(out);
        int hl = version >= 3 ? headerLength : V2_HEADER_LENGTH;
        b.putInt(0, MAGIC);
        b.putInt(4, version);
        b.putInt(20, clusterBits);
        b.putLong(24, size);
        b.putInt(32, (int) cryptMethod);
        b.putInt(36, (int) l1Size);
        b.putLong(40, l1TableOffset);
        b.putLong(48, refcountTableOffset);
        b.putInt(56, (int) refcountTableClusters);
        b.putInt(60, (int) nbSnapshots);
        b.putLong(64, snapshotsOffset);
        if (version >= 3) {
            b.putLong(72, incompatibleFeatures);
            b.putLong(80, compatibleFeatures);
            b.putLong(88, autoclearFeatures);
            b.putInt(96, refcountOrder);
            b.putInt(100, hl);
            if (hl > V3_HEADER_LENGTH) out[V3_HEADER_LENGTH] = (byte) compressionType;
        }
        int pos = hl;
        if (backingFormat != null) {
            byte[] fmt = backingFormat.getBytes(StandardCharsets.UTF_8);
            b.putInt(pos, EXT_BACKING_FORMAT);
            b.putInt(pos + 4, fmt.length);
            System.arraycopy(fmt, 0, out, pos + 8, fmt.length);
            pos += 8 + ((fmt.length + 7) & ~7);
        }
        b.putInt(pos, EXT_END);
        b.putInt(pos + 4, 0);
        pos += 8;
        if (backingFile != null) {
            byte[] name = backingFile.getBytes(StandardCharsets.UTF_8);
            if (name.length > MAX_BACKING_FILE_NAME || pos + name.length > clusterSize) {
                throw new IllegalArgumentException("backing file name too long: " + name.length + " bytes");
            }
            b.putLong(8, pos);
            b.putInt(16, name.length);
            System.arraycopy(name, 0, out, pos, name.length);
        }
        return out;
    }

    static CaskException.InvalidInput invalid(String name, String what) {
        return new CaskException.InvalidInput(name + ": " + what);
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "qcow2 v%d, %d-byte clusters, size %d, l1 %d@0x%x, backing %s", version, clusterSize(), size,
                l1Size, l1TableOffset, backingFile);
    }
}
