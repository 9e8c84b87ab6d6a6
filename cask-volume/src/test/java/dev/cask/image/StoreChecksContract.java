package dev.cask.image;

import dev.cask.catalog.sqlite.SqliteCatalog;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.ChunkLocation;
import dev.cask.store.local.PackFormat;
import dev.cask.tree.PointerCache;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The contract of {@link StoreCapabilities.Checks}, for every store that offers it: {@code cask
 * check} ({@link Checker}) over it finds what is in the packs, finds damage where the store's
 * medium holds it (a flipped byte, a pack gone), marks a damaged copy so that storing the chunk
 * again heals it, and then checks clean again. An implementation's test extends this class, opens
 * a store with its checks on a directory, and says where the store's medium keeps a pack's bytes
 * (a pack file, the file an S3 server keeps an object in).
 */
public abstract class StoreChecksContract {
    /** A store and the checks its composition offers beside it. */
    public record Opened(ChunkStore store, StoreCapabilities.Checks checks) implements AutoCloseable {
        @Override
        public void close() {
            store.close();
        }
    }

    /** Opens (creating) an empty store kept in {@code dir}, whose segments hold at most 64 KiB of chunks and whose packs are small (a few hundred KiB). */
    protected abstract Opened open(Path dir);

    /** The file on this machine that holds pack {@code pack}'s bytes. */
    protected abstract Path packFile(Path dir, int pack);

    @TempDir
    Path dir;

    /** Puts 48 compressible blocks in batches (segments), 48 random ones alone (records); syncs; returns the blocks by id. */
    private static Map<ChunkId, byte[]> fill(ChunkStore store) {
        Random rnd = new Random(5);
        Map<ChunkId, byte[]> blocks = new java.util.LinkedHashMap<>();
        for (int batch = 0; batch < 3; batch++) {
            byte[] buf = new byte[16 * 4096];
            int[] offsets = new int[16];
            for (int k = 0; k < 16; k++) {
                offsets[k] = k * 4096;
                byte[] half = new byte[2048];
                rnd.nextBytes(half);
                System.arraycopy(half, 0, buf, k * 4096, half.length); // half noise, half zeros: segments pay
            }
            ChunkId[] ids = store.putAll(buf, offsets, 4096);
            for (int k = 0; k < 16; k++) blocks.put(ids[k], java.util.Arrays.copyOfRange(buf, k * 4096, (k + 1) * 4096));
        }
        for (int k = 0; k < 48; k++) {
            byte[] b = new byte[4096];
            rnd.nextBytes(b);
            blocks.put(store.put(b), b);
        }
        store.sync();
        return blocks;
    }

    private CheckReport check(Opened o, boolean deep) {
        try (SqliteCatalog catalog = SqliteCatalog.open(dir.resolve("catalog.db"))) {
            return new Checker(o.store(), o.checks(), catalog, new PointerCache()).check(deep, Progress.NONE);
        }
    }

    private static String describe(CheckReport r) {
        List<String> lines = new ArrayList<>();
        for (CheckReport.Finding f : r.problems()) lines.add("problem " + f.kind() + ": " + f.message());
        for (CheckReport.Finding f : r.notes()) lines.add("note " + f.kind() + ": " + f.message());
        return String.join("\n", lines);
    }

    @Test
    void aStoreAsWrittenChecksCleanAndEveryChunkIsFoundOnce() {
        try (Opened o = open(dir)) {
            Map<ChunkId, byte[]> blocks = fill(o.store());
            for (boolean deep : new boolean[]{false, true}) {
                CheckReport r = check(o, deep);
                assertTrue(r.ok(), describe(r));
                assertEquals(blocks.size(), r.records(), "every chunk found in the packs once");
                assertEquals(blocks.size(), r.indexEntries());
                assertTrue(r.packs() >= 2, "the chunks span several packs: " + r.packs());
                assertEquals(o.checks().packIds().size(), r.packs());
                // no version references anything: all of the packs but their headers can go
                long payload = o.checks().storedBytes() - (long) PackFormat.PACK_HEADER * r.packs();
                assertEquals(payload, r.reclaimableBytes());
            }
            assertEquals(List.of(), o.checks().damageMarks());
        }
    }

    @Test
    void aFlippedByteInARecordIsAProblemMarkedForHealingAndAPutHealsIt() throws IOException {
        try (Opened o = open(dir)) {
            Map<ChunkId, byte[]> blocks = fill(o.store());
            ChunkId victim = new ArrayList<>(blocks.keySet()).get(60); // a random block: a record of its own
            ChunkLocation loc = o.checks().locate(victim);
            assertNotNull(loc);
            assertFalse(loc.inSegment(), "a random block is stored alone: " + loc);
            flipByte(packFile(dir, loc.pack()), loc.offset() + loc.length() / 2);

            CheckReport r = check(o, false);
            assertFalse(r.ok(), "a record the index points at is damaged");
            assertTrue(r.problems().stream().anyMatch(f -> f.pack() != null && f.pack() == loc.pack() && victim.equals(f.chunk())),
                    "a problem names the chunk and its pack: " + describe(r));
            assertTrue(o.checks().damageMarks().stream().anyMatch(m -> m.getKey().equals(victim) && m.getValue().pack() == loc.pack()
                            && m.getValue().offset() == loc.offset()),
                    "the bad copy is marked: " + o.checks().damageMarks());
            assertEquals(blocks.size() - 1, r.records(), "the other chunks are all found");

            o.store().put(blocks.get(victim)); // stored again: the entry moves to the new copy
            o.store().sync();
            ChunkLocation healed = o.checks().locate(victim);
            assertFalse(healed.pack() == loc.pack() && healed.offset() == loc.offset(), "the entry moved: " + healed);
            CheckReport after = check(o, true);
            assertTrue(after.ok(), describe(after));
            assertTrue(after.notes().stream().anyMatch(f -> f.pack() != null && f.pack() == loc.pack()),
                    "the bad record is a note now, nothing needs it: " + describe(after));
            assertEquals(List.of(), o.checks().damageMarks(), "no mark left once the entry moved");
            assertEquals(java.util.Arrays.toString(blocks.get(victim)), java.util.Arrays.toString(o.store().get(victim)));
        }
    }

    @Test
    void aPackGoneMakesEveryChunkInItAProblemNamingThePack() throws IOException {
        try (Opened o = open(dir)) {
            Map<ChunkId, byte[]> blocks = fill(o.store());
            int gone = o.checks().packIds().getFirst();
            List<ChunkId> inIt = new ArrayList<>();
            for (ChunkId id : blocks.keySet()) if (o.checks().locate(id).pack() == gone) inIt.add(id);
            assertFalse(inIt.isEmpty());
            Files.delete(packFile(dir, gone));

            CheckReport r = check(o, false);
            assertFalse(r.ok());
            var named = new HashSet<ChunkId>();
            for (CheckReport.Finding f : r.problems()) if (f.chunk() != null && f.pack() != null && f.pack() == gone) named.add(f.chunk());
            assertTrue(named.containsAll(inIt), "every index entry into the pack is a problem: " + describe(r));
            assertEquals(blocks.size(), r.indexEntries());
        }
    }

    static void flipByte(Path file, long at) {
        try (var ch = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.READ, java.nio.file.StandardOpenOption.WRITE)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(1);
            ch.read(b, at);
            b.flip();
            byte v = b.get(0);
            ch.write(java.nio.ByteBuffer.wrap(new byte[]{(byte) (v ^ 0x5a)}), at);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
