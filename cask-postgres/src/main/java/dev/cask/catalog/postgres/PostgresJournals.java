package dev.cask.catalog.postgres;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.volume.JournalFiles;
import dev.cask.volume.JournalStore;
import dev.cask.volume.Leases;
import dev.cask.volume.LocalJournals;
import dev.cask.volume.SharedJournal;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.SortedSet;
import java.util.function.Consumer;

/**
 * The journals of a shared store (issue 14 item 5): each volume writes its journal in this node's
 * state directory ({@link LocalJournals}) and, at every sync, copies the bytes that sync made
 * durable into table {@code journal_ranges} of the catalog's database, in one transaction that
 * first checks the image's lease epoch ({@link PostgresLeases#fence}); the FLUSH is acknowledged
 * after that commit. So a node that dies loses no flushed write: the next node to open the image
 * (after the lease's time to live) rebuilds the journal files from the rows and replays them, and a
 * node whose lease was taken over can add nothing (its FLUSH fails, fenced).
 *
 * <p><b>Rows.</b> {@code (image, generation, offset, data)}: a range of a generation file, at most
 * {@value #ROW_BYTES} bytes a row; one sync writes its range as consecutive rows. A retried sync
 * (the commit's outcome unknown) writes rows at the same offsets again, with the same bytes or
 * more; the longer row wins. A sync whose range holds a base record (its generation replays from a
 * version that holds every older generation, see {@code JournalFiles}) deletes the image's older
 * generations in the same transaction: so a generation whose deletion after a checkpoint failed
 * (the database unreachable for a moment) can never outlive the next checkpoint, and never replays
 * over newer writes. A generation deleted after its checkpoint loses its rows at once (a
 * statement, fenced too).
 *
 * <p><b>What FLUSH costs.</b> The local fdatasync, then one transaction: a {@code SELECT ... FOR
 * SHARE} of the lease row and an {@code INSERT} per {@value #ROW_BYTES} bytes written since the
 * previous sync, committed with PostgreSQL's own fsync. Writes that no FLUSH covered before a
 * checkpoint folded them into a version never reach the table.
 *
 * <p>Thread-safe; a pool of its own (four connections), so FLUSHes never wait behind catalog work.
 */
public final class PostgresJournals implements JournalStore {
    /** Largest row of journal bytes. */
    static final int ROW_BYTES = 4 << 20;

    private final LocalJournals local;
    private final PgTransactions tx;
    private final String display;

    private PostgresJournals(LocalJournals local, PgTransactions tx, String display) {
        this.local = local;
        this.tx = tx;
        this.display = display;
    }

    /** The journals of the catalog at {@code url} (its schema created or migrated as the catalog's is), with local files in {@code local}. */
    public static PostgresJournals open(CatalogUrl url, PostgresCatalog.Options options, LocalJournals local) {
        PgTransactions tx = PgTransactions.open(url, new PostgresCatalog.Options(4, options.connectTimeout(), options.lockTimeout()), "journals in catalog");
        try {
            tx.prepare("create or check the schema", c -> PostgresSchema.prepare(c, url.display()));
            return new PostgresJournals(local, tx, url.display());
        } catch (RuntimeException e) {
            tx.close();
            throw e;
        }
    }

    @Override
    public JournalFiles files(String image) {
        return local.files(image);
    }

    @Override
    public boolean hasLeftover(String image) {
        return local.hasLeftover(image) || tx.run("look for the journal of image '" + image + "'", false, c -> {
            try (PreparedStatement st = c.prepareStatement("SELECT EXISTS (SELECT 1 FROM journal_ranges WHERE image = ?)")) {
                st.setString(1, image);
                try (ResultSet rs = st.executeQuery()) {
                    rs.next();
                    return rs.getBoolean(1);
                }
            }
        });
    }

