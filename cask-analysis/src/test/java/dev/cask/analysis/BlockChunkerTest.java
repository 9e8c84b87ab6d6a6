package dev.cask.analysis;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The chunkers cut a disk fed as data and hole pieces exactly as they cut the same disk fed as
 * one array, fixed and aligned cut where a plain loop says, and FastCDC keeps its bounds.
 */
class BlockChunkerTest {
    /** A chunk as the sink saw it: where, how long, and a digest of its bytes (zero chunks expanded one by one). */
    record Cut(long offset, int length, boolean zero, int hash) {}

    static final class Recorder implements ChunkSink {
        final List<Cut> cuts = new ArrayList<>();

        @Override
        public void chunk(byte[] a, int off, int len, long offset) {
            boolean zero = true;
            for (int i = off; i < off + len; i++) if (a[i] != 0) { zero = false; break; }
            cuts.add(new Cut(offset, len, zero, zero ? 0 : Arrays.hashCode(Arrays.copyOfRange(a, off, off + len))));
        }

        @Override
        public void zeroChunks(long count, int length, long offset) {
            assertTrue(count > 0, "zero chunk count " + count);
            for (long k = 0; k < count; k++) cuts.add(new Cut(offset + k * length, length, true, 0));
        }
    }

    /** A disk of random data with zero runs of many lengths (some longer than any chunk, some short). */
    static byte[] disk(long seed, int size) {
        Random r = new Random(seed);
        byte[] d = new byte[size];
        int pos = 0;
        while (pos < size) {
            int n = Math.min(size - pos, 1 + r.nextInt(r.nextBoolean() ? 3000 : 300_000));
            if (r.nextInt(3) > 0) {
                for (int i = pos; i < pos + n; i++) d[i] = (byte) r.nextInt(256);
            } // else: a zero run
            pos += n;
        }
        return d;
    }

    /** Feeds the disk in random pieces; zero runs of 64+ bytes go as zeros(len) (sometimes split). */
    static void feedPieces(Chunker c, byte[] d, long seed) {
        Random r = new Random(seed);
        int pos = 0;
        while (pos < d.length) {
            int end = pos;
            if (d[pos] == 0) {
                while (end < d.length && d[end] == 0) end++;
                if (end - pos >= 64) {
                    int cut = r.nextBoolean() ? pos + r.nextInt(end - pos) + 1 : end; // split some holes in two
                    c.zeros(cut - pos);
                    pos = cut;
                    continue;
                }
            }
            end = Math.min(d.length, pos + 1 + r.nextInt(r.nextBoolean() ? 100 : 200_000));
            // copy through a larger scratch buffer at an offset, like a read buffer
            byte[] buf = new byte[end - pos + 17];
            System.arraycopy(d, pos, buf, 13, end - pos);
            c.data(buf, 13, end - pos);
            pos = end;
        }
    }

    static List<Cut> cutWhole(Chunker c, byte[] d, long[] cuts, Recorder rec) {
        c.begin(d.length, cuts);
        c.data(d, 0, d.length);
        c.end();
        return List.copyOf(rec.cuts);
    }

    static List<Cut> cutPieces(Chunker c, byte[] d, long[] cuts, Recorder rec, long seed) {
        c.begin(d.length, cuts);
        feedPieces(c, d, seed);
        c.end();
        return List.copyOf(rec.cuts);
    }

    static final byte[] ZEROS = new byte[8 << 20];

    /** Where fixed/aligned must cut: a plain loop over segments. */
    static List<long[]> expectedAligned(long size, long[] cuts, int n) {
        List<long[]> out = new ArrayList<>();
        for (int s = 0; s + 1 < cuts.length; s++) {
            for (long o = cuts[s]; o < cuts[s + 1]; o += n) out.add(new long[]{o, Math.min(n, cuts[s + 1] - o)});
        }
        return out;
    }

