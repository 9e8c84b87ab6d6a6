/**
 * The store layer: the ChunkStore interface and its contract, chunk ids, the local store (packs,
 * the index, gc epochs, compaction) and the cache decorator. Knows nothing of trees, images or
 * the catalog.
 */
@SuppressWarnings("module") // qualified exports name modules built after this one
module dev.cask.store {
    requires transitive dev.cask.common;
    requires com.github.luben.zstd_jni;
    requires com.github.benmanes.caffeine;
    requires org.xerial.sqlitejdbc;

    exports dev.cask.store;
    exports dev.cask.store.cache;
    // the local store: for the modules that compose it (local, cli) or share its pack format (postgres, s3)
    exports dev.cask.store.local to dev.cask.local, dev.cask.postgres, dev.cask.s3, dev.cask.cli;
}
