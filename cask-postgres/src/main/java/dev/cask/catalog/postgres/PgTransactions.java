package dev.cask.catalog.postgres;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import com.zaxxer.hikari.pool.HikariPool;
import dev.cask.common.CaskException;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The catalog's connections and how a unit of work becomes one PostgreSQL transaction: a HikariCP
 * pool for one {@link CatalogUrl}, and {@link #run}, which borrows a connection, runs the work,
 * commits, and on failure rolls back and decides ({@link PgFailures}) whether to run it again.
 * The chunk index of a shared store ({@code dev.cask.store.postgres.PostgresChunkIndex}) runs its
 * transactions through a pool of its own made here, so both keep the same rules.
 *
 * <p><b>Sessions.</b> Autocommit off; every new connection sets {@code lock_timeout} (from
 * {@link PostgresCatalog.Options}), {@code idle_in_transaction_session_timeout} (300 s: a node
 * frozen inside a transaction loses its connection, and its locks, instead of holding an image
 * forever) and {@code READ COMMITTED} as its default, whatever the server's default is. A read
 * starts with {@code SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY}.
 *
 * <p><b>Retries</b> (bounded, so a call always ends): {@value #MAX_ATTEMPTS} tries for
 * serialization failures and deadlocks, with a random back-off that doubles up to 256 ms;
 * {@value #CONNECTION_ATTEMPTS} tries when the connection broke before {@code COMMIT} was sent (the
 * server rolled the transaction back, so nothing was applied), after evicting every pooled
 * connection (a server that dropped one most likely dropped all: a restart, a failover). No retry
 * when the pool itself found no connection within the connect timeout (it already tried), and none
 * when the connection broke during {@code COMMIT} (the outcome is unknown; the error says so).
 * A retried work runs again from its start, so everything it decides is decided inside the
 * transaction that commits.
 *
 * <p>Thread-safe: each {@link #run} has its own connection. The password is given to the pool,
 * never put into its name, its URL or a message.
 */
public final class PgTransactions implements AutoCloseable {
    /** Tries of one transaction that collide with others (serialization failure, deadlock). */
    static final int MAX_ATTEMPTS = 8;
    /** Tries of one transaction whose connection broke before it committed. */
    static final int CONNECTION_ATTEMPTS = 2;
    /** How long a session may sit idle inside a transaction before the server ends it. */
    static final int IDLE_IN_TRANSACTION_TIMEOUT_MS = 300_000;

    /** One unit of work, run inside a transaction on {@code c}. */
    @FunctionalInterface
    public interface Work<T> {
        T run(Connection c) throws SQLException;
    }

    /** What the messages call this database: {@code catalog postgresql://...} or {@code chunk index postgresql://...}. */
    private final String display;
    private final long lockTimeoutMs;
    private volatile HikariDataSource pool;

    private PgTransactions(String display, long lockTimeoutMs, HikariDataSource pool) {
        this.display = display;
        this.lockTimeoutMs = lockTimeoutMs;
        this.pool = pool;
    }

    /** Connects to {@code url}, failing at once, with the server's reason, when it cannot be reached or refuses the login. */
    static PgTransactions open(CatalogUrl url, PostgresCatalog.Options options) {
        return open(url, options, "catalog");
    }

    /**
     * {@link #open(CatalogUrl, PostgresCatalog.Options)} for another user of the same database (the
     * chunk index of a shared store): {@code noun} starts every message ({@code "chunk index"}).
     */
    public static PgTransactions open(CatalogUrl url, PostgresCatalog.Options options, String noun) {
        Objects.requireNonNull(url, "url");
        Objects.requireNonNull(noun, "noun");
        Objects.requireNonNull(options, "options");
        HikariConfig config = new HikariConfig();
        config.setPoolName("cask-" + noun.replace(' ', '-') + " " + url.display());
        config.setDriverClassName("org.postgresql.Driver");
        config.setJdbcUrl(url.jdbcUrl());
        if (url.user() != null) config.setUsername(url.user());
        if (url.password() != null) config.setPassword(url.password());
        config.setAutoCommit(false);
        config.setMaximumPoolSize(options.maxConnections());
        config.setMinimumIdle(1);
        config.setConnectionTimeout(options.connectTimeout().toMillis());
        config.setValidationTimeout(Math.min(options.connectTimeout().toMillis(), 5_000));
        config.setInitializationFailTimeout(1); // one try at open: fail now, with the server's reason
        config.addDataSourceProperty("connectTimeout", String.valueOf(Math.max(1, options.connectTimeout().toSeconds())));
        config.addDataSourceProperty("ApplicationName", "cask");
        config.addDataSourceProperty("tcpKeepAlive", "true");
        config.setConnectionInitSql("SET lock_timeout = " + options.lockTimeout().toMillis()
                + "; SET idle_in_transaction_session_timeout = " + IDLE_IN_TRANSACTION_TIMEOUT_MS
                + "; SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED");
        try {
            return new PgTransactions(noun + " " + url.display(), options.lockTimeout().toMillis(), new HikariDataSource(config));
        } catch (HikariPool.PoolInitializationException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            String state = cause instanceof SQLException s ? s.getSQLState() : null;
            String hint = state != null && state.startsWith("28") ? " (check the user and password)"
                    : "3D000".equals(state) ? " (create the database first: createdb)" : "";
            throw new CaskException.Io(noun + " " + url.display() + ": cannot connect: " + PgFailures.describe(cause) + hint, e);
        } catch (RuntimeException e) {
            throw new CaskException.Io(noun + " " + url.display() + ": cannot connect: " + PgFailures.oneLine(e.getMessage()), e);
        }
    }

    /** Runs {@code work} as a write transaction that commits itself (schema creation), retrying collisions. */
    public void prepare(String what, Work<?> work) {
        run(what, true, work);
    }

    /**
     * Runs {@code work} in one transaction ({@code write}: READ COMMITTED; else REPEATABLE READ,
     * READ ONLY), commits it and returns its result; rolls back on any failure, and runs it again
     * where the class comment says. A {@link CaskException} from the work is rethrown as is.
     */
    public <T> T run(String what, boolean write, Work<T> work) {
        int collisions = 0;
        int lostConnections = 0;
        for (int attempt = 1; ; attempt++) {
            HikariDataSource p = pool;
            if (p == null) throw closed();
            boolean connected = false;
            boolean committing = false;
            try (Connection c = p.getConnection()) {
                connected = true;
                try {
                    if (!write) PostgresSchema.exec(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
                    T result = work.run(c);
                    committing = true;
                    c.commit();
                    return result;
                } catch (SQLException | RuntimeException | Error e) {
                    if (!committing) rollbackQuietly(c);
                    throw e;
                }
            } catch (SQLException e) {
                if (pool == null) throw closed();
                PgFailures.Kind kind = PgFailures.kind(e);
                if (kind == PgFailures.Kind.RETRY && ++collisions < MAX_ATTEMPTS) {
                    backOff(collisions);
                    continue;
                }
                if (kind == PgFailures.Kind.CONNECTION) {
                    p.getHikariPoolMXBean().softEvictConnections();
                    if (connected && !committing && ++lostConnections < CONNECTION_ATTEMPTS) continue;
                }
                throw PgFailures.toCask(display, what, e, committing, attempt, lockTimeoutMs);
            }
        }
    }

    private CaskException closed() {
        return new CaskException(display + ": closed");
    }

    /** A random pause of up to 2^n ms (at most 256 ms), so two colliding transactions do not collide again in step. */
    private static void backOff(int collisions) {
        long maxMs = 1L << Math.min(collisions, 8);
        try {
            Thread.sleep(ThreadLocalRandom.current().nextLong(maxMs + 1));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CaskException("interrupted while waiting to retry a catalog transaction");
        }
    }

    private static void rollbackQuietly(Connection c) {
        try {
            if (!c.isClosed()) c.rollback();
        } catch (SQLException ignored) {
            // The connection is gone: the server rolled the transaction back with it.
        }
    }

    /**
     * A connection of the pool for the caller alone, for as long as it keeps it (autocommit off):
     * for what lives as long as a connection does, a session-level advisory lock (a writer session,
     * the gc lock). Give it back with {@link #release}.
     */
    public Connection hold(String what) {
        HikariDataSource p = pool;
        if (p == null) throw closed();
        try {
            return p.getConnection();
        } catch (SQLException e) {
            throw new CaskException.Io(display + ": " + what + ": cannot connect: " + PgFailures.describe(e), e);
        }
    }

    /**
     * Gives back a connection from {@link #hold}: to the pool, or, when {@code drop} (it may still
     * hold a session-level lock, or it failed), closed for good so nothing it held outlives it.
     */
    public void release(Connection c, boolean drop) {
        HikariDataSource p = pool;
        try {
            if (drop && p != null) p.evictConnection(c);
            else c.close();
        } catch (SQLException | RuntimeException e) {
            // a connection that cannot even close is gone, and its locks with it
        }
    }

    /** Closes the pool and its connections; idempotent. */
    @Override
    public void close() {
        HikariDataSource p;
        synchronized (this) {
            p = pool;
            pool = null;
        }
        if (p != null) p.close();
    }
}
