package dev.cask.store.local;

/**
 * Which chunks look alike: a small sketch per chunk, and an order of chunks that puts the ones
 * whose sketches meet next to each other, so that a zstd frame over a run of them finds their
 * common bytes. Recompression of cold packs ({@link Recompressor}) writes chunks in this order.
 *
 * <p><b>Why.</b> Deduplication keeps one copy of each identical 4 KiB block; blocks that are
 * nearly the same (the same file in two releases of a distribution, a config file with one line
 * changed) are stored whole each time, each compressed only against its neighbours in the disk
 * it came from. zstd finds the repeats only within its frame (at most 1 MiB here, so that a
 * random read decompresses little). Put two such blocks in one frame and the second costs a few
 * hundred bytes. Measured on the unique blocks of the four fixture images (472 MiB, zstd -b, 1 MiB
 * frames): in the order they were imported 207.0 MB at level 3 and 186.9 at level 9; in this order
 * 186.4 MB at level 3 and 180.0 at level 6; one stream with a 1 GiB window at level 9 (the
 * bound no frame size can beat) 172.2 MB.
 *
 * <p><b>The sketch</b> is the "super-feature" idea of delta compression in backup systems
 * (Shilane et al., "WAN optimized replication of backup datasets using stream-informed delta
 * compression", FAST 2012): a polynomial rolling hash over every 32-byte window of the chunk;
 * the windows whose hash falls in a content-chosen 1/32 (so two chunks that share a stretch of
 * bytes sample the same windows there, wherever the stretch sits); {@link #FEATURES} min-hashes
 * over those samples (each under its own random linear map); and pairs of them combined into
 * {@link #SUPER_FEATURES} super-features. Two chunks that share most of their windows share a
 * min-hash with high probability, and a super-feature (both of its min-hashes) with a fair one;
 * unrelated chunks share one by chance only (64-bit values). Pairs rather than triples, and 16
 * features rather than 12, gave the smallest result on the fixture data (197.5 MB with 4
 * super-features of 4; 190.3 with 4 of 2; 187.6 with 8 of 2 in union-find order).
 *
 * <p><b>The order</b> ({@link #order}) walks the chunks in their given order (pack order: the
 * order they were written, which keeps a disk's neighbouring blocks together) and, depth first,
 * pulls each chunk's look-alikes (chunks that share a super-feature with it, and theirs) in right
 * after it. A chunk with no look-alike stays where it was relative to the others. Each group of
 * chunks sharing one super-feature is expanded once, so the walk costs O(n x
 * {@link #SUPER_FEATURES}) after one sort.
 *
 * <p>Cost: the sketch takes 30-40 µs per 4 KiB chunk on the two-core bench host with a build
 * running beside it (three multiplies per byte, the min-hashes per sample): 4-5 s of the ~30 s a
 * recompression of the fixture store takes; the order of 120k chunks 0.1-0.8 s. Memory: 64 bytes
 * per chunk for the sketch, 12 bytes per super-feature for the order. Thread-safe: no state.
 */
final class Resemblance {
    /** Min-hashes per chunk. */
    static final int FEATURES = 16;
    /** Super-features per chunk: consecutive pairs of min-hashes. */
    static final int SUPER_FEATURES = FEATURES / 2;
    /** Bytes in the rolling hash's window. */
    static final int WINDOW = 32;
    /** A window is sampled when the top 6 bits of its mixed hash are below this: 2 of 64, 1/32. */
    private static final long SAMPLE_BELOW = 2;
    private static final long BASE = 0x100000001b3L;
    private static final long BASE_TO_WINDOW;
    private static final long[] MUL = new long[FEATURES];
    private static final long[] ADD = new long[FEATURES];

    static {
        long p = 1;
        for (int i = 0; i < WINDOW; i++) p *= BASE;
        BASE_TO_WINDOW = p;
        java.util.SplittableRandom r = new java.util.SplittableRandom(0x636173b5L); // fixed: sketches are compared within one run only, but a fixed seed makes runs repeatable
        for (int k = 0; k < FEATURES; k++) {
            MUL[k] = r.nextLong() | 1;
            ADD[k] = r.nextLong();
        }
    }

