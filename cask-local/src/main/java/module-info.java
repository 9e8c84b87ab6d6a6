/**
 * The embedded default: a store directory holding the local packs, the SQLite catalog, the
 * journals and file leases, composed into Images; and the local store's check, repair,
 * accounting and gc capabilities.
 */
module dev.cask.local {
    requires transitive dev.cask.volume;

    exports dev.cask.local;
}
