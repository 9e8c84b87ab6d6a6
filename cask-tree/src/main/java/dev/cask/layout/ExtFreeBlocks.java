package dev.cask.layout;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.device.ByteRanges;
import dev.cask.device.SliceDevice;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.function.Consumer;

/**
 * The blocks an ext2/3/4 file system marks free, read from its block bitmaps: what fs-aware import
 * stores as holes.
 *
 * <h2>What it reads</h2>
 * The primary superblock (1024 bytes at byte 1024 of the partition), the group descriptor table
 * (after the superblock, or with META_BG one descriptor block at the start of each meta group),
 * and one block bitmap per group, wherever the descriptor puts it (with flex_bg, anywhere). Bit
 * {@code i} of group {@code g}'s bitmap (byte {@code i / 8}, bit {@code i % 8}) is block
 * {@code s_first_data_block + g * s_blocks_per_group + i}; a clear bit is a free block. Block
 * sizes 1 KiB to 64 KiB ({@code 1024 << s_log_block_size}; with 1 KiB blocks block 0 is the boot
 * block and groups start at block 1); 32- and 64-byte-or-larger descriptors (INCOMPAT_64BIT,
 * {@code s_desc_size}); a last group shorter than the others (its padding bits are ignored).
 *
 * <h2>Why dropping free blocks is safe</h2>
 * The file system never reads a block its bitmap marks free: file data, directories, extent trees,
 * the journal, inode tables and bitmaps are all in blocks marked used. So after an export returns
 * zeros in the free blocks, every file reads the same, and {@code e2fsck -fn} stays clean (it does
 * not look inside free blocks either). Only the bytes of deleted data change: that is the point.
 *
 * <h2>Invariants: never a wrong hole</h2>
 * A wrong hole destroys data, a missed one only costs space; so every doubt means "store every
 * block of this file system" and a warning naming the partition offset and the value:
 * <ul>
 *   <li>every superblock number is checked against the partition (magic, revision, block size
 *       log, blocks count within the partition, blocks per group 256 to 8 * block size,
 *       {@code s_inodes_count == groups * s_inodes_per_group}, descriptor size, first meta group);
 *       unknown incompatible or read-only-compatible features, bigalloc (cluster bitmaps),
 *       snapshots and external journal devices are refused (compatible features are safe by
 *       definition: a kernel that does not know them still writes the file system, allocating
 *       through the bitmaps, so whatever they use is marked used); more than {@value #MAX_GROUPS}
 *       groups are refused too (memory);
 *   <li>with metadata_csum the superblock, every group descriptor and every block bitmap must
 *       match its crc32c; with uninit_bg (gdt_csum) every descriptor its crc16;
 *   <li>every bitmap, inode bitmap and inode table lies inside the file system (inside its own
 *       group without flex_bg); a bitmap's clear bits must number exactly its descriptor's free
 *       blocks count; and every block the metadata itself occupies (superblock, descriptor
 *       table, reserved descriptor blocks, each group's bitmaps and inode table) must be marked
 *       used, else the bitmaps do not describe this file system;
 *   <li>a group flagged BLOCK_UNINIT (under descriptor checksums, as the kernel reads it) has no
 *       bitmap on disk: {@link ExtUninitGroups} computes it as the kernel does (superblock backup,
 *       descriptor and reserved descriptor blocks, the bitmaps and inode tables placed in it), and
 *       its free blocks must number exactly its descriptor's free blocks count; when they do not,
 *       or when it is the last group (e2fsck calls that an error), that group is stored whole
 *       (one warning for all such groups, naming the first);
 *   <li>every group's superblock backup and descriptor blocks, where this reader computes them,
 *       must be marked used in the bitmaps read from disk: a check of that computation against
 *       what mkfs and the kernel wrote;
 *   <li>a file system that looks mounted or in use is not used at all: {@code s_state} without
 *       VALID_FS (mounted without a journal, or not unmounted cleanly) or with ERROR_FS, the
 *       needs_recovery flag (INCOMPAT_RECOVER: the journal holds transactions not yet written
 *       to their blocks, so the bitmaps may be stale), a last mount time after the last write
 *       time, or an MMP block that is not clean. Import still succeeds and is exact: it simply
 *       stores every block of that file system.
 * </ul>
 * At most {@value #MAX_RANGES} free ranges are kept per file system (16 bytes each); the rest of
 * a file system fragmented beyond that is stored (with a warning). Dropping a free range is
 * always safe.
 *
 * <h2>How it is used, and the cost</h2>
 * {@code cask import --fs-aware} wraps the disk in a {@link dev.cask.device.HoleMaskDevice} over
 * {@link #ofDisk}'s ranges: free blocks report as holes (never read) and read as zeros, and zero
 * blocks are never stored. Reading costs the superblock, the descriptor table and one block per
 * initialised group: at most 16 groups, 64 KiB of bitmaps for a 2 GiB file system with 4 KiB
 * blocks; uninitialised groups cost no reads.
 *
 * <p>Stateless; reads the device only. Thread-safe when the device is.
 */
