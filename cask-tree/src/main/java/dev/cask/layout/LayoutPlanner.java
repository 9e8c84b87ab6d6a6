package dev.cask.layout;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Decides how to cut a disk into extents before import: the partition table and the gaps
 * between partitions each become an extent, and every partition is cut from its own start, with
 * the block size of its file system when recognised (ext2/3/4: {@code 1024 << s_log_block_size},
 * if 4 KiB to 64 KiB), else 4 KiB. So a file system at the legacy sector 63 stores the same
 * blocks as the same file system at sector 2048, and they deduplicate.
 *
 * <p>A disk without a partition table, or with one that does not hold together, is one extent
 * (the latter with a warning: never a wrong layout). A forced block size applies to every extent.
 */
public final class LayoutPlanner {
    /** One extent to import: {@code length} bytes at {@code offset}, cut into {@code blockSize} blocks. */
    public record ExtentPlan(long offset, long length, int blockSize, String what) {}

    public static final int DEFAULT_BLOCK = 4096;

    private LayoutPlanner() {}

    /** The whole disk as one extent. */
    public static List<ExtentPlan> whole(BlockDevice disk, int blockSize) {
        return List.of(new ExtentPlan(0, disk.size(), blockSize, "whole disk"));
    }

    /**
     * Plans the extents of {@code disk}. {@code forcedBlockSize} (0 for automatic) overrides the
     * per-file-system choice. {@code name} names the disk in warnings.
     */
    public static List<ExtentPlan> plan(BlockDevice disk, int forcedBlockSize, String name, Consumer<String> warnings) {
        int fallback = forcedBlockSize > 0 ? forcedBlockSize : DEFAULT_BLOCK;
        List<PartitionTable.Partition> parts;
        try {
            parts = PartitionTable.read(disk);
        } catch (CaskException.InvalidInput e) {
            warnings.accept(name + ": " + e.getMessage() + "; storing the whole disk as one extent");
            return whole(disk, fallback);
        }
        if (parts.isEmpty()) return whole(disk, fallback);
        List<ExtentPlan> out = new ArrayList<>();
        long at = 0;
        for (PartitionTable.Partition p : parts) {
            if (p.offset() > at) out.add(new ExtentPlan(at, p.offset() - at, fallback, at == 0 ? "partition table" : "gap"));
            int bs = forcedBlockSize > 0 ? forcedBlockSize : fileSystemBlockSize(disk, p, name, warnings);
            out.add(new ExtentPlan(p.offset(), p.length(), bs, "partition (" + p.kind() + ")"));
            at = p.end();
        }
        if (at < disk.size()) out.add(new ExtentPlan(at, disk.size() - at, fallback, "gap"));
        return out;
    }

    /** The ext2/3/4 block size of the partition when it is 4 KiB to 64 KiB, else 4 KiB. */
    static int fileSystemBlockSize(BlockDevice disk, PartitionTable.Partition p, String name, Consumer<String> warnings) {
        if (p.length() < 2048) return DEFAULT_BLOCK;
        byte[] sb = new byte[1024];
        disk.read(p.offset() + 1024, sb, 0, 1024);
        ByteBuffer b = ByteBuffer.wrap(sb).order(ByteOrder.LITTLE_ENDIAN);
        if ((b.getShort(56) & 0xffff) != 0xef53) return DEFAULT_BLOCK;
        int log = b.getInt(24);
        if (log < 0 || log > 6) {
            warnings.accept(name + ": ext superblock of the partition at byte " + p.offset() + " has block size log " + log
                    + " (corrupt?); using 4 KiB blocks there");
            return DEFAULT_BLOCK;
        }
        int bs = 1024 << log;
        return bs < DEFAULT_BLOCK ? DEFAULT_BLOCK : bs;
    }
}
