/**
 * The {@link dev.cask.catalog.Catalog} in PostgreSQL, for many cask nodes sharing one catalog:
 * {@link dev.cask.catalog.postgres.PostgresCatalog} over the JDBC driver and a HikariCP pool.
 * Owns the catalog's PostgreSQL schema and its version ({@code cask_schema}), the parsing and
 * redaction of catalog URLs ({@code postgresql://...}: a password is never shown), and the mapping
 * of SQLSTATEs to {@code CaskException}s and retries. Module cask-postgres: depends on
 * the catalog, store and volume layers (it implements their Catalog, chunk index, Leases and
 * journal storage interfaces); only cask-s3 and the CLI depend on it.
 */
package dev.cask.catalog.postgres;
