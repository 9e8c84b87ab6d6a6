package dev.cask.tree;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Layout#decode} reads a version's content from the catalog, which a damaged or hostile
 * file may hold: on mutated encodings (flipped bytes, cut, extended, fields set to edge values
 * such as lengths of 2^60 that add up past 2^63, depths and block sizes that do not fit) it
 * must return a layout or throw {@link CaskException.Corrupt}, nothing else; and a layout it
 * returns must be sound: it encodes back to exactly the bytes given, its extents are contiguous
 * from 0, and its size is the sum of their lengths (no overflow), at most {@link Root#MAX_SIZE}.
 * Seeded: -Dcask.seed=N replays a run.
 */
class LayoutFuzzTest {
    @Test
    void damagedLayoutsDecodeSoundlyOrFailAsCorrupt() {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        int decoded = 0;
        for (int iter = 0; iter < 10_000; iter++) {
            String at = "seed " + seed + " iteration " + iter;
            byte[] good = randomLayout(rnd).encode();
            byte[] b = mutate(good, rnd);
            Layout l;
            try {
                l = Layout.decode(b);
            } catch (CaskException.Corrupt e) {
                assertTrue(e.getMessage().startsWith("layout"), at + ": the message names the layout: " + e.getMessage());
                continue;
            } catch (RuntimeException e) {
                throw new AssertionError(at + ": " + e + " decoding " + java.util.HexFormat.of().formatHex(b), e);
            }
            decoded++;
            assertArrayEquals(b, l.encode(), at + ": decode then encode gives other bytes");
            long sum = 0;
            for (Layout.Extent e : l.extents()) {
                assertEquals(sum, e.offset(), at + ": extents are contiguous");
                sum = Math.addExact(sum, e.length());
            }
            assertEquals(sum, l.size(), at + ": size is the sum of the lengths");
            assertTrue(l.size() >= 0 && l.size() <= Root.MAX_SIZE, at + ": size " + l.size() + " out of range");
        }
        System.out.println("LayoutFuzzTest seed " + seed + ": " + decoded + " of 10000 damaged layouts decoded soundly, the rest refused");
    }

    static Layout randomLayout(Random rnd) {
        int n = rnd.nextInt(5);
        List<Layout.Extent> out = new ArrayList<>();
        long at = 0;
        for (int i = 0; i < n; i++) {
            int bs = 4096 << rnd.nextInt(9);
            long size = switch (rnd.nextInt(4)) {
                case 0 -> 1 + rnd.nextInt(1 << 20);
                case 1 -> (long) bs * (1 + rnd.nextInt(1000));
                case 2 -> 1L << (20 + rnd.nextInt(41));
                default -> 0;
            };
            if (at + size > Root.MAX_SIZE) break;
            byte[] id = new byte[ChunkId.LENGTH];
            if (rnd.nextBoolean()) rnd.nextBytes(id);
            out.add(new Layout.Extent(at, new Root(size, bs, Root.depthFor(size, bs), ChunkId.fromBytes(id))));
            at += size;
        }
        return new Layout(out);
    }

    static byte[] mutate(byte[] good, Random rnd) {
        byte[] b = good.clone();
        ByteBuffer bb = ByteBuffer.wrap(b);
        int extents = (b.length - 9) / 53;
        switch (rnd.nextInt(6)) {
            case 0 -> {
                for (int k = 1 + rnd.nextInt(3); k > 0; k--) b[rnd.nextInt(b.length)] ^= (byte) (1 + rnd.nextInt(255));
            }
            case 1 -> b = Arrays.copyOf(b, rnd.nextInt(b.length + 1));
            case 2 -> {
                b = Arrays.copyOf(b, b.length + 1 + rnd.nextInt(60));
                if (rnd.nextBoolean()) bb.putInt(5, bb.getInt(5) + 1); // claim one more extent
            }
            case 3 -> bb.putInt(5, new int[]{-1, Integer.MIN_VALUE, Integer.MAX_VALUE, extents + 1, extents - 1, 0}[rnd.nextInt(6)]);
            default -> {
                if (extents == 0) {
                    b = Arrays.copyOf(b, 9 + 53 * (1 + rnd.nextInt(3)));
                    ByteBuffer.wrap(b).putInt(5, (b.length - 9) / 53);
                    return b;
                }
                int e = 9 + 53 * rnd.nextInt(extents);
                long[] longs = {0, 1, -1, Long.MIN_VALUE, Long.MAX_VALUE, Root.MAX_SIZE, Root.MAX_SIZE + 1, 1L << 62, 1L << 63 >>> 1};
                switch (rnd.nextInt(4)) {
                    case 0 -> bb.putLong(e, longs[rnd.nextInt(longs.length)]); // offset
                    case 1 -> { // length: 2^60 in every extent adds up past 2^63
                        long v = longs[rnd.nextInt(longs.length)];
                        for (int k = 0; k < extents; k++) {
                            int x = 9 + 53 * k;
                            bb.putLong(x + 8, v);
                            bb.put(x + 20, (byte) Root.depthFor(Math.max(0, Math.min(v, Root.MAX_SIZE)), bb.getInt(x + 16)));
                        }
                        long off = 0;
                        for (int k = 0; k < extents; k++) { // offsets that keep them "contiguous", overflow and all
                            bb.putLong(9 + 53 * k, off);
                            off += v;
                        }
                    }
                    case 2 -> bb.putInt(e + 16, new int[]{0, -1, 4095, 4097, 1 << 21, 1 << 31, 8192}[rnd.nextInt(7)]); // block size
                    default -> bb.put(e + 20, (byte) (rnd.nextBoolean() ? rnd.nextInt(256) : bb.get(e + 20) + 1)); // depth
                }
            }
        }
        return b;
    }
}
