/**
 * The embedded default {@link dev.cask.store.ChunkStore}: append-only pack files with CRC-framed,
 * zstd-compressed records and segments (runs of neighbouring new chunks compressed together), and
 * an SQLite index that can be rebuilt from the packs.
 */
package dev.cask.store.local;
