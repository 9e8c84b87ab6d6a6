/**
 * Operations on images over a store and a catalog: import, export, create, clone, snapshot,
 * rollback, stats and check ({@link dev.cask.image.Images}). The layer the CLI (and later the
 * server) calls; it throws, never prints.
 *
 * <p>It receives its parts as interfaces ({@link dev.cask.image.ImageParts}: a
 * {@code ChunkStore}, a {@code Catalog}, a {@code JournalStore}, {@code Leases}) and the store's
 * extra abilities as {@link dev.cask.image.StoreCapabilities}. Only {@link
 * dev.cask.image.LocalImages} (the embedded default's composition), {@link
 * dev.cask.image.LocalStoreTools} (the local store's capabilities), {@code GarbageCollector} (which
 * reads a local store's packs and index itself) and {@code Checker} (which reads any store's packs
 * in the local pack format through {@link dev.cask.image.StoreCapabilities.Checks}) name
 * {@code store.local} or {@code catalog.sqlite}.
 */
package dev.cask.image;