public final class ExtFreeBlocks {
    static final int MAX_RANGES = 1 << 20;
    /** Descriptors are held in memory (about 100 bytes each): 2^20 groups is 128 TiB with 4 KiB blocks. */
    static final int MAX_GROUPS = 1 << 20;

    private static final int COMPAT_SPARSE_SUPER2 = 0x200;
    private static final int INCOMPAT_RECOVER = 0x4;
    private static final int INCOMPAT_JOURNAL_DEV = 0x8;
    private static final int INCOMPAT_META_BG = 0x10;
    private static final int INCOMPAT_64BIT = 0x80;
    private static final int INCOMPAT_MMP = 0x100;
    private static final int INCOMPAT_FLEX_BG = 0x200;
    private static final int INCOMPAT_CSUM_SEED = 0x2000;
    /** filetype, recover, journal_dev, meta_bg, extents, 64bit, mmp, flex_bg, ea_inode, dirdata, csum_seed, largedir, inline_data, encrypt, casefold. */
    private static final int KNOWN_INCOMPAT = 0x2 | 0x4 | 0x8 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x1000
            | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000;
    private static final int RO_COMPAT_SPARSE_SUPER = 0x1;
    private static final int RO_COMPAT_GDT_CSUM = 0x10;
    private static final int RO_COMPAT_HAS_SNAPSHOT = 0x80;
    private static final int RO_COMPAT_BIGALLOC = 0x200;
    private static final int RO_COMPAT_METADATA_CSUM = 0x400;
    /** sparse_super, large_file, btree_dir, huge_file, gdt_csum, dir_nlink, extra_isize, quota, metadata_csum, replica, readonly, project, shared_blocks, verity, orphan_present. */
    private static final int KNOWN_RO_COMPAT = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x100 | 0x400 | 0x800 | 0x1000
            | 0x2000 | 0x4000 | 0x8000 | 0x10000;
    private static final int STATE_VALID_FS = 0x1;
    private static final int STATE_ERROR_FS = 0x2;
    private static final int BG_BLOCK_UNINIT = 0x2;
    private static final int MMP_MAGIC = 0x004d4d50;
    private static final int MMP_SEQ_CLEAN = 0xff4d4d50;

    private ExtFreeBlocks() {}

    /** Why a file system's bitmaps are not used: the message names the value. */
    private static final class Unusable extends Exception {
        Unusable(String message) {
            super(message, null, false, false);
        }
    }

    /**
     * The free blocks, as byte ranges relative to the partition start, of the ext2/3/4 file system
     * in the {@code length} bytes at {@code offset} of {@code disk}. Empty when there is no ext
     * superblock there (silently) or when anything about it is doubtful (with a warning naming
     * {@code name}, the offset and the value). I/O errors of the disk propagate.
     */
    public static ByteRanges read(BlockDevice disk, long offset, long length, String name, Consumer<String> warnings) {
        if (length < 2048) return ByteRanges.EMPTY;
        try (SliceDevice part = new SliceDevice(disk, offset, length)) {
            byte[] sb = new byte[1024];
            part.read(1024, sb, 0, 1024);
            if (u16(sb, 0x38) != 0xef53) return ByteRanges.EMPTY;
            String where = name + ": ext2/3/4 file system at byte " + offset;
            try {
                return new Reader(part, sb, where, warnings).freeRanges();
            } catch (Unusable e) {
                warnings.accept(where + ": " + e.getMessage() + "; storing every block of it");
                return ByteRanges.EMPTY;
            } catch (IllegalArgumentException e) { // a read out of range: a check missed something; still never a hole
                warnings.accept(where + ": " + e.getMessage() + "; storing every block of it");
                return ByteRanges.EMPTY;
            }
        }
    }

