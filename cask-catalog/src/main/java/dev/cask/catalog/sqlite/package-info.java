/**
 * The default {@link dev.cask.catalog.Catalog}: one SQLite file (WAL journal, synchronous=FULL)
 * reached through the xerial JDBC driver. Owns the catalog's schema, its format version
 * ({@code PRAGMA user_version}) and the mapping of SQLite errors to {@code CaskException}s.
 * Several processes may open the same file; SQLite's file locks and a busy timeout serialise
 * their writes. Depends on {@code catalog} and {@code common} only.
 */
package dev.cask.catalog.sqlite;
