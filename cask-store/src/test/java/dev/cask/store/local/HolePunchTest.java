package dev.cask.store.local;

import dev.cask.store.ScanSink;
import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.common.Pacer;
import dev.cask.common.Progress;
import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A collection gives back the records its sweep left dead in sealed packs by punching them out of
 * the pack files ({@link HolePuncher}): the file system frees the blocks (the file's allocated
 * size drops, and {@code stored_bytes} with it), no live chunk moves or changes, scans (check,
 * rebuild) skip the punched stretches instead of reporting zeros as damage or bringing dead chunks
 * back, and a reader holding a stale location of a chunk stored again elsewhere reads the new copy.
 */
class HolePunchTest {
    @TempDir
    Path dir;

    private static final int RECORD = 64 << 10;

    private final Random rnd = new Random(5);
    private final List<ChunkId> ids = new ArrayList<>();
    private final Map<ChunkId, byte[]> data = new HashMap<>();

    private static LocalChunkStore.Options options(boolean exclusive) {
        return new LocalChunkStore.Options(3, 1 << 20, exclusive); // 64 KiB random records, ~15 a pack
    }

    private void fill(LocalChunkStore store, int n) {
        for (int i = 0; i < n; i++) {
            byte[] b = new byte[RECORD];
            rnd.nextBytes(b);
            ChunkId id = store.put(b);
            ids.add(id);
            data.put(id, b);
        }
        store.sync();
    }

