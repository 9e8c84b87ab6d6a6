package dev.cask.tree;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

/**
 * Names one Merkle tree: the disk (or extent) size in bytes, the data block size, the depth and
 * the top chunk id.
 *
 * <p>Shape: data chunks of {@code blockSize} bytes at the leaves (a short last block is padded
 * with zeros); above them pointer chunks of up to {@link #FANOUT} ids (32 bytes each; trailing
 * zero ids are trimmed, so a pointer chunk is 32 to 4096 bytes). Depth 0 means the top is the
 * only data chunk; depth d covers {@code blockSize * 128^d} bytes. A zero id means a hole: a
 * zero block, or a whole zero subtree, neither of which is stored. An empty disk has top ZERO.
 *
 * <p>Sizing: a 2 TiB disk at 4 KiB blocks has 2^29 blocks, so depth 5 (128^5 = 2^35 blocks);
 * 1 GiB of data at 4 KiB needs 262,144 leaf ids, 2,048 pointer chunks, 8 MiB of pointers.
 */
public record Root(long size, int blockSize, int depth, ChunkId top) {
    public static final int FANOUT = 128;
    public static final int FANOUT_BITS = 7;
    public static final int MIN_BLOCK = 4096;
    public static final int MAX_BLOCK = 1 << 20;
    /** The largest disk a tree may describe: 2^60 bytes (an exabyte); real limits are far below. */
    public static final long MAX_SIZE = 1L << 60;

    public Root {
        checkBlockSize(blockSize);
        if (size < 0 || size > MAX_SIZE) throw new CaskException.InvalidInput("disk size " + size + " out of range (0 to 2^60)");
        if (depth != depthFor(size, blockSize)) {
            throw new CaskException.Corrupt("tree root: depth " + depth + " does not fit size " + size + " at block size " + blockSize);
        }
    }

    /** Throws unless {@code blockSize} is a power of two from 4 KiB to 1 MiB. */
    public static void checkBlockSize(int blockSize) {
        if (blockSize < MIN_BLOCK || blockSize > MAX_BLOCK || Integer.bitCount(blockSize) != 1) {
            throw new CaskException.InvalidInput("block size " + blockSize + ": must be a power of two from 4K to 1M");
        }
    }

    /** The smallest depth whose tree covers {@code size} bytes. */
    public static int depthFor(long size, int blockSize) {
        long blocks = blocks(size, blockSize);
        int depth = 0;
        long cap = 1;
        while (cap < blocks) {
            cap <<= FANOUT_BITS;
            depth++;
        }
        return depth;
    }

    public static long blocks(long size, int blockSize) {
        return (size + blockSize - 1) / blockSize;
    }

    public long blockCount() {
        return blocks(size, blockSize);
    }

    /** An all-zero disk of the given size. */
    public static Root empty(long size, int blockSize) {
        return new Root(size, blockSize, depthFor(size, blockSize), ChunkId.ZERO);
    }
}
