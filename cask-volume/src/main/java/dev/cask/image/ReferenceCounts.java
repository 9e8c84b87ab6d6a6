package dev.cask.image;

import dev.cask.store.ChunkId;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * How many references each (chunk id, tree level) has from the trees a collection marked: from
 * tree roots (a version's extent whose top is that chunk at that level) and from the pointer
 * chunks that are themselves referenced (each slot that names the chunk counts once). A chunk is
 * reached when it has a reference at some level. What a server's collections keep between runs,
 * so that a mark costs what changed ({@link GarbageCollector}, "Marking by difference").
 *
 * <p>Kept as plain longs in one open-addressing table (linear probing), five per slot: the id's
 * four longs and (level &lt;&lt; 32 | count). A slot whose id is set and whose count is 0 is a
 * tombstone (a pair whose last reference went): probes go on past it, an insert takes it, a
 * rehash drops it. 40 bytes per slot at a load of at most a half (tombstones included): about
 * 80 bytes per pair. Ids are SHA-256 hashes, so their first eight bytes are a good hash (mixed
 * with the level). Not thread-safe.
 */
final class ReferenceCounts {
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
    private static final int W = 5;

    private long[] table;
    private int mask;
    private int size;
    private int used; // live pairs and tombstones
    private int maxLevel;

    ReferenceCounts() {
        this(1 << 16);
    }

    ReferenceCounts(int expected) {
        int slots = Integer.highestOneBit(Math.max(16, expected) * 2 - 1) << 1;
        table = new long[slots * W];
        mask = slots - 1;
    }

    /** Pairs with at least one reference. */
    int size() {
        return size;
    }

    /** The highest level any pair has had. */
    int maxLevel() {
        return maxLevel;
    }

    private int slot(long first, int level) {
        long h = first ^ (level * 0x9E3779B97F4A7C15L);
        return (int) (h ^ (h >>> 32)) & mask;
    }

    /** References of the id in {@code src[off, off+32)} at {@code level}. */
    int count(byte[] src, int off, int level) {
        long a = (long) LONGS.get(src, off), b = (long) LONGS.get(src, off + 8);
        long c = (long) LONGS.get(src, off + 16), d = (long) LONGS.get(src, off + 24);
        long[] t = table;
        for (int i = slot(a, level); ; i = (i + 1) & mask) {
            int at = i * W;
            if ((t[at] | t[at + 1] | t[at + 2] | t[at + 3]) == 0) return 0;
            if (t[at] == a && t[at + 1] == b && t[at + 2] == c && t[at + 3] == d && (int) (t[at + 4] >>> 32) == level) {
                return (int) t[at + 4];
            }
        }
    }

    /** Whether the id in {@code src[off, off+32)} has a reference at any level. */
    boolean reached(byte[] src, int off) {
        for (int level = 0; level <= maxLevel; level++) if (count(src, off, level) > 0) return true;
        return false;
    }

    boolean reached(ChunkId id) {
        byte[] b = new byte[ChunkId.LENGTH];
        id.copyTo(b, 0);
        return reached(b, 0);
    }

    /**
     * Adds {@code delta} (may be negative) to the references of the id in {@code src[off, off+32)}
     * at {@code level}; returns the count before. A count never goes below 0: that would mean the
     * counts are not those of the trees they were built from, and throws IllegalStateException.
     */
    int add(byte[] src, int off, int level, int delta) {
        long a = (long) LONGS.get(src, off), b = (long) LONGS.get(src, off + 8);
        long c = (long) LONGS.get(src, off + 16), d = (long) LONGS.get(src, off + 24);
        if ((a | b | c | d) == 0) throw new IllegalArgumentException("the zero chunk id (a hole) has no references");
        if (level < 0) throw new IllegalArgumentException("level " + level);
        long[] t = table;
        int free = -1;
        for (int i = slot(a, level); ; i = (i + 1) & mask) {
            int at = i * W;
            if ((t[at] | t[at + 1] | t[at + 2] | t[at + 3]) == 0) {
                if (delta < 0) throw new IllegalStateException("reference count of chunk " + ChunkId.fromBytes(src, off).shortHex() + " at level " + level + " would go below 0");
                if (delta == 0) return 0;
                int to = free >= 0 ? free : at;
                t[to] = a;
                t[to + 1] = b;
                t[to + 2] = c;
                t[to + 3] = d;
                t[to + 4] = ((long) level << 32) | delta;
                size++;
                if (free < 0) used++;
                if (level > maxLevel) maxLevel = level;
                if (used * 2 > mask + 1) rehash(size * 2 > mask + 1 ? table.length * 2 : table.length);
                return 0;
            }
            boolean same = t[at] == a && t[at + 1] == b && t[at + 2] == c && t[at + 3] == d && (int) (t[at + 4] >>> 32) == level;
            int n = (int) t[at + 4];
            if (same && n > 0) {
                int after = n + delta;
                if (after < 0) throw new IllegalStateException("reference count of chunk " + ChunkId.fromBytes(src, off).shortHex() + " at level " + level + " would go below 0");
                t[at + 4] = ((long) level << 32) | after;
                if (after == 0) size--; // a tombstone now
                return n;
            }
            if (same || (n == 0 && free < 0)) {
                // a tombstone: of this pair (it cannot be alive further on) or a free slot to reuse
                if (same) {
                    if (delta < 0) throw new IllegalStateException("reference count of chunk " + ChunkId.fromBytes(src, off).shortHex() + " at level " + level + " would go below 0");
                    if (delta == 0) return 0;
                    t[at + 4] = ((long) level << 32) | delta;
                    size++;
                    return 0;
                }
                free = at;
            }
        }
    }

    private void rehash(int length) {
        long[] old = table;
        table = new long[length];
        mask = length / W - 1;
        used = 0;
        for (int at = 0; at < old.length; at += W) {
            if ((int) old[at + 4] == 0) continue; // empty or a tombstone
            int level = (int) (old[at + 4] >>> 32);
            for (int i = slot(old[at], level); ; i = (i + 1) & mask) {
                int to = i * W;
                if ((table[to] | table[to + 1] | table[to + 2] | table[to + 3]) == 0) {
                    System.arraycopy(old, at, table, to, W);
                    used++;
                    break;
                }
            }
        }
    }
}
