package dev.cask.store.local;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** {@link LocationCache}: what it answers is what was put for that id, or nothing. */
class LocationCacheTest {
    private static ChunkId id(Random r) {
        byte[] b = new byte[ChunkId.LENGTH];
        r.nextBytes(b);
        return ChunkId.fromBytes(b);
    }

    @Test
    void answersWhatWasPutUntilReplacedOrForgotten() {
        LocationCache cache = new LocationCache(1 << 16);
        Random r = new Random(1);
        ChunkId a = id(r), b = id(r);
        ChunkLocation single = new ChunkLocation(7, 123_456_789_012L, 4_125);
        ChunkLocation inSegment = new ChunkLocation(Integer.MAX_VALUE, (1L << 43) - 1, 3 << 20, 255);
        assertNull(cache.get(a));
        cache.put(a, single);
        cache.put(b, inSegment);
        assertEquals(single, cache.get(a));
        assertEquals(inSegment, cache.get(b));
        ChunkLocation moved = new ChunkLocation(8, 16, 4_125);
        cache.put(a, moved);
        assertEquals(moved, cache.get(a), "a put replaces the id's entry");
        cache.invalidate(a);
        assertNull(cache.get(a));
        assertEquals(inSegment, cache.get(b), "forgetting one id leaves the others");
        cache.clear();
        assertNull(cache.get(b));
    }

    @Test
    void aLocationThatDoesNotFitIsNotKeptAndDropsTheOldAnswer() {
        LocationCache cache = new LocationCache(1 << 16);
        ChunkId a = id(new Random(2));
        cache.put(a, new ChunkLocation(1, 16, 100));
        cache.put(a, new ChunkLocation(1, 1L << 43, 100));
        assertNull(cache.get(a), "an offset of 8 TiB is not kept, and the old answer is gone");
        cache.put(a, new ChunkLocation(1, 16, 100, (1 << 20) - 1));
        assertNull(cache.get(a), "a slot of a million is not kept");
    }

    @Test
    void fullSetsEvictButNeverAnswerWithAnotherIdsLocation() {
        LocationCache cache = new LocationCache(1 << 14);
        long capacity = cache.capacity();
        Random r = new Random(3);
        Map<ChunkId, ChunkLocation> model = new HashMap<>();
        List<ChunkId> ids = new ArrayList<>();
        for (int i = 0; i < capacity / 2; i++) {
            ChunkId id = id(r);
            ChunkLocation loc = new ChunkLocation(i, 16L + 4096L * i, 4096 + i % 7, i % 3 == 0 ? i % 256 : ChunkLocation.SINGLE);
            cache.put(id, loc);
            model.put(id, loc);
            ids.add(id);
        }
        int found = 0;
        for (ChunkId id : ids) if (cache.get(id) != null) found++;
        assertTrue(found >= ids.size() * 9 / 10, "a half-full cache keeps most of what it was given: " + found + " of " + ids.size());
        for (int i = 0; i < capacity * 4; i++) { // ten times what fits: most sets overflow again and again
            ChunkId id = i % 5 == 0 ? ids.get(r.nextInt(ids.size())) : id(r);
            ChunkLocation loc = new ChunkLocation(r.nextInt(1 << 20), 16L + r.nextInt(1 << 30), 1 + r.nextInt(1 << 20));
            cache.put(id, loc);
            model.put(id, loc);
            if (i % 7 == 0) ids.add(id);
        }
        for (ChunkId id : ids) {
            ChunkLocation got = cache.get(id);
            if (got != null) assertEquals(model.get(id), got, "id " + id);
        }
    }

    /**
     * A cache bounded at 8M entries (256 MiB, what a command's default 6 GiB heap gets) takes
     * memory as it is given entries: a thousand ids (spread over every page of the bound, ids
     * being random) take one page, 200k take at most an eighth of the bound, and next to nothing
     * is lost on the way: a restarted server's location warmer puts an image's locations once,
     * and each one lost is an index query of a cold read later.
     */
    @Test
    void memoryGrowsWithWhatWasPutAndKeepsIt() {
        LocationCache cache = new LocationCache(8L << 20);
        long page = (long) LocationCache.PAGE_SETS * 4 * LocationCache.WAYS * Long.BYTES;
        assertEquals(8L << 20, cache.capacity());
        Random r = new Random(5);
        List<ChunkId> ids = new ArrayList<>();
        for (int i = 0; i < 200_000; i++) {
            ChunkId id = id(r);
            cache.put(id, new ChunkLocation(1, 16L + 4096L * i, 4096));
            ids.add(id);
            if (i == 999) assertEquals(page, cache.allocatedBytes(), "a thousand entries in one page");
        }
        assertTrue(cache.allocatedBytes() <= cache.capacity() * 32 / 8,
                "200k entries in at most 32 MiB: " + cache.allocatedBytes());
        int found = 0;
        for (int i = 0; i < ids.size(); i++) {
            ChunkLocation got = cache.get(ids.get(i));
            if (got != null) {
                assertEquals(new ChunkLocation(1, 16L + 4096L * i, 4096), got);
                found++;
            }
        }
        assertTrue(found >= ids.size() * 999 / 1000, "what was put is answered: " + found + " of " + ids.size());
    }

