/**
 * Live volumes (journal, checkpoint, leases) and the image layer (images, import, export,
 * retention, gc, check) over the store, catalog, journal-storage and lease interfaces: it never
 * names the local store or SQLite; the embedded default is composed in dev.cask.local, the
 * shared store in dev.cask.s3.
 */
module dev.cask.volume {
    requires transitive dev.cask.tree;
    requires transitive dev.cask.catalog;
    requires transitive dev.cask.formats;

    exports dev.cask.image;
    exports dev.cask.volume;
}
