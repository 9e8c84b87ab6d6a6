/**
 * Partition- and file-system-aware cutting of disks into extents: partition tables (MBR, GPT)
 * and file system superblocks, read from a {@link dev.cask.device.BlockDevice}. Depends on
 * {@code device} and {@code common} only.
 */
package dev.cask.layout;