    /** Allocated bytes of a file, as {@code stat} says (st_blocks x 512). */
    private static long allocated(Path file) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("stat", "-c", "%b", file.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes()).trim();
        assertEquals(0, p.waitFor(), out);
        return Long.parseLong(out) * 512;
    }

    private static List<ChunkId> inPack(LocalChunkStore store, List<ChunkId> ids, int pack) {
        List<ChunkId> r = new ArrayList<>();
        for (ChunkId id : ids) if (store.locate(id).pack() == pack) r.add(id);
        return r;
    }

    /** The chunks a scan of pack {@code pack} finds, each one's plain bytes checked against what was put; its problems into {@code problems}. */
    private Set<ChunkId> scan(LocalChunkStore store, int pack, List<String> problems) {
        Set<ChunkId> scanned = new HashSet<>();
        store.scanPack(pack, new ScanSink() {
            @Override
            public void chunk(ChunkId id, ChunkLocation location, java.util.function.Supplier<byte[]> plain) {
                scanned.add(id);
                assertArrayEquals(data.get(id), plain.get());
            }

            @Override
            public void problem(String line) {
                problems.add(line);
            }
        }, Progress.NONE);
        return scanned;
    }

    @Test
    void deadRecordsArePunchedOutNothingLiveMovesAndScansSkipThem() throws Exception {
        assertTrue(HolePuncher.supported(dir), "the file system of " + dir + " punches holes (ext4, xfs, btrfs and tmpfs do)");
        Set<ChunkId> dead = new HashSet<>();
        Map<ChunkId, ChunkLocation> liveBefore = new HashMap<>();
        long storedBefore;
        long allocatedBefore;
        Path pack1;
        try (LocalChunkStore store = LocalChunkStore.open(dir, options(false))) {
            fill(store, 40);
            List<ChunkId> one = inPack(store, ids, 1);
            assertTrue(one.size() >= 10, "pack 1 holds " + one.size() + " records");
            dead.addAll(one.subList(2, 7)); // five neighbours: one stretch
            dead.add(one.get(9)); // and one alone
            dead.add(inPack(store, ids, 2).getFirst());
            for (ChunkId id : ids) if (!dead.contains(id)) liveBefore.put(id, store.locate(id));
            pack1 = store.packPath(1);
            storedBefore = store.storedBytes();
            allocatedBefore = allocated(pack1);
            ChunkLocation firstDead = store.locate(one.get(2));
            try (ChunkDeleter.Sweep sweep = store.begin(m -> {})) {
                assertEquals(dead.size(), sweep.sweep(id -> !dead.contains(id), Pacer.unpaced(), () -> {}).ids().size());
                ChunkDeleter.Compacted c = sweep.compact(0.99, Progress.NONE);
                assertEquals(0, c.packsRewritten() + c.packsDeleted(), "nothing copied: " + c);
                assertEquals(2, c.packsPunched(), c.toString());
                // whole 4 KiB blocks inside each stretch: 7 dead records less at most 8 KiB per stretch (3 stretches)
                assertTrue(c.bytesPunched() >= 7L * RECORD - 3 * 8192 && c.bytesPunched() <= 7L * (RECORD + PackFormat.RECORD_HEADER), c.toString());
                assertEquals(storedBefore - c.bytesPunched(), store.storedBytes(), "stored_bytes counts what the packs occupy");
            }
            assertTrue(allocated(pack1) <= allocatedBefore - 6L * RECORD + 2 * 8192,
                    "the file system freed pack 1's dead blocks: " + allocatedBefore + " -> " + allocated(pack1));
            // the stretch reads as zeros now: the punch is real
            try (FileChannel ch = FileChannel.open(pack1, StandardOpenOption.READ)) {
                ByteBuffer b = ByteBuffer.allocate(RECORD);
                ch.read(b, PackHoles.punchFrom(firstDead.offset()) + 4096);
                for (byte x : b.array()) assertEquals(0, x);
            }
            for (var e : liveBefore.entrySet()) {
                assertEquals(e.getValue(), store.locate(e.getKey()), "a live chunk stays where it was");
                assertArrayEquals(data.get(e.getKey()), store.get(e.getKey()));
            }
            // a scan (check, rebuild) sees every live chunk of pack 1 and no damage
            List<String> problems = new ArrayList<>();
            Set<ChunkId> scanned = scan(store, 1, problems);
            assertEquals(List.of(), problems);
            Set<ChunkId> liveInOne = new HashSet<>(inPack(store, new ArrayList<>(liveBefore.keySet()), 1));
            assertEquals(liveInOne, scanned, "the scan finds the live chunks and nothing of the dead ones");
        }
        // a rebuild of the index from the packs brings no dead chunk back
        try (LocalChunkStore store = LocalChunkStore.open(dir, options(true))) {
            store.rebuildIndex(p -> { throw new AssertionError(p); }, Progress.NONE);
            for (ChunkId id : dead) assertNull(store.locate(id), "a punched chunk is not indexed again");
            for (var e : liveBefore.entrySet()) assertEquals(e.getValue(), store.locate(e.getKey()));
        }
        // a dead chunk put again is stored again, and reads back
        try (LocalChunkStore store = LocalChunkStore.open(dir, options(false))) {
            for (ChunkId id : dead) assertEquals(id, store.put(data.get(id)));
            store.sync();
            for (ChunkId id : dead) assertArrayEquals(data.get(id), store.get(id));
        }
    }

    /**
     * A process that cached where a chunk was before a collection deleted and punched it, and
     * that reads it after a put stored it again elsewhere: the collecting process itself (a sweep
     * leaves its cache of index answers as it is) and, played by putting the old locations back
     * into the cache after the put replaced them, another process.
     */
    @Test
    void aReaderWithAStaleLocationReadsTheChunksNewCopy() {
        assertTrue(HolePuncher.supported(dir), "the file system of " + dir + " punches holes");
        String cache = System.getProperty("cask.cache.bytes");
        System.setProperty("cask.cache.bytes", "0"); // reads must go to the pack, not to a cache of plain bytes
        try (LocalChunkStore store = LocalChunkStore.open(dir, options(false))) {
            fill(store, 40);
            List<ChunkId> dead = new ArrayList<>(inPack(store, ids, 1).subList(1, 8));
            Map<ChunkId, ChunkLocation> stale = new HashMap<>();
            for (ChunkId id : dead) stale.put(id, store.locate(id));
            try (ChunkDeleter.Sweep sweep = store.begin(m -> {})) {
                sweep.sweep(id -> !dead.contains(id), Pacer.unpaced(), () -> {});
                assertEquals(1, sweep.compact(0.99, Progress.NONE).packsPunched());
            }
            for (ChunkId id : dead) assertEquals(stale.get(id), store.locate(id), "the sweep left the cached answer");
            for (ChunkId id : dead) store.put(data.get(id)); // stored again, elsewhere: a put never trusts the cache
            store.sync();
            for (ChunkId id : dead) assertTrue(store.locate(id).pack() > 1);
            store.remember(stale);
            for (ChunkId id : dead) {
                assertArrayEquals(data.get(id), store.get(id), "the stale location reads zeros; the index gives the new copy");
            }
            store.remember(stale);
            byte[][] got = new byte[dead.size()][];
            store.getAll(dead, (i, b, off, len) -> got[i] = java.util.Arrays.copyOfRange(b, off, off + len));
            for (int i = 0; i < dead.size(); i++) assertArrayEquals(data.get(dead.get(i)), got[i], "bulk read of chunk " + i);
            assertTrue(store.damageMarks().isEmpty(), "a chunk stored again is not damage: " + store.damageMarks());
        } finally {
            if (cache == null) System.clearProperty("cask.cache.bytes");
            else System.setProperty("cask.cache.bytes", cache);
        }
    }

    /**
     * A segment is punched only when none of its chunks is live any more: one whose chunks all
     * went is listed and punched, one with a live chunk left stays whole and reads back.
     */
    @Test
    void aSegmentIsPunchedOnlyWhenAllItsChunksAreDead() {
        assertTrue(HolePuncher.supported(dir), "the file system of " + dir + " punches holes");
        try (LocalChunkStore store = LocalChunkStore.open(dir, new LocalChunkStore.Options(3, 1 << 20, false, 16 << 10, 3, 0))) {
            for (int batch = 0; batch < 100; batch++) { // 16 compressible 4 KiB chunks a batch: segments of 4
                byte[] b = new byte[16 * 4096];
                int[] offsets = new int[16];
                for (int k = 0; k < 16; k++) {
                    offsets[k] = k * 4096;
                    byte[] noise = new byte[2048];
                    rnd.nextBytes(noise);
                    System.arraycopy(noise, 0, b, k * 4096, noise.length); // half noise, half zeros
                }
                ChunkId[] got = store.putAll(b, offsets, 4096);
                for (int k = 0; k < 16; k++) {
                    ids.add(got[k]);
                    data.put(got[k], java.util.Arrays.copyOfRange(b, k * 4096, k * 4096 + 4096));
                }
            }
            store.sync();
            assertTrue(store.packIds().size() >= 3, "packs: " + store.packIds());
            // two segments of pack 1: every chunk of the first dies, two of the second's four
            Map<Long, List<ChunkId>> segments = new java.util.TreeMap<>();
            for (ChunkId id : ids) {
                ChunkLocation l = store.locate(id);
                if (l.pack() == 1 && l.inSegment()) segments.computeIfAbsent(l.offset(), k -> new ArrayList<>()).add(id);
            }
            List<List<ChunkId>> four = segments.values().stream().filter(l -> l.size() == 4).toList();
            assertTrue(four.size() >= 4, "segments of four chunks in pack 1: " + segments.size());
            List<ChunkId> whole = four.get(1);
            List<ChunkId> part = four.get(3);
            ChunkLocation wholeAt = store.locate(whole.getFirst());
            ChunkLocation partAt = store.locate(part.getFirst());
            Set<ChunkId> dead = new HashSet<>(whole);
            dead.addAll(part.subList(0, 2));
            try (ChunkDeleter.Sweep sweep = store.begin(m -> {})) {
                assertEquals(6, sweep.sweep(id -> !dead.contains(id), Pacer.unpaced(), () -> {}).ids().size());
                ChunkDeleter.Compacted c = sweep.compact(0.99, Progress.NONE);
                assertEquals(1, c.packsPunched(), c.toString());
            }
            PackHoles holes = PackHoles.read(PackHoles.path(store.packDir(), 1), 1);
            assertEquals(1, holes.count(), "one stretch: the dead segment");
            assertEquals(wholeAt.offset(), holes.start(0));
            assertEquals(wholeAt.offset() + wholeAt.length(), holes.end(0));
            assertEquals(-1, holes.skip(partAt.offset()), "the segment with live chunks is not listed");
            for (ChunkId id : part.subList(2, 4)) {
                assertEquals(partAt.offset(), store.locate(id).offset());
                assertArrayEquals(data.get(id), store.get(id));
            }
            for (ChunkId id : ids) if (!dead.contains(id)) assertArrayEquals(data.get(id), store.get(id));

            // the segment's last two chunks die in a later sweep: it deletes fewer entries in it than
            // it holds, so only the index can tell that none is left; punched now
            dead.addAll(part.subList(2, 4));
            try (ChunkDeleter.Sweep sweep = store.begin(m -> {})) {
                assertEquals(2, sweep.sweep(id -> !dead.contains(id), Pacer.unpaced(), () -> {}).ids().size());
                assertEquals(1, sweep.compact(0.99, Progress.NONE).packsPunched());
            }
            holes = PackHoles.read(PackHoles.path(store.packDir(), 1), 1);
            assertEquals(partAt.offset() + partAt.length(), holes.skip(partAt.offset()), "the segment is listed once its last chunk died");
            for (ChunkId id : ids) if (!dead.contains(id)) assertArrayEquals(data.get(id), store.get(id));
        }
    }

    @Test
    void aDamagedHolesFileIsReportedAndThePackReadAsIfNothingWasPunched() throws Exception {
        try (LocalChunkStore store = LocalChunkStore.open(dir, options(false))) {
            fill(store, 20);
            Path holes = PackHoles.path(store.packDir(), 1);
            Files.write(holes, new byte[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20});
            List<String> problems = new ArrayList<>();
            Set<ChunkId> scanned = scan(store, 1, problems);
            assertEquals(1, problems.size(), problems.toString());
            assertTrue(problems.getFirst().contains("00000001.holes") && problems.getFirst().contains("crc32c"), problems.getFirst());
            assertEquals(new HashSet<>(inPack(store, ids, 1)), scanned, "every record of the pack is still read");
        }
    }

    @Test
    void stretchesMergeAndAScanSkipsFromAnyPointInside() {
        PackHoles h = PackHoles.NONE.with(List.of(new long[]{100, 200}, new long[]{300, 400}));
        assertEquals(2, h.count());
        h = h.with(List.of(new long[]{200, 300}, new long[]{500, 9000})); // adjacent on both sides: one stretch
        assertEquals(2, h.count());
        assertEquals(100, h.start(0));
        assertEquals(400, h.end(0));
        assertEquals(400, h.skip(100));
        assertEquals(400, h.skip(399));
        assertEquals(-1, h.skip(400));
        assertEquals(-1, h.skip(99));
        assertEquals(500, h.nextStart(100));
        assertEquals(Long.MAX_VALUE, h.nextStart(500));
        assertEquals(300 + 8500, h.holed());
        assertEquals(4096, h.punched(), "only [4096, 8192) of [500, 9000) is a whole block");
        assertEquals(h, PackHoles.decode("t", h.encode(7), 7));
        assertThrows(CaskException.Corrupt.class, () -> PackHoles.decode("t", PackHoles.NONE.with(List.of(new long[]{16, 20})).encode(7), 8),
                "a holes file naming another pack");
    }
}
