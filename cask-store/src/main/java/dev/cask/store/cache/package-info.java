/**
 * A node's local chunk cache: {@link dev.cask.store.cache.CachingChunkStore}, a
 * {@link dev.cask.store.ChunkStore} decorator that keeps a verified copy of every chunk it read
 * from the store it wraps in a bounded directory ({@link dev.cask.store.cache.DiskChunkCache}).
 * Depends on {@code store} and {@code common} only.
 */
package dev.cask.store.cache;