    /** The base versions in the headers of the shared generations (at byte 16 of each one's first row), and of the local files. */
    @Override
    public SortedSet<Integer> baseVersions(String image) {
        SortedSet<Integer> out = local.baseVersions(image);
        out.addAll(tx.run("read the journal headers of image '" + image + "'", false, c -> {
            SortedSet<Integer> bases = new java.util.TreeSet<>();
            try (PreparedStatement st = c.prepareStatement(
                    "SELECT generation, substring(data from 1 for 20) FROM journal_ranges WHERE image = ? AND \"offset\" = 0")) {
                st.setString(1, image);
                try (ResultSet rs = st.executeQuery()) {
                    while (rs.next()) {
                        byte[] h = rs.getBytes(2);
                        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(h);
                        if (h.length < 20 || b.getInt(0) != 0x636a6e6c) {
                            throw new CaskException.Corrupt("image '" + image + "': shared journal generation " + rs.getLong(1)
                                    + " in catalog " + display + " has no valid header");
                        }
                        bases.add(b.getInt(16));
                    }
                }
            }
            return bases;
        }));
        return out;
    }

    @Override
    public void discard(String image) {
        tx.run("delete the journal of image '" + image + "'", true, c -> {
            try (PreparedStatement st = c.prepareStatement("DELETE FROM journal_ranges WHERE image = ?")) {
                st.setString(1, image);
                st.executeUpdate();
            }
            return null;
        });
        local.discard(image);
    }

    @Override
    public void forEachFormatOneChunk(Consumer<ChunkId> sink) {
        local.forEachFormatOneChunk(sink);
    }

    @Override
    public SharedJournal shared(String image, Leases.Lease lease) {
        return new Shared(image, lease.epoch());
    }

    @Override
    public String where() {
        return local.where() + ", copied to catalog " + display + " (table journal_ranges)";
    }

    @Override
    public void close() {
        tx.close();
    }

    /** One volume's shared copy, written under lease epoch {@code epoch}. */
    private final class Shared implements SharedJournal {
        private final String image;
        private final long epoch;

        Shared(String image, long epoch) {
            this.image = image;
            this.epoch = epoch;
        }

        @Override
        public void synced(long generation, long from, long to, Bytes bytes, boolean obsoletesOlder) {
            tx.run("image '" + image + "': copy journal generation " + generation + " bytes " + from + "-" + to, true, c -> {
                PostgresLeases.fence(c, image, epoch);
                if (obsoletesOlder) delete(c, "generation < ?", generation);
                try (PreparedStatement st = c.prepareStatement("""
                        INSERT INTO journal_ranges (image, generation, "offset", data) VALUES (?, ?, ?, ?)
                        ON CONFLICT (image, generation, "offset") DO UPDATE SET data = EXCLUDED.data
                        WHERE length(journal_ranges.data) < length(EXCLUDED.data)""")) {
                    for (long at = from; at < to; at += ROW_BYTES) {
                        int n = (int) Math.min(ROW_BYTES, to - at);
                        st.setString(1, image);
                        st.setLong(2, generation);
                        st.setLong(3, at);
                        st.setBytes(4, bytes.read(at, n));
                        st.executeUpdate();
                    }
                }
                return null;
            });
        }

        @Override
        public void read(RangeSink sink) {
            tx.run("image '" + image + "': read its shared journal", false, c -> {
                try (PreparedStatement st = c.prepareStatement(
                        "SELECT generation, \"offset\", data FROM journal_ranges WHERE image = ? ORDER BY generation, \"offset\"")) {
                    st.setFetchSize(4); // rows of up to 4 MiB: a few at a time
                    st.setString(1, image);
                    try (ResultSet rs = st.executeQuery()) {
                        while (rs.next()) sink.range(rs.getLong(1), rs.getLong(2), rs.getBytes(3));
                    }
                }
                return null;
            });
        }

        @Override
        public void deleted(long generation) {
            tx.run("image '" + image + "': delete journal generation " + generation + " from its shared copy", true, c -> {
                PostgresLeases.fence(c, image, epoch);
                delete(c, "generation = ?", generation);
                return null;
            });
        }

        private void delete(Connection c, String which, long generation) throws SQLException {
            try (PreparedStatement st = c.prepareStatement("DELETE FROM journal_ranges WHERE image = ? AND " + which)) {
                st.setString(1, image);
                st.setLong(2, generation);
                st.executeUpdate();
            }
        }
    }
}
