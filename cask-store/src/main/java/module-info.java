/**
 * The store layer: the ChunkStore interface and its contract, chunk ids, the local store (packs,
 * the index, gc epochs, compaction) and the cache decorator. Knows nothing of trees, images or
 * the catalog.
 */
module dev.cask.store {
    requires transitive dev.cask.common;
    requires com.github.luben.zstd_jni;
    requires com.github.benmanes.caffeine;
    requires org.xerial.sqlitejdbc;

    exports dev.cask.store;
    exports dev.cask.store.cache;
    exports dev.cask.store.local;
}
