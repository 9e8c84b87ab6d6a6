package dev.cask.catalog.postgres;

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
 * The SQL of what happens to an image after its versions are committed: labels, renames,
 * protection, removal of versions, retention policies. Run by {@link PostgresCatalog} inside its
 * transactions, after it has locked the image's row {@code FOR UPDATE} (so no commit, removal or
 * other change of the image runs meanwhile, on any node); these methods only read and write rows.
 *
 * <p>A <b>rename</b> changes only {@code images.name}: versions, labels, a clone's origin and a
 * version's parent hold image ids and follow untouched. The name is checked first (for a message
 * that names it); a create of the same name that commits between the check and the update makes
 * the {@code UNIQUE} constraint fail ({@code 23505}), which is the same Conflict.
 *
 * <p><b>Removing a version</b> is the SQLite catalog's rule, word for word
 * ({@code SqliteLifecycle}): kept, with the reason, are the head (so numbers are never reused), a
 * protected version, the origin of a live clone, and what {@code inUse} names (asked once, inside
 * the transaction, only when some version passed the other checks); a policy's removal also keeps
 * a version labelled, or made a user version, since the policy chose it. A version whose parent
 * was the removed one is relinked to the removed one's parent first; its labels go with it (the
 * foreign key cascades). A clone made from the version concurrently waits for the image lock
 * ({@code FOR SHARE}), so "origin of a live clone" is decided on the committed truth.
 */
final class PostgresLifecycle {
    private PostgresLifecycle() {}

    // ---- renames and labels ----

    static void rename(Connection c, long id, String from, String to) throws SQLException {
        if (from.equals(to)) return;
        CaskException.Conflict taken = new CaskException.Conflict("cannot rename image '" + from + "' to '" + to + "': '" + to
                + "' already exists");
        try (PreparedStatement st = c.prepareStatement("SELECT 1 FROM images WHERE name = ?")) {
            st.setString(1, to);
            try (ResultSet rs = st.executeQuery()) {
                if (rs.next()) throw taken;
            }
        }
        try (PreparedStatement st = c.prepareStatement("UPDATE images SET name = ? WHERE id = ?")) {
            st.setString(1, to);
            st.setLong(2, id);
            st.executeUpdate();
        } catch (SQLException e) {
            if ("23505".equals(e.getSQLState())) throw taken;
            throw e;
        }
    }

    static void tag(Connection c, long id, String name, String label, int number) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("SELECT number FROM tags WHERE image_id = ? AND label = ?")) {
            st.setLong(1, id);
            st.setString(2, label);
            try (ResultSet rs = st.executeQuery()) {
                if (rs.next()) {
                    throw new CaskException.Conflict("image '" + name + "' has the label '" + label + "' already (on version "
                            + rs.getInt(1) + "); remove it first");
                }
            }
        }
        try (PreparedStatement st = c.prepareStatement("INSERT INTO tags (image_id, label, number) VALUES (?, ?, ?)")) {
            st.setLong(1, id);
            st.setString(2, label);
            st.setInt(3, number);
            st.executeUpdate();
        }
    }

    static void untag(Connection c, long id, String name, String label) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("DELETE FROM tags WHERE image_id = ? AND label = ?")) {
            st.setLong(1, id);
            st.setString(2, label);
            if (st.executeUpdate() == 0) throw new CaskException.NotFound("image '" + name + "' has no label '" + label + "'");
        }
    }

    static SortedMap<String, Integer> tags(Connection c, long id) throws SQLException {
        SortedMap<String, Integer> out = new TreeMap<>();
        try (PreparedStatement st = c.prepareStatement("SELECT label, number FROM tags WHERE image_id = ?")) {
            st.setLong(1, id);
            try (ResultSet rs = st.executeQuery()) {
                while (rs.next()) out.put(rs.getString(1), rs.getInt(2));
            }
        }
        return out;
    }

    // ---- kinds and protection ----

    static void makeUserVersion(Connection c, long id, int number) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("UPDATE versions SET kind = 'user' WHERE image_id = ? AND number = ? AND kind <> 'user'")) {
            st.setLong(1, id);
            st.setInt(2, number);
            st.executeUpdate();
        }
    }

    static void setProtected(Connection c, long id, int number, boolean on) throws SQLException {
        try (PreparedStatement st = c.prepareStatement("UPDATE versions SET protected = ? WHERE image_id = ? AND number = ?")) {
            st.setBoolean(1, on);
            st.setLong(2, id);
            st.setInt(3, number);
            st.executeUpdate();
        }
    }

    // ---- removing versions ----

    /**
     * Removes what it may of {@code numbers} from image {@code id}, whose locked head is {@code head}.
     * {@code byPolicy}: the numbers are a retention policy's choice, made before this transaction.
     */
    static VersionDeletion deleteVersions(Connection c, long id, int head, Collection<Integer> numbers, Supplier<Set<Integer>> inUse,
                                          boolean byPolicy, boolean includeUser) throws SQLException {
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
                    isProtected = rs.getBoolean(1);
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
                    st.setNull(1, Types.BIGINT);
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

    // ---- retention policies ----

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