    /**
     * The free blocks, as byte ranges of the disk, of every ext2/3/4 file system on it: in each
     * partition of its MBR or GPT, or the whole disk when it has none (or a broken one, which the
     * layout planner warns about).
     */
    public static ByteRanges ofDisk(BlockDevice disk, String name, Consumer<String> warnings) {
        List<PartitionTable.Partition> parts;
        try {
            parts = PartitionTable.read(disk);
        } catch (CaskException.InvalidInput e) {
            parts = List.of();
        }
        if (parts.isEmpty()) return read(disk, 0, disk.size(), name, warnings);
        ByteRanges.Builder all = new ByteRanges.Builder();
        for (PartitionTable.Partition p : parts) all.addAll(read(disk, p.offset(), p.length(), name, warnings).shifted(p.offset()));
        return all.build();
    }

    /** One file system: the superblock's numbers, checked, then the descriptors and bitmaps. */
    private static final class Reader {
        private final BlockDevice part;
        private final byte[] sb;
        private final String where;
        private final Consumer<String> warnings;
        private final int incompat;
        private final int roCompat;
        private final int compat;
        private final boolean metadataCsum;
        private final boolean gdtCsum;
        private final int csumSeed;
        private int blockSize;
        private long blocksCount;
        private long firstDataBlock;
        private long blocksPerGroup;
        private int groups;
        private int descSize;
        private long inodeTableBlocks;
        /** Some free ranges were dropped: more than {@link #MAX_RANGES}. */
        private boolean truncated;
        private ExtUninitGroups uninitGroups;

        Reader(BlockDevice part, byte[] sb, String where, Consumer<String> warnings) throws Unusable {
            this.part = part;
            this.sb = sb;
            this.where = where;
            this.warnings = warnings;
            long rev = u32(sb, 0x4c);
            if (rev > 1) throw new Unusable("revision level " + rev + " is unknown");
            compat = rev == 0 ? 0 : (int) u32(sb, 0x5c);
            incompat = rev == 0 ? 0 : (int) u32(sb, 0x60);
            roCompat = rev == 0 ? 0 : (int) u32(sb, 0x64);
            metadataCsum = (roCompat & RO_COMPAT_METADATA_CSUM) != 0;
            gdtCsum = !metadataCsum && (roCompat & RO_COMPAT_GDT_CSUM) != 0;
            if (metadataCsum) {
                if ((sb[0x175] & 0xff) != 1) throw new Unusable("checksum type " + (sb[0x175] & 0xff) + " is not crc32c");
                int want = (int) u32(sb, 0x3fc);
                int got = Crc.crc32c(~0, sb, 0, 0x3fc);
                if (got != want) throw new Unusable(String.format("superblock checksum 0x%08x does not match its bytes (0x%08x)", want, got));
            }
            csumSeed = (incompat & INCOMPAT_CSUM_SEED) != 0 ? (int) u32(sb, 0x270) : Crc.crc32c(~0, sb, 0x68, 16);
        }

        ByteRanges freeRanges() throws Unusable {
            checkFeatures();
            checkInUse();
            checkGeometry();
            byte[][] descs = readDescriptors();
            return bitmaps(descs);
        }

