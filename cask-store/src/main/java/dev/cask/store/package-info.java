/**
 * The chunk store SPI: {@link dev.cask.store.ChunkId} and {@link dev.cask.store.ChunkStore}.
 * The local pack-file implementation is in {@code store.local}; a node's local chunk cache, a
 * decorator of any store, in {@code store.cache}. Depends on {@code common} only.
 */
package dev.cask.store;
