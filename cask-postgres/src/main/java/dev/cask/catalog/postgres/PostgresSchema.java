package dev.cask.catalog.postgres;

import dev.cask.common.CaskException;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;

/**
 * The PostgreSQL catalog's tables, and how each schema version becomes the next
 * ({@code docs/format.md}, "Catalog in PostgreSQL").
 *
 * <p>The tables live in the connection's current schema (the first existing one of its
 * {@code search_path}; {@code ?currentSchema=NAME} in the catalog URL picks one), so one database
 * can hold several catalogs side by side. The schema version is the one row of
 * {@code cask_schema}. Schema 1 holds what SQLite's schema 3 holds, with PostgreSQL's types:
 * identity ids that are never reused, {@code bytea} content, {@code boolean} protection, and
 * names in the {@code "C"} collation, so that PostgreSQL orders and compares them byte by byte,
 * as Java's {@code String.compareTo} does for the ASCII names {@code Names} allows (the prefix
 * range scan of {@code listImages} depends on it).
 *
 * <p><b>Creating and migrating</b> runs in one transaction (PostgreSQL's DDL is transactional)
 * that first takes a transaction-scoped advisory lock named after the schema: several nodes
 * opening a new or old catalog at once create or migrate it exactly once, and a failure leaves
 * it as it was. A schema that has tables but no {@code cask_schema} is refused (it belongs to
 * something else); so is a newer schema version than this code knows (an older cask must not
 * write a newer catalog it cannot read correctly).
 */
final class PostgresSchema {
    private PostgresSchema() {}

    /**
     * The version table of the chunk index ({@code dev.cask.store.postgres.PostgresChunkIndex}), which
     * may share the catalog's schema: a schema holding it is cask's, not foreign.
     */
    static final String CHUNK_INDEX_VERSION_TABLE = "cask_store_schema";

    /** The schema version this code reads and writes. */
    static final int SCHEMA_VERSION = 4;

    /** The oldest server this code was written for: identity columns, {@code ON CONFLICT}, {@code FOR SHARE} re-checks. */
    static final int MIN_SERVER_VERSION_NUM = 120000;

    private static final List<String> SCHEMA_1 = List.of(
            "CREATE TABLE cask_schema (version integer NOT NULL CHECK (version >= 1), one boolean PRIMARY KEY DEFAULT true CHECK (one))",
            """
            CREATE TABLE images (
              id              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              name            text    COLLATE "C" NOT NULL UNIQUE,
              head            integer NOT NULL CHECK (head >= 1),
              created_us      bigint  NOT NULL,
              origin_image_id bigint,
              origin_number   integer
            )""",
            """
            CREATE TABLE versions (
              image_id        bigint  NOT NULL REFERENCES images (id) ON DELETE CASCADE,
              number          integer NOT NULL CHECK (number >= 1),
              parent_image_id bigint,
              parent_number   integer,
              time_us         bigint  NOT NULL,
              message         text,
              size            bigint  NOT NULL CHECK (size >= 0),
              content         bytea   NOT NULL,
              kind            text    NOT NULL CHECK (kind IN ('user', 'auto')),
              protected       boolean NOT NULL DEFAULT false,
              PRIMARY KEY (image_id, number),
              FOREIGN KEY (parent_image_id, parent_number) REFERENCES versions (image_id, number) ON DELETE SET NULL
            )""",
            """
            ALTER TABLE images ADD FOREIGN KEY (origin_image_id, origin_number)
              REFERENCES versions (image_id, number) ON DELETE SET NULL""",
            "CREATE INDEX versions_by_time ON versions (image_id, time_us)",
            "CREATE INDEX versions_by_parent ON versions (parent_image_id, parent_number)",
            "CREATE INDEX images_by_origin ON images (origin_image_id, origin_number)",
            """
            CREATE TABLE tags (
              image_id bigint  NOT NULL,
              label    text    COLLATE "C" NOT NULL,
              number   integer NOT NULL,
              PRIMARY KEY (image_id, label),
              FOREIGN KEY (image_id, number) REFERENCES versions (image_id, number) ON DELETE CASCADE
            )""",
            "CREATE INDEX tags_by_version ON tags (image_id, number)",
            """
            CREATE TABLE retention (
              prefix text COLLATE "C" NOT NULL PRIMARY KEY,
              policy text NOT NULL
            )""",
            "INSERT INTO cask_schema (version) VALUES (1)");

    /**
     * Schema 2: the leases ({@link PostgresLeases}), one row per image name that was ever leased,
     * kept when released (expired) so that its epoch never goes down. Keyed by name, not image
     * id: a lease is on what clients open, and it outlives an image (a name created again goes on
     * counting). An older cask (schema 1) refuses this catalog, as it must: it would write without
     * a fence.
     */
    private static final List<String> SCHEMA_2 = List.of(
            """
            CREATE TABLE leases (
              image   text        COLLATE "C" PRIMARY KEY,
              holder  text        NOT NULL,
              epoch   bigint      NOT NULL CHECK (epoch >= 1),
              expires timestamptz NOT NULL
            )""",
            "UPDATE cask_schema SET version = 2");

