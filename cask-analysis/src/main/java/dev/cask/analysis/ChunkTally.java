package dev.cask.analysis;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import dev.cask.device.Devices;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * The numbers of one strategy: receives its chunks ({@link ChunkSink}) and keeps the counters,
 * the {@link FingerprintSet} of distinct non-zero chunks, and the pairwise shared bytes.
 *
 * <p><b>Per chunk.</b> A chunk whose bytes are all zero (holes included) is counted as zero and
 * goes no further. Otherwise its fingerprint is the first 64 bits of its SHA-256 (the chunk id of
 * the store, truncated). A fingerprint new to the set adds the chunk to the collection's unique
 * bytes, and its zstd level 1 size (compressed on its own, as the store compresses each chunk; the
 * raw size when compression does not pay) to the compressed bytes. A fingerprint new to the
 * current image adds to that image's unique bytes, and to {@code shared[j][image]} for every
 * earlier image j already holding it: images are analysed in order, so each pair's shared bytes
 * are counted exactly once, when the later image first meets the chunk.
 *
 * <p><b>Collisions.</b> Two different chunks with equal 64-bit fingerprints would be counted as one.
 * For n distinct chunks the chance of any such pair is about n^2 / 2^65: 5e-6 for 13 M chunks
 * (50 GiB at 4 KiB), 2e-3 for 270 M (1 TiB at 4 KiB); and one collision misstates the totals by
 * one chunk. Acceptable for an estimate; the store itself compares full 256-bit ids.
 *
 * <p><b>Sharing work.</b> fixed-N and aligned-N cut the same chunk whenever a partition starts at
 * a multiple of N. The fixed tally can {@link #memoOut record} each full N-byte chunk's result for
 * the current read piece; the aligned tally {@link #memoIn looks up} chunks of the same range (same
 * range, same bytes) and skips the zero test, the hash and, when known, the compression.
 *
 * <p>Not thread-safe: driven by one thread at a time ({@link BlockAnalysis} hands each strategy
 * group to one thread). Owns a zstd context: {@link #close} it.
 */
final class ChunkTally implements ChunkSink, AutoCloseable {
    private static final VarHandle LONG_BE = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

    final Strategy strategy;
    final int images;
    private final FingerprintSet set;
    private final MessageDigest sha;
    private final byte[] digest = new byte[32];
    private final ZstdCompressCtx zstd;
    private final byte[] compressed;
    private Memo memoIn;
    private Memo memoOut;
    private int image = -1;

    // the collection
    long chunks, zeroChunks, logicalBytes, zeroBytes, uniqueChunks, uniqueBytes, compressedBytes;
    // per image
    final long[] imageChunks, imageZeroChunks, imageLogical, imageZero, imageUniqueChunks, imageUnique;
    /** shared[i][j], i < j: bytes of distinct non-zero chunks present in both images. */
    final long[][] shared;
    /** Collection unique and compressed bytes after each image. */
    final long[] growthUnique, growthCompressed;

    ChunkTally(Strategy strategy, int images) {
        this.strategy = strategy;
        this.images = images;
        this.set = new FingerprintSet(images, 1 << 16, strategy.name());
        try {
            this.sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
        this.zstd = new ZstdCompressCtx().setLevel(1); // as the store sets it up
        this.compressed = new byte[(int) Zstd.compressBound(strategy.maxChunk())];
        imageChunks = new long[images];
        imageZeroChunks = new long[images];
        imageLogical = new long[images];
        imageZero = new long[images];
        imageUniqueChunks = new long[images];
        imageUnique = new long[images];
        shared = new long[images][images];
        growthUnique = new long[images];
        growthCompressed = new long[images];
    }

    /** This tally records its full-size chunks into {@code memo}. */
    void memoOut(Memo memo) {
        this.memoOut = memo;
    }

    /** This tally looks its full-size chunks up in {@code memo} first. */
    void memoIn(Memo memo) {
        this.memoIn = memo;
    }

    void beginImage(int i) {
        if (i != image + 1) throw new IllegalStateException("image " + i + " after " + image);
        image = i;
    }

    void endImage() {
        growthUnique[image] = uniqueBytes;
        growthCompressed[image] = compressedBytes;
    }

    FingerprintSet set() {
        return set;
    }

    @Override
    public void zeroChunks(long count, int length, long offset) {
        long bytes = count * length;
        chunks += count;
        zeroChunks += count;
        logicalBytes += bytes;
        zeroBytes += bytes;
        imageChunks[image] += count;
        imageZeroChunks[image] += count;
        imageLogical[image] += bytes;
        imageZero[image] += bytes;
    }

    @Override
    public void chunk(byte[] a, int off, int len, long offset) {
        chunks++;
        logicalBytes += len;
        imageChunks[image]++;
        imageLogical[image] += len;
        long fingerprint;
        int size = -1;
        Memo in = memoIn;
        if (in != null && len == in.n && in.lookup(offset)) {
            if (in.hitZero) {
                countZero(len);
                return;
            }
            fingerprint = in.hitFingerprint;
            size = in.hitCompressed;
        } else {
            if (Devices.isZero(a, off, len)) {
                countZero(len);
                if (memoOut != null && len == memoOut.n) memoOut.recordZero(offset);
                return;
            }
            sha.update(a, off, len);
            try {
                sha.digest(digest, 0, 32);
            } catch (java.security.DigestException e) {
                throw new IllegalStateException(e);
            }
            fingerprint = (long) LONG_BE.get(digest, 0);
        }
        int slot = set.insert(fingerprint);
        boolean fresh = slot < 0;
        if (fresh) {
            slot = -1 - slot;
            uniqueChunks++;
            uniqueBytes += len;
            if (size < 0) size = compressedSize(a, off, len);
            compressedBytes += size;
        }
        if (set.addImage(slot, image)) {
            imageUniqueChunks[image]++;
            imageUnique[image] += len;
            if (!fresh) countShared(slot, len);
        }
        if (memoOut != null && len == memoOut.n) memoOut.record(offset, fingerprint, size);
    }

    private void countZero(int len) {
        zeroChunks++;
        zeroBytes += len;
        imageZeroChunks[image]++;
        imageZero[image] += len;
    }

    private void countShared(int slot, int len) {
        int words = set.words();
        int ownWord = image >>> 6;
        for (int w = 0; w < words; w++) {
            long m = set.maskWord(slot, w);
            if (w == ownWord) m &= ~(1L << image);
            while (m != 0) {
                int j = (w << 6) + Long.numberOfTrailingZeros(m);
                shared[j][image] += len;
                m &= m - 1;
            }
        }
    }

    private int compressedSize(byte[] a, int off, int len) {
        int n = zstd.compressByteArray(compressed, 0, compressed.length, a, off, len);
        return Math.min(n, len);
    }

    @Override
    public void close() {
        zstd.close();
    }

    /**
     * Results of the full-size (N-byte) chunks cut from one read piece, by disk offset: written by
     * the fixed tally, read by the aligned tally of the same N right after, on the same thread.
     * {@link #reset} at each piece; a generation stamp avoids clearing the arrays.
     */
    static final class Memo {
        final int n;
        private long base;
        private int length;
        private long[] fingerprints = new long[0];
        private int[] compressedSizes = new int[0];
        private int[] stamps = new int[0];
        private boolean[] zero = new boolean[0];
        private int generation;
        boolean hitZero;
        long hitFingerprint;
        int hitCompressed;

        Memo(int n) {
            this.n = n;
        }

        /** Forgets everything: the next chunks come from the piece at {@code offset}. */
        void reset(long offset, long pieceLength) {
            generation++;
            base = offset / n - 1; // the chunk completed by this piece may start before it
            length = (int) Math.min(Integer.MAX_VALUE - 8, pieceLength / n + 3);
            if (stamps.length < length) {
                int cap = Math.max(length, stamps.length * 2);
                fingerprints = new long[cap];
                compressedSizes = new int[cap];
                stamps = new int[cap];
                zero = new boolean[cap];
            }
        }

        private int index(long offset) {
            if (offset % n != 0) return -1;
            long i = offset / n - base;
            return i >= 0 && i < length ? (int) i : -1;
        }

        void record(long offset, long fingerprint, int compressedSize) {
            int i = index(offset);
            if (i < 0) return;
            stamps[i] = generation;
            zero[i] = false;
            fingerprints[i] = fingerprint;
            compressedSizes[i] = compressedSize;
        }

        void recordZero(long offset) {
            int i = index(offset);
            if (i < 0) return;
            stamps[i] = generation;
            zero[i] = true;
        }

        boolean lookup(long offset) {
            int i = index(offset);
            if (i < 0 || stamps[i] != generation) return false;
            hitZero = zero[i];
            hitFingerprint = fingerprints[i];
            hitCompressed = compressedSizes[i];
            return true;
        }
    }
}
