package dev.cask.store.local;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * A store's index answers kept in memory (chunk id to {@link ChunkLocation}), as numbers in arrays
 * of {@code long}: no object per entry.
 *
 * <p><b>Why not a map.</b> Until session 30 this was a Caffeine cache of {@code ChunkId ->
 * ChunkLocation}: five objects an entry (the id, its bytes, the location, Caffeine's node and the
 * hash table's node), ~200 bytes. A checkpoint of 1 GiB of new 4 KiB blocks puts 262k locations,
 * so a million new objects that survive, which the collector then copies out of the young
 * generation and marks in every old collection (a server's heap after one such image held 90 MB
 * of live objects, 53 MB of them this cache's). Profiled, a server's collector took a quarter of
 * the CPU of the first sequential read after a checkpoint, and the lookups (hash, node, equals)
 * a tenth of every sequential read of unique data, one per record its run-ahead finds.
 *
 * <p><b>How.</b> Set-associative, {@link #WAYS} ways a set. An entry is four longs: the id's first
 * eight bytes (its key), the pack and length, the offset and slot, and a last word with a 32-bit
 * check (a hash of the other three) and a 32-bit stamp (when it was put or last found useful, in
 * units of about a millisecond). A set keeps its keys together (one cache line to search) and
 * each kind of word in a row of its own. The set is chosen by the key's upper half (so an entry
 * knows its set under any mask, which growing needs; the second eight bytes chose it before). A put
 * replaces the entry of the same key, else an empty one, else the one with the oldest stamp; a
 * hit renews an entry's stamp when it is more than about a second old (so reads mostly write
 * nothing): least recently used, at a second's grain.
 *
 * <p><b>Memory grows with use.</b> The table starts at one page of {@link #PAGE_SETS} sets (512
 * KiB, 16k entries) and doubles its sets, up to the bound it was made with, whenever it has been
 * given more new entries (ids it did not hold) than a quarter of its room; pages are taken when
 * first written. At a quarter full, a set of eight ways seldom overflows: 200k random ids lose 50
 * (0.025 %) on the way to 1M of room (32 MiB; LocationCacheTest). Until session 35 the whole bound
 * was in use from the start: ids are random, so the first few thousand puts touched every page,
 * and a command on a 6 GiB default heap (256 MiB of pages) paid for them all: a 4-image import
 * (230k chunks) and export spent most of a second of CPU in the kernel's page faults, zeroing and
 * the young collector copying those pages (one pause of 0.24 s). Growing with use, in interleaved
 * runs against the whole bound: the import 4.74 -> 3.94 s, the export 3.39 -> 2.47 s (medians of
 * 4; in a busier hour 5.58 -> 4.72 and 3.66 -> 2.76, of 5). Growing takes a larger set mask (by
 * compare-and-set), then moves the entries whose set under it is a new one, on the thread whose
 * put made it grow (a pass over the old sets: 16 MiB to reach 1M entries, done once). Without the
 * move, a restarted server's location warmer would lose about half of what it put on the way to
 * the size it needs, and a cold read of each of those would query the index. The mask only grows,
 * so a lookup never lands on a set its key did not use; an entry left behind in an old set (a put
 * racing the move) is a miss.
 *
 * <p><b>Why least recently used.</b> The first version replaced a way at random. A server that
 * had taken 5 GiB of new 4 KiB blocks (1.3 million locations in its 2 million) then missed on
 * some of the newest image's blocks, and each miss is an index query: its sequential reads of
 * that image cost 100 ticks of CPU a GiB against 64 for the second image, and its random reads
 * fell from 373 to 269 MiB/s. Random replacement throws out new entries as readily as old ones.
 *
 * <p><b>Races, on purpose.</b> Nothing is locked, and the words are read and written plainly (no
 * ordering between them; VarHandle accesses were slower in a young server's interpreted and C1
 * code), so a reader can see an entry half rewritten, or in principle a word torn: its check word
 * then does not match the other three and the read is a miss. A key matches eight bytes of the id, not all
 * 32: two ids with the same first eight bytes in one set (about 2^-64 for ids that are SHA-256
 * hashes) would answer one with the other's location. Neither can hand over wrong bytes: this is
 * a cache of hints, like the index answers it holds, and every read checks the record or segment
 * table it finds against the id it asked for (see {@link LocalChunkStore#get}); a wrong or stale
 * answer costs an index query. Stale answers are allowed for the same reason (see
 * {@link GcEpochs}, "Caches").
 *
 * <p>A location that does not fit the encoding (a pack offset of 8 TiB or more, a slot of a
 * million or more) is not kept: its reads ask the index. Thread-safe.
 */
final class LocationCache {
    static final int WAYS = 8;
    /** Sets per page: 2048 sets of 32 longs, 512 KiB. */
    static final int PAGE_SETS = 1 << 11;
    private static final int SET_LONGS = 4 * WAYS;
    private static final long MAX_OFFSET = 1L << 43;
    private static final int SLOT_BITS = 20;
    /** Stamp units a hit may be old before it renews its entry: about a second. */
    private static final int RENEW = 1 << 10;

    /** Sets minus one, a power of two less one: grows from one page's sets toward {@link #maxMask}. */
    private volatile int setMask = PAGE_SETS - 1;
    private final int maxMask;
    /** New entries put (ids their set did not hold), evictions not subtracted; racy: a lost count only delays growth. */
    private long fresh;
    private final AtomicReferenceArray<long[]> pages;
    private final java.util.function.LongSupplier nanos;
    /** The stamp of the latest put, read by hits instead of the clock (racy: a hint). */
    private int latest;
    private static final VarHandle SET_MASK;

    static {
        try {
            SET_MASK = MethodHandles.lookup().findVarHandle(LocationCache.class, "setMask", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** A cache of about {@code entries} entries (rounded up to a power of two, at least one page's). */
    LocationCache(long entries) {
        this(entries, System::nanoTime);
    }

    /** With the clock {@code nanos} (tests). */
    LocationCache(long entries, java.util.function.LongSupplier nanos) {
        long sets = Math.max(PAGE_SETS, Long.highestOneBit(Math.max(1, (entries + WAYS - 1) / WAYS - 1)) << 1);
        sets = Math.min(sets, 1L << 30);
        this.maxMask = (int) (sets - 1);
        this.pages = new AtomicReferenceArray<>((int) (sets / PAGE_SETS));
        this.nanos = nanos;
        this.latest = stampNow();
    }

    /** How many entries it can hold once grown to its bound. */
    long capacity() {
        return ((long) maxMask + 1) * WAYS;
    }

    /** Bytes of the pages taken so far. */
    long allocatedBytes() {
        long bytes = 0;
        for (int p = 0; p < pages.length(); p++) if (pages.getAcquire(p) != null) bytes += (long) PAGE_SETS * SET_LONGS * Long.BYTES;
        return bytes;
    }

    /** Where the cache says {@code id} is, or null. */
    ChunkLocation get(ChunkId id) {
        long key = id.word(0);
        int set = setOf(key, setMask);
        long[] page = pages.getAcquire(set / PAGE_SETS);
        if (page == null) return null;
        int base = (set % PAGE_SETS) * SET_LONGS;
        for (int w = 0; w < WAYS; w++) {
            if (page[base + w] != key) continue;
            long where = page[base + WAYS + w];
            long at = page[base + 2 * WAYS + w];
            long last = page[base + 3 * WAYS + w];
            int check = check(key, where, at);
            if ((int) last != check) continue;
            int now = latest;
            if (now - (int) (last >>> 32) > RENEW) page[base + 3 * WAYS + w] = (long) now << 32 | (check & 0xffffffffL);
            int slot = (int) (at & ((1 << SLOT_BITS) - 1)) - 1;
            return new ChunkLocation((int) (where >>> 32), at >>> SLOT_BITS, (int) where, slot);
        }
        return null;
    }

    /** Keeps {@code loc} as where {@code id} is (replacing what the cache held for it). */
    void put(ChunkId id, ChunkLocation loc) {
        if (loc.offset() < 0 || loc.offset() >= MAX_OFFSET || loc.slot() + 1 >= 1 << SLOT_BITS || loc.slot() < ChunkLocation.SINGLE) {
            invalidate(id);
            return;
        }
        long where = (long) loc.pack() << 32 | (loc.length() & 0xffffffffL);
        long at = loc.offset() << SLOT_BITS | (loc.slot() + 1);
        int now = stampNow();
        if (now != latest) latest = now;
        int mask = setMask;
        if (store(id.word(0), where, at, now, now, mask) && ++fresh > (long) (mask + 1) * (WAYS / 4) && mask < maxMask) grow(mask);
    }

    /**
     * Writes an entry stamped {@code stamp} into its set under {@code mask}: into the way its key
     * holds, else an empty one, else the least recently used (ages taken at {@code now}). True when
     * the key was not there.
     */
    private boolean store(long key, long where, long at, int stamp, int now, int mask) {
        int set = setOf(key, mask);
        int p = set / PAGE_SETS;
        long[] page = pages.getAcquire(p);
        if (page == null) {
            pages.compareAndExchangeRelease(p, null, new long[PAGE_SETS * SET_LONGS]);
            page = pages.getAcquire(p);
        }
        int base = (set % PAGE_SETS) * SET_LONGS;
        int way = -1;
        long oldest = -1;
        for (int w = 0; w < WAYS; w++) {
            if (page[base + w] == key) {
                way = w;
                break;
            }
            long last = page[base + 3 * WAYS + w];
            long age = (int) last == 0 ? Long.MAX_VALUE : Integer.toUnsignedLong(now - (int) (last >>> 32));
            if (age > oldest) {
                oldest = age;
                way = w;
            }
        }
        boolean added = page[base + way] != key;
        page[base + 3 * WAYS + way] = 0L;
        page[base + way] = key;
        page[base + WAYS + way] = where;
        page[base + 2 * WAYS + way] = at;
        page[base + 3 * WAYS + way] = (long) stamp << 32 | (check(key, where, at) & 0xffffffffL);
        return added;
    }

    /**
     * Doubles the sets, unless another put did so since this one read {@code mask}, and moves the
     * entries whose set under the larger mask is the new one there (stamps kept). Puts and reads go
     * on meanwhile: an entry a put writes under the old mask behind the move, or one a read misses
     * before the move reached it, costs an index query, as any miss does.
     */
    private void grow(int mask) {
        int bigger = mask << 1 | 1;
        if (!SET_MASK.compareAndSet(this, mask, bigger)) return;
        int now = stampNow();
        for (int p = 0; p <= mask / PAGE_SETS; p++) {
            long[] page = pages.getAcquire(p);
            if (page == null) continue;
            for (int s = 0; s < PAGE_SETS; s++) {
                int set = p * PAGE_SETS + s;
                int base = s * SET_LONGS;
                for (int w = 0; w < WAYS; w++) {
                    long key = page[base + w];
                    long where = page[base + WAYS + w];
                    long at = page[base + 2 * WAYS + w];
                    long last = page[base + 3 * WAYS + w];
                    if ((int) last == 0 || setOf(key, bigger) == set) continue;
                    page[base + 3 * WAYS + w] = 0L;
                    if ((int) last == check(key, where, at)) store(key, where, at, (int) (last >>> 32), now, bigger);
                }
            }
        }
    }

    /** Forgets what the cache holds for {@code id}. */
    void invalidate(ChunkId id) {
        long key = id.word(0);
        int set = setOf(key, setMask);
        long[] page = pages.getAcquire(set / PAGE_SETS);
        if (page == null) return;
        int base = (set % PAGE_SETS) * SET_LONGS;
        for (int w = 0; w < WAYS; w++) {
            if (page[base + w] == key) page[base + 3 * WAYS + w] = 0L;
        }
    }

    /** The set of the entry with {@code key}: the key's upper half, masked. */
    private static int setOf(long key, int mask) {
        return (int) (key >>> 32) & mask;
    }

    /** Forgets everything. */
    void clear() {
        for (int p = 0; p < pages.length(); p++) pages.setRelease(p, null);
    }

    /** The clock in stamp units (2^20 ns, about a millisecond; wraps after 52 days, which ages compare through). */
    private int stampNow() {
        return (int) (nanos.getAsLong() >>> 20);
    }

    /** A hash of an entry's three other words; never 0 (an empty entry's check). */
    private static int check(long key, long where, long at) {
        long h = key * 0x9E3779B97F4A7C15L ^ Long.rotateLeft(where, 23) * 0xC2B2AE3D27D4EB4FL ^ Long.rotateLeft(at, 41) * 0x165667B19E3779F9L;
        h ^= h >>> 29;
        h *= 0xBF58476D1CE4E5B9L;
        h ^= h >>> 32;
        return (int) h | 1;
    }
}