        private void checkFeatures() throws Unusable {
            if ((incompat & INCOMPAT_JOURNAL_DEV) != 0) throw new Unusable("it is an external journal device, not a file system");
            if ((incompat & ~KNOWN_INCOMPAT) != 0) throw new Unusable(String.format("unknown incompatible features 0x%x", incompat & ~KNOWN_INCOMPAT));
            if ((roCompat & ~KNOWN_RO_COMPAT) != 0) throw new Unusable(String.format("unknown read-only features 0x%x", roCompat & ~KNOWN_RO_COMPAT));
            if ((roCompat & RO_COMPAT_BIGALLOC) != 0) throw new Unusable("bigalloc (bitmaps of clusters) is not supported");
            if ((roCompat & RO_COMPAT_HAS_SNAPSHOT) != 0) throw new Unusable("snapshots (exclude bitmaps) are not supported");
        }

        private void checkInUse() throws Unusable {
            String mounted = "looks mounted or in use (";
            String then = ")";
            int state = u16(sb, 0x3a);
            if ((state & STATE_VALID_FS) == 0) {
                throw new Unusable(mounted + String.format("state 0x%x lacks VALID_FS: mounted, or not cleanly unmounted", state) + then);
            }
            if ((state & STATE_ERROR_FS) != 0) throw new Unusable(String.format("state 0x%x has errors recorded; run e2fsck first", state));
            if ((incompat & INCOMPAT_RECOVER) != 0) {
                throw new Unusable(mounted + "needs_recovery: its journal holds transactions not yet replayed, so the bitmaps may be stale" + then);
            }
            long mtime = u32(sb, 0x2c) | (long) (sb[0x275] & 0xff) << 32;
            long wtime = u32(sb, 0x30) | (long) (sb[0x274] & 0xff) << 32;
            if (mtime > wtime) throw new Unusable(mounted + "last mount time " + mtime + " is after last write time " + wtime + then);
        }

        private void checkGeometry() throws Unusable {
            long log = u32(sb, 0x18);
            if (log > 6) throw new Unusable("block size log " + log + " is out of range (0 to 6)");
            blockSize = 1024 << log;
            long clusterLog = u32(sb, 0x1c);
            if (clusterLog != log) throw new Unusable("cluster size log " + clusterLog + " differs from block size log " + log + " without bigalloc");
            long partBlocks = part.size() / blockSize;
            blocksCount = u32(sb, 0x4) | ((incompat & INCOMPAT_64BIT) != 0 ? u32(sb, 0x150) << 32 : 0);
            if (blocksCount > partBlocks) {
                throw new Unusable("blocks count " + blocksCount + " of " + blockSize + " bytes is more than the partition holds (" + part.size() + " bytes)");
            }
            firstDataBlock = u32(sb, 0x14);
            if (firstDataBlock != (blockSize == 1024 ? 1 : 0)) throw new Unusable("first data block " + firstDataBlock + " is wrong for " + blockSize + "-byte blocks");
            if (blocksCount <= firstDataBlock + 1) throw new Unusable("blocks count " + blocksCount + " is too small");
            blocksPerGroup = u32(sb, 0x20);
            if (blocksPerGroup < 256 || blocksPerGroup > 8L * blockSize || blocksPerGroup % 8 != 0) {
                throw new Unusable("blocks per group " + blocksPerGroup + " is out of range (256 to " + 8L * blockSize + ", a multiple of 8)");
            }
            long clustersPerGroup = u32(sb, 0x24);
            if (clustersPerGroup != blocksPerGroup) throw new Unusable("clusters per group " + clustersPerGroup + " differs from blocks per group " + blocksPerGroup);
            long g = (blocksCount - firstDataBlock + blocksPerGroup - 1) / blocksPerGroup;
            if (g > MAX_GROUPS) throw new Unusable("group count " + g + " is more than the " + MAX_GROUPS + " fs-aware import reads");
            groups = (int) g;
            long inodesPerGroup = u32(sb, 0x28);
            long inodesCount = u32(sb, 0x0);
            if (inodesPerGroup == 0 || inodesPerGroup > 8L * blockSize || inodesPerGroup * groups != inodesCount) {
                throw new Unusable("inodes count " + inodesCount + " is not " + groups + " groups of " + inodesPerGroup + " inodes");
            }
            int inodeSize = u32(sb, 0x4c) == 0 ? 128 : u16(sb, 0x58);
            if (inodeSize < 128 || inodeSize > blockSize || Integer.bitCount(inodeSize) != 1) throw new Unusable("inode size " + inodeSize + " is out of range");
            inodeTableBlocks = (inodesPerGroup * inodeSize + blockSize - 1) / blockSize;
            if ((incompat & INCOMPAT_64BIT) != 0) {
                descSize = u16(sb, 0xfe);
                if (descSize < 64 || descSize > 1024 || Integer.bitCount(descSize) != 1) throw new Unusable("group descriptor size " + descSize + " is out of range (64 to 1024, a power of two)");
            } else {
                descSize = 32;
            }
            if ((incompat & INCOMPAT_MMP) != 0) checkMmp();
        }

