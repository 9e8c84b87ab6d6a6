/**
 * The embedded default composed: a store directory holding the local packed store, its SQLite
 * catalog, the journals and a lock file per image ({@link dev.cask.local.LocalImages}), with the
 * local store's capabilities (counts, stored sizes, check and repair, gc) answered from its packs
 * and index ({@code LocalStoreTools}). The one place, with the CLI, that names {@code
 * LocalChunkStore} and {@code SqliteCatalog}; the image layer below receives them as interfaces.
 */
package dev.cask.local;
