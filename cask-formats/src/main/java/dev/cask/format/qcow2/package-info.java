/**
 * The qcow2 image format (QEMU's {@code docs/interop/qcow2.txt}), versions 2 and 3, as a
 * read-only {@link dev.cask.device.BlockDevice} ({@link dev.cask.format.qcow2.Qcow2Device}:
 * any cluster size, zlib and zstd compressed clusters, zero clusters, extended L2 entries,
 * backing chains of qcow2 and raw files) and as an export target
 * ({@link dev.cask.format.qcow2.Qcow2Writer}: a streaming writer of plain v3 images).
 *
 * <p>Owns the on-disk layout: {@code Qcow2Header} decodes and encodes the header cluster; every
 * offset and size read from a file is checked against the file before it is used, and every
 * malformed file becomes a one-line {@link dev.cask.common.CaskException.InvalidInput} naming
 * the file and the values. Internal snapshots, dirty bitmaps and refcounts are not read.
 * Depends only on {@code device}, {@code common} and {@code format} (raw backing files).
 */
package dev.cask.format.qcow2;
