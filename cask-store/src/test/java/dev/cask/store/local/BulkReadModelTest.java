package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Model-based test of bulk reads ({@link LocalChunkStore#getAll}, as an export reads and as an NBD
 * client's large read does) against a map of the bytes every chunk must have. Chunks are stored
 * every way the store stores them: single records (plain, compressed, weakly compressed), runs of
 * incompressible blocks stored back to back as records (what the run-ahead reads), segments of
 * imports (1 MiB) and of checkpoints (64 KiB), dedup hits, chunks still pending or in the write
 * buffer, across many small packs. Reads ask for runs in the order stored (the run-ahead's case),
 * with gaps, repeats, reversed and shuffled, in bulk or one get at a time (the plain cache keeps
 * whole segments for both), with the caches cold (the store reopened), warm, or off. In between, packs are moved as compaction moves them (a copy under a new number, the index
 * switched, the old pack deleted: every cached location is stale) and bytes of records and
 * segments are damaged on disk, and records are replaced by liars (a valid CRC over another
 * block's bytes) that a deep check finds and a put heals. What must hold: a read returns exactly the model's bytes for every
 * index, once each, or fails with {@link CaskException.Corrupt} naming a damaged chunk it asked
 * for; a read of undamaged chunks never fails, however close it runs past damage; a damaged chunk
 * a read reported heals when its bytes are put again. -Dcask.seed=N replays a run.
 */
class BulkReadModelTest {
    @TempDir
    Path dir;

    @AfterEach
    void cache() {
        System.clearProperty("cask.cache.bytes");
    }

    @Test
    void randomBulkReadsMatchTheModel() throws IOException {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        for (int round = 0; round < 3; round++) run(seed + round);
    }

    private LocalChunkStore store;
    private final Map<ChunkId, byte[]> model = new LinkedHashMap<>();
    /** Every chunk in the order it was put: a run of it is a run of a "disk". */
    private final List<ChunkId> order = new ArrayList<>();
    /** Chunks whose stored copy was damaged: a read may fail on them (and only on them). */
    private final Set<ChunkId> damaged = new HashSet<>();
    private Random rnd;
    private String ctx;
    private LocalChunkStore.Options options;

    private void run(long seed) throws IOException {
        rnd = new Random(seed);
        model.clear();
        order.clear();
        damaged.clear();
        Path storeDir = dir.resolve("s" + seed);
        boolean cacheOff = rnd.nextInt(3) == 0;
        if (cacheOff) System.setProperty("cask.cache.bytes", "0");
        else System.clearProperty("cask.cache.bytes");
        int segments = new int[]{0, 64 << 10, 1 << 20}[rnd.nextInt(3)];
        options = new LocalChunkStore.Options(1, (256 << 10) + rnd.nextInt(256 << 10), false).withSegments(segments, 3);
        store = LocalChunkStore.open(storeDir, options);
        try {
            for (int step = 0; step < 160; step++) {
                ctx = "seed=" + seed + " step=" + step + " (segments " + segments + ", plain cache " + (cacheOff ? "off" : "on") + ")";
                int op = rnd.nextInt(100);
                if (op < 25) putBatch();
                else if (op < 33) putSingles();
                else if (op < 40) store.sync();
                else if (op < 45) {
                    store.close();
                    store = LocalChunkStore.open(storeDir, options); // cold caches
                } else if (op < 49) movePack();
                else if (op < 52) damage();
                else if (op < 54) liar();
                else read();
            }
            store.sync();
            store.close();
            store = LocalChunkStore.open(storeDir, options);
            ctx = "seed=" + seed + " at the end, reopened";
            for (int k = 0; k < 4; k++) read();
        } finally {
            store.close();
        }
    }

    // ---------------------------------------------------------------- writes

    /** A block: incompressible, compressible text, weakly compressible, or all but zero. */
    private byte[] block(int length) {
        byte[] b = new byte[length];
        switch (rnd.nextInt(4)) {
            case 0 -> rnd.nextBytes(b);
            case 1 -> {
                String[] words = {"cask ", "chunk ", "segment ", "record ", "pack ", "index ", "volume ", "journal "};
                StringBuilder sb = new StringBuilder();
                while (sb.length() < length) sb.append(words[rnd.nextInt(words.length)]).append(rnd.nextInt(1000));
                System.arraycopy(sb.toString().getBytes(), 0, b, 0, length);
            }
            case 2 -> {
                rnd.nextBytes(b);
                java.util.Arrays.fill(b, 0, length / 8, (byte) 7);
            }
            default -> b[rnd.nextInt(length)] = (byte) (1 + rnd.nextInt(255));
        }
        return b;
    }

    /** An import's or a checkpoint's batch of 4 KiB blocks, mostly of one kind, with repeats and old chunks. */
    private void putBatch() {
        int n = 1 + rnd.nextInt(rnd.nextBoolean() ? 16 : 300);
        int kind = rnd.nextInt(3); // 0: all incompressible (records back to back), 1: text (segments), 2: mixed
        byte[] buf = new byte[n * 4096];
        int[] offsets = new int[n];
        for (int i = 0; i < n; i++) {
            offsets[i] = i * 4096;
            byte[] b;
            if (i > 0 && rnd.nextInt(20) == 0) b = java.util.Arrays.copyOfRange(buf, (i - 1) * 4096, i * 4096); // a repeat in the batch
            else if (!model.isEmpty() && rnd.nextInt(30) == 0) b = model.get(order.get(rnd.nextInt(order.size()))); // a dedup hit
            else if (kind == 0) {
                b = new byte[4096];
                rnd.nextBytes(b);
            } else if (kind == 1) {
                int saved = 0;
                do b = block(4096); while (b[0] == 0 && ++saved < 5);
            } else b = block(4096);
            if (b.length != 4096) b = java.util.Arrays.copyOf(b, 4096);
            System.arraycopy(b, 0, buf, i * 4096, 4096);
        }
        ChunkStore.Access access = rnd.nextBoolean() ? ChunkStore.Access.SEQUENTIAL : ChunkStore.Access.RANDOM;
        ChunkId[] ids = store.putAll(buf, offsets, 4096, access);
        for (int i = 0; i < n; i++) note(ids[i], java.util.Arrays.copyOfRange(buf, i * 4096, (i + 1) * 4096));
    }

    /** Single puts: pointer chunks and other lone chunks, of assorted lengths. */
    private void putSingles() {
        int n = 1 + rnd.nextInt(12);
        for (int i = 0; i < n; i++) {
            byte[] b = block(rnd.nextInt(8) == 0 ? 1 + rnd.nextInt(64 << 10) : 4096);
            note(store.put(b), b);
        }
    }

    private void note(ChunkId id, byte[] bytes) {
        assertEquals(ChunkId.of(bytes), id, ctx);
        if (model.put(id, bytes) == null) order.add(id);
    }

    // ---------------------------------------------------------------- reads

    /** A bulk read of some chunks, compared with the model. */
    private void read() {
        if (order.isEmpty()) return;
        List<ChunkId> asked = new ArrayList<>();
        int from = rnd.nextInt(order.size());
        int length = 1 + rnd.nextInt(Math.min(600, order.size() - from));
        switch (rnd.nextInt(5)) {
            case 0, 1 -> asked.addAll(order.subList(from, from + length)); // a run in disk order
            case 2 -> { // with gaps (holes, blocks the journal answers)
                for (ChunkId id : order.subList(from, from + length)) if (rnd.nextInt(4) != 0) asked.add(id);
            }
            case 3 -> { // reversed, with repeats
                for (ChunkId id : order.subList(from, from + length)) {
                    asked.add(0, id);
                    if (rnd.nextInt(10) == 0) asked.add(id);
                }
            }
            default -> {
                for (int k = 0; k < length; k++) asked.add(order.get(rnd.nextInt(order.size())));
                Collections.shuffle(asked, rnd);
            }
        }
        if (asked.isEmpty()) return;
        if (rnd.nextInt(3) == 0) {
            readOneByOne(asked);
            return;
        }
        ChunkStore.Reading reading = rnd.nextBoolean() ? ChunkStore.Reading.LIVE : ChunkStore.Reading.STREAM;
        String what = ctx + ": " + reading + " read of " + asked.size() + " chunks from #" + from;
        byte[][] got = new byte[asked.size()][];
        try {
            store.getAll(asked, (i, data, off, len) -> {
                assertTrue(got[i] == null, what + ": index " + i + " answered twice");
                got[i] = java.util.Arrays.copyOfRange(data, off, off + len);
            }, reading);
        } catch (CaskException.Corrupt e) {
            ChunkId named = null;
            for (ChunkId id : asked) if (damaged.contains(id) && e.getMessage().contains(id.shortHex())) named = id;
            if (named == null) fail(what + ": failed, but names no damaged chunk it asked for: " + e.getMessage(), e);
            heal(named);
            return;
        }
        for (int i = 0; i < asked.size(); i++) {
            assertTrue(got[i] != null, what + ": index " + i + " not answered");
            assertArrayEquals(model.get(asked.get(i)), got[i], what + ": index " + i + " (chunk " + asked.get(i).shortHex() + ")");
        }
    }

    /**
     * The same chunks read one {@link LocalChunkStore#get} at a time, as an NBD client's small
     * reads are: through the plain cache's single chunks and whole segments (which bulk reads and
     * gets both fill), or the pack, whose damage must then be reported by name.
     */
    private void readOneByOne(List<ChunkId> asked) {
        for (ChunkId id : asked) {
            String what = ctx + ": get of chunk " + id.shortHex();
            byte[] got;
            try {
                got = store.get(id);
            } catch (CaskException.Corrupt e) {
                if (!damaged.contains(id) || !e.getMessage().contains(id.shortHex())) fail(what + ": failed: " + e.getMessage(), e);
                heal(id);
                continue;
            }
            assertArrayEquals(model.get(id), got, what);
        }
    }

    /** A read reported the chunk corrupt: putting its bytes again stores a good copy, which reads from then on. */
    private void heal(ChunkId id) {
        byte[] b = model.get(id);
        assertEquals(id, store.put(b), ctx);
        store.sync();
        assertArrayEquals(b, store.get(id), ctx + ": healed chunk " + id.shortHex());
        damaged.remove(id);
    }

    // ---------------------------------------------------------------- faults

    /** The synced chunks, by the record or segment that holds them. */
    private Map<ChunkLocation, List<ChunkId>> byRecord() {
        store.sync();
        Map<ChunkLocation, List<ChunkId>> out = new HashMap<>();
        for (ChunkId id : order) {
            ChunkLocation l = store.index().find(id); // not a cached location: packs move
            out.computeIfAbsent(new ChunkLocation(l.pack(), l.offset(), l.length()), k -> new ArrayList<>()).add(id);
        }
        return out;
    }

    /** Flips a byte of one record or segment (header, table, payload or frame): its chunks are damaged. */
    private void damage() throws IOException {
        if (order.isEmpty()) return;
        Map<ChunkLocation, List<ChunkId>> records = byRecord();
        List<ChunkLocation> all = new ArrayList<>(records.keySet());
        ChunkLocation l = all.get(rnd.nextInt(all.size()));
        try (RandomAccessFile f = new RandomAccessFile(store.packPath(l.pack()).toFile(), "rw")) {
            long at = l.offset() + rnd.nextInt(l.length());
            f.seek(at);
            int b = f.read();
            f.seek(at);
            f.write(b ^ (1 << rnd.nextInt(8)));
        }
        damaged.addAll(records.get(l));
    }

    /**
     * A record that names its chunk and passes its CRC but holds other bytes (what only rehashing
     * finds: a writer's bug), found by a deep check and healed by a put of the right bytes: from
     * then on no read may return the bad record's bytes, though they are still in the pack right
     * where a read of the neighbouring blocks passes.
     */
    private void liar() throws IOException {
        if (order.isEmpty()) return;
        store.sync();
        List<ChunkId> plainRecords = new ArrayList<>();
        for (ChunkId id : order) {
            ChunkLocation l = store.index().find(id);
            if (!l.inSegment() && l.length() == PackFormat.RECORD_HEADER + 4096 && model.get(id).length == 4096 && !damaged.contains(id)) plainRecords.add(id);
        }
        if (plainRecords.isEmpty()) return;
        ChunkId victim = plainRecords.get(rnd.nextInt(plainRecords.size()));
        ChunkLocation l = store.index().find(victim);
        byte[] other = new byte[4096];
        rnd.nextBytes(other);
        byte[] lie = PackFormat.encodeRecord(victim, PackFormat.CODEC_NONE, 4096, other, 0, 4096);
        try (RandomAccessFile f = new RandomAccessFile(store.packPath(l.pack()).toFile(), "rw")) {
            f.seek(l.offset());
            f.write(lie);
        }
        CaskException fault = store.entryFault(victim, l, true);
        assertTrue(fault instanceof CaskException.Corrupt, ctx + ": a deep check finds the lie: " + fault);
        store.checked(victim, l, fault);
        assertEquals(victim, store.put(model.get(victim)), ctx);
        store.sync();
        assertTrue(!l.equals(store.index().find(victim)), ctx + ": the heal moved the entry off the lie");
    }

    /**
     * Compaction as another process does it: pack P copied as a new pack, the index entries
     * switched to the copy, pack P deleted. This store's cached locations into P are stale.
     */
    private void movePack() throws IOException {
        if (order.isEmpty()) return;
        store.sync();
        List<Integer> packs = new ArrayList<>();
        for (int p : store.packIds()) if (!store.ownsPack(p)) packs.add(p);
        if (packs.isEmpty()) return;
        int from = packs.get(rnd.nextInt(packs.size()));
        int to = store.packIds().getLast() + 1000;
        Files.copy(store.packPath(from), store.packPath(to));
        try (ChunkIndex other = new ChunkIndex(store.dir().resolve("index.db"))) {
            Map<ChunkId, ChunkLocation> moves = new HashMap<>();
            for (var e : other.entriesIn(from).entrySet()) {
                ChunkLocation l = e.getValue();
                moves.put(e.getKey(), new ChunkLocation(to, l.offset(), l.length(), l.slot()));
            }
            other.relocate(moves, from);
        }
        Files.delete(store.packPath(from));
        store.checkDeletedPacksSoon();
    }
}