        private void checkMmp() throws Unusable {
            long block = ByteBuffer.wrap(sb).order(ByteOrder.LITTLE_ENDIAN).getLong(0x168);
            if (block < firstDataBlock || block >= blocksCount) throw new Unusable("MMP block " + block + " is outside the file system");
            byte[] mmp = new byte[8];
            part.read(block * blockSize, mmp, 0, 8);
            int magic = (int) u32(mmp, 0);
            int seq = (int) u32(mmp, 4);
            if (magic != MMP_MAGIC) throw new Unusable(String.format("MMP block %d has magic 0x%08x", block, magic));
            if (seq != MMP_SEQ_CLEAN) {
                throw new Unusable(String.format("looks mounted or in use (MMP sequence 0x%08x is not clean)", seq));
            }
        }

        private long groupFirst(long group) {
            return firstDataBlock + group * blocksPerGroup;
        }

        private long groupBlocks(int group) {
            return Math.min(blocksPerGroup, blocksCount - groupFirst(group));
        }

        /** The block of descriptor block {@code nr}, as the kernel's descriptor_loc computes it. */
        private long descriptorBlock(long nr, long firstMetaBg) {
            if ((incompat & INCOMPAT_META_BG) == 0 || nr < firstMetaBg) return firstDataBlock + nr + 1;
            long perBlock = blockSize / descSize;
            long group = perBlock * nr;
            long hasSuper = hasSuper(group) ? 1 : 0;
            return hasSuper + groupFirst(group);
        }

        private boolean hasSuper(long group) {
            if (group == 0) return true;
            if ((compat & COMPAT_SPARSE_SUPER2) != 0) return group == u32(sb, 0x24c) || group == u32(sb, 0x250);
            if (group <= 1 || (roCompat & RO_COMPAT_SPARSE_SUPER) == 0) return true;
            if ((group & 1) == 0) return false;
            return isPower(group, 3) || isPower(group, 5) || isPower(group, 7);
        }

        private static boolean isPower(long n, int base) {
            long p = base;
            while (p < n) p *= base;
            return p == n;
        }

        /** Every group's descriptor, checksums verified, locations checked. */
        private byte[][] readDescriptors() throws Unusable {
            int perBlock = blockSize / descSize;
            long descBlocks = ((long) groups + perBlock - 1) / perBlock;
            long firstMetaBg = u32(sb, 0x104);
            if ((incompat & INCOMPAT_META_BG) != 0 && firstMetaBg > descBlocks) {
                throw new Unusable("first meta group " + firstMetaBg + " is past the " + descBlocks + " descriptor blocks");
            }
            byte[][] descs = new byte[groups][];
            byte[] block = new byte[blockSize];
            for (long nr = 0; nr < descBlocks; nr++) {
                long at = descriptorBlock(nr, firstMetaBg);
                if (at >= blocksCount) throw new Unusable("descriptor block " + nr + " at block " + at + " is past the end (" + blocksCount + " blocks)");
                part.read(at * blockSize, block, 0, blockSize);
                for (int i = 0; i < perBlock && nr * perBlock + i < groups; i++) {
                    int group = (int) (nr * perBlock + i);
                    byte[] d = java.util.Arrays.copyOfRange(block, i * descSize, (i + 1) * descSize);
                    checkDescriptor(group, d);
                    descs[group] = d;
                }
            }
            return descs;
        }

