package dev.cask.store.local;

import dev.cask.common.CaskException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * The stretches of a sealed pack that hold no live chunk and were punched out of the file
 * ({@code fallocate(PUNCH_HOLE)}, see {@link HolePuncher}): the pack's <em>holes file</em>,
 * {@code NNNNNNNN.holes} next to {@code NNNNNNNN.pack}.
 *
 * <p>A pack is a sequence of records and segments that a scan reads from the header on. After a
 * punch, a stretch reads as zeros, which a scan cannot tell from damage: so a stretch is listed
 * here, durably, before any byte of it is punched, and every scan ({@link PackScan}: check,
 * rebuild) jumps over the listed stretches. Each stretch runs from the start of a record or
 * segment to the end of one (one or more whole, dead units), so a scan lands on the next unit's
 * header; only its interior aligned to {@link #BLOCK} is punched (a file system frees whole
 * blocks), so the first and last bytes of a stretch may still hold the old bytes.
 *
 * <p><b>Format 1</b> (big-endian): magic u32 {@code 0x63686f6c} ("chol") | format u32 = 1 | pack
 * id u32 | count u32 | count times (start u64, end u64) | crc32c u32 of all bytes before it.
 * Stretches are sorted, disjoint and never adjacent (adjacent ones are merged), each after the
 * pack header. The file is only ever replaced whole: written under a temporary name, fsynced,
 * renamed, the directory fsynced ({@link #write}); so it is the old list or the new one after a
 * crash, never a torn one. A file that fails its checks is reported by the scan, which then
 * reads the pack as if nothing was punched (the zeros show as damage, and nothing is lost: no
 * entry points into a stretch).
 *
 * <p>Immutable and thread-safe.
 */
final class PackHoles {
    static final int MAGIC = 0x63686f6c;
    static final int FORMAT = 1;
    /** The unit a file system frees: only the part of a stretch aligned to it is punched. */
    static final long BLOCK = 4096;
    private static final int HEADER = 16;

    static final PackHoles NONE = new PackHoles(new long[0], new long[0]);

    private final long[] starts;
    private final long[] ends;

    private PackHoles(long[] starts, long[] ends) {
        this.starts = starts;
        this.ends = ends;
    }

    /** The holes file of pack {@code pack} in {@code packDir}. */
    static Path path(Path packDir, int pack) {
        return packDir.resolve(String.format("%08d.holes", pack));
    }

    /** The holes file next to the pack file {@code packFile} ({@code NNNNNNNN.pack}). */
    static Path besidePack(Path packFile, int pack) {
        return path(packFile.toAbsolutePath().getParent(), pack);
    }

    /** The stretches listed for pack {@code pack} ({@link #NONE} when it has no holes file); throws {@link CaskException.Corrupt} for a file that fails its checks. */
    static PackHoles read(Path file, int pack) {
        byte[] b;
        try {
            b = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            return NONE;
        } catch (IOException e) {
            throw new CaskException.Io("pack " + pack + ": cannot read its holes file " + file + ": " + e.getMessage(), e);
        }
        return decode("pack " + pack + ": holes file " + file, b, pack);
    }

    static PackHoles decode(String what, byte[] b, int pack) {
        if (b.length < HEADER + 4) throw new CaskException.Corrupt(what + ": " + b.length + " bytes, shorter than its header");
        ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.BIG_ENDIAN);
        CRC32C crc = new CRC32C();
        crc.update(b, 0, b.length - 4);
        int stored = buf.getInt(b.length - 4);
        if ((int) crc.getValue() != stored) {
            throw new CaskException.Corrupt(what + ": crc32c " + Integer.toHexString((int) crc.getValue()) + " != stored " + Integer.toHexString(stored));
        }
        int magic = buf.getInt();
        int format = buf.getInt();
        int named = buf.getInt();
        int count = buf.getInt();
        if (magic != MAGIC) throw new CaskException.Corrupt(what + ": bad magic " + Integer.toHexString(magic));
        if (format != FORMAT) throw new CaskException.Corrupt(what + ": format " + format + " (this cask reads " + FORMAT + ")");
        if (named != pack) throw new CaskException.Corrupt(what + ": names pack " + named);
        if (count < 0 || (long) count * 16 != b.length - HEADER - 4) {
            throw new CaskException.Corrupt(what + ": " + count + " stretches do not fit its " + b.length + " bytes");
        }
        long[] s = new long[count];
        long[] e = new long[count];
        long last = PackFormat.PACK_HEADER - 1;
        for (int i = 0; i < count; i++) {
            s[i] = buf.getLong();
            e[i] = buf.getLong();
            if (s[i] <= last || e[i] <= s[i]) {
                throw new CaskException.Corrupt(what + ": stretch " + i + " [" + s[i] + ", " + e[i] + ") is empty, overlaps the pack header or is out of order");
            }
            last = e[i];
        }
        return new PackHoles(s, e);
    }

    byte[] encode(int pack) {
        ByteBuffer buf = ByteBuffer.allocate(HEADER + starts.length * 16 + 4).order(ByteOrder.BIG_ENDIAN);
        buf.putInt(MAGIC).putInt(FORMAT).putInt(pack).putInt(starts.length);
        for (int i = 0; i < starts.length; i++) buf.putLong(starts[i]).putLong(ends[i]);
        CRC32C crc = new CRC32C();
        crc.update(buf.array(), 0, buf.position());
        buf.putInt((int) crc.getValue());
        return buf.array();
    }

    /**
     * Replaces the holes file of pack {@code pack} with this list, durably: a temporary file
     * written and fsynced, renamed over the old one, the directory fsynced. On failure the old
     * file is as it was and the temporary one is gone.
     */
    void write(Path packDir, int pack) throws IOException {
        Path file = path(packDir, pack);
        Path tmp = packDir.resolve(file.getFileName() + ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
                ByteBuffer b = ByteBuffer.wrap(encode(pack));
                while (b.hasRemaining()) ch.write(b);
                ch.force(true);
            }
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // the next write truncates it
            }
            throw e;
        }
        LocalChunkStore.fsyncDirectory(packDir);
    }

    /** This list with {@code more} stretches ({start, end} pairs, any order) added, overlapping and adjacent ones merged. */
    PackHoles with(List<long[]> more) {
        List<long[]> all = new ArrayList<>(more.size() + starts.length);
        for (int i = 0; i < starts.length; i++) all.add(new long[]{starts[i], ends[i]});
        all.addAll(more);
        all.sort((a, b) -> Long.compare(a[0], b[0]));
        List<long[]> merged = new ArrayList<>();
        for (long[] r : all) {
            if (r[1] <= r[0] || r[0] < PackFormat.PACK_HEADER) throw new IllegalArgumentException("stretch [" + r[0] + ", " + r[1] + ")");
            long[] last = merged.isEmpty() ? null : merged.getLast();
            if (last != null && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
            else merged.add(new long[]{r[0], r[1]});
        }
        long[] s = new long[merged.size()];
        long[] e = new long[merged.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = merged.get(i)[0];
            e[i] = merged.get(i)[1];
        }
        return new PackHoles(s, e);
    }

    int count() {
        return starts.length;
    }

    long start(int i) {
        return starts[i];
    }

    long end(int i) {
        return ends[i];
    }

    /** Bytes inside the stretches: dead bytes no scan reads. */
    long holed() {
        long sum = 0;
        for (int i = 0; i < starts.length; i++) sum += ends[i] - starts[i];
        return sum;
    }

    /** Bytes punched: the part of each stretch aligned to {@link #BLOCK}. */
    long punched() {
        long sum = 0;
        for (int i = 0; i < starts.length; i++) sum += punchedLength(starts[i], ends[i]);
        return sum;
    }

    /** The first byte of stretch [start, end) that is punched (aligned up). */
    static long punchFrom(long start) {
        return (start + BLOCK - 1) / BLOCK * BLOCK;
    }

    /** How many bytes of stretch [start, end) are punched (its interior aligned to {@link #BLOCK}). */
    static long punchedLength(long start, long end) {
        long to = end / BLOCK * BLOCK;
        return Math.max(0, to - punchFrom(start));
    }

    /** True when [start, end) is one of the stretches, exactly. */
    boolean has(long start, long end) {
        int i = Arrays.binarySearch(starts, start);
        return i >= 0 && ends[i] == end;
    }

    /** The end of the stretch holding {@code pos}, or -1 when {@code pos} is in none. */
    long skip(long pos) {
        int i = Arrays.binarySearch(starts, pos);
        if (i < 0) i = -i - 2; // the stretch starting before pos
        return i >= 0 && pos < ends[i] ? ends[i] : -1;
    }

    /** The start of the first stretch after {@code pos}, or {@code Long.MAX_VALUE}. */
    long nextStart(long pos) {
        int i = Arrays.binarySearch(starts, pos + 1);
        if (i < 0) i = -i - 1;
        return i < starts.length ? starts[i] : Long.MAX_VALUE;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PackHoles h && Arrays.equals(starts, h.starts) && Arrays.equals(ends, h.ends);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(starts) * 31 + Arrays.hashCode(ends);
    }
}
