/**
 * Partition- and file-system-aware cutting of disks into extents: partition tables (MBR, GPT)
 * and file system superblocks, read from a {@link dev.cask.device.BlockDevice}; and the free
 * blocks of ext2/3/4 file systems ({@link dev.cask.layout.ExtFreeBlocks}) that fs-aware import
 * stores as holes. Depends on {@code device} and {@code common} only.
 */
package dev.cask.layout;