        private void checkDescriptor(int group, byte[] d) throws Unusable {
            int want = u16(d, 0x1e);
            byte[] le = {(byte) group, (byte) (group >>> 8), (byte) (group >>> 16), (byte) (group >>> 24)};
            if (metadataCsum) {
                int c = Crc.crc32c(csumSeed, le, 0, 4);
                c = Crc.crc32c(c, d, 0, 0x1e);
                c = Crc.crc32c(c, new byte[2], 0, 2);
                c = Crc.crc32c(c, d, 0x20, descSize - 0x20);
                if ((c & 0xffff) != want) throw new Unusable(String.format("group %d descriptor checksum 0x%04x does not match its bytes (0x%04x)", group, want, c & 0xffff));
            } else if (gdtCsum) {
                int c = Crc.crc16(0xffff, sb, 0x68, 16);
                c = Crc.crc16(c, le, 0, 4);
                c = Crc.crc16(c, d, 0, 0x1e);
                c = Crc.crc16(c, d, 0x20, descSize - 0x20);
                if (c != want) throw new Unusable(String.format("group %d descriptor checksum 0x%04x does not match its bytes (0x%04x, crc16)", group, want, c));
            }
            boolean flex = (incompat & INCOMPAT_FLEX_BG) != 0;
            long lo = flex ? firstDataBlock : groupFirst(group);
            long hi = flex ? blocksCount : groupFirst(group) + groupBlocks(group);
            checkIn(group, "block bitmap", blockBitmap(d), 1, lo, hi);
            checkIn(group, "inode bitmap", loHi32(d, 0x4, 0x24), 1, lo, hi);
            checkIn(group, "inode table", loHi32(d, 0x8, 0x28), inodeTableBlocks, lo, hi);
            long free = freeCount(d);
            if (free > groupBlocks(group)) throw new Unusable("group " + group + " has " + free + " free blocks of " + groupBlocks(group));
        }

        private void checkIn(int group, String what, long block, long count, long lo, long hi) throws Unusable {
            if (block < lo || block > hi - count) {
                throw new Unusable("group " + group + " " + what + " at block " + block + " (" + count + " blocks) is outside blocks " + lo + " to " + (hi - 1));
            }
        }

        private long blockBitmap(byte[] d) {
            return loHi32(d, 0x0, 0x20);
        }

        private long loHi32(byte[] d, int lo, int hi) {
            return u32(d, lo) | (descSize >= 64 ? u32(d, hi) << 32 : 0);
        }

        private long freeCount(byte[] d) {
            return u16(d, 0xc) | (descSize >= 64 ? (long) u16(d, 0x2c) << 16 : 0);
        }

