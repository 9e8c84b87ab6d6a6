package dev.cask.layout;

import java.util.Arrays;
import java.util.function.LongPredicate;

/**
 * The block bitmap of an ext4 group flagged BLOCK_UNINIT, computed as the kernel computes it
 * (fs/ext4/balloc.c, ext4_init_block_bitmap), because such a group has no bitmap on disk: mkfs and
 * resize2fs leave every group nothing has allocated in yet uninitialised, and the kernel writes its
 * bitmap only when it first allocates there. A fresh or recycled ext4 volume is mostly such groups.
 *
 * <h2>What is used in an uninitialised group</h2>
 * Nothing but metadata, in this order from the group's first block:
 * <ol>
 *   <li>a superblock backup, when the group has one: group 0 always; with sparse_super2 only the
 *       (at most two) groups named in {@code s_backup_bgs}; with sparse_super groups 1 and the
 *       powers of 3, 5 and 7; without either, every group;
 *   <li>descriptor blocks: without meta_bg (and, with it, in the groups before
 *       {@code s_first_meta_bg} meta groups), a copy of the whole table ({@code s_gdb_count}
 *       blocks; with meta_bg {@code s_first_meta_bg} of them) in each group with a superblock
 *       backup; in a meta group (one descriptor block of groups) one block in its first, second
 *       and last group, after the superblock backup when there is one;
 *   <li>the reserved descriptor blocks ({@code s_reserved_gdt_blocks}, for online resize) after
 *       a descriptor table copy, in the same groups as the copy (the kernel counts them with
 *       meta_bg too, in the groups before the meta groups; e2fsprogs does not: the kernel's is
 *       the larger count, so it is used);
 *   <li>block bitmaps, inode bitmaps and inode tables, of this group or, with flex_bg, of any
 *       group, wherever the descriptors put them. The kernel marks only the group's own (mkfs,
 *       resize2fs and the kernel clear BLOCK_UNINIT from a group they put other groups' tables
 *       in); marking every group's is never less. An inode table is used whatever its group's
 *       INODE_UNINIT and ITABLE_ZEROED flags say: those are about the inodes inside it.
 * </ol>
 * Everything else in the group is free. In the last group, blocks past the end of the file
 * system are not blocks: a shorter group simply has fewer bits.
 *
 * <h2>Why to trust it, and when not to</h2>
 * A BLOCK_UNINIT group's descriptor still holds its free blocks count (e2fsck keeps it right), so
 * {@link ExtFreeBlocks} counts the free blocks of each computed bitmap against it: a difference
 * (metadata this class does not know of, a layout it gets wrong, a damaged descriptor) means the
 * group is stored whole, never a wrong hole. The flag itself counts only with group descriptor
 * checksums (uninit_bg or metadata_csum), as in the kernel and e2fsprogs, which then also cover it.
 *
 * <h2>Cost</h2>
 * The block numbers of every group's bitmaps and inode table, sorted: 24 bytes per group (24 MiB
 * at the {@link ExtFreeBlocks#MAX_GROUPS} limit), and a binary search per computed group.
 *
 * <p>Immutable after construction; thread-safe.
 */
final class ExtUninitGroups {
    private final long firstDataBlock;
    private final long blocksPerGroup;
    private final LongPredicate hasSuper;
    private final boolean metaBg;
    private final long descPerBlock;
    /** The first group of the first meta group: {@code s_first_meta_bg * descPerBlock}. */
    private final long firstMetaBgGroup;
    /** Descriptor blocks in a copy of the table, before the meta groups ({@code s_first_meta_bg} with meta_bg). */
    private final long tableCopyBlocks;
    private final long reservedGdtBlocks;
    /** Every group's block bitmap and inode bitmap block, sorted. */
    private final long[] bitmapBlocks;
    /** Every group's first inode table block, sorted. */
    private final long[] inodeTables;
    private final long inodeTableBlocks;

