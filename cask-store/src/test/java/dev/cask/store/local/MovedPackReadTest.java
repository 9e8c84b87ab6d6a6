package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
import dev.cask.store.ChunkId;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A process that cached where a chunk is while another process's compaction moved the chunk and
 * deleted its pack: its reads (get and getAll) ask the index again and get the bytes from the copy.
 * The other process is played by hand: a copy of the pack under a new number, the index switched
 * through its own connection, the old pack deleted.
 */
class MovedPackReadTest {
    @TempDir
    Path dir;

    @AfterEach
    void cache() {
        System.clearProperty("cask.cache.bytes");
    }

    @Test
    void aCachedLocationIntoADeletedPackFindsTheCopy() throws Exception {
        System.setProperty("cask.cache.bytes", "0"); // no plain cache: reads go to the packs
        Random rnd = new Random(5);
        try (LocalChunkStore store = LocalChunkStore.open(dir, new LocalChunkStore.Options(3, 64 << 10, false))) {
            List<ChunkId> ids = new ArrayList<>();
            List<byte[]> data = new ArrayList<>();
            putRandom(store, rnd, ids, data);
            ChunkId moved = ids.get(0);
            ChunkLocation old = store.locate(moved);
            assertEquals(1, old.pack());
            assertArrayEquals(data.get(0), store.get(moved)); // location cached, pack 1 open for reading

            move(store, dir, 1, 1000); // the other process: copy pack 1 as pack 1000, switch the entries, delete pack 1

            store.checkDeletedPacksSoon(); // the read channel of pack 1 goes at the next read
            assertArrayEquals(data.get(0), store.get(moved));
            assertEquals(1000, store.locate(moved).pack());
            List<ChunkId> all = new ArrayList<>(ids);
            byte[][] got = new byte[all.size()][];
            store.getAll(all, (i, b, off, len) -> got[i] = java.util.Arrays.copyOfRange(b, off, off + len));
            for (int i = 0; i < all.size(); i++) assertArrayEquals(data.get(i), got[i], "chunk " + i);
            assertFalse(Files.exists(store.packPath(1)));
            assertTrue(store.damageMarks().isEmpty(), "a moved chunk is not damage: " + store.damageMarks());
        }
    }

    /** Puts 40 random 4 KiB records (several 64 KiB packs) and syncs; their ids and bytes go to {@code ids} and {@code data}. */
    static void putRandom(LocalChunkStore store, Random rnd, List<ChunkId> ids, List<byte[]> data) {
        for (int i = 0; i < 40; i++) {
            byte[] b = new byte[4096];
            rnd.nextBytes(b);
            ids.add(store.put(b));
            data.add(b);
        }
        store.sync();
    }

    /** The other process's compaction, by hand: pack {@code from} copied as {@code to}, its entries switched, {@code from} deleted. */
    static void move(LocalChunkStore store, Path dir, int from, int to) throws java.io.IOException {
        Files.copy(store.packPath(from), store.packPath(to));
        try (ChunkIndex other = new ChunkIndex(dir.resolve("index.db"))) {
            Map<ChunkId, ChunkLocation> moves = new java.util.HashMap<>();
            for (var e : other.entriesIn(from).entrySet()) {
                ChunkLocation l = e.getValue();
                moves.put(e.getKey(), new ChunkLocation(to, l.offset(), l.length(), l.slot()));
            }
            other.relocate(moves, from);
        }
        Files.delete(store.packPath(from));
    }

    /**
     * The chunk moves twice: once before the read (its cached pack is gone), and again between the
     * index's answer and the read of the copy it named (a collector compacting in a loop, packs
     * small enough to fill in one run): the read asks the index once more and finds the second
     * copy. It failed with "pack 1000: file ... is missing" (GcConcurrencyTest, two processes, on CI).
     */
    @Test
    void aChunkMovedAgainBetweenTheLookupAndTheReadIsFollowed() throws Exception {
        System.setProperty("cask.cache.bytes", "0");
        Random rnd = new Random(6);
        try (LocalChunkStore store = LocalChunkStore.open(dir, new LocalChunkStore.Options(3, 64 << 10, false))) {
            List<ChunkId> ids = new ArrayList<>();
            List<byte[]> data = new ArrayList<>();
            putRandom(store, rnd, ids, data);
            ChunkId moved = ids.get(0);
            assertArrayEquals(data.get(0), store.get(moved)); // location cached in pack 1
            move(store, dir, 1, 1000);
            store.checkDeletedPacksSoon();
            int[] hooks = {0};
            store.beforeReadElsewhere = () -> {
                if (hooks[0]++ > 0) return;
                try {
                    move(store, dir, 1000, 1001); // compacted again after the lookup named pack 1000
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            };
            assertArrayEquals(data.get(0), store.get(moved));
            assertEquals(1001, store.locate(moved).pack());
            assertEquals(2, hooks[0], "after pack 1 was gone: pack 1000 tried (gone by then), pack 1001 read");

            // the same for a bulk read whose cached locations point into a pack gone twice over
            ChunkId second = ids.get(1);
            move(store, dir, 1001, 1002);
            store.checkDeletedPacksSoon();
            hooks[0] = 0;
            store.beforeReadElsewhere = () -> {
                if (hooks[0]++ > 0) return;
                try {
                    move(store, dir, 1002, 1003);
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            };
            byte[][] got = new byte[2][];
            store.getAll(List.of(moved, second), (i, b, off, len) -> got[i] = java.util.Arrays.copyOfRange(b, off, off + len));
            assertArrayEquals(data.get(0), got[0]);
            assertArrayEquals(data.get(1), got[1]);
            assertTrue(store.damageMarks().isEmpty(), "a moved chunk is not damage: " + store.damageMarks());
        }
    }

    /** A pack gone where the index still points is not followed forever: the read fails naming that pack. */
    @Test
    void aPackGoneWhereTheIndexStillPointsFailsNamingIt() throws Exception {
        System.setProperty("cask.cache.bytes", "0");
        try (LocalChunkStore store = LocalChunkStore.open(dir, new LocalChunkStore.Options(3, 64 << 10, false))) {
            byte[] b = new byte[4096];
            new Random(7).nextBytes(b);
            ChunkId id = store.put(b);
            for (int i = 0; i < 20; i++) { // more packs, so pack 1 is not the highest
                byte[] more = new byte[4096];
                new Random(i).nextBytes(more);
                store.put(more);
            }
            store.sync();
            assertArrayEquals(b, store.get(id));
            move(store, dir, 1, 1000);
            Files.delete(store.packPath(1000)); // lost by hand: the index points at nothing
            store.checkDeletedPacksSoon();
            var e = org.junit.jupiter.api.Assertions.assertThrows(dev.cask.common.CaskException.Corrupt.class, () -> store.get(id));
            assertTrue(e.getMessage().contains("pack 1000"), e.getMessage());
        }
    }
}
