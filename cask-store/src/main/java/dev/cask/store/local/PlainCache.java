package dev.cask.store.local;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;

import java.lang.invoke.VarHandle;
import java.lang.invoke.MethodHandles;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A store's in-memory cache of verified plain bytes, for what cost a decompression to read: single
 * chunks (a compressed record) and whole segments, in one budget of bytes, held in a ring of large
 * arrays that is written in turn, one slab at a time, and found through a table of numbers: no
 * object per entry.
 *
 * <p><b>Why whole segments.</b> A read of one chunk in a segment decompresses the whole frame (up
 * to 1 MiB, 256 chunks). Until session 20 the segment's other chunks were then checked and copied
 * into this cache one by one, so that a sequential reader's next blocks cost no second
 * decompression: 255 CRCs, copies and cache insertions, which on the two-core bench host took
 * 1.0 ms at the median and 5 ms at the 90th percentile of a cold random 4 KiB read (the
 * decompression itself 1.1 ms), and most of them were never read when the reads were random. Now
 * the decompressed frame is kept as it is, as one entry under where it is stored (pack and
 * offset), and a chunk in it is copied out and checked (the table's id at the slot, its own
 * CRC32C) when it is asked for. A reader finds a segment's entry through the chunk's location,
 * which it needs anyway on a miss (the location cache or the index).
 *
 * <p><b>Why no objects.</b> Until session 33 this was a Caffeine cache of one {@code byte[]} (and a
 * table of ids) per entry. Random 4 KiB reads of a disk whose compressed segments hold more than
 * the cache (1 GiB of fio's mixed data, 512 MiB of cache) put ~25k segments of 16 KiB a second into
 * it and dropped as many: every new array survived the young collection and was copied out of it,
 * and the old generation's pages, emptied at random by evictions, were copied again. The
 * collector's threads took 1.7-2.4 s of CPU in an 8-second run, a fifth of the server's (with the
 * cache off: 0.1 s). Moving only the bytes into slabs left the young collections' marking of the
 * entries' small objects (ids, tables, map nodes: ~15 a segment) at 1.1-1.5 s of the 8. So here
 * the bytes live in slabs of up to {@link #MAX_SLAB} (8 MiB in a server), allocated when first
 * written and never freed (ZGC never moves objects that large), each entry with its header (what
 * it is: a chunk's id and CRC32C, or a segment's place and table) in front of its bytes; and an
 * entry is found through {@link #ways}, a set-associative table of {@code long}s (a hash of the
 * key, the entry's position), allocated once, as {@link LocationCache} does for index answers.
 * The collector's threads then took 0.1-0.2 s of the 8, and the reads ran 1.2-1.3 x faster.
 *
 * <p><b>Writing and eviction.</b> Entries are appended at the head of the ring, under one lock (a
 * copy of at most a segment). An entry never straddles two slabs: one that does not fit in what is
 * left of the current slab starts the next. When the head enters a slab, the slab after it, the
 * oldest, is let go as a whole, and the entries in it that a counted lookup found since they were
 * written are copied to the head once more (at most an eighth of a slab of them,
 * {@link #SECOND_CHANCE_PART}: a second chance, so that a hot entry outlives a stream of new ones,
 * as with CLOCK). So the ring always has one slab being written, one free slab ahead of it, and
 * the rest holding entries: the cache holds at most its
 * budget less a slab. Lookups that a bulk read makes quietly ({@code quietly}) do not count: a scan
 * should not make entries look popular. What is kept already is not written again: a bulk read's
 * run-ahead decodes segments the cache may hold, and where Caffeine's second put replaced the entry,
 * a second copy here would take the ring's room (sequential reads of recompressed data ran 15-20 %
 * slower until it was skipped). A set of the table whose ways all hold live entries drops
 * the oldest from the table (its bytes stay, unreachable, until its slab goes); the table has two
 * ways for every 4 KiB of budget, so that is rare.
 *
 * <p><b>Readers and the writer, without a lock.</b> The writer writes an entry's bytes, then its
 * way (the hash plainly, then the position with release semantics); a reader reads the position
 * with acquire semantics, then the hash, then checks the entry's header in the slab against the
 * key it asked for in full. A reader copies what it wants out of the slab and only then checks that
 * the entry is still valid: {@code validFrom}, the position below which bytes may be overwritten,
 * is raised (a volatile write, then a store-store fence) before a slab is written again, and the
 * reader reads it after its copy (behind a load-load fence), as
 * {@link java.util.concurrent.locks.StampedLock#validate} does. A copy that raced with the rewrite
 * of its slab is thrown away (a miss); a header read in such a race is checked for bounds before it
 * is used. Behind that, every chunk handed out is checked against its own CRC32C (the segment
 * table's, or the one taken when a single chunk was kept), as before.
 *
 * <p><b>Bulk reads pin instead.</b> A sequential read hands over most of a cached segment's chunks
 * at once; copying the segment out first, then each chunk again into the reader's buffer, made
 * sequential reads of cached segments 18-30 % slower than with the Caffeine cache (one copy). So
 * {@link #pin} counts a reader on the entry's slab ({@link #pins}; then checks {@code validFrom},
 * so that either it sees the slab let go or the writer sees its pin), and the writer, about to
 * write into a slab it let go a turn earlier, waits until no reader holds it pinned. A pinned
 * segment's chunks are handed over from the slab itself.
 *
 * <p><b>Staleness.</b> Entries never go stale in what they answer: a chunk's bytes never change,
 * and an entry answers only for the id its table holds at the slot asked, after that chunk's own
 * CRC. A segment's place may be punched or its pack compacted away meanwhile; a reader with a
 * stale location then still gets the right bytes, as it would from a cached chunk. Thread-safe.
 */
final class PlainCache {
    /** The largest slab: above 4 MiB, so that ZGC allocates each in a page of its own and never moves it. */
    static final int MAX_SLAB = 8 << 20;
    private static final int MIN_SLAB = 1 << 20;
    private static final int MIN_SLABS = 4;
    private static final int WAYS = 8;

    // An entry in a slab, 8-byte aligned: a header, then the plain bytes.
    private static final int CHUNK = 1, SEGMENT = 2;
    /** Every entry: its kind, its size (header and bytes, aligned), its plain length. */
    private static final int KIND = 0, SIZE = 4, PLAIN = 8;
    /** A single chunk: its id and CRC32C. */
    private static final int CHUNK_ID = 12, CHUNK_CRC = 44, CHUNK_HEADER = 48;
    /** A segment: where it is stored (pack, offset), its codec, its chunks' count, then per chunk its id, plain length and CRC32C. */
    private static final int SEG_PACK = 12, SEG_OFFSET = 16, SEG_COUNT = 24, SEG_CODEC = 28, SEG_SLOTS = 32, SLOT = 40;

    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle WAY = MethodHandles.arrayElementVarHandle(long[].class);

    private final int slabBytes;
    private final byte[][] slabs;
    /** Per slab: the bytes written into it since it was last let go (under {@link #writer}). */
    private final int[] filled;
    /**
     * The entries' table: sets of {@link #WAYS} ways, a way two longs: the key's hash, and the
     * entry's position plus one, shifted left by one, with the low bit set once a counted lookup
     * found it (0: empty). Allocated at the first write, so that a command that reads a few
     * chunks never takes it; null until then.
     */
    private volatile long[] ways;
    private final int tableLength;
    private final int setMask;
    private final ReentrantLock writer = new ReentrantLock();
    /** Per slab: readers that hold an entry of it pinned ({@link #pin}). */
    private final AtomicIntegerArray pins;
    /**
     * Under {@link #writer}: the absolute position the next entry is written at, and the absolute
     * number of its slab ({@code slab % slabs.length} in the ring).
     */
    private long head;
    private long slab;
    /** Under {@link #writer}: entries below this were forgotten by {@link #clear} (no second chance). */
    private long clearedBelow;
    /** Bytes at absolute positions below this may have been overwritten: entries there are gone. */
    private volatile long validFrom;
    /**
     * Segments decompressed recently and not kept, as hashes of where they are, in a table of
     * 64k slots (512 KiB), each overwritten by the next segment that hashes to it: a racy guess,
     * never a claim about bytes.
     */
    private final long[] decoded = new long[1 << 16];

    /** A cache of at most {@code bytes} of entries (in at least four slabs), and its table: 32 bytes for every 4 KiB of them. */
    PlainCache(long bytes) {
        this.slabBytes = (int) Math.clamp(Long.highestOneBit(Math.max(1, bytes / 16)), MIN_SLAB, MAX_SLAB);
        int count = (int) Math.max(MIN_SLABS, Math.min(1 << 20, bytes / slabBytes));
        this.slabs = new byte[count][];
        this.filled = new int[count];
        this.pins = new AtomicIntegerArray(count);
        long sets = Long.highestOneBit(Math.max(16, (long) count * slabBytes / 4096 * 2 / WAYS));
        this.tableLength = (int) Math.min(1 << 26, sets * WAYS * 2);
        this.setMask = tableLength / (WAYS * 2) - 1;
        this.validFrom = (slab + 2 - count) * slabBytes;
    }

    // ------------------------------------------------------------------ reads

    /** A copy of the cached plain bytes of single chunk {@code id}, or null; counts as a use. */
    byte[] chunk(ChunkId id) {
        return chunkCopy(id, false);
    }

    /** {@link #chunk} without counting as a use (a bulk read's many lookups should not make entries look popular). */
    byte[] chunkQuietly(ChunkId id) {
        return chunkCopy(id, true);
    }

    /** Whether single chunk {@code id} is cached (quietly); a guess, as any answer about a cache. */
    boolean holdsChunk(ChunkId id) {
        return find(chunkHash(id), id, 0, 0, true) >= 0;
    }

    private byte[] chunkCopy(ChunkId id, boolean quietly) {
        long pos = find(chunkHash(id), id, 0, 0, quietly);
        if (pos < 0) return null;
        byte[] s = slabAt(pos);
        int off = (int) (pos % slabBytes), size = sizeAt(s, off, CHUNK);
        int length = size < 0 ? -1 : (int) INT.get(s, off + PLAIN), crc = (int) INT.get(s, off + CHUNK_CRC);
        if (length < 0 || length > size - CHUNK_HEADER) return null; // a header read in a race with its slab's rewrite
        byte[] out = new byte[length];
        System.arraycopy(s, off + CHUNK_HEADER, out, 0, length);
        if (!stillValid(pos) || PackFormat.crc32c(out, 0, length) != crc) return null;
        return out;
    }

    /**
     * The segment stored at {@code loc} (a chunk's location in a segment), pinned where it is in
     * its slab, or null; {@code quietly}: without counting as a use. While pinned (until
     * {@link Pinned#close}) its bytes are not overwritten: the writer waits before it writes into a
     * pinned slab again. So a bulk read hands chunks over from the slab itself, with no copy of the
     * segment first. Close it soon, and write nothing into this cache meanwhile.
     */
    Pinned pin(ChunkLocation loc, boolean quietly) {
        long pos = find(segmentHash(loc.pack(), loc.offset()), null, loc.pack(), loc.offset(), quietly);
        if (pos < 0) return null;
        int index = (int) (pos / slabBytes % slabs.length);
        pins.incrementAndGet(index);
        Pinned pinned = null;
        try {
            if (pos < validFrom) return null; // let go since it was found: the writer may be at it
            byte[] s = slabs[index];
            int off = (int) (pos % slabBytes), size = sizeAt(s, off, SEGMENT), count = countAt(s, off, size);
            int header = SEG_SLOTS + count * SLOT, length = count < 0 ? -1 : (int) INT.get(s, off + PLAIN);
            if (length < 0 || length > size - header) return null;
            ChunkId[] ids = new ChunkId[count];
            int[] lengths = new int[count], crcs = new int[count];
            long sum = 0;
            for (int i = 0, at = off + SEG_SLOTS; i < count; i++, at += SLOT) {
                ids[i] = ChunkId.fromBytes(s, at);
                lengths[i] = (int) INT.get(s, at + ChunkId.LENGTH);
                crcs[i] = (int) INT.get(s, at + ChunkId.LENGTH + 4);
                if (lengths[i] < 0) return null;
                sum += lengths[i];
            }
            if (sum != length) return null;
            PackFormat.Segment table = new PackFormat.Segment((int) INT.get(s, off + SEG_CODEC), ids, lengths, crcs, NO_FRAME, 0, 0);
            pinned = new Pinned(this, index, table, s, off + header);
            return pinned;
        } finally {
            if (pinned == null) pins.decrementAndGet(index);
        }
    }

    /**
     * A cached segment pinned in its slab ({@link #pin}): its table, and its plain bytes at
     * {@code bytes[plainAt...]} (the slab itself: not to be changed). Close once.
     */
    static final class Pinned implements AutoCloseable {
        private final PlainCache cache;
        private final int index;
        private final PackFormat.Segment table;
        private final byte[] bytes;
        private final int plainAt;

        private Pinned(PlainCache cache, int index, PackFormat.Segment table, byte[] bytes, int plainAt) {
            this.cache = cache;
            this.index = index;
            this.table = table;
            this.bytes = bytes;
            this.plainAt = plainAt;
        }

        PackFormat.Segment table() {
            return table;
        }

        byte[] bytes() {
            return bytes;
        }

        int plainAt() {
            return plainAt;
        }

        /** Whether the table names {@code id} in {@code slot} (a location's claim, checked before its bytes are). */
        boolean holds(ChunkId id, int slot) {
            return slot >= 0 && slot < table.count() && table.ids()[slot].equals(id);
        }

        @Override
        public void close() {
            cache.pins.decrementAndGet(index);
        }
    }

    private static final byte[] NO_FRAME = new byte[0];

    /**
     * A copy of chunk {@code id}'s plain bytes from the cached segment at {@code loc}, or null when
     * that segment is not cached, its slot {@code loc.slot()} holds another chunk, or the bytes
     * fail their CRC32C (the caller's ordinary read then reports it). Counts as a use.
     */
    byte[] fromSegment(ChunkId id, ChunkLocation loc) {
        long pos = find(segmentHash(loc.pack(), loc.offset()), null, loc.pack(), loc.offset(), false);
        if (pos < 0) return null;
        byte[] s = slabAt(pos);
        int off = (int) (pos % slabBytes), size = sizeAt(s, off, SEGMENT), count = countAt(s, off, size), slot = loc.slot();
        if (slot < 0 || slot >= count) return null; // also a header read in a race
        int at = off + SEG_SLOTS + slot * SLOT;
        if (!id.matches(s, at)) return null;
        long from = 0;
        for (int i = 0; i < slot; i++) from += (int) INT.get(s, off + SEG_SLOTS + i * SLOT + ChunkId.LENGTH);
        int length = (int) INT.get(s, at + ChunkId.LENGTH), crc = (int) INT.get(s, at + ChunkId.LENGTH + 4);
        int header = SEG_SLOTS + count * SLOT;
        if (from < 0 || length < 0 || from + length > size - header) return null; // a header read in a race
        byte[] out = new byte[length];
        System.arraycopy(s, off + header + (int) from, out, 0, length);
        if (!stillValid(pos) || PackFormat.crc32c(out, 0, length) != crc) return null;
        return out;
    }

    /** Whether the segment at {@code loc} was noted here since its slot was last overwritten; notes it if not. */
    boolean decodedBefore(ChunkLocation loc) {
        long key = (((long) loc.pack() << 40) ^ loc.offset()) * 0x9E3779B97F4A7C15L | 1;
        int slot = (int) (key >>> 48);
        if (decoded[slot] == key) return true;
        decoded[slot] = key;
        return false;
    }

    /**
     * The position of the live entry for a chunk {@code id} (when not null) or the segment at
     * ({@code pack}, {@code offset}), or -1; unless {@code quietly}, marks it found.
     */
    private long find(long hash, ChunkId id, int pack, long offset, boolean quietly) {
        long[] ways = this.ways;
        if (ways == null) return -1;
        int base = set(hash);
        long valid = validFrom;
        for (int w = 0; w < WAYS; w++) {
            int i = base + 2 * w;
            long word = (long) WAY.getAcquire(ways, i + 1);
            if (word == 0 || ways[i] != hash) continue;
            long pos = (word >>> 1) - 1;
            if (pos < valid || !holds(pos, id, pack, offset)) continue;
            if (!quietly && (word & 1) == 0) WAY.compareAndSet(ways, i + 1, word, word | 1);
            return pos;
        }
        return -1;
    }

    /** Whether the entry at {@code pos} (valid when looked at) is the one asked for; its header checked for bounds first. */
    private boolean holds(long pos, ChunkId id, int pack, long offset) {
        byte[] s = slabAt(pos);
        int off = (int) (pos % slabBytes);
        if (id != null) return sizeAt(s, off, CHUNK) > 0 && id.matches(s, off + CHUNK_ID);
        return sizeAt(s, off, SEGMENT) > 0 && (int) INT.get(s, off + SEG_PACK) == pack && (long) LONG.get(s, off + SEG_OFFSET) == offset;
    }

    /**
     * The size of the entry of kind {@code kind} at {@code s[off]}, or -1 when it is of another
     * kind or its size is out of bounds (every entry is at least {@link #CHUNK_HEADER} bytes; a
     * header read in a race with its slab's rewrite may say anything).
     */
    private int sizeAt(byte[] s, int off, int kind) {
        if (s == null || off > slabBytes - CHUNK_HEADER || (int) INT.get(s, off + KIND) != kind) return -1;
        int size = (int) INT.get(s, off + SIZE);
        return size >= CHUNK_HEADER && size <= slabBytes - off ? size : -1;
    }

    /** The chunk count of the segment of {@code size} bytes at {@code s[off]}, or -1 when its table would not fit in it (a race). */
    private static int countAt(byte[] s, int off, int size) {
        if (size < 0) return -1;
        int count = (int) INT.get(s, off + SEG_COUNT);
        return count >= 0 && count <= (size - SEG_SLOTS) / SLOT ? count : -1;
    }

    /** After a copy out of the entry at {@code pos}: whether its slab was still not let go, so the copy is the entry's. */
    private boolean stillValid(long pos) {
        VarHandle.loadLoadFence();
        return pos >= validFrom;
    }

    private byte[] slabAt(long pos) {
        return slabs[(int) (pos / slabBytes % slabs.length)];
    }

    private int set(long hash) {
        return (int) ((hash >>> 32) & setMask) * WAYS * 2;
    }

    private static long chunkHash(ChunkId id) {
        return chunkHash(id.word(0), id.word(1));
    }

    /** A chunk's hash from its id's first two big-endian words (as a slab's header holds them, for {@link #nextSlab}). */
    private static long chunkHash(long first, long second) {
        return mix(first ^ second);
    }

    private static long segmentHash(int pack, long offset) {
        return mix(((long) pack << 40) ^ offset ^ 0x5E6A3E47L);
    }

    private static long mix(long x) {
        x *= 0x9E3779B97F4A7C15L;
        return x ^ (x >>> 29);
    }

    // ------------------------------------------------------------------ writes

    /** Keeps a copy of {@code plain} as chunk {@code id}'s bytes, unless they are kept already. */
    void keepChunk(ChunkId id, byte[] plain) {
        int size = align(CHUNK_HEADER + plain.length);
        if (size > slabBytes) return;
        writer.lock();
        try {
            if (find(chunkHash(id), id, 0, 0, true) >= 0) return; // a second copy would only take room
            long pos = reserve(size);
            byte[] s = slabAt(pos);
            int off = (int) (pos % slabBytes);
            INT.set(s, off + KIND, CHUNK);
            INT.set(s, off + SIZE, size);
            INT.set(s, off + PLAIN, plain.length);
            id.copyTo(s, off + CHUNK_ID);
            INT.set(s, off + CHUNK_CRC, PackFormat.crc32c(plain, 0, plain.length));
            System.arraycopy(plain, 0, s, off + CHUNK_HEADER, plain.length);
            index(chunkHash(id), pos);
        } finally {
            writer.unlock();
        }
    }

    /**
     * Keeps a copy of the segment {@code s} stored at {@code loc} (any of its chunks' locations),
     * whose frame decompressed (and length-checked) to {@code plain[0, s.plainLength())}, unless
     * that segment is kept already (the same place, the same table).
     */
    void keepSegment(ChunkLocation loc, PackFormat.Segment seg, byte[] plain) {
        int count = seg.count(), length = seg.plainLength();
        int header = SEG_SLOTS + count * SLOT, size = align(header + length);
        if (size > slabBytes) return;
        writer.lock();
        try {
            // a bulk read's run-ahead decodes segments the cache may hold already: a second copy would only take room
            long kept = find(segmentHash(loc.pack(), loc.offset()), null, loc.pack(), loc.offset(), true);
            if (kept >= 0 && (int) INT.get(slabAt(kept), (int) (kept % slabBytes) + SEG_COUNT) == count && count > 0
                    && seg.ids()[0].matches(slabAt(kept), (int) (kept % slabBytes) + SEG_SLOTS)) return;
            long pos = reserve(size);
            byte[] s = slabAt(pos);
            int off = (int) (pos % slabBytes);
            INT.set(s, off + KIND, SEGMENT);
            INT.set(s, off + SIZE, size);
            INT.set(s, off + PLAIN, length);
            INT.set(s, off + SEG_PACK, loc.pack());
            LONG.set(s, off + SEG_OFFSET, loc.offset());
            INT.set(s, off + SEG_COUNT, count);
            INT.set(s, off + SEG_CODEC, seg.codec());
            for (int i = 0, at = off + SEG_SLOTS; i < count; i++, at += SLOT) {
                seg.ids()[i].copyTo(s, at);
                INT.set(s, at + ChunkId.LENGTH, seg.plainLengths()[i]);
                INT.set(s, at + ChunkId.LENGTH + 4, seg.plainCrcs()[i]);
            }
            System.arraycopy(plain, 0, s, off + header, length);
            index(segmentHash(loc.pack(), loc.offset()), pos);
        } finally {
            writer.unlock();
        }
    }

    /** Forgets everything (the store lost records it may have read back). */
    void clear() {
        writer.lock();
        try {
            validFrom = head;
            clearedBelow = head;
            VarHandle.storeStoreFence();
        } finally {
            writer.unlock();
        }
    }

    /** Slabs this cache holds memory for (tests). */
    int slabsAllocated() {
        int n = 0;
        for (byte[] s : slabs) if (s != null) n++;
        return n;
    }

    /** The absolute number of the slab being written: the oldest slab went when it reached the ring's length less one (tests). */
    long headSlab() {
        writer.lock();
        try {
            return slab;
        } finally {
            writer.unlock();
        }
    }

    /** The bytes of one slab (tests). */
    int slabBytes() {
        return slabBytes;
    }

    private static int align(int n) {
        return (n + 7) & ~7;
    }

    /** Under the lock: room for {@code size} bytes at the head (in the next slab when they do not fit in this one). */
    private long reserve(int size) {
        if (ways == null) ways = new long[tableLength];
        if (head + size > (slab + 1) * slabBytes) nextSlab();
        int index = (int) (slab % slabs.length);
        if (slabs[index] == null) slabs[index] = new byte[slabBytes];
        long pos = head;
        head += size;
        filled[index] = (int) (head - slab * slabBytes);
        return pos;
    }

    /**
     * Under the lock: points a way of {@code hash}'s set at {@code pos}: the way that has the same
     * hash, else one that is empty or whose entry is gone, else the one with the oldest entry.
     */
    private void index(long hash, long pos) {
        long[] ways = this.ways;
        int base = set(hash), pick = -1;
        long valid = validFrom, oldest = Long.MAX_VALUE;
        for (int w = 0; w < WAYS; w++) {
            int i = base + 2 * w;
            long word = ways[i + 1];
            long at = (word >>> 1) - 1;
            if (word != 0 && ways[i] == hash) {
                pick = i;
                break;
            }
            if (word == 0 || at < valid) {
                if (oldest != Long.MIN_VALUE) pick = i;
                oldest = Long.MIN_VALUE;
            } else if (at < oldest) {
                oldest = at;
                pick = i;
            }
        }
        ways[pick] = hash;
        WAY.setRelease(ways, pick + 1, (pos + 1) << 1);
    }

    /**
     * The second chance copies at most this part of a slab forward (see the class comment). The
     * copy runs on the thread whose keep turned the ring, while its client waits: at half a slab
     * (4 MiB) it was the served disks' p99 latency of mix random 4K reads, 0.76-0.77 ms against
     * 0.47-0.48 with no second chance and 0.50-0.51 at an eighth, throughput the same in all three
     * (session 34, by hand).
     */
    static final int SECOND_CHANCE_PART = 8;

    /**
     * Under the lock: moves the head to the start of the next slab (free since the last turn) and
     * lets the one after it go, copying its entries found since they were written to the head.
     */
    private void nextSlab() {
        slab++;
        head = slab * slabBytes;
        int current = (int) (slab % slabs.length);
        filled[current] = 0;
        // let go a turn ago; a reader that pinned an entry of it before then may still be reading
        for (int spins = 0; pins.get(current) != 0; spins++) {
            if (spins < 100) Thread.onSpinWait();
            else Thread.yield();
        }
        long gone = slab + 1 - slabs.length; // the oldest slab, in the ring's place after the head's: free for the next turn
        validFrom = Math.max(validFrom, (gone + 1) * slabBytes);
        VarHandle.storeStoreFence();
        if (gone < 0) return;
        int index = (int) (gone % slabs.length);
        byte[] s = slabs[index];
        int budget = slabBytes / SECOND_CHANCE_PART;
        long[] ways = this.ways; // allocated: reserve, which called this, did first
        for (int off = 0, size; off < filled[index]; off += size) {
            size = (int) INT.get(s, off + SIZE);
            long pos = gone * slabBytes + off;
            if (size > budget || pos < clearedBelow) continue;
            long hash = (int) INT.get(s, off + KIND) == CHUNK
                    ? chunkHash((long) LONG.get(s, off + CHUNK_ID), (long) LONG.get(s, off + CHUNK_ID + 8))
                    : segmentHash((int) INT.get(s, off + SEG_PACK), (long) LONG.get(s, off + SEG_OFFSET));
            int base = set(hash);
            for (int w = 0; w < WAYS; w++) {
                int i = base + 2 * w;
                if (ways[i + 1] != (((pos + 1) << 1) | 1) || ways[i] != hash) continue; // not found since written, or not indexed
                long again = reserve(size);
                System.arraycopy(s, off, slabAt(again), (int) (again % slabBytes), size);
                WAY.setRelease(ways, i + 1, (again + 1) << 1);
                budget -= size;
                break;
            }
        }
        filled[index] = 0;
    }
}
