package dev.cask.store.local;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Look-alike chunks get sketches that meet and end up next to each other in {@link Resemblance#order};
 * unrelated chunks do not meet and keep their order; the order is always a permutation.
 */
class ResemblanceTest {
    private static byte[] text(Random rnd) {
        String[] words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split(" ");
        StringBuilder b = new StringBuilder(4200);
        while (b.length() < 4096) b.append(words[rnd.nextInt(words.length)]).append(rnd.nextInt(8) == 0 ? '\n' : ' ');
        return Arrays.copyOf(b.toString().getBytes(java.nio.charset.StandardCharsets.US_ASCII), 4096);
    }

    private static byte[] edited(byte[] of, Random rnd, int bytes) {
        byte[] b = of.clone();
        for (int k = 0; k < bytes; k++) b[rnd.nextInt(b.length)] = (byte) rnd.nextInt(256);
        return b;
    }

    private static int shared(long[] a, long[] b) {
        int n = 0;
        for (int j = 0; j < a.length; j++) if (a[j] == b[j]) n++;
        return n;
    }

    @Test
    void aFewChangedBytesKeepSuperFeaturesAndUnrelatedChunksShareNone() {
        Random rnd = new Random(5);
        int met = 0;
        for (int i = 0; i < 50; i++) {
            byte[] a = text(rnd);
            long[] sa = Resemblance.sketch(a, 0, a.length);
            assertEquals(Resemblance.SUPER_FEATURES, sa.length);
            assertTrue(Arrays.equals(sa, Resemblance.sketch(a, 0, a.length)), "a sketch depends on the bytes only");
            if (shared(sa, Resemblance.sketch(edited(a, rnd, 4), 0, a.length)) > 0) met++;
            byte[] other = text(rnd);
            assertEquals(0, shared(sa, Resemblance.sketch(other, 0, other.length)), "unrelated chunk " + i);
        }
        assertTrue(met >= 45, "a chunk with 4 bytes changed shares a super-feature with its original in " + met + " of 50");
    }

    @Test
    void theSketchReadsOnlyItsRange() {
        Random rnd = new Random(6);
        byte[] a = text(rnd);
        byte[] padded = new byte[a.length + 100];
        rnd.nextBytes(padded);
        System.arraycopy(a, 0, padded, 37, a.length);
        assertTrue(Arrays.equals(Resemblance.sketch(a, 0, a.length), Resemblance.sketch(padded, 37, a.length)));
    }

    @Test
    void lookAlikesComeNextToEachOtherOthersKeepTheirOrder() {
        Random rnd = new Random(7);
        int n = 40;
        byte[][] originals = new byte[n][];
        for (int i = 0; i < n; i++) originals[i] = text(rnd);
        // the chunks as two disks wrote them: n originals, then n look-alikes of them in the same order,
        // then n unrelated chunks
        long[][] sketches = new long[3 * n][];
        for (int i = 0; i < n; i++) {
            sketches[i] = Resemblance.sketch(originals[i], 0, 4096);
            sketches[n + i] = Resemblance.sketch(edited(originals[i], rnd, 3), 0, 4096);
            byte[] other = new byte[4096];
            rnd.nextBytes(other);
            sketches[2 * n + i] = Resemblance.sketch(other, 0, 4096);
        }
        int[] order = Resemblance.order(sketches);
        int[] position = new int[order.length];
        Arrays.fill(position, -1);
        for (int k = 0; k < order.length; k++) {
            assertEquals(-1, position[order[k]], "chunk " + order[k] + " twice");
            position[order[k]] = k;
        }
        int adjacent = 0;
        for (int i = 0; i < n; i++) if (position[n + i] == position[i] + 1) adjacent++;
        assertTrue(adjacent >= n - 3, adjacent + " of " + n + " look-alikes right after their original");
        for (int i = 1; i < n; i++) {
            assertTrue(position[2 * n + i] > position[2 * n + i - 1], "unrelated chunks keep their order");
            assertTrue(position[i] > position[i - 1], "originals keep their order");
        }
    }

    @Test
    void oneChunkOrNoneIsAnOrderToo() {
        assertEquals(0, Resemblance.order(new long[0][]).length);
        byte[] zeros = new byte[4096];
        long[][] same = {Resemblance.sketch(zeros, 0, 4096), Resemblance.sketch(zeros, 0, 4096), Resemblance.sketch(new byte[10], 0, 10)};
        int[] order = Resemblance.order(same);
        assertEquals(3, order.length);
        assertEquals(3, Arrays.stream(order).distinct().count());
    }
}
