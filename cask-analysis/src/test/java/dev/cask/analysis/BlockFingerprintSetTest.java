package dev.cask.analysis;

import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The fingerprint table against a HashMap model, through many growths, with one and with several mask words. */
class BlockFingerprintSetTest {
    @Test
    void keepsEveryKeyAndImageSetThroughGrowth() {
        for (int images : new int[]{1, 64, 65, 200}) {
            FingerprintSet set = new FingerprintSet(images, 16, "test");
            Map<Long, long[]> model = new HashMap<>();
            SplittableRandom r = new SplittableRandom(images);
            long[] keys = new long[300_000];
            for (int i = 0; i < keys.length; i++) keys[i] = r.nextLong();
            keys[7] = 0; // stored as 1
            keys[8] = 1; // the same entry
            int words = (images + 63) / 64;
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < keys.length; i++) {
                    long k = keys[i] == 0 ? 1 : keys[i];
                    if (round > 0 && r.nextInt(3) != 0) continue;
                    int image = r.nextInt(images);
                    int slot = set.insert(keys[i]);
                    boolean fresh = slot < 0;
                    if (fresh) slot = -1 - slot;
                    assertEquals(!model.containsKey(k), fresh, "key " + k);
                    long[] m = model.computeIfAbsent(k, x -> new long[words]);
                    boolean had = (m[image >>> 6] & (1L << image)) != 0;
                    m[image >>> 6] |= 1L << image;
                    assertEquals(!had, set.addImage(slot, image));
                }
            }
            assertEquals(model.size(), set.size());
            assertTrue(set.size() <= set.capacity() * 3L / 4, "load " + set.size() + "/" + set.capacity());
            assertTrue(set.size() * 2L >= set.capacity() - 16, "load " + set.size() + "/" + set.capacity());
            for (Map.Entry<Long, long[]> e : model.entrySet()) {
                int slot = set.insert(e.getKey());
                assertFalse(slot < 0, "key " + e.getKey() + " lost");
                for (int w = 0; w < words; w++) assertEquals(e.getValue()[w], set.maskWord(slot, w), "key " + e.getKey() + " word " + w);
            }
            assertEquals(model.size(), set.size());
            assertEquals(8L * set.capacity() * (1 + words), set.heapBytes());
            // the essay's arithmetic: at most 2 slots of 8 + 8 * words bytes per entry (plus the minimum growth step)
            assertTrue(set.heapBytes() <= 2L * (8 + 8 * words) * set.size() + 16 * (8 + 8 * words), "heap " + set.heapBytes());
        }
    }
}
