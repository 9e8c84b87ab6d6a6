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
 * LocalStoreTools}), the shared store in cask-s3. {@code Checker}, {@code GarbageCollector} and
 * {@code StoreCapabilities} do use the pack format's types of {@code store.local} ({@code
 * ChunkLocation}, {@code PackScan}, {@code IndexMismatch}): packs have that format wherever they
 * are, in a directory or in S3.
 */
package dev.cask.image;
