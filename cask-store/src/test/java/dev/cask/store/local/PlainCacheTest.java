package dev.cask.store.local;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link PlainCache}: a hit is exactly what was kept under that key, also while writers turn the
 * ring over under readers; the ring stays within its budget; what lookups found survives a turn
 * that lets go of what nobody asked for.
 */
class PlainCacheTest {
    private static final int MIB = 1 << 20;

    /** A one-chunk segment table for {@code plain} (id, length, CRC32C as the pack's table has them). */
    private static PackFormat.Segment table(byte[] plain) {
        return new PackFormat.Segment(1, new ChunkId[] {ChunkId.of(plain)}, new int[] {plain.length},
                new int[] {PackFormat.crc32c(plain, 0, plain.length)}, new byte[0], 0, 0);
    }

    /** The bytes the segment at (pack, offset) holds in these tests: a function of where it is. */
    private static byte[] contents(int pack, long offset, int length) {
        byte[] b = new byte[length];
        new Random(pack * 1_000_003L + offset).nextBytes(b);
        return b;
    }

    /** The plain bytes of the segment cached at {@code loc}, copied out while it is pinned, or null. */
    private static byte[] pinned(PlainCache cache, ChunkLocation loc, boolean quietly) {
        try (PlainCache.Pinned p = cache.pin(loc, quietly)) {
            return p == null ? null : Arrays.copyOfRange(p.bytes(), p.plainAt(), p.plainAt() + p.table().plainLength());
        }
    }

    private static ChunkLocation at(int pack, long offset, int length) {
        return new ChunkLocation(pack, offset, length, 0);
    }

    @Test
    void answersWhatWasKeptAndForgetsOnClear() {
        PlainCache cache = new PlainCache(8L * MIB);
        Random r = new Random(7);
        byte[] one = new byte[4096], two = new byte[4096];
        r.nextBytes(one);
        r.nextBytes(two);
        ChunkId a = ChunkId.of(one), b = ChunkId.of(two);
        assertNull(cache.chunk(a));
        assertNull(pinned(cache, at(3, 4096, 9000), false));
        assertEquals(0, cache.slabsAllocated(), "lookups alone take no memory");
        cache.keepChunk(a, one);
        assertArrayEquals(one, cache.chunk(a));
        assertNull(cache.chunk(b));
        assertTrue(cache.holdsChunk(a));
        byte[] copy = cache.chunk(a);
        copy[0]++;
        assertArrayEquals(one, cache.chunkQuietly(a), "a hit is a copy the caller may change");

        byte[] seg = contents(3, 4096, 16 << 10);
        PackFormat.Segment t = table(seg);
        ChunkLocation loc = at(3, 4096, 9000);
        cache.keepSegment(loc, t, Arrays.copyOf(seg, seg.length + 100)); // only plainLength() bytes count
        assertArrayEquals(seg, cache.fromSegment(t.ids()[0], loc));
        assertNull(cache.fromSegment(a, loc), "the slot holds another chunk");
        try (PlainCache.Pinned d = cache.pin(loc, true)) {
            assertNotNull(d);
            assertArrayEquals(seg, Arrays.copyOfRange(d.bytes(), d.plainAt(), d.plainAt() + seg.length));
            assertTrue(d.holds(t.ids()[0], 0));
            assertTrue(!d.holds(t.ids()[0], 1) && !d.holds(a, 0));
        }

        long before = cache.headSlab();
        for (int i = 0; i < 1000; i++) { // 16 MiB of the same segment, and of the same chunk: kept once
            cache.keepSegment(loc, t, seg);
            cache.keepChunk(a, one);
        }
        assertEquals(before, cache.headSlab(), "what is kept already takes no more room");
        assertEquals(1, cache.slabsAllocated());

        cache.clear();
        assertNull(cache.chunk(a));
        assertNull(pinned(cache, loc, true));
        cache.keepChunk(b, two);
        assertArrayEquals(two, cache.chunk(b), "what is kept after a clear is found");
    }

    @Test
    void keepsWhatFitsAndStaysWithinItsBudget() {
        long budget = 16L * MIB;
        PlainCache cache = new PlainCache(budget);
        int slab = cache.slabBytes();
        Random r = new Random(11);
        // a model: the last segment kept at each place; the cache may forget, never answer wrongly
        Map<Long, byte[]> kept = new HashMap<>();
        List<Long> order = new ArrayList<>();
        long written = 0;
        for (int i = 0; i < 4000; i++) {
            long offset = (long) r.nextInt(3000) * 65536;
            int length = 4096 * (1 + r.nextInt(16));
            // every keep of a place has other bytes (a rewritten pack), so that each one is written anew
            byte[] seg = contents(1, offset ^ ((long) order.size() << 40), length);
            cache.keepSegment(at(1, offset, length), table(seg), seg);
            kept.put(offset, seg);
            order.add(offset);
            written += length;
            // everything kept within the last (budget - 2 slabs) bytes is still there
            long recent = 0;
            for (int j = order.size() - 1; j >= 0 && j >= order.size() - 40; j--) {
                long o = order.get(j);
                byte[] want = kept.get(o);
                recent += want.length;
                if (recent > budget - 2L * slab) break;
                assertNotNull(pinned(cache, at(1, o, want.length), true), "kept " + recent + " bytes ago, within the budget");
            }
            // any hit is exactly the latest bytes kept there
            long probe = (long) r.nextInt(3000) * 65536;
            byte[] want = kept.get(probe);
            byte[] hit = pinned(cache, at(1, probe, 1), r.nextBoolean());
            if (hit != null) assertArrayEquals(want, hit, "segment at " + probe);
        }
        assertTrue(written > 3 * budget, "the ring turned over several times: " + written);
        assertTrue(cache.slabsAllocated() * (long) slab <= budget, cache.slabsAllocated() + " slabs of " + slab);
    }