        /**
         * Reads each initialised group's bitmap, or computes an uninitialised one's, checks it, and
         * collects the free ranges in ascending order.
         */
        private ByteRanges bitmaps(byte[][] descs) throws Unusable {
            ByteRanges.Builder free = new ByteRanges.Builder();
            byte[] bitmap = new byte[blockSize];
            int storedWhole = 0;
            String firstStoredWhole = null;
            for (int g = 0; g < groups; g++) {
                byte[] d = descs[g];
                long n = groupBlocks(g);
                long want = freeCount(d);
                // the flag counts only under descriptor checksums, as in the kernel; without them the bitmap on disk is the truth
                if ((u16(d, 0x12) & BG_BLOCK_UNINIT) != 0 && (metadataCsum || gdtCsum)) {
                    ExtUninitGroups uninit = uninitGroups(descs);
                    boolean last = g == groups - 1; // e2fsck calls that an error ("last group block bitmap uninitialized")
                    long computed = last ? -2 : uninit.fill(g, n, bitmap);
                    if (computed != want) {
                        if (storedWhole++ == 0) {
                            firstStoredWhole = last ? "group " + g + " is the last group, which e2fsck never leaves uninitialised"
                                    : computed < 0
                                    ? "group " + g + " (" + n + " blocks) is too short for its " + uninit.baseMetaBlocks(g) + " superblock and descriptor blocks"
                                    : "group " + g + ": computed bitmap marks " + computed + " blocks free, its descriptor says " + want;
                        }
                        continue; // store the group whole
                    }
                    addRuns(free, bitmap, groupFirst(g), n);
                    continue;
                }
                long at = blockBitmap(d);
                part.read(at * blockSize, bitmap, 0, blockSize);
                if (metadataCsum) {
                    int c = Crc.crc32c(csumSeed, bitmap, 0, (int) (blocksPerGroup / 8));
                    int wantLo = u16(d, 0x18);
                    boolean hi = descSize >= 0x3a;
                    int got = hi ? c : c & 0xffff;
                    int wantCsum = hi ? wantLo | u16(d, 0x38) << 16 : wantLo;
                    if (got != wantCsum) throw new Unusable(String.format("group %d block bitmap checksum 0x%x does not match its bytes (0x%x)", g, wantCsum, got));
                }
                long zeros = addRuns(free, bitmap, groupFirst(g), n);
                if (zeros != want) throw new Unusable("group " + g + " block bitmap at block " + at + " marks " + zeros + " blocks free, its descriptor says " + want);
            }
            ByteRanges out = free.build();
            checkMetadataUsed(descs, out);
            if (storedWhole > 0) {
                warnings.accept(where + ": " + storedWhole + " BLOCK_UNINIT group" + (storedWhole == 1 ? "" : "s")
                        + " stored whole, their computed bitmaps do not hold together (" + firstStoredWhole + ")");
            }
            if (truncated) {
                warnings.accept(where + ": more than " + MAX_RANGES + " free ranges; the free blocks after the last of them are stored");
            }
            return out;
        }

        /** Made once per file system, when first needed. */
        private ExtUninitGroups uninitGroups(byte[][] descs) {
            if (uninitGroups != null) return uninitGroups;
            long[] blockBitmaps = new long[groups];
            long[] inodeBitmaps = new long[groups];
            long[] inodeTables = new long[groups];
            for (int g = 0; g < groups; g++) {
                blockBitmaps[g] = blockBitmap(descs[g]);
                inodeBitmaps[g] = loHi32(descs[g], 0x4, 0x24);
                inodeTables[g] = loHi32(descs[g], 0x8, 0x28);
            }
            long perBlock = blockSize / descSize;
            return uninitGroups = new ExtUninitGroups(firstDataBlock, blocksPerGroup, this::hasSuper, (incompat & INCOMPAT_META_BG) != 0, perBlock,
                    (groups + perBlock - 1) / perBlock, u32(sb, 0x104), u16(sb, 0xce), blockBitmaps, inodeBitmaps, inodeTables, inodeTableBlocks);
        }

        /**
         * Adds the runs of clear bits of the {@code n}-block bitmap of the group starting at block
         * {@code first} (bit set = used), and returns how many bits are clear.
         */
        private long addRuns(ByteRanges.Builder free, byte[] bitmap, long first, long n) {
            long zeros = 0;
            long runStart = -1;
            for (int i = 0; i < n; ) {
                int whole = (i & 7) == 0 && i + 8 <= n ? bitmap[i >>> 3] & 0xff : -1;
                if (whole == 0 || whole == 0xff) { // eight blocks alike: the common case
                    if (whole == 0) {
                        zeros += 8;
                        if (runStart < 0) runStart = i;
                    } else if (runStart >= 0) {
                        truncated |= !addRun(free, first + runStart, first + i, truncated);
                        runStart = -1;
                    }
                    i += 8;
                    continue;
                }
                boolean used = (bitmap[i >>> 3] >>> (i & 7) & 1) != 0;
                if (!used) {
                    zeros++;
                    if (runStart < 0) runStart = i;
                } else if (runStart >= 0) {
                    truncated |= !addRun(free, first + runStart, first + i, truncated);
                    runStart = -1;
                }
                i++;
            }
            if (runStart >= 0) truncated |= !addRun(free, first + runStart, first + n, truncated);
            return zeros;
        }

