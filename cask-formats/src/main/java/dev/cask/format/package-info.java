/**
 * Disk image formats as {@link dev.cask.device.BlockDevice}s: raw files and block devices
 * (sparse-aware, through {@code Posix}), qcow2 (in {@code format.qcow2}), every other format QEMU
 * knows through qemu-nbd (in {@code format.nbd}), and writers that turn any device back into a
 * file or write it into a block device in place.
 * Depends only on {@code device} and {@code common} ({@code format.nbd} also on the NBD protocol numbers).
 */
package dev.cask.format;
