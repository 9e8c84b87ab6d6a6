/**
 * The catalog layer: the Catalog interface (images, versions, heads by compare-and-swap, clones)
 * and its SQLite implementation. Knows nothing of chunks or trees.
 */
@SuppressWarnings("module") // qualified exports name modules built after this one
module dev.cask.catalog {
    requires transitive dev.cask.common;
    requires org.xerial.sqlitejdbc;

    exports dev.cask.catalog;
    // SQLite: only the embedded default's composition names it
    exports dev.cask.catalog.sqlite to dev.cask.local;
}
