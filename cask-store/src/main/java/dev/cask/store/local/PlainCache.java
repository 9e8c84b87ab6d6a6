package dev.cask.store.local;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;

/**
 * A store's in-memory cache of verified plain bytes, for what cost a decompression to read: single
 * chunks (a compressed record) and whole segments, in one budget of bytes (Caffeine, weighed by
 * length, frequency-aware eviction, upkeep on the calling thread).
 *
 * <p><b>Why whole segments.</b> A read of one chunk in a segment decompresses the whole frame (up
 * to 1 MiB, 256 chunks). Until session 20 the segment's other chunks were then checked and copied
 * into this cache one by one, so that a sequential reader's next blocks cost no second
 * decompression: 255 CRCs, copies and cache insertions, which on the two-core bench host took
 * 1.0 ms at the median and 5 ms at the 90th percentile of a cold random 4 KiB read (the
 * decompression itself 1.1 ms), and most of them were never read when the reads were random. Now
 * the decompressed frame is kept as it is, as one entry under where it is stored (pack and
 * offset), and a chunk in it is checked (the table's id at the slot, its own CRC32C) and copied
 * when it is asked for. A reader finds a segment's entry through the chunk's location, which it
 * needs anyway on a miss (the location cache or the index).
 *
 * <p><b>Staleness.</b> Entries never go stale in what they answer: a chunk's bytes never change,
 * and an entry answers only for the id its table holds at the slot asked, after that chunk's own
 * CRC. A segment's place may be punched or its pack compacted away meanwhile; a reader with a
 * stale location then still gets the right bytes, as it would from a cached chunk. Thread-safe.
 */
final class PlainCache {
    /**
     * A decompressed segment: its table ({@code table}, without the pack bytes it was decoded
     * from) and its plain bytes, verified frame-wise.
     */
    record Decoded(PackFormat.Segment table, byte[] plain) {
        /** Whether the table names {@code id} in {@code slot} (a location's claim, checked before its bytes are). */
        boolean holds(ChunkId id, int slot) {
            return slot >= 0 && slot < table.count() && table.ids()[slot].equals(id);
        }
    }

    private static final byte[] NO_FRAME = new byte[0];

    private record SegmentAt(int pack, long offset) {}

    private final Cache<Object, Object> cache;
    /**
     * Segments decompressed recently and not kept, as hashes of where they are, in a table of
     * 64k slots (512 KiB), each overwritten by the next segment that hashes to it: a racy guess,
     * never a claim about bytes.
     */
    private final long[] decoded = new long[1 << 16];

    /** A cache of at most {@code bytes} (plain bytes and some overhead per entry). */
    PlainCache(long bytes) {
        this.cache = Caffeine.newBuilder().executor(Runnable::run).maximumWeight(bytes)
                .weigher((Object k, Object v) -> v instanceof byte[] b ? b.length + 96 : ((Decoded) v).plain().length + 64 * ((Decoded) v).table().count() + 96)
                .build();
    }

    /** The cached plain bytes of a single chunk {@code id} (not to be changed), or null; counts as a use. */
    byte[] chunk(ChunkId id) {
        return cache.getIfPresent(id) instanceof byte[] b ? b : null;
    }

    /** {@link #chunk} without counting as a use (a bulk read's many lookups should not make entries look popular). */
    byte[] chunkQuietly(ChunkId id) {
        return cache.policy().getIfPresentQuietly(id) instanceof byte[] b ? b : null;
    }

    /** Keeps {@code plain} (not copied: the caller gives it up) as chunk {@code id}'s bytes. */
    void keepChunk(ChunkId id, byte[] plain) {
        cache.put(id, plain);
    }

    /**
     * The decoded segment stored at {@code loc} (a chunk's location in a segment), or null;
     * {@code quietly}: without counting as a use.
     */
    Decoded segment(ChunkLocation loc, boolean quietly) {
        SegmentAt k = new SegmentAt(loc.pack(), loc.offset());
        Object v = quietly ? cache.policy().getIfPresentQuietly(k) : cache.getIfPresent(k);
        return v instanceof Decoded d ? d : null;
    }

    /**
     * A copy of chunk {@code id}'s plain bytes from the cached segment at {@code loc}, or null when
     * that segment is not cached, its slot {@code loc.slot()} holds another chunk, or the bytes
     * fail their CRC32C (the caller's ordinary read then reports it).
     */
    byte[] fromSegment(ChunkId id, ChunkLocation loc) {
        Decoded d = segment(loc, false);
        int slot = loc.slot();
        if (d == null || !d.holds(id, slot)) return null;
        int from = d.table().plainOffset(slot);
        if (!PackFormat.plainCrcMatches(d.table(), d.plain(), from, slot)) return null;
        return java.util.Arrays.copyOfRange(d.plain(), from, from + d.table().plainLengths()[slot]);
    }

    /**
     * Keeps the segment {@code s} stored at {@code loc} (any of its chunks' locations), whose
     * frame decompressed (and length-checked) to {@code plain}: not copied, the caller gives it up.
     */
    void keepSegment(ChunkLocation loc, PackFormat.Segment s, byte[] plain) {
        PackFormat.Segment table = new PackFormat.Segment(s.codec(), s.ids(), s.plainLengths(), s.plainCrcs(), NO_FRAME, 0, 0);
        cache.put(new SegmentAt(loc.pack(), loc.offset()), new Decoded(table, plain));
    }

    /** Whether the segment at {@code loc} was noted here since its slot was last overwritten; notes it if not. */
    boolean decodedBefore(ChunkLocation loc) {
        long key = (((long) loc.pack() << 40) ^ loc.offset()) * 0x9E3779B97F4A7C15L | 1;
        int slot = (int) (key >>> 48);
        if (decoded[slot] == key) return true;
        decoded[slot] = key;
        return false;
    }

    /** Forgets everything (the store lost records it may have read back). */
    void clear() {
        cache.invalidateAll();
    }
}