    /**
     * Keeps {@code first} segments of {@code length} at the start of the ring, reads every
     * {@code readEvery}-th of them (a counted lookup), then keeps a stream of segments nobody
     * reads until the first slab goes.
     */
    private static void keepReadThenStream(PlainCache cache, int slabs, int first, int length, int readEvery) {
        for (int i = 0; i < first; i++) cache.keepSegment(at(1, i, length), table(contents(1, i, length)), contents(1, i, length));
        for (int i = 0; i < first; i += readEvery) assertNotNull(cache.fromSegment(table(contents(1, i, length)).ids()[0], at(1, i, length)));
        for (long i = 0; cache.headSlab() < slabs - 1; i++) {
            byte[] seg = contents(2, i, length);
            cache.keepSegment(at(2, i, length), table(seg), seg);
        }
    }

    @Test
    void whatLookupsFoundOutlivesAStreamOfNewEntries() {
        long budget = 16L * MIB;
        PlainCache cache = new PlainCache(budget);
        int slabs = (int) (budget / cache.slabBytes());
        int length = 16 << 10;
        int first = 32; // half a slab: the oldest part of the ring once the stream below passes
        // every eighth is read: 4 of 16 KiB, within the part of a slab the second chance copies
        keepReadThenStream(cache, slabs, first, length, 8);
        for (int i = 0; i < first; i++) {
            byte[] d = pinned(cache, at(1, i, length), true);
            if (i % 8 == 0) {
                assertNotNull(d, "segment " + i + " was read: it is copied forward when its slab goes");
                assertArrayEquals(contents(1, i, length), d);
            } else {
                assertNull(d, "segment " + i + " was never read: it went with its slab");
            }
        }
    }

    /** The second chance copies no more than its part of a slab (the copy is a client's wait): the rest of what was read goes too. */
    @Test
    void theSecondChanceCopiesAtMostItsPartOfASlab() {
        long budget = 16L * MIB;
        PlainCache cache = new PlainCache(budget);
        int slabs = (int) (budget / cache.slabBytes());
        int length = 16 << 10;
        int first = cache.slabBytes() / 2 / length - 1; // nearly half a slab, every one of them read
        keepReadThenStream(cache, slabs, first, length, 1);
        int kept = 0;
        for (int i = 0; i < first; i++) {
            byte[] d = pinned(cache, at(1, i, length), true);
            if (d != null) {
                assertArrayEquals(contents(1, i, length), d);
                kept++;
            }
        }
        int most = cache.slabBytes() / PlainCache.SECOND_CHANCE_PART / length;
        assertTrue(kept >= 1 && kept <= most, kept + " of " + first + " read segments outlived their slab: at most " + most);
    }

    /**
     * Writers turn a small ring over many times while readers read segments in it: every segment a
     * reader holds pinned, and every chunk it copies out, is exactly the bytes kept at that place.
     * (A writer that does not wait for a pinned slab, or a copy not checked afterwards for whether
     * its slab was let go meanwhile, gives other segments' bytes here.)
     */
    @Test
    void readersNeverSeeBytesARacingWriterPutInTheirPlace() throws Exception {
        PlainCache cache = new PlainCache(4L * MIB); // four slabs of 1 MiB
        int places = 512, length = 32 << 10;
        byte[][] segs = new byte[places][];
        PackFormat.Segment[] tables = new PackFormat.Segment[places];
        for (int i = 0; i < places; i++) {
            segs[i] = contents(5, i, length);
            tables[i] = table(segs[i]);
        }
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicLong hits = new AtomicLong();
        long until = System.nanoTime() + 2_000_000_000L;
        List<Thread> threads = new ArrayList<>();
        for (int w = 0; w < 2; w++) {
            int seed = w;
            threads.add(Thread.ofPlatform().start(() -> {
                Random r = new Random(seed);
                while (System.nanoTime() < until && failure.get() == null) {
                    int i = r.nextInt(places);
                    cache.keepSegment(at(5, i, length), tables[i], segs[i]);
                }
            }));
        }
        for (int t = 0; t < 3; t++) {
            int seed = 100 + t;
            threads.add(Thread.ofPlatform().start(() -> {
                Random r = new Random(seed);
                try {
                    while (System.nanoTime() < until && failure.get() == null) {
                        int i = r.nextInt(places);
                        try (PlainCache.Pinned d = cache.pin(at(5, i, length), r.nextBoolean())) {
                            if (d == null) continue;
                            hits.incrementAndGet();
                            // read twice, a moment apart, as a bulk read hands chunks over from the slab
                            for (int look = 0; look < 2; look++) {
                                if (!Arrays.equals(segs[i], 0, length, d.bytes(), d.plainAt(), d.plainAt() + length)) {
                                    throw new AssertionError("pinned segment " + i + ": other bytes");
                                }
                                Thread.yield();
                            }
                        }
                        byte[] chunk = cache.fromSegment(tables[i].ids()[0], at(5, i, length));
                        if (chunk != null && !Arrays.equals(segs[i], chunk)) throw new AssertionError("chunk of segment " + i + ": other bytes");
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            }));
        }
        for (Thread t : threads) t.join();
        if (failure.get() != null) throw new AssertionError(failure.get());
        assertTrue(hits.get() > 1000, "readers found segments: " + hits.get());
    }
}
