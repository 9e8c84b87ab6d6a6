package dev.cask.common;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * Switches an SQLite file to write-ahead logging, for the index and the catalog alike.
 *
 * <p>On a new file that other handles (threads or processes) are switching at the same time,
 * SQLite can answer {@code PRAGMA journal_mode = WAL} with SQLITE_BUSY at once, without waiting
 * in its busy handler (seen in a test opening one new catalog from several threads, and in a
 * clean-clone CI run). So the pragma is tried again every 5 ms until {@code timeoutMillis} has
 * passed; any other error, or BUSY past the timeout, is thrown as it came.
 */
public final class SqliteWal {
    private SqliteWal() {}

    /** Sets WAL mode on {@code conn}; returns the journal mode SQLite reports afterwards ("wal"). */
    public static String enable(Connection conn, long timeoutMillis) throws SQLException {
        long until = System.nanoTime() + timeoutMillis * 1_000_000L;
        while (true) {
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("PRAGMA journal_mode = WAL")) {
                return rs.next() ? rs.getString(1) : "";
            } catch (SQLException e) {
                if (!(e.getMessage() != null && e.getMessage().contains("SQLITE_BUSY")) || System.nanoTime() > until) throw e;
                try {
                    Thread.sleep(5);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw e;
                }
            }
        }
    }
}