    /**
     * @param descBlocks        descriptor blocks of the whole table ({@code s_gdb_count})
     * @param firstMetaBg       {@code s_first_meta_bg} (ignored without meta_bg)
     * @param blockBitmaps      every group's block bitmap block; likewise the inode bitmaps and tables
     */
    ExtUninitGroups(long firstDataBlock, long blocksPerGroup, LongPredicate hasSuper, boolean metaBg, long descPerBlock,
                    long descBlocks, long firstMetaBg, long reservedGdtBlocks, long[] blockBitmaps, long[] inodeBitmaps,
                    long[] inodeTables, long inodeTableBlocks) {
        this.firstDataBlock = firstDataBlock;
        this.blocksPerGroup = blocksPerGroup;
        this.hasSuper = hasSuper;
        this.metaBg = metaBg;
        this.descPerBlock = descPerBlock;
        this.firstMetaBgGroup = metaBg ? firstMetaBg * descPerBlock : Long.MAX_VALUE;
        this.tableCopyBlocks = metaBg ? firstMetaBg : descBlocks;
        this.reservedGdtBlocks = reservedGdtBlocks;
        this.bitmapBlocks = new long[blockBitmaps.length + inodeBitmaps.length];
        System.arraycopy(blockBitmaps, 0, bitmapBlocks, 0, blockBitmaps.length);
        System.arraycopy(inodeBitmaps, 0, bitmapBlocks, blockBitmaps.length, inodeBitmaps.length);
        Arrays.sort(bitmapBlocks);
        this.inodeTables = inodeTables.clone();
        Arrays.sort(this.inodeTables);
        this.inodeTableBlocks = inodeTableBlocks;
    }

    /** 1 when {@code group} holds a superblock (group 0's is the primary), else 0. */
    long superBlocks(long group) {
        return hasSuper.test(group) ? 1 : 0;
    }

    /** Descriptor blocks at the start of {@code group}, after its superblock backup (as ext4_bg_num_gdb). */
    long descriptorBlocks(long group) {
        if (!metaBg || group < firstMetaBgGroup) return hasSuper.test(group) ? tableCopyBlocks : 0;
        long inMetaGroup = group % descPerBlock;
        return inMetaGroup == 0 || inMetaGroup == 1 || inMetaGroup == descPerBlock - 1 ? 1 : 0;
    }

    /** Reserved descriptor blocks after the descriptor blocks of {@code group}, as the kernel counts them. */
    long reservedBlocks(long group) {
        return (!metaBg || group < firstMetaBgGroup) && hasSuper.test(group) ? reservedGdtBlocks : 0;
    }

    /** Superblock backup, descriptor blocks and reserved descriptor blocks: the first blocks of {@code group}. */
    long baseMetaBlocks(long group) {
        return superBlocks(group) + descriptorBlocks(group) + reservedBlocks(group);
    }

    /**
     * Fills {@code bitmap} (bit {@code i} = block {@code i} of the group, set = used) with the
     * bitmap of uninitialised group {@code group} of {@code groupBlocks} blocks, and returns how
     * many of those blocks it marks free; -1 when its superblock backup and descriptor blocks
     * alone do not fit in the group (then the bitmap is not filled).
     */
    long fill(long group, long groupBlocks, byte[] bitmap) {
        long base = baseMetaBlocks(group);
        if (base > groupBlocks) return -1;
        Arrays.fill(bitmap, (byte) 0);
        setRange(bitmap, 0, base);
        long first = firstDataBlock + group * blocksPerGroup;
        long end = first + groupBlocks;
        for (int i = lowerBound(bitmapBlocks, first); i < bitmapBlocks.length && bitmapBlocks[i] < end; i++) {
            setRange(bitmap, bitmapBlocks[i] - first, bitmapBlocks[i] - first + 1);
        }
        for (int i = lowerBound(inodeTables, first - inodeTableBlocks + 1); i < inodeTables.length && inodeTables[i] < end; i++) {
            long from = Math.max(inodeTables[i], first);
            long to = Math.min(inodeTables[i] + inodeTableBlocks, end);
            if (from < to) setRange(bitmap, from - first, to - first);
        }
        long used = 0;
        int whole = (int) (groupBlocks >>> 3);
        for (int i = 0; i < whole; i++) used += Integer.bitCount(bitmap[i] & 0xff);
        for (long b = (long) whole << 3; b < groupBlocks; b++) used += bitmap[(int) (b >>> 3)] >>> (b & 7) & 1;
        return groupBlocks - used;
    }

    private static void setRange(byte[] bitmap, long from, long to) {
        for (long b = from; b < to; b++) bitmap[(int) (b >>> 3)] |= (byte) (1 << (b & 7));
    }

    /** The first index whose value is at least {@code key}. */
    private static int lowerBound(long[] sorted, long key) {
        int lo = 0;
        int hi = sorted.length;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid] < key) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
}
