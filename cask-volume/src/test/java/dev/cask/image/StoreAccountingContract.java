package dev.cask.image;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The contract of {@link StoreCapabilities.Counts} and {@link StoreCapabilities.StoredSizes}
 * ({@code cask stats}, {@code du}, prune's freed bytes), for every store that offers them: what
 * they say is what the store physically holds. An implementation's test extends this class, opens
 * a store with its accounting on a directory, and says what the store holds as its own medium
 * shows it (pack files on disk, pack objects in a bucket).
 */
public abstract class StoreAccountingContract {
    /** A store and the accounting its composition offers beside it. */
    public record Opened(ChunkStore store, StoreCapabilities.Counts counts, StoreCapabilities.StoredSizes sizes) implements AutoCloseable {
        @Override
        public void close() {
            store.close();
        }
    }

    /** Opens (creating) an empty store kept in {@code dir}, whose segments hold at most 64 KiB of chunks. */
    protected abstract Opened open(Path dir);

    /** The bytes of the store's packs as its medium shows them (files' or objects' lengths), and how many packs. */
    protected abstract long[] physical(Path dir);

    @TempDir
    Path dir;

    private static byte[] block(Random rnd, boolean compressible) {
        byte[] b = new byte[4096];
        if (compressible) {
            byte[] half = new byte[2048];
            rnd.nextBytes(half);
            System.arraycopy(half, 0, b, 0, half.length); // half noise, half zeros: segments pay
        } else {
            rnd.nextBytes(b);
        }
        return b;
    }

    /** Puts 48 compressible blocks in batches (segments), 16 random ones alone (records), each twice; syncs; returns the distinct ids. */
    private static List<ChunkId> fill(ChunkStore store) {
        Random rnd = new Random(3);
        List<ChunkId> ids = new ArrayList<>();
        for (int batch = 0; batch < 3; batch++) {
            byte[] buf = new byte[16 * 4096];
            int[] offsets = new int[16];
            for (int k = 0; k < 16; k++) {
                offsets[k] = k * 4096;
                System.arraycopy(block(rnd, true), 0, buf, k * 4096, 4096);
            }
            for (ChunkId id : store.putAll(buf, offsets, 4096)) ids.add(id);
            store.putAll(buf, offsets, 4096); // again: deduplicated
        }
        for (int k = 0; k < 16; k++) {
            byte[] b = block(rnd, false);
            ids.add(store.put(b));
            store.put(b);
        }
        store.sync();
        return ids;
    }

    @Test
    void countsAreWhatThePacksHold() {
        try (Opened o = open(dir)) {
            List<ChunkId> ids = fill(o.store());
            long[] physical = physical(dir);
            assertEquals(new HashSet<>(ids).size(), o.counts().chunkCount(), "distinct chunks, each once");
            assertEquals(physical[0], o.counts().storedBytes(), "stored bytes are the packs' bytes");
            assertEquals(physical[1], o.counts().packCount(), "packs");
            assertTrue(physical[1] >= 1, "something was stored");
            assertEquals(16L * physical[1], o.counts().fixedOverheadBytes(), "a pack header each");
        }
    }

    @Test
    void storedSizesShareEachPackByteOnceAndLeaveUnknownChunksOut() {
        try (Opened o = open(dir)) {
            List<ChunkId> ids = fill(o.store());
            ChunkId unknown = ChunkId.of(new byte[]{1, 2, 3});
            List<ChunkId> asked = new ArrayList<>(ids);
            asked.add(unknown);
            Map<ChunkId, Long> sizes = o.sizes().storedBytes(asked);
            assertFalse(sizes.containsKey(unknown), "a chunk the store does not hold has no size");
            assertEquals(new HashSet<>(ids), sizes.keySet());
            long sum = 0;
            for (long s : sizes.values()) {
                assertTrue(s > 0, "every stored chunk costs something: " + sizes);
                sum += s;
            }
            // every byte of the packs but their headers belongs to some chunk; a segment's share is
            // its length divided by its chunks, rounded down (less than one byte per chunk lost)
            long payload = o.counts().storedBytes() - o.counts().fixedOverheadBytes();
            assertTrue(sum <= payload && sum > payload - sizes.size(), "sizes sum to " + sum + ", packs hold " + payload);
            Set<ChunkId> random = new HashSet<>(ids.subList(48, 64));
            for (ChunkId id : random) assertTrue(sizes.get(id) > 4096, "an incompressible block costs its bytes and a header: " + sizes.get(id));
            long segmentShares = 0;
            for (ChunkId id : ids.subList(0, 48)) segmentShares += sizes.get(id);
            assertTrue(segmentShares < 48L * 4096 * 3 / 4, "compressible blocks cost less than they hold: " + segmentShares);
        }
    }
}
