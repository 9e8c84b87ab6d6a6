package dev.cask.image;

import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The reference table a server's collections keep, against a HashMap of the same pairs, through growth and many tombstones. */
class ReferenceCountsTest {
    @Test
    void countsMatchAModelThroughGrowthAndTombstones() {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        ReferenceCounts refs = new ReferenceCounts(16);
        Map<String, Integer> model = new HashMap<>();
        List<byte[]> ids = new ArrayList<>();
        for (int i = 0; i < 3000; i++) {
            byte[] b = new byte[ChunkId.LENGTH];
            rnd.nextBytes(b);
            if (i % 7 == 0 && i > 0) System.arraycopy(ids.get(i - 1), 0, b, 0, 8); // same first 8 bytes: the same home slot
            ids.add(b);
        }
        for (int step = 0; step < 200_000; step++) {
            byte[] id = ids.get(rnd.nextInt(ids.size()));
            int level = rnd.nextInt(3);
            String key = ChunkId.fromBytes(id, 0).hex() + "/" + level;
            int have = model.getOrDefault(key, 0);
            int delta = have > 0 && rnd.nextInt(5) < 3 ? -Math.min(have, 1 + rnd.nextInt(2)) : 1 + rnd.nextInt(2);
            assertEquals(have, refs.add(id, 0, level, delta), "seed " + seed + " step " + step);
            if (have + delta == 0) model.remove(key);
            else model.put(key, have + delta);
            if (step % 1000 == 0) {
                assertEquals(model.size(), refs.size(), "seed " + seed);
                for (byte[] x : ids.subList(0, 200)) {
                    boolean any = false;
                    for (int l = 0; l < 3; l++) {
                        int n = model.getOrDefault(ChunkId.fromBytes(x, 0).hex() + "/" + l, 0);
                        assertEquals(n, refs.count(x, 0, l), "seed " + seed);
                        any |= n > 0;
                    }
                    assertEquals(any, refs.reached(x, 0), "seed " + seed);
                }
            }
        }
        byte[] absent = new byte[ChunkId.LENGTH];
        absent[0] = 1;
        while (model.containsKey(ChunkId.fromBytes(absent, 0).hex() + "/0")) absent[1]++;
        assertThrows(IllegalStateException.class, () -> refs.add(absent, 0, 0, -1), "a count below 0 means the counts are not the trees'");
        assertThrows(IllegalArgumentException.class, () -> refs.add(new byte[ChunkId.LENGTH], 0, 0, 1), "a hole has no references");
    }
}
