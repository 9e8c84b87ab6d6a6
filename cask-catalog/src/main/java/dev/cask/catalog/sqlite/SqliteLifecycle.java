package dev.cask.catalog.sqlite;

import dev.cask.catalog.VersionDeletion;
import dev.cask.common.CaskException;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Types;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Supplier;

/**
 * The SQL of a version's life after its commit (schema 3): protection, removal, retention
 * policies. Run by {@link SqliteCatalog} inside its transactions, like {@link SqliteTags}.
 *
 * <p><b>Removing a version</b> deletes its row, and so (foreign keys) its labels. Kept, with the
 * reason: the head (so the newest number stays, and numbers are never reused), a protected
 * version, the origin of a live clone (the clone's {@code origin} would otherwise lose its
 * meaning: remove the clone, or keep the version; it costs almost nothing, the clone's first
 * version shares all its chunks), and what the caller's {@code inUse} names. A version whose
 * parent was the removed one is relinked to the removed one's parent (its nearest surviving
 * ancestor) before the delete, so {@code log} keeps one chain and never shows a dangling link.
 * Nothing else changes: no content, no other number.
 *
 * <p>The transaction is {@code BEGIN IMMEDIATE}: no commit runs while it does, so the head
 * {@code inUse} is asked about cannot move before the rows go.
 */
final class SqliteLifecycle {
    private SqliteLifecycle() {}

    static void makeUserVersion(Connection c, long id, int number) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("UPDATE versions SET kind = 'user' WHERE image_id = ? AND number = ?")) {
            st.setLong(1, id);
            st.setInt(2, number);
            st.executeUpdate();
        }
    }

    static void setProtected(Connection c, long id, int number, boolean on) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("UPDATE versions SET protected = ? WHERE image_id = ? AND number = ?")) {
            st.setInt(1, on ? 1 : 0);
            st.setLong(2, id);
            st.setInt(3, number);
            st.executeUpdate();
        }
    }

    static VersionDeletion deleteVersions(Connection c, long id, String name, Collection<Integer> numbers,
                                          Supplier<Set<Integer>> inUse) throws SQLException {
        return deleteVersions(c, id, name, numbers, inUse, false, true);
    }

    /**
     * {@code byPolicy}: the numbers are a retention policy's choice, made before this transaction;
     * a version labelled since, or (unless {@code includeUser}) made a user version since (a
     * snapshot of unchanged content), is kept too.
     */
    static VersionDeletion deleteVersions(Connection c, long id, String name, Collection<Integer> numbers,
                                          Supplier<Set<Integer>> inUse, boolean byPolicy, boolean includeUser) throws SQLException {
        int head;
        try (PreparedStatement st = c.prepareStatement("SELECT head FROM images WHERE id = ?")) {
            st.setLong(1, id);
            try (ResultSet rs = st.executeQuery()) {
                rs.next();
                head = rs.getInt(1);
            }
        }
        Set<Integer> used = null;
        List<Integer> deleted = new ArrayList<>();
        SortedMap<Integer, String> kept = new TreeMap<>();
        for (int n : new TreeSet<>(numbers)) {
            Long parentImage;
            Integer parentNumber;
            boolean isProtected;
            boolean isUser;
            try (PreparedStatement st = c.prepareStatement(
                    "SELECT protected, parent_image_id, parent_number, kind FROM versions WHERE image_id = ? AND number = ?")) {
                st.setLong(1, id);
                st.setInt(2, n);
                try (ResultSet rs = st.executeQuery()) {
                    if (!rs.next()) {
                        kept.put(n, "no such version");
                        continue;
                    }
                    isProtected = rs.getInt(1) != 0;
                    long pi = rs.getLong(2);
                    parentImage = rs.wasNull() ? null : pi;
                    int pn = rs.getInt(3);
                    parentNumber = rs.wasNull() ? null : pn;
                    isUser = "user".equals(rs.getString(4));
                }
            }
            if (n == head) {
                kept.put(n, "the head");
                continue;
            }
            if (isProtected) {
                kept.put(n, "protected");
                continue;
            }
            if (byPolicy && isUser && !includeUser) {
                kept.put(n, "user version");
                continue;
            }
            if (byPolicy && labelled(c, id, n)) {
                kept.put(n, "labelled");
                continue;
            }
            String clone = cloneOf(c, id, n);
            if (clone != null) {
                kept.put(n, "origin of clone '" + clone + "'");
                continue;
            }
            if (used == null) used = Set.copyOf(inUse.get());
            if (used.contains(n)) {
                kept.put(n, "in use (a journal's base or a served export)");
                continue;
            }
            try (PreparedStatement st = c.prepareStatement("""
                    UPDATE versions SET parent_image_id = ?, parent_number = ?
                    WHERE parent_image_id = ? AND parent_number = ?""")) {
                if (parentImage == null) {
                    st.setNull(1, Types.INTEGER);
                    st.setNull(2, Types.INTEGER);
                } else {
                    st.setLong(1, parentImage);
                    st.setInt(2, parentNumber);
                }
                st.setLong(3, id);
                st.setInt(4, n);
                st.executeUpdate();
            }
            try (PreparedStatement st = c.prepareStatement("DELETE FROM versions WHERE image_id = ? AND number = ?")) {
                st.setLong(1, id);
                st.setInt(2, n);
                st.executeUpdate();
            }
            deleted.add(n);
        }
        return new VersionDeletion(deleted, kept);
    }

    private static boolean labelled(Connection c, long id, int n) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT 1 FROM tags WHERE image_id = ? AND number = ? LIMIT 1")) {
            st.setLong(1, id);
            st.setInt(2, n);
            try (ResultSet rs = st.executeQuery()) {
                return rs.next();
            }
        }
    }

    /** The name of a live image cloned from version {@code n} of image {@code id}, or null. */
    private static String cloneOf(Connection c, long id, int n) throws SQLException {
        try (PreparedStatement st = c.prepareStatement(
                "SELECT name FROM images WHERE origin_image_id = ? AND origin_number = ? ORDER BY name LIMIT 1")) {
            st.setLong(1, id);
            st.setInt(2, n);
            try (ResultSet rs = st.executeQuery()) {
                return rs.next() ? rs.getString(1) : null;
            }
        }
    }

    static void setRetention(Connection c, String prefix, String policy) throws SQLException {
        if (policy == null) {
            try (PreparedStatement st = c.prepareStatement("DELETE FROM retention WHERE prefix = ?")) {
                st.setString(1, prefix);
                if (st.executeUpdate() == 0) throw new CaskException.NotFound("no retention policy for '" + prefix + "'");
            }
            return;
        }
        try (PreparedStatement st = c.prepareStatement(
                "INSERT INTO retention (prefix, policy) VALUES (?, ?) ON CONFLICT (prefix) DO UPDATE SET policy = excluded.policy")) {
            st.setString(1, prefix);
            st.setString(2, policy);
            st.executeUpdate();
        }
    }

    static SortedMap<String, String> retentionPolicies(Connection c) throws SQLException {
        SortedMap<String, String> out = new TreeMap<>();
        try (PreparedStatement st = c.prepareStatement("SELECT prefix, policy FROM retention");
             ResultSet rs = st.executeQuery()) {
            while (rs.next()) out.put(rs.getString(1), rs.getString(2));
        }
        return out;
    }
}
