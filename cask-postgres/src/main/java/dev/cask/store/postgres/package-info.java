/**
 * The chunk index of a shared store in PostgreSQL ({@link dev.cask.store.postgres.PostgresChunkIndex}):
 * chunk id to pack location, the packs begun and sealed, GC epochs and stamps, damaged copies, for
 * every node of a store whose packs live in an object store (module {@code cask-s3}). Runs its
 * transactions through {@code catalog.postgres.PgTransactions}; depends on the store layer
 * (module cask-store).
 */
package dev.cask.store.postgres;
