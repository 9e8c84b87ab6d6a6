/**
 * Operations on images over a store and a catalog: import, export, create, clone, snapshot,
 * rollback, stats and check ({@link dev.cask.image.Images}). The layer the CLI (and later the
 * server) calls; it throws, never prints.
 *
 * <p>It receives its parts as interfaces ({@link dev.cask.image.ImageParts}: a
 * {@code ChunkStore}, a {@code Catalog}, a {@code JournalStore}, {@code Leases}) and the store's
 * extra abilities as {@link dev.cask.image.StoreCapabilities}. It never names the
 * local store or the SQLite catalog: the embedded default is composed in module cask-local
 * ({@code dev.cask.local.LocalImages}, with the local store's capabilities in {@code
 * LocalStoreTools}), the shared store in cask-s3. The module graph enforces it: cask-store exports
 * {@code store.local} and cask-catalog {@code catalog.sqlite} only to the modules that compose or
 * implement stores. {@code cask check} reads any store's packs through the store package's
 * {@code ScanSink}, {@code ChunkLocation} and {@code IndexMismatch}.
 */
package dev.cask.image;
