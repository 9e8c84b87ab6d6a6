/**
 * The tree layer: Merkle trees of chunks (writer, reader, updater) and the layouts that cut a
 * disk into extents (partition tables, ext free blocks). Stands on the store interface only.
 */
module dev.cask.tree {
    requires transitive dev.cask.store;
    requires com.github.benmanes.caffeine;

    exports dev.cask.layout;
    exports dev.cask.tree;
}
