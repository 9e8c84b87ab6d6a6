package dev.cask.analysis;

import java.util.SplittableRandom;

/**
 * Content-defined cut points: FastCDC (Xia et al., USENIX ATC 2016) with a gear rolling hash and
 * normalized chunking, as a streaming state machine that is fed a disk piece by piece.
 *
 * <p><b>The rule.</b> For a nominal average size {@code avg} (a power of two, 512 B to 1 MiB):
 * {@code min = avg / 4}, {@code max = avg * 8}. Within a chunk, the bytes that bring its length
 * {@code L} up to {@code min - 1} are skipped (not even hashed: FastCDC's cut-point skipping).
 * From then on every byte updates the gear hash {@code h = (h << 1) + GEAR[byte]}, and the chunk
 * ends after that byte when {@code (h & mask) == 0}, where {@code mask} is the top
 * {@code log2(avg) + 2} bits while {@code L < avg} (harder to hit) and the top
 * {@code log2(avg) - 2} bits from {@code L >= avg} on (easier): normalization level 2, which
 * pulls sizes towards {@code avg}. At {@code L == max} the chunk ends regardless; the last chunk of
 * the disk ends with the disk. So every chunk but the disk's last is {@code min..max} bytes long.
 * The masks take the hash's top bits because with a left-shifting hash bit k depends on the last
 * k+1 bytes only: the top bits see a 64-byte window. The mean chunk is about {@code 1.1 * avg}
 * on random data (the skipped {@code min} plus the two geometric phases) and 1.2 to 1.25 times on
 * the Debian fixture images. The hash restarts at
 * zero for every chunk, so a cut depends only on the bytes of its own chunk.
 *
 * <p><b>Small averages.</b> 512 B and 1 KiB averages work the same way (min 128 B / 256 B); they
 * are allowed, just expensive: four times the chunks, table entries and hashing calls of 4 KiB.
 *
 * <p><b>Zeros.</b> A run of zero bytes long enough to hold a whole chunk is cut into chunks of one
 * fixed length, {@link #zeroChunkSize()}, computed once by running the rule on zeros: callers use
 * it to count the chunks of a hole without feeding it byte by byte.
 *
 * <p>{@code GEAR} is 256 pseudo-random 64-bit values from a fixed seed, so cut points (and every
 * cdc number) are reproducible. Not thread-safe: one instance per stream.
 */
public final class FastCdc {
    static final long[] GEAR = new long[256];

    static {
        SplittableRandom r = new SplittableRandom(0x6361736b_63646331L); // "caskcdc1"
        for (int i = 0; i < 256; i++) GEAR[i] = r.nextLong();
    }

    private final int min;
    private final int avg;
    private final int max;
    private final long maskS;
    private final long maskL;
    private final int zeroChunk;
    /** Bytes of the current chunk seen so far. */
    private int length;
    /** Gear hash of the current chunk's hashed bytes. */
    private long hash;

    public FastCdc(int avg) {
        Strategy.checkBlockSize(avg);
        this.avg = avg;
        this.min = minSize(avg);
        this.max = maxSize(avg);
        int bits = Integer.numberOfTrailingZeros(avg);
        this.maskS = -1L << (64 - (bits + 2));
        this.maskL = -1L << (64 - (bits - 2));
        int z = next(new byte[max], 0, max);
        assert z > 0 : "a zero run of max bytes must hold a chunk";
        this.zeroChunk = z;
        reset();
    }

    public static int minSize(int avg) {
        return avg / 4;
    }

    public static int maxSize(int avg) {
        return avg * 8;
    }

    public int min() {
        return min;
    }

    public int avg() {
        return avg;
    }

    public int max() {
        return max;
    }

    /** Length of the chunks that a long run of zero bytes is cut into. */
    public int zeroChunkSize() {
        return zeroChunk;
    }

    /** Bytes of the current (unfinished) chunk seen so far. */
    public int length() {
        return length;
    }

    /** Forgets the current chunk: the next byte starts a new one. */
    public void reset() {
        length = 0;
        hash = 0;
    }

    /**
     * Feeds {@code b[from, to)} as the continuation of the current chunk. When the chunk ends
     * inside the range, returns the index just past its last byte (a new chunk starts there and
     * nothing after it was consumed); otherwise consumes the whole range and returns -1.
     */
    public int next(byte[] b, int from, int to) {
        int i = from;
        int l = length;
        if (l < min - 1) {
            int skip = Math.min(min - 1 - l, to - i);
            i += skip;
            l += skip;
            if (i == to) {
                length = l;
                return -1;
            }
        }
        final long[] gear = GEAR;
        long h = hash;
        final int base = l - i; // chunk length before consuming b[i] is base + i
        if (l < avg - 1) {
            int stop = i + Math.min(avg - 1 - l, to - i); // bytes making the length min..avg-1
            final long m = maskS;
            for (; i < stop; i++) {
                h = (h << 1) + gear[b[i] & 0xff];
                if ((h & m) == 0) return cut(i + 1);
            }
            if (i == to) {
                length = base + i;
                hash = h;
                return -1;
            }
        }
        l = base + i;
        int stop = i + Math.min(max - l, to - i); // bytes making the length avg..max
        final long m = maskL;
        for (; i < stop; i++) {
            h = (h << 1) + gear[b[i] & 0xff];
            if ((h & m) == 0) return cut(i + 1);
        }
        l = base + i;
        if (l == max) return cut(i);
        length = l;
        hash = h;
        return -1;
    }

    private int cut(int at) {
        length = 0;
        hash = 0;
        return at;
    }
}
