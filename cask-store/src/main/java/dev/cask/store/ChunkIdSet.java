package dev.cask.store;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * A set of chunk ids kept as plain longs: four per id, in one open-addressing table (linear
 * probing). Garbage collection marks every chunk a store's versions reach, hundreds of thousands
 * to millions of them, and then asks about every index entry: a {@code HashSet<ChunkId>} spends
 * about 100 bytes and three objects per id on that (the id, its byte array, the map node) and a
 * cache miss for each; this spends 32 bytes per slot at a load of at most a half, no object per
 * id, and one miss per probe. An id can be added and asked about straight from the bytes it was
 * read in ({@link #add(byte[], int)}), without making a {@link ChunkId} first.
 *
 * <p>The ids are SHA-256 hashes, so their first eight bytes are a good hash. The all-zero id
 * ({@link ChunkId#ZERO}, a hole, never stored) marks an empty slot and cannot be added. Not
 * thread-safe.
 */
public final class ChunkIdSet {
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

    private long[] table;
    private int mask; // slots - 1
    private int size;

    public ChunkIdSet() {
        this(1 << 16);
    }

    /** A set sized for about {@code expected} ids before it grows. */
    public ChunkIdSet(int expected) {
        int slots = Integer.highestOneBit(Math.max(16, expected) * 2 - 1) << 1;
        table = new long[slots * 4];
        mask = slots - 1;
    }

    public int size() {
        return size;
    }

    /** Adds {@code id}; true when it was not in the set. The zero id is refused. */
    public boolean add(ChunkId id) {
        byte[] b = new byte[ChunkId.LENGTH];
        id.copyTo(b, 0);
        return add(b, 0);
    }

    /** Adds the id in {@code src[off, off+32)}; true when it was not in the set. */
    public boolean add(byte[] src, int off) {
        long a = (long) LONGS.get(src, off), b = (long) LONGS.get(src, off + 8);
        long c = (long) LONGS.get(src, off + 16), d = (long) LONGS.get(src, off + 24);
        if ((a | b | c | d) == 0) throw new IllegalArgumentException("the zero chunk id (a hole) cannot be added");
        for (int i = slot(a); ; i = (i + 1) & mask) {
            int at = i * 4;
            long[] t = table;
            if ((t[at] | t[at + 1] | t[at + 2] | t[at + 3]) == 0) {
                t[at] = a;
                t[at + 1] = b;
                t[at + 2] = c;
                t[at + 3] = d;
                if (++size * 2 > mask + 1) grow();
                return true;
            }
            if (t[at] == a && t[at + 1] == b && t[at + 2] == c && t[at + 3] == d) return false;
        }
    }

    public boolean contains(ChunkId id) {
        byte[] b = new byte[ChunkId.LENGTH];
        id.copyTo(b, 0);
        return contains(b, 0);
    }

    /** Whether the id in {@code src[off, off+32)} is in the set. */
    public boolean contains(byte[] src, int off) {
        long a = (long) LONGS.get(src, off), b = (long) LONGS.get(src, off + 8);
        long c = (long) LONGS.get(src, off + 16), d = (long) LONGS.get(src, off + 24);
        for (int i = slot(a); ; i = (i + 1) & mask) {
            int at = i * 4;
            long[] t = table;
            if (t[at] == a && t[at + 1] == b && t[at + 2] == c && t[at + 3] == d) return (a | b | c | d) != 0;
            if ((t[at] | t[at + 1] | t[at + 2] | t[at + 3]) == 0) return false;
        }
    }

    private int slot(long first) {
        return (int) (first ^ (first >>> 32)) & mask;
    }

    private void grow() {
        long[] old = table;
        table = new long[old.length * 2];
        mask = table.length / 4 - 1;
        for (int at = 0; at < old.length; at += 4) {
            if ((old[at] | old[at + 1] | old[at + 2] | old[at + 3]) == 0) continue;
            for (int i = slot(old[at]); ; i = (i + 1) & mask) {
                int to = i * 4;
                if ((table[to] | table[to + 1] | table[to + 2] | table[to + 3]) == 0) {
                    System.arraycopy(old, at, table, to, 4);
                    break;
                }
            }
        }
    }
}