        /** Adds a run of free blocks unless the range budget is spent; false when it was dropped. */
        private boolean addRun(ByteRanges.Builder free, long fromBlock, long toBlock, boolean truncated) {
            if (truncated || free.count() >= MAX_RANGES) return false;
            free.add(fromBlock * blockSize, toBlock * blockSize);
            return true;
        }

        /** The blocks the metadata occupies must all be marked used: else the bitmaps are not this file system's. */
        private void checkMetadataUsed(byte[][] descs, ByteRanges free) throws Unusable {
            if (free.isEmpty()) return;
            int perBlock = blockSize / descSize;
            long descBlocks = ((long) groups + perBlock - 1) / perBlock;
            long firstMetaBg = u32(sb, 0x104);
            requireUsed(free, "the superblock", firstDataBlock, 1);
            for (long nr = 0; nr < descBlocks; nr++) requireUsed(free, "descriptor block " + nr, descriptorBlock(nr, firstMetaBg), 1);
            if ((incompat & INCOMPAT_META_BG) == 0) {
                requireUsed(free, "the reserved descriptor blocks", firstDataBlock + 1 + descBlocks, u16(sb, 0xce));
            }
            // the backups: a check of where this reader (and ExtUninitGroups) thinks they are against the bitmaps on disk
            ExtUninitGroups layout = uninitGroups(descs);
            boolean metaBg = (incompat & INCOMPAT_META_BG) != 0;
            for (int g = 1; g < groups; g++) {
                long backup = layout.superBlocks(g) + layout.descriptorBlocks(g) + (metaBg ? 0 : layout.reservedBlocks(g));
                requireUsed(free, "group " + g + " superblock backup and descriptor blocks", groupFirst(g), Math.min(backup, groupBlocks(g)));
            }
            for (int g = 0; g < groups; g++) {
                byte[] d = descs[g];
                requireUsed(free, "group " + g + " block bitmap", blockBitmap(d), 1);
                requireUsed(free, "group " + g + " inode bitmap", loHi32(d, 0x4, 0x24), 1);
                requireUsed(free, "group " + g + " inode table", loHi32(d, 0x8, 0x28), inodeTableBlocks);
            }
        }

        private void requireUsed(ByteRanges free, String what, long block, long count) throws Unusable {
            if (count == 0) return;
            long s = block * blockSize;
            long e = (block + count) * blockSize;
            int i = free.firstEndingAfter(s);
            if (i < free.count() && free.start(i) < e) {
                throw new Unusable(what + " (blocks " + block + " to " + (block + count - 1) + ") is marked free in the bitmaps");
            }
        }
    }

    static int u16(byte[] b, int off) {
        return (b[off] & 0xff) | (b[off + 1] & 0xff) << 8;
    }

    static long u32(byte[] b, int off) {
        return (b[off] & 0xffL) | (b[off + 1] & 0xffL) << 8 | (b[off + 2] & 0xffL) << 16 | (b[off + 3] & 0xffL) << 24;
    }

    /** The two checksums ext4 uses, as e2fsprogs computes them: no final inversion, any seed. */
    static final class Crc {
        private static final int[] CRC32C = new int[256];
        private static final int[] CRC16 = new int[256];

        static {
            for (int n = 0; n < 256; n++) {
                int c = n;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
                CRC32C[n] = c;
                int d = n;
                for (int k = 0; k < 8; k++) d = (d & 1) != 0 ? (d >>> 1) ^ 0xa001 : d >>> 1;
                CRC16[n] = d;
            }
        }

        private Crc() {}

        /** ext2fs_crc32c_le / the kernel's crc32c_le: reflected Castagnoli, seed in, no final xor. */
        static int crc32c(int crc, byte[] b, int off, int len) {
            for (int i = off; i < off + len; i++) crc = CRC32C[(crc ^ b[i]) & 0xff] ^ (crc >>> 8);
            return crc;
        }

        /** ext2fs_crc16: reflected 0x8005 (ANSI), seed in, no final xor. */
        static int crc16(int crc, byte[] b, int off, int len) {
            for (int i = off; i < off + len; i++) crc = (CRC16[(crc ^ b[i]) & 0xff] ^ (crc >>> 8)) & 0xffff;
            return crc;
        }
    }
}
