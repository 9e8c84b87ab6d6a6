/**
 * The catalog layer: the Catalog interface (images, versions, heads by compare-and-swap, clones)
 * and its SQLite implementation. Knows nothing of chunks or trees.
 */
module dev.cask.catalog {
    requires transitive dev.cask.common;
    requires org.xerial.sqlitejdbc;

    exports dev.cask.catalog;
    exports dev.cask.catalog.sqlite;
}