    /**
     * Schema 3: the shared copy of every open volume's journal ({@link PostgresJournals}): the bytes
     * of each generation as its syncs made them durable, one row per range of at most
     * {@link PostgresJournals#ROW_BYTES}, keyed by image name, generation and file offset. Stored
     * without TOAST compression ({@code EXTERNAL}): block data is mostly compressed or random, and
     * a FLUSH waits for the insert. An older cask (schema 2) refuses this catalog: it would
     * serve an image without the journal another node left.
     */
    private static final List<String> SCHEMA_3 = List.of(
            """
            CREATE TABLE journal_ranges (
              image      text   COLLATE "C" NOT NULL,
              generation bigint NOT NULL CHECK (generation >= 1),
              "offset"   bigint NOT NULL CHECK ("offset" >= 0),
              data       bytea  NOT NULL,
              PRIMARY KEY (image, generation, "offset")
            )""",
            "ALTER TABLE journal_ranges ALTER COLUMN data SET STORAGE EXTERNAL",
            "UPDATE cask_schema SET version = 3");

    /**
     * Schema 4: the nodes ({@link PostgresLeases#advertise}): where each running server's control
     * endpoint listens and the token its connections must send, so commands on any host reach the
     * node that holds an image. Keyed by the lease holder's name.
     */
    private static final List<String> SCHEMA_4 = List.of(
            """
            CREATE TABLE nodes (
              holder     text    COLLATE "C" PRIMARY KEY,
              host       text    NOT NULL,
              port       integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
              token      text    NOT NULL,
              started_us bigint  NOT NULL
            )""",
            "UPDATE cask_schema SET version = 4");

    /**
     * Checks the server and creates (or, later, migrates) the schema, in one transaction on
     * {@code c} (autocommit off); returns the schema version found before, 0 for a new catalog.
     */
    static int prepare(Connection c, String catalog) throws SQLException {
        int serverVersion = Integer.parseInt(query(c, "SHOW server_version_num"));
        if (serverVersion < MIN_SERVER_VERSION_NUM) {
            throw new CaskException("catalog " + catalog + ": PostgreSQL " + query(c, "SHOW server_version")
                    + " is too old; cask needs 12 or newer");
        }
        String encoding = query(c, "SHOW server_encoding");
        if (!"UTF8".equalsIgnoreCase(encoding)) {
            throw new CaskException.InvalidInput("catalog " + catalog + ": the database's encoding is " + encoding
                    + ", cask needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)");
        }
        String schema = query(c, "SELECT current_schema()");
        if (schema == null) {
            throw new CaskException.NotFound("catalog " + catalog + ": no schema to keep the catalog in: none named by search_path ("
                    + query(c, "SHOW search_path") + ") exists; create it (CREATE SCHEMA ...) or name one with ?currentSchema=");
        }
        exec(c, "SELECT pg_advisory_xact_lock(hashtext('dev.cask.catalog schema ' || current_schema()))");
        int found = version(c, catalog);
        if (found == 0) {
            String tables = query(c, "SELECT string_agg(tablename, ', ' ORDER BY tablename) FROM pg_tables WHERE schemaname = current_schema()");
            // the chunk index of a shared store may live in the same schema (it has its own version table)
            boolean chunkIndex = query(c, "SELECT to_regclass(quote_ident(current_schema()) || '." + CHUNK_INDEX_VERSION_TABLE + "')") != null;
            if (tables != null && !chunkIndex) {
                throw new CaskException.InvalidInput("catalog " + catalog + ": schema '" + schema + "' is not a cask catalog (no cask_schema,"
                        + " but it has tables " + tables + "); name an empty schema with ?currentSchema=");
            }
            for (String sql : SCHEMA_1) exec(c, sql);
        }
        // Migrations, each a step of the same transaction.
        if (found < 2) for (String sql : SCHEMA_2) exec(c, sql);
        if (found < 3) for (String sql : SCHEMA_3) exec(c, sql);
        if (found < 4) for (String sql : SCHEMA_4) exec(c, sql);
        c.commit();
        return found;
    }

    /** The catalog's schema version: 0 when it has no {@code cask_schema} table; a newer one than this code knows is refused. */
    static int version(Connection c, String catalog) throws SQLException {
        if (query(c, "SELECT to_regclass(quote_ident(current_schema()) || '.cask_schema')") == null) return 0;
        String v = query(c, "SELECT version FROM cask_schema");
        if (v == null) throw new CaskException.Corrupt("catalog " + catalog + ": cask_schema has no row (expected schema version " + SCHEMA_VERSION + ")");
        int version = Integer.parseInt(v);
        if (version > SCHEMA_VERSION) {
            throw new CaskException("catalog " + catalog + ": schema version " + version + " is newer than this cask understands (version "
                    + SCHEMA_VERSION + "); upgrade cask");
        }
        return version;
    }

    static void exec(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
        }
    }

    static String query(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            return rs.next() ? rs.getString(1) : null;
        }
    }
}
