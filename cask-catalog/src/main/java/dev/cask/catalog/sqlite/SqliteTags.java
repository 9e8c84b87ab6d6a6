package dev.cask.catalog.sqlite;

import dev.cask.common.CaskException;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * The SQL of labels and renames, run by {@link SqliteCatalog} inside its transactions (it checks
 * names and takes the locks; these only read and write rows of the connection they are given).
 *
 * <p>A label is a row {@code tags (image_id, label, number)}: unique per image, pointing at one
 * version through a foreign key that deletes the label with the version. A rename changes only
 * {@code images.name}: versions, labels, a clone's origin and a version's parent all hold image
 * ids, so they follow without being touched, and the {@code UNIQUE} name constraint makes a taken
 * name fail (checked first, for a message that names it).
 */
final class SqliteTags {
    private SqliteTags() {}

    static void rename(Connection c, long id, String from, String to) throws SQLException {
        if (from.equals(to)) return;
        try (PreparedStatement st = c.prepareStatement("SELECT 1 FROM images WHERE name = ?")) {
            st.setString(1, to);
            try (ResultSet rs = st.executeQuery()) {
                if (rs.next()) throw new CaskException.Conflict("cannot rename image '" + from + "' to '" + to + "': '" + to + "' already exists");
            }
        }
        try (PreparedStatement st = c.prepareStatement("UPDATE images SET name = ? WHERE id = ?")) {
            st.setString(1, to);
            st.setLong(2, id);
            st.executeUpdate();
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
}