    private Resemblance() {}

    /** The {@link #SUPER_FEATURES} super-features of {@code data[off, off+len)}. */
    static long[] sketch(byte[] data, int off, int len) {
        long[] min = new long[FEATURES];
        java.util.Arrays.fill(min, -1L); // unsigned maximum
        long h = 0;
        int end = off + len;
        for (int i = off; i < end; i++) {
            h = h * BASE + (data[i] & 0xff);
            if (i - off >= WINDOW) h -= BASE_TO_WINDOW * (data[i - WINDOW] & 0xff);
            if (i - off >= WINDOW - 1 && (h * 0x9E3779B97F4A7C15L) >>> 58 < SAMPLE_BELOW) {
                for (int k = 0; k < FEATURES; k++) {
                    long t = h * MUL[k] + ADD[k];
                    if (Long.compareUnsigned(t, min[k]) < 0) min[k] = t;
                }
            }
        }
        long[] sf = new long[SUPER_FEATURES];
        for (int j = 0; j < SUPER_FEATURES; j++) {
            long s = (j + 1) * 0xBF58476D1CE4E5B9L;
            s = (s ^ min[2 * j]) * 0x94D049BB133111EBL;
            s = (s ^ (s >>> 31) ^ min[2 * j + 1]) * 0xBF58476D1CE4E5B9L;
            sf[j] = s ^ (s >>> 29);
        }
        return sf;
    }

    /**
     * An order of the chunks whose sketches are {@code sketches} (in their given order): a
     * permutation, each index once (see the class essay). At most 2^24 / {@link #SUPER_FEATURES}
     * chunks (the low 24 bits of a sorted key hold the position); the caller cuts larger sets.
     */
    static int[] order(long[][] sketches) {
        int n = sketches.length;
        int f = SUPER_FEATURES;
        if ((long) n * f >= 1 << 24) throw new IllegalArgumentException(n + " chunks, at most " + ((1 << 24) / f - 1) + " at once");
        long mask = (1L << 24) - 1;
        long[] keys = new long[n * f];
        for (int c = 0; c < n; c++) {
            for (int j = 0; j < f; j++) keys[c * f + j] = (sketches[c][j] & ~mask) | (c * f + j);
        }
        java.util.Arrays.sort(keys);
        int[] at = new int[n * f]; // where each (chunk, super-feature) sits in keys
        int[] groupStart = new int[n * f]; // for each sorted position, the first position of its group
        for (int s = 0; s < keys.length; s++) {
            at[(int) (keys[s] & mask)] = s;
            groupStart[s] = s > 0 && (keys[s] & ~mask) == (keys[s - 1] & ~mask) ? groupStart[s - 1] : s;
        }
        boolean[] placed = new boolean[n];
        boolean[] expanded = new boolean[keys.length]; // by group start
        int[] out = new int[n];
        int m = 0;
        int[] stack = new int[n];
        for (int c0 = 0; c0 < n; c0++) {
            if (placed[c0]) continue;
            int sp = 0;
            stack[sp++] = c0;
            placed[c0] = true;
            while (sp > 0) {
                int c = stack[--sp];
                out[m++] = c;
                // push in reverse so that the first super-feature's look-alikes, in their given order, come out first
                for (int j = f - 1; j >= 0; j--) {
                    int g = groupStart[at[c * f + j]];
                    if (expanded[g]) continue;
                    expanded[g] = true;
                    int e = g;
                    while (e < keys.length && groupStart[e] == g) e++;
                    for (int s = e - 1; s >= g; s--) {
                        int other = (int) (keys[s] & mask) / f;
                        if (!placed[other]) {
                            placed[other] = true;
                            stack[sp++] = other;
                        }
                    }
                }
            }
        }
        return out;
    }
}