    @Test
    void idsOfOneSetKeepTheirOwnAnswers() {
        LocationCache cache = new LocationCache(1 << 14);
        List<ChunkId> ids = new ArrayList<>();
        for (int i = 0; i < LocationCache.WAYS; i++) { // same first four bytes: the same set
            byte[] b = new byte[ChunkId.LENGTH];
            b[7] = (byte) (i + 1);
            b[0] = 42;
            ids.add(ChunkId.fromBytes(b));
            cache.put(ids.get(i), new ChunkLocation(i, 16L * (i + 1), 100 + i));
        }
        for (int i = 0; i < ids.size(); i++) assertEquals(new ChunkLocation(i, 16L * (i + 1), 100 + i), cache.get(ids.get(i)));
        byte[] b = new byte[ChunkId.LENGTH];
        b[7] = (byte) 99;
        b[0] = 42;
        ChunkId ninth = ChunkId.fromBytes(b);
        cache.put(ninth, new ChunkLocation(99, 16, 100));
        assertEquals(new ChunkLocation(99, 16, 100), cache.get(ninth), "a full set makes room for the newest");
        int kept = 0;
        for (int i = 0; i < ids.size(); i++) {
            ChunkLocation got = cache.get(ids.get(i));
            if (got == null) continue;
            kept++;
            assertEquals(new ChunkLocation(i, 16L * (i + 1), 100 + i), got);
        }
        assertEquals(LocationCache.WAYS - 1, kept, "one entry made room, the others stay");
    }

    /** A full set makes room by dropping its least recently used entry: the oldest put, unless a read renewed it. */
    @Test
    void aFullSetDropsTheLeastRecentlyUsed() {
        long[] now = {0};
        LocationCache cache = new LocationCache(1 << 14, () -> now[0]);
        List<ChunkId> ids = new ArrayList<>();
        for (int i = 0; i <= LocationCache.WAYS + 1; i++) { // same first four bytes: the same set
            byte[] b = new byte[ChunkId.LENGTH];
            b[7] = (byte) (i + 1);
            b[0] = 7;
            ids.add(ChunkId.fromBytes(b));
        }
        long second = 1L << 30; // about a second of the clock: more than a stamp renewal needs
        for (int i = 0; i < LocationCache.WAYS; i++) {
            now[0] += second;
            cache.put(ids.get(i), new ChunkLocation(i, 16, 100));
        }
        now[0] += second;
        cache.put(ids.get(LocationCache.WAYS), new ChunkLocation(LocationCache.WAYS, 16, 100));
        assertNull(cache.get(ids.get(0)), "the oldest put made room");
        assertEquals(new ChunkLocation(1, 16, 100), cache.get(ids.get(1)), "a read of the now oldest renews it");
        now[0] += second;
        cache.put(ids.get(LocationCache.WAYS + 1), new ChunkLocation(99, 16, 100));
        assertNull(cache.get(ids.get(2)), "the least recently used made room, not the renewed one");
        assertEquals(new ChunkLocation(1, 16, 100), cache.get(ids.get(1)));
        for (int i = 3; i <= LocationCache.WAYS; i++) assertEquals(new ChunkLocation(i, 16, 100), cache.get(ids.get(i)));
        assertEquals(new ChunkLocation(99, 16, 100), cache.get(ids.get(LocationCache.WAYS + 1)));
    }

    /**
     * Writers rewrite the entries of a few ids (small sets, so entries are replaced under readers'
     * feet) while readers look them up: a reader gets null or a location some writer put for that
     * id, never a mixture of two entries' words.
     */
    @Test
    void racingWritersAndReadersNeverSeeATornEntry() throws Exception {
        LocationCache cache = new LocationCache(1);
        Random seed = new Random(4);
        List<ChunkId> ids = new ArrayList<>();
        for (int i = 0; i < 64; i++) ids.add(id(seed));
        // the location of id i's version v: pack i, offset and length from v, so any mixture of two
        // entries (another id's pack, or another version's offset and length) is recognisable
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int me = t;
            threads.add(Thread.ofPlatform().start(() -> {
                Random r = new Random(me);
                try {
                    for (int n = 0; n < 400_000; n++) {
                        int i = r.nextInt(ids.size());
                        if (me % 2 == 0) {
                            int v = r.nextInt(1 << 20);
                            cache.put(ids.get(i), new ChunkLocation(i, 16L * v, v + 1, v % 3 == 0 ? v % 1000 : ChunkLocation.SINGLE));
                        } else {
                            ChunkLocation got = cache.get(ids.get(i));
                            if (got == null) continue;
                            long v = got.offset() / 16;
                            if (got.pack() != i || got.length() != v + 1 || got.slot() != (v % 3 == 0 ? v % 1000 : ChunkLocation.SINGLE)) {
                                fail("id " + i + " answered with " + got);
                            }
                        }
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            }));
        }
        for (Thread t : threads) t.join();
        if (failure.get() != null) throw new AssertionError(failure.get());
    }
}
