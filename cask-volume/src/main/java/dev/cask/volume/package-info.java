/**
 * Live volumes: an image opened for reads and writes ({@link dev.cask.volume.Volume}), with a
 * journal that makes FLUSH durable and checkpoints that commit versions. Journal storage is
 * {@link dev.cask.volume.JournalStore} (a local directory: {@link dev.cask.volume.LocalJournals}),
 * the one-writer rule {@link dev.cask.volume.Leases} (file locks: {@link
 * dev.cask.volume.FileLeases}). Depends on {@code tree}, {@code store}, {@code catalog},
 * {@code device} and {@code common}.
 */
package dev.cask.volume;
