package dev.cask.catalog.postgres;

import dev.cask.common.CaskException;
import dev.cask.volume.Leases;
import dev.cask.volume.LocalJournals;
import dev.cask.volume.SharedJournal;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The shared copy of journals in PostgreSQL ({@link PostgresJournals}, a real server): ranges come
 * back by generation and offset, a retried range that grew wins, a base record's range drops older
 * generations, a writer whose lease was taken over adds nothing (fenced), and what commands ask of
 * journals (leftovers, base versions, discard) covers the shared copy. Volumes replaying it on
 * another node are tested end to end in cask-cli's LeaseFencingTest.
 */
class PostgresJournalsTest {
    private static PostgresServer server;
    private static String database;
    private static final AtomicInteger SCHEMAS = new AtomicInteger();

    @TempDir
    Path dir;

    @BeforeAll
    static void database() {
        server = PostgresServer.shared();
        database = server.createDatabase("journals_test");
    }

    private CatalogUrl url() {
        String schema = "j" + SCHEMAS.incrementAndGet();
        server.execute(database, "CREATE SCHEMA " + schema);
        return CatalogUrl.parse(server.url(database)).with("currentSchema", schema);
    }

    /** A generation file's bytes: a header naming {@code base} at byte 16, then {@code records} random bytes. */
    private static byte[] generation(long g, int base, int records) {
        ByteBuffer b = ByteBuffer.allocate(26 + records);
        b.putInt(0x636a6e6c).putInt(3).putLong(g).putInt(base).putShort((short) 0).putInt(0);
        byte[] r = new byte[records];
        new Random(g).nextBytes(r);
        b.put(r);
        return b.array();
    }

    private static SharedJournal.Bytes of(byte[] file) {
        return (offset, length) -> Arrays.copyOfRange(file, (int) offset, (int) offset + length);
    }

    /** The shared copy as generation -> bytes, rebuilt from its ranges as a restore writes them. */
    private static java.util.TreeMap<Long, byte[]> read(SharedJournal s) {
        java.util.TreeMap<Long, byte[]> out = new java.util.TreeMap<>();
        List<long[]> order = new ArrayList<>();
        s.read((g, offset, data) -> {
            order.add(new long[]{g, offset});
            byte[] f = out.getOrDefault(g, new byte[0]);
            if (f.length < offset + data.length) f = Arrays.copyOf(f, (int) offset + data.length);
            System.arraycopy(data, 0, f, (int) offset, data.length);
            out.put(g, f);
        });
        for (int i = 1; i < order.size(); i++) {
            long[] a = order.get(i - 1), b = order.get(i);
            assertTrue(a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]), "ranges by generation, then offset");
        }
        return out;
    }

    @Test
    void rangesComeBackWholeInOrderAndARetriedRangeThatGrewWins() {
        CatalogUrl url = url();
        try (PostgresLeases leases = PostgresLeases.open(url, PostgresCatalog.Options.defaults(), Duration.ofSeconds(30));
             PostgresJournals journals = PostgresJournals.open(url, PostgresCatalog.Options.defaults(), new LocalJournals(dir))) {
            Leases.Lease lease = leases.tryTake("team/vm").orElseThrow();
            SharedJournal s = journals.shared("team/vm", lease);
            assertFalse(journals.hasLeftover("team/vm"));
            byte[] g1 = generation(1, 1, PostgresJournals.ROW_BYTES + 5000); // two rows
            s.synced(1, 0, 100, of(g1), false);
            s.synced(1, 100, 300, of(g1), false);
            s.synced(1, 100, g1.length, of(g1), false); // a retry that covers more: the longer row wins
            byte[] g2 = generation(2, 1, 64);
            s.synced(2, 0, g2.length, of(g2), false);
            var got = read(s);
            assertEquals(List.of(1L, 2L), new ArrayList<>(got.keySet()));
            assertArrayEquals(g1, got.get(1L));
            assertArrayEquals(g2, got.get(2L));
            assertTrue(journals.hasLeftover("team/vm"), "a crash now would leave these to replay");
            assertEquals(java.util.Set.of(1), journals.baseVersions("team/vm"));
            assertFalse(journals.hasLeftover("team/other"));

            s.deleted(1);
            assertEquals(List.of(2L), new ArrayList<>(read(s).keySet()));
            lease.close();
            journals.discard("team/vm");
            assertFalse(journals.hasLeftover("team/vm"), "rm of the image drops its shared journal");
        }
    }

    @Test
    void aRangeWithABaseRecordDropsEveryOlderGenerationInTheSameStep() {
        CatalogUrl url = url();
        try (PostgresLeases leases = PostgresLeases.open(url, PostgresCatalog.Options.defaults(), Duration.ofSeconds(30));
             PostgresJournals journals = PostgresJournals.open(url, PostgresCatalog.Options.defaults(), new LocalJournals(dir))) {
            SharedJournal s = journals.shared("vm", leases.tryTake("vm").orElseThrow());
            for (long g = 3; g <= 5; g++) {
                byte[] f = generation(g, 7, 100);
                s.synced(g, 0, f.length, of(f), false);
            }
            assertEquals(java.util.Set.of(7), journals.baseVersions("vm"));
            byte[] g6 = generation(6, 9, 40);
            s.synced(6, 0, g6.length, of(g6), true);
            assertEquals(List.of(6L), new ArrayList<>(read(s).keySet()), "generations 3-5 are in version 9: gone");
            assertEquals(java.util.Set.of(9), journals.baseVersions("vm"));
        }
    }

    @Test
    void aWriterWhoseLeaseWasTakenOverCanAddNothing() throws Exception {
        CatalogUrl url = url();
        try (PostgresLeases nodeA = PostgresLeases.open(url, PostgresCatalog.Options.defaults(), Duration.ofSeconds(1));
             PostgresLeases nodeB = PostgresLeases.open(url, PostgresCatalog.Options.defaults(), Duration.ofSeconds(1));
             PostgresJournals journals = PostgresJournals.open(url, PostgresCatalog.Options.defaults(), new LocalJournals(dir))) {
            SharedJournal a = journals.shared("vm", nodeA.tryTake("vm").orElseThrow());
            byte[] g1 = generation(1, 1, 1000);
            a.synced(1, 0, 500, of(g1), false);
            nodeA.stopRenewing(); // frozen
            Leases.Lease b = null;
            long end = System.nanoTime() + 30_000_000_000L;
            while (b == null && System.nanoTime() < end) {
                b = nodeB.tryTake("vm").orElse(null);
                if (b == null) Thread.sleep(50);
            }
            assertTrue(b != null, "B takes the image over once A's lease expired");
            CaskException.Fenced e = assertThrows(CaskException.Fenced.class, () -> a.synced(1, 500, 1000, of(g1), false));
            assertTrue(e.getMessage().contains("image 'vm'") && e.getMessage().contains("epoch"), e.getMessage());
            assertThrows(CaskException.Fenced.class, () -> a.deleted(1));
            SharedJournal mine = journals.shared("vm", b);
            assertArrayEquals(Arrays.copyOf(g1, 500), read(mine).get(1L), "A's late bytes are not there; its flushed ones are");
        }
    }
}