    @Test
    void fixedAndAlignedCutAtTheirBoundariesWhateverThePieces() {
        for (int seed = 1; seed <= 6; seed++) {
            byte[] d = disk(seed, 3 << 20 | 1234);
            for (int n : new int[]{512, 4096, 65536}) {
                long[][] cutSets = {{0, d.length}, {0, 63 * 512, 63 * 512 + 1_000_000 + 512 * 7, d.length},
                        {0, 2048 * 512, 2048 * 512 + 999_999, 2_500_001, d.length}};
                for (long[] cuts : cutSets) {
                    Recorder a = new Recorder();
                    List<Cut> whole = cutWhole(new Chunker.Aligned(n, a, ZEROS), d, cuts, a);
                    Recorder b = new Recorder();
                    List<Cut> pieces = cutPieces(new Chunker.Aligned(n, b, ZEROS), d, cuts, b, seed * 31L + n);
                    assertEquals(whole, pieces, "seed " + seed + " n " + n + " cuts " + Arrays.toString(cuts));
                    List<long[]> want = expectedAligned(d.length, cuts, n);
                    assertEquals(want.size(), whole.size());
                    for (int i = 0; i < want.size(); i++) {
                        assertEquals(want.get(i)[0], whole.get(i).offset());
                        assertEquals(want.get(i)[1], whole.get(i).length());
                        int off = (int) want.get(i)[0], len = (int) want.get(i)[1];
                        int h = Arrays.hashCode(Arrays.copyOfRange(d, off, off + len));
                        if (!whole.get(i).zero()) assertEquals(h, whole.get(i).hash());
                    }
                }
            }
        }
    }

    @Test
    void cdcCutsTheSameWhetherFedWholeOrInPiecesWithHoles() {
        for (int seed = 1; seed <= 6; seed++) {
            byte[] d = disk(100 + seed, 4 << 20 | 999);
            for (int avg : new int[]{512, 4096, 16384, 65536}) {
                Recorder a = new Recorder();
                List<Cut> whole = cutWhole(new Chunker.Cdc(avg, a, ZEROS), d, new long[]{0, d.length}, a);
                Recorder b = new Recorder();
                List<Cut> pieces = cutPieces(new Chunker.Cdc(avg, b, ZEROS), d, new long[]{0, d.length}, b, seed * 7L + avg);
                assertEquals(whole.size(), pieces.size(), "seed " + seed + " avg " + avg);
                assertEquals(whole, pieces, "seed " + seed + " avg " + avg);
                long sum = 0;
                for (int i = 0; i < whole.size(); i++) {
                    Cut c = whole.get(i);
                    assertEquals(sum, c.offset());
                    sum += c.length();
                    assertTrue(c.length() <= avg * 8, "chunk " + i + " of " + c.length() + " > max");
                    if (i < whole.size() - 1) assertTrue(c.length() >= avg / 4, "chunk " + i + " of " + c.length() + " < min");
                }
                assertEquals(d.length, sum);
            }
        }
    }

    @Test
    void cdcMeanChunkIsNearTheAverageAndZerosCutAtZeroChunkSize() {
        Random r = new Random(5);
        byte[] d = new byte[32 << 20];
        r.nextBytes(d);
        for (int avg : new int[]{512, 1024, 4096, 16384, 65536}) {
            FastCdc cdc = new FastCdc(avg);
            int chunks = 0, pos = 0;
            while (pos < d.length) {
                int cut = cdc.next(d, pos, d.length);
                if (cut < 0) break;
                chunks++;
                pos = cut;
            }
            double mean = (double) pos / chunks;
            assertTrue(mean > 0.95 * avg && mean < 1.3 * avg, "avg " + avg + ": mean chunk " + mean);
            int z = cdc.zeroChunkSize();
            assertTrue(z >= avg / 4 && z <= avg * 8, "zero chunk " + z);
            cdc.reset();
            assertEquals(z, cdc.next(new byte[avg * 8], 0, avg * 8));
        }
    }

    @Test
    void cdcFindsTheSameChunksAfterAnOddShift() {
        Random r = new Random(9);
        byte[] d = new byte[8 << 20];
        r.nextBytes(d);
        byte[] shifted = new byte[d.length + 777];
        r.nextBytes(shifted);
        System.arraycopy(d, 0, shifted, 777, d.length);
        for (int avg : new int[]{4096, 16384}) {
            Recorder a = new Recorder();
            List<Cut> x = cutWhole(new Chunker.Cdc(avg, a, ZEROS), d, new long[]{0, d.length}, a);
            Recorder b = new Recorder();
            List<Cut> y = cutWhole(new Chunker.Cdc(avg, b, ZEROS), shifted, new long[]{0, shifted.length}, b);
            java.util.Set<Integer> hashes = new java.util.HashSet<>();
            for (Cut c : x) hashes.add(c.hash());
            long common = 0;
            for (Cut c : y) if (hashes.contains(c.hash())) common += c.length();
            assertTrue(common > d.length * 0.98, "avg " + avg + ": only " + common + " of " + d.length + " bytes found again");
        }
    }
}
