package dev.cask.layout;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.zip.CRC32;

/**
 * Reads the partition table of a disk: MBR (with the extended-partition chain of logical
 * partitions) or GPT (header and entry array CRCs checked; 512- and 4096-byte sectors). Returns
 * partitions as byte ranges sorted by start; a partition running past the disk end is clipped.
 *
 * <p>Anything inconsistent (bad CRCs, overlapping partitions, a loop in the EBR chain, absurd
 * counts) throws {@link CaskException.InvalidInput} with what was wrong, so the caller falls back
 * to the whole disk instead of using a wrong layout. No table at all returns an empty list.
 */
public final class PartitionTable {
    /** One partition: {@code length} bytes at {@code offset}; {@code kind} is "mbr 0x83", "gpt", ... */
    public record Partition(long offset, long length, String kind) {
        public long end() {
            return offset + length;
        }
    }

    private static final int MAX_LOGICAL = 128;
    private static final int MAX_GPT_ENTRIES = 1024;

    private PartitionTable() {}

    /** The partitions of {@code disk}, or an empty list when it has no partition table. */
    public static List<Partition> read(BlockDevice disk) {
        long size = disk.size();
        if (size < 1024) return List.of();
        byte[] mbr = new byte[512];
        disk.read(0, mbr, 0, 512);
        if ((mbr[510] & 0xff) != 0x55 || (mbr[511] & 0xff) != 0xaa) return List.of();
        // a FAT/NTFS boot sector also ends in 55aa: real MBR entries have a status of 0x00 or 0x80
        for (int i = 0; i < 4; i++) {
            int status = mbr[446 + 16 * i] & 0xff;
            if (status != 0 && status != 0x80) return List.of();
        }
        List<Partition> out = new ArrayList<>();
        boolean protective = false;
        for (int i = 0; i < 4; i++) {
            int e = 446 + 16 * i;
            int type = mbr[e + 4] & 0xff;
            long start = le32(mbr, e + 8);
            long count = le32(mbr, e + 12);
            if (type == 0 || count == 0) continue;
            if (type == 0xee) {
                protective = true;
                continue;
            }
            if (type == 0x05 || type == 0x0f || type == 0x85) {
                readLogical(disk, start * 512, start * 512, out);
                continue;
            }
            add(out, start * 512, count * 512, String.format("mbr 0x%02x", type), size);
        }
        if (protective) {
            for (int sector : new int[]{512, 4096}) {
                List<Partition> gpt = readGpt(disk, sector);
                if (gpt != null) return checked(gpt);
            }
            throw new CaskException.InvalidInput("protective MBR but no valid GPT header at LBA 1 (512- or 4096-byte sectors)");
        }
        return checked(out);
    }

    private static void readLogical(BlockDevice disk, long extendedStart, long ebr, List<Partition> out) {
        java.util.Set<Long> seen = new java.util.HashSet<>();
        byte[] b = new byte[512];
        for (int n = 0; n < MAX_LOGICAL; n++) {
            if (ebr + 512 > disk.size()) throw new CaskException.InvalidInput("extended boot record at byte " + ebr + " is past the disk end");
            if (!seen.add(ebr)) throw new CaskException.InvalidInput("extended boot records loop at byte " + ebr);
            disk.read(ebr, b, 0, 512);
            if ((b[510] & 0xff) != 0x55 || (b[511] & 0xff) != 0xaa) {
                throw new CaskException.InvalidInput("extended boot record at byte " + ebr + " has no 55aa signature");
            }
            int type = b[446 + 4] & 0xff;
            long start = le32(b, 446 + 8);
            long count = le32(b, 446 + 12);
            if (type != 0 && count != 0) add(out, ebr + start * 512, count * 512, String.format("mbr logical 0x%02x", type), disk.size());
            long next = le32(b, 446 + 16 + 8);
            if ((b[446 + 16 + 4] & 0xff) == 0 || next == 0) return;
            ebr = extendedStart + next * 512;
        }
        throw new CaskException.InvalidInput("more than " + MAX_LOGICAL + " logical partitions");
    }

    /** The GPT partitions for this sector size, or null when there is no GPT header there. */
    private static List<Partition> readGpt(BlockDevice disk, int sector) {
        long size = disk.size();
        if (2L * sector > size) return null;
        byte[] h = new byte[sector];
        disk.read(sector, h, 0, sector);
        if (!new String(h, 0, 8, java.nio.charset.StandardCharsets.US_ASCII).equals("EFI PART")) return null;
        ByteBuffer b = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
        int headerSize = b.getInt(12);
        if (headerSize < 92 || headerSize > sector) throw new CaskException.InvalidInput("GPT header size " + headerSize + " out of range");
        int crc = b.getInt(16);
        byte[] copy = java.util.Arrays.copyOf(h, headerSize);
        copy[16] = copy[17] = copy[18] = copy[19] = 0;
        CRC32 c = new CRC32();
        c.update(copy);
        if ((int) c.getValue() != crc) throw new CaskException.InvalidInput("GPT header CRC mismatch");
        long entriesLba = b.getLong(72);
        int count = b.getInt(80);
        int entrySize = b.getInt(84);
        int entriesCrc = b.getInt(88);
        if (count < 0 || count > MAX_GPT_ENTRIES || entrySize < 128 || entrySize > 4096 || entrySize % 8 != 0) {
            throw new CaskException.InvalidInput("GPT entry array of " + count + " entries of " + entrySize + " bytes is out of range");
        }
        long arrayBytes = (long) count * entrySize;
        if (entriesLba < 2 || entriesLba * sector + arrayBytes > size) {
            throw new CaskException.InvalidInput("GPT entry array at LBA " + entriesLba + " runs past the disk end");
        }
        byte[] entries = new byte[(int) arrayBytes];
        disk.read(entriesLba * sector, entries, 0, entries.length);
        c.reset();
        c.update(entries);
        if ((int) c.getValue() != entriesCrc) throw new CaskException.InvalidInput("GPT partition entry array CRC mismatch");
        ByteBuffer e = ByteBuffer.wrap(entries).order(ByteOrder.LITTLE_ENDIAN);
        List<Partition> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int at = i * entrySize;
            if (e.getLong(at) == 0 && e.getLong(at + 8) == 0) continue; // unused entry
            long first = e.getLong(at + 32);
            long last = e.getLong(at + 40);
            if (first < 0 || last < first) throw new CaskException.InvalidInput("GPT entry " + (i + 1) + ": first LBA " + first + " after last LBA " + last);
            add(out, first * sector, (last - first + 1) * sector, "gpt", size);
        }
        return out;
    }

    private static void add(List<Partition> out, long offset, long length, String kind, long diskSize) {
        if (offset >= diskSize || length <= 0) return; // starts past the end: nothing of it exists
        out.add(new Partition(offset, Math.min(length, diskSize - offset), kind));
    }

    private static List<Partition> checked(List<Partition> parts) {
        List<Partition> sorted = new ArrayList<>(parts);
        sorted.sort(Comparator.comparingLong(Partition::offset));
        for (int i = 1; i < sorted.size(); i++) {
            Partition a = sorted.get(i - 1);
            Partition b = sorted.get(i);
            if (b.offset() < a.end()) {
                throw new CaskException.InvalidInput("partitions overlap: " + a.offset() + "+" + a.length() + " and " + b.offset() + "+" + b.length());
            }
        }
        return List.copyOf(sorted);
    }

    private static long le32(byte[] b, int off) {
        return (b[off] & 0xffL) | (b[off + 1] & 0xffL) << 8 | (b[off + 2] & 0xffL) << 16 | (b[off + 3] & 0xffL) << 24;
    }
}
