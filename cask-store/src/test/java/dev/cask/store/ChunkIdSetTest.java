package dev.cask.store;

import org.junit.jupiter.api.Test;

import java.util.HashSet;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ChunkIdSet against a HashSet: what garbage collection's marks rely on (a live chunk taken for unmarked is swept). */
class ChunkIdSetTest {

    @Test
    void answersAsAHashSetDoesThroughManyGrowths() {
        Random rnd = new Random(7);
        ChunkIdSet set = new ChunkIdSet(4);
        Set<ChunkId> model = new HashSet<>();
        byte[] buf = new byte[64];
        for (int i = 0; i < 200_000; i++) {
            ChunkId id = ChunkId.of(new byte[]{(byte) rnd.nextInt(256), (byte) rnd.nextInt(256), (byte) rnd.nextInt(64)});
            if (i % 3 == 0) {
                id.copyTo(buf, 17); // from the middle of a pointer chunk's bytes
                assertEquals(model.add(id), set.add(buf, 17), "add " + id);
            } else {
                assertEquals(model.add(id), set.add(id), "add " + id);
            }
            assertEquals(model.size(), set.size());
        }
        for (int i = 0; i < 50_000; i++) {
            ChunkId id = ChunkId.of(new byte[]{(byte) rnd.nextInt(256), (byte) rnd.nextInt(256), (byte) rnd.nextInt(128)});
            assertEquals(model.contains(id), set.contains(id), "contains " + id);
        }
        for (ChunkId id : model) assertTrue(set.contains(id));
    }

    @Test
    void idsThatShareTheirFirstBytesAreTold() {
        ChunkIdSet set = new ChunkIdSet();
        byte[] a = new byte[32];
        a[0] = 1;
        byte[] b = a.clone();
        b[31] = 1; // same first eight bytes: same slot, another id
        assertTrue(set.add(a, 0));
        assertFalse(set.contains(b, 0));
        assertTrue(set.add(b, 0));
        assertTrue(set.contains(a, 0) && set.contains(b, 0));
        assertEquals(2, set.size());
    }

    @Test
    void theZeroIdIsNeverAMemberAndCannotBeAdded() {
        ChunkIdSet set = new ChunkIdSet();
        assertFalse(set.contains(ChunkId.ZERO));
        assertThrows(IllegalArgumentException.class, () -> set.add(ChunkId.ZERO));
        assertFalse(set.contains(ChunkId.ZERO));
    }
}
