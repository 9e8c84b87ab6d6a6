package dev.cask.catalog.postgres;

import dev.cask.common.CaskException;

import java.sql.SQLException;
import java.sql.SQLTransientConnectionException;

/**
 * What a failed PostgreSQL transaction means for the catalog, decided on the SQLSTATE (never
 * on the words of a message), and the one-line {@link CaskException} a caller gets.
 *
 * <ul>
 *   <li><b>{@link Kind#RETRY}</b>: {@code 40001} serialization_failure and {@code 40P01}
 *       deadlock_detected. The server rolled the whole transaction back; running it again is
 *       safe and is what PostgreSQL asks for. {@link PostgresCatalog} does, a bounded number
 *       of times.
 *   <li><b>{@link Kind#CONNECTION}</b>: class {@code 08} (connection exception), {@code 57P01-3}
 *       (the server shut down, crashed, or is starting), and the pool finding no connection in
 *       time. Before {@code COMMIT} was sent the server rolls the transaction back when its
 *       connection goes, so nothing was applied and one more try (on a new connection) is safe.
 *       During {@code COMMIT} the outcome is unknown, and the error says so.
 *   <li><b>{@link Kind#LOCK_TIMEOUT}</b>: {@code 55P03}: another transaction (another node) held
 *       the image longer than the catalog's lock timeout.
 *   <li><b>{@link Kind#OTHER}</b>: anything else (a permission, a full disk): reported as is.
 * </ul>
 * Every message starts with what the database is to cask and its {@link CatalogUrl#display()}
 * ({@code catalog postgresql://...}, {@code chunk index postgresql://...}; never the password) and
 * what was being done, and is one line (the driver's messages can span several).
 */
final class PgFailures {
    private PgFailures() {}

    enum Kind { RETRY, CONNECTION, LOCK_TIMEOUT, OTHER }

    static Kind kind(SQLException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (!(t instanceof SQLException s)) continue;
            String state = s.getSQLState();
            if ("40001".equals(state) || "40P01".equals(state)) return Kind.RETRY;
            if ("55P03".equals(state)) return Kind.LOCK_TIMEOUT;
            if (s instanceof SQLTransientConnectionException) return Kind.CONNECTION;
            if (state != null && (state.startsWith("08") || state.equals("57P01") || state.equals("57P02") || state.equals("57P03"))) {
                return Kind.CONNECTION;
            }
        }
        return Kind.OTHER;
    }

    /** The SQLSTATE of {@code e} or of the first SQLException among its causes that has one, or null. */
    static String state(SQLException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof SQLException s && s.getSQLState() != null) return s.getSQLState();
        }
        return null;
    }

    /**
     * The exception for a transaction that failed for good. {@code committing}: the failure came
     * while {@code COMMIT} was on its way, so a lost connection leaves the outcome unknown.
     */
    static CaskException.Io toCask(String database, String what, SQLException e, boolean committing, int attempts,
                                   long lockTimeoutMs) {
        String base = database + ": " + what + ": ";
        String tries = attempts > 1 ? " (tried " + attempts + " times)" : "";
        return switch (kind(e)) {
            case CONNECTION -> committing
                    ? new CaskException.Io(base + "the connection was lost while committing, so the change may or may not have been made;"
                    + " read it back before retrying: " + describe(e), e)
                    : new CaskException.Io(base + "cannot reach the server, nothing was changed" + tries + ": " + describe(e), e);
            case RETRY -> new CaskException.Io(base + "gave up after " + attempts + " tries that all collided with other"
                    + " transactions (SQLSTATE " + state(e) + "), nothing was changed: " + describe(e), e);
            case LOCK_TIMEOUT -> new CaskException.Io(base + "another transaction (another node or process) held what this one"
                    + " needed for more than " + lockTimeoutMs / 1000.0 + " s, nothing was changed: " + describe(e), e);
            case OTHER -> new CaskException.Io(base + describe(e) + (state(e) == null ? "" : " (SQLSTATE " + state(e) + ")"), e);
        };
    }

    /** The driver's message on one line, with the cause the pool hides behind its own (e.g. "Connection refused"). */
    static String describe(Throwable e) {
        String m = oneLine(e.getMessage());
        Throwable cause = e.getCause();
        if (e instanceof SQLTransientConnectionException && cause != null && cause.getMessage() != null) {
            m = oneLine(cause.getMessage()) + " (" + m + ")";
        }
        return m;
    }

    static String oneLine(String s) {
        if (s == null) return "(no message)";
        return s.strip().replaceAll("\\s*\\R\\s*", "; ");
    }
}
