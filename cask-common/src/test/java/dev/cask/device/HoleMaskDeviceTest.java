package dev.cask.device;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link HoleMaskDevice} against a byte-array model: random masks over a random device with
 * holes of its own; every read equals the model (masked bytes zero, the rest the device's), and
 * block status covers each request exactly, coalesced, with every masked byte inside a hole.
 * Replay a failure with -Dcask.seed=N.
 */
class HoleMaskDeviceTest {
    /** A device of random bytes whose allocation map has holes (reading zeros) where {@code holes} says. */
    static final class Model implements BlockDevice {
        final byte[] b;
        final ByteRanges holes;

        Model(byte[] b, ByteRanges holes) {
            this.b = b;
            this.holes = holes;
            for (int i = 0; i < holes.count(); i++) Arrays.fill(b, (int) holes.start(i), (int) holes.end(i), (byte) 0);
        }

        @Override public long size() { return b.length; }
        @Override public Capabilities capabilities() { return Capabilities.readOnly(4096); }
        @Override public void read(long off, byte[] dst, int o, int n) {
            BlockDevice.checkRange(this, off, n);
            System.arraycopy(b, (int) off, dst, o, n);
        }
        @Override public List<BlockStatus> blockStatus(long off, long n) {
            BlockDevice.checkRange(this, off, n);
            List<BlockStatus> out = new ArrayList<>();
            long at = off;
            for (int i = holes.firstEndingAfter(off); i < holes.count() && holes.start(i) < off + n; i++) {
                long s = Math.max(off, holes.start(i));
                long e = Math.min(off + n, holes.end(i));
                if (s > at) out.add(new BlockStatus(at, s - at, false));
                out.add(new BlockStatus(s, e - s, true));
                at = e;
            }
            if (off + n > at) out.add(new BlockStatus(at, off + n - at, false));
            return out;
        }
        @Override public void close() {}
    }

    static ByteRanges randomRanges(Random rnd, int size, int maxLen) {
        ByteRanges.Builder b = new ByteRanges.Builder();
        long at = rnd.nextInt(maxLen);
        while (at < size) {
            long len = 1 + rnd.nextInt(maxLen);
            b.add(at, Math.min(size, at + len));
            at += len + rnd.nextInt(maxLen);
        }
        return b.build();
    }

    @Test
    void matchesTheModel() {
        long seed = Long.getLong("cask.seed", System.nanoTime());
        Random rnd = new Random(seed);
        for (int round = 0; round < 50; round++) {
            int size = 1 + rnd.nextInt(1 << 16);
            byte[] data = new byte[size];
            rnd.nextBytes(data);
            Model base = new Model(data, randomRanges(rnd, size, 1 + rnd.nextInt(4096)));
            ByteRanges mask = randomRanges(rnd, size + 100, 1 + rnd.nextInt(4096)); // may run past the end
            byte[] want = data.clone();
            for (int i = 0; i < mask.count(); i++) {
                Arrays.fill(want, (int) Math.min(size, mask.start(i)), (int) Math.min(size, mask.end(i)), (byte) 0);
            }
            HoleMaskDevice dev = new HoleMaskDevice(base, mask);
            for (int q = 0; q < 100; q++) {
                int off = rnd.nextInt(size);
                int len = rnd.nextInt(size - off + 1);
                byte[] got = new byte[len + 2];
                got[0] = 7;
                got[len + 1] = 7;
                dev.read(off, got, 1, len);
                String ctx = "seed " + seed + " round " + round + " read " + off + "+" + len;
                assertArrayEquals(Arrays.copyOfRange(want, off, off + len), Arrays.copyOfRange(got, 1, len + 1), ctx);
                assertEquals(7, got[0], ctx);
                assertEquals(7, got[len + 1], ctx);
                if (len == 0) continue;
                List<BlockStatus> st = dev.blockStatus(off, len);
                long at = off;
                for (BlockStatus s : st) {
                    assertEquals(at, s.offset(), ctx + ": contiguous " + st);
                    at = s.end();
                    if (s.hole()) for (long i = s.offset(); i < s.end(); i++) assertEquals(0, want[(int) i], ctx + ": hole reads zeros");
                }
                assertEquals(off + len, at, ctx + ": covers the request");
                for (int i = 0; i + 1 < st.size(); i++) assertTrue(st.get(i).hole() != st.get(i + 1).hole(), ctx + ": coalesced " + st);
                for (int i = mask.firstEndingAfter(off); i < mask.count() && mask.start(i) < off + len; i++) {
                    long s = Math.max(off, mask.start(i));
                    for (BlockStatus b : st) {
                        if (b.offset() <= s && s < b.end()) assertTrue(b.hole(), ctx + ": masked byte " + s + " in a hole");
                    }
                }
            }
        }
    }

    @Test
    void rangesMergeAndRefuseDisorder() {
        ByteRanges r = new ByteRanges.Builder().add(0, 10).add(10, 20).add(30, 30).add(40, 50).build();
        assertEquals(2, r.count());
        assertEquals(20, r.end(0));
        assertEquals(30, r.totalBytes());
        assertEquals(1, r.firstEndingAfter(20));
        assertEquals(0, r.firstEndingAfter(19));
        assertEquals(2, r.firstEndingAfter(50));
        assertEquals(47, r.shifted(7).start(1));
        assertThrows(IllegalArgumentException.class, () -> new ByteRanges.Builder().add(10, 20).add(5, 30));
    }
}
