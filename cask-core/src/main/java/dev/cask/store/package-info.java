/**
 * The chunk store SPI: {@link dev.cask.store.ChunkId} and {@link dev.cask.store.ChunkStore}.
 * The local pack-file implementation is in {@code store.local}. Depends on {@code common} only.
 */
package dev.cask.store;
