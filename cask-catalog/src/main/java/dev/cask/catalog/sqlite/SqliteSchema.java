package dev.cask.catalog.sqlite;

import dev.cask.common.CaskException;

import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.List;

import static dev.cask.catalog.sqlite.SqliteCatalog.exec;
import static dev.cask.catalog.sqlite.SqliteCatalog.queryString;
import static dev.cask.catalog.sqlite.SqliteCatalog.rollbackQuietly;

/**
 * The catalog's tables and how each schema becomes the next ({@code docs/format.md}, Catalog).
 * A new file is created as schema 1 and then migrated, the same path an old file takes, so every
 * test runs every migration. All of it runs in one {@code BEGIN IMMEDIATE} transaction that
 * re-reads the schema version first: two processes opening an old file at once migrate it
 * exactly once, and a failure leaves the file as it was.
 */
final class SqliteSchema {
    private SqliteSchema() {}

    /** Reads the file's schema version (refusing a newer one). */
    @FunctionalInterface
    interface VersionCheck {
        int get() throws SQLException;
    }

    private static final List<String> SCHEMA = List.of(
            """
            CREATE TABLE images (
              id              INTEGER PRIMARY KEY AUTOINCREMENT,
              name            TEXT    NOT NULL UNIQUE,
              head            INTEGER NOT NULL CHECK (head >= 1),
              created_us      INTEGER NOT NULL,
              origin_image_id INTEGER,
              origin_number   INTEGER,
              FOREIGN KEY (origin_image_id, origin_number)
                REFERENCES versions (image_id, number) ON DELETE SET NULL
            )""",
            """
            CREATE TABLE versions (
              image_id        INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
              number          INTEGER NOT NULL CHECK (number >= 1),
              parent_image_id INTEGER,
              parent_number   INTEGER,
              time_us         INTEGER NOT NULL,
              message         TEXT,
              size            INTEGER NOT NULL CHECK (size >= 0),
              content         BLOB    NOT NULL,
              PRIMARY KEY (image_id, number),
              FOREIGN KEY (parent_image_id, parent_number)
                REFERENCES versions (image_id, number) ON DELETE SET NULL
            )""",
            "CREATE INDEX versions_by_time ON versions (image_id, time_us)",
            "CREATE INDEX versions_by_parent ON versions (parent_image_id, parent_number)",
            "CREATE INDEX images_by_origin ON images (origin_image_id, origin_number)");

    /** Schema 1 to 2: labels. A label goes with its version (and so with its image). */
    private static final List<String> MIGRATE_TO_2 = List.of(
            """
            CREATE TABLE tags (
              image_id INTEGER NOT NULL,
              label    TEXT    NOT NULL,
              number   INTEGER NOT NULL,
              PRIMARY KEY (image_id, label),
              FOREIGN KEY (image_id, number) REFERENCES versions (image_id, number) ON DELETE CASCADE
            ) WITHOUT ROWID""");

    /** Schema 2 to 3: who made each version, protection, retention policies. */
    private static final List<String> MIGRATE_TO_3 = List.of(
            "ALTER TABLE versions ADD COLUMN kind TEXT NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'auto'))",
            "ALTER TABLE versions ADD COLUMN protected INTEGER NOT NULL DEFAULT 0 CHECK (protected IN (0, 1))",
            """
            CREATE TABLE retention (
              prefix TEXT NOT NULL PRIMARY KEY,
              policy TEXT NOT NULL
            ) WITHOUT ROWID""");

    /** Creates (version 0) or migrates the schema to {@link SqliteCatalog#SCHEMA_VERSION}. */
    static void migrate(Connection c, Path file, VersionCheck check) throws SQLException {
        exec(c, "BEGIN IMMEDIATE");
        boolean done = false;
        try {
            int version = check.get();
            if (version == 0) {
                String tables = queryString(c, "SELECT group_concat(name, ', ') FROM sqlite_schema WHERE type = 'table'");
                if (tables != null) {
                    throw new CaskException.InvalidInput("catalog " + file + ": not a cask catalog (schema version 0, but it has tables "
                            + tables + ")");
                }
                for (String sql : SCHEMA) exec(c, sql);
                version = 1;
            }
            if (version == 1) {
                for (String sql : MIGRATE_TO_2) exec(c, sql);
                version = 2;
            }
            if (version == 2) {
                for (String sql : MIGRATE_TO_3) exec(c, sql);
                version = 3;
            }
            exec(c, "PRAGMA user_version = " + version);
            exec(c, "COMMIT");
            done = true;
        } finally {
            if (!done) rollbackQuietly(c);
        }
    }
}
