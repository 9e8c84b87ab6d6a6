/**
 * PostgreSQL for a shared store: the catalog, the chunk index, leases with fencing, shared
 * journals and writer sessions. Implements interfaces of the catalog, store and volume layers.
 */
@SuppressWarnings("requires-automatic") // the PostgreSQL driver is an automatic module
module dev.cask.postgres {
    requires transitive dev.cask.volume;
    requires com.zaxxer.hikari;
    requires org.postgresql.jdbc;

    exports dev.cask.catalog.postgres;
    exports dev.cask.store.postgres;
}
