/**
 * Disk image formats as {@link dev.cask.device.BlockDevice}s: raw files (sparse-aware), qcow2
 * (in {@code format.qcow2}), and writers that turn any device back into a file.
 * Depends only on {@code device} and {@code common}.
 */
package dev.cask.format;
