package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.common.Pacer;
import dev.cask.common.Posix;
import dev.cask.store.ChunkId;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Gives back the space of what a sweep deleted without copying anything: the records and
 * segments left with no index entry in a sealed pack are punched out of the file
 * ({@code fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)}), and the live ones stay where
 * they are. Copying compaction ({@link Compactor}) rewrote a whole pack to give back its garbage,
 * about four bytes copied per byte freed at the threshold the store keeps; a punch costs a system
 * call per stretch and one small file per pack, whatever the pack holds. Compaction still copies
 * what punching cannot give back (segments with live and dead chunks, the ends of stretches that
 * are not whole blocks, garbage a store had before it punched).
 *
 * <p><b>Which bytes.</b> A unit (a record, or a segment) is dead when no index entry points at it.
 * Only units in packs sealed when the sweep began ({@link Compactor#sealedPacks}): a sealed pack
 * never gains an entry (only its creator adds entries, before it lets go of the pack; heals and
 * compaction copy into other packs; a rebuild runs with the store opened exclusively), so a unit
 * dead once stays dead. A record holds one chunk, so the deletion of its entry kills it; a
 * segment is dead when none of the chunks its table names has an entry pointing at it (looked up
 * after the deletes; none when the sweep deleted as many entries in it as it holds). Neighbouring
 * dead units form one stretch; with the pack's earlier stretches they are written to its holes file
 * ({@link PackHoles}), durably (fsynced, renamed, the directory fsynced), and only then are the
 * new stretches (and old ones that grew) punched, each one's interior aligned to 4 KiB. A crash in between leaves a stretch listed but not (or not all)
 * punched: its bytes are dead either way, and they come back when the stretch grows or
 * compaction takes the pack (until then {@code stored_bytes} counts them as given back).
 *
 * <p><b>Readers.</b> Live chunks do not move, so no reader's location goes stale. A process that
 * cached the location of a chunk this sweep deleted and that a later put stored again elsewhere
 * reads zeros there: the read fails its CRC, and the store asks the index again and reads the new
 * copy ({@code LocalChunkStore.readElsewhere}), as it does for a copy another process healed. A
 * dedup hit never trusts a cached location (GcEpochs, rule 1).
 *
 * <p>Best effort: a pack whose holes file cannot be read or written, or a file system without
 * punching (probed once per run; {@code -Dcask.gc.punch=false} turns it off), is left to copying
 * compaction; the sweep's deletes stand either way.
 */
final class HolePuncher {
    /** What a run did: packs whose holes file grew, and the bytes punched in them (less what was punched before). */
    record Result(int packs, long bytesPunched) {
        static final Result NONE = new Result(0, 0);
    }

    private static final int PUNCH_HOLE = 0x02;

    private final LocalChunkStore store;
    private final Pacer pacer;
    /** Chunks per segment (by {@link ChunkLocation#unit}) read from headers already, shared with the sweep that ran before. */
    private final Map<Long, Integer> segmentChunks;

    HolePuncher(LocalChunkStore store, Pacer pacer, Map<Long, Integer> segmentChunks) {
        this.store = store;
        this.pacer = pacer;
        this.segmentChunks = segmentChunks;
    }

    /** True unless {@code -Dcask.gc.punch=false}. */
    static boolean enabled() {
        return !"false".equals(System.getProperty("cask.gc.punch"));
    }

    /** Punches the units {@code deleted} (locations whose entries a sweep deleted) left dead in the packs of {@code sealed}. */
    Result punch(Collection<ChunkLocation> deleted, Set<Integer> sealed, dev.cask.common.Progress progress) {
        if (deleted.isEmpty() || !enabled() || !supported(store.packDir())) return Result.NONE;
        // the entries deleted per segment: a segment all of whose chunks went is dead without asking the index
        Map<Long, Integer> deletedIn = new HashMap<>();
        Map<Long, ChunkLocation> segments = new HashMap<>();
        for (ChunkLocation loc : deleted) {
            if (!loc.inSegment() || !sealed.contains(loc.pack())) continue;
            deletedIn.merge(loc.unit(), 1, Integer::sum);
            segments.putIfAbsent(loc.unit(), loc);
        }
        Set<Long> deadSegments = deadSegments(segments, deletedIn);
        // the dead units per pack, by offset: {offset, length}
        Map<Integer, Map<Long, Integer>> units = new TreeMap<>();
        for (ChunkLocation loc : deleted) {
            if (!sealed.contains(loc.pack())) continue;
            if (loc.inSegment() && !deadSegments.contains(loc.unit())) continue;
            units.computeIfAbsent(loc.pack(), p -> new HashMap<>()).put(loc.offset(), loc.length());
        }
        if (units.isEmpty()) return Result.NONE;
        progress.startItems("punch", units.size());
        int packs = 0;
        long punched = 0;
        for (var e : units.entrySet()) {
            pacer.step(); // a pack at a time: a paced run rests (or stops) between packs, never between listing and punching
            PackHoles[] beforeAfter = list(e.getKey(), stretches(e.getValue()));
            if (beforeAfter != null) {
                packs++;
                punched += punch(e.getKey(), beforeAfter[0], beforeAfter[1]);
            }
            progress.advance(1);
        }
        progress.done();
        return new Result(packs, punched);
    }

    /** The units ({offset, length}) as stretches ({start, end}); {@link PackHoles#with} joins neighbours. */
    private static List<long[]> stretches(Map<Long, Integer> units) {
        List<long[]> stretches = new ArrayList<>(units.size());
        for (var u : units.entrySet()) stretches.add(new long[]{u.getKey(), u.getKey() + u.getValue()});
        return stretches;
    }

    /** Writes pack {@code p}'s holes file with {@code stretches} added, durably; returns {before, after}, or null when the pack is left alone. */
    private PackHoles[] list(int p, List<long[]> stretches) {
        PackHoles before;
        long size;
        try {
            before = PackHoles.read(PackHoles.path(store.packDir(), p), p);
            size = Files.size(store.packPath(p));
        } catch (CaskException | IOException e) {
            return null; // a damaged holes file (check reports it) or a pack gone meanwhile: copying compaction's business
        }
        for (long[] s : stretches) if (s[1] > size) return null; // an entry past the end: not ours to judge
        PackHoles after = before.with(stretches);
        try {
            after.write(store.packDir(), p);
        } catch (IOException e) {
            return null; // full disk, say: the old list stands, nothing of this pack is punched
        }
        return new PackHoles[]{before, after};
    }

    /**
     * Punches the stretches of {@code after} that are not in {@code before} as they are (new ones,
     * and old ones that grew); returns the bytes newly punched. One that a crash left listed but
     * not punched stays so until it grows or compaction takes the pack: its bytes are dead either way.
     */
    private long punch(int p, PackHoles before, PackHoles after) {
        int fd = Posix.open(store.packPath(p), Posix.O_WRONLY);
        if (fd < 0) return 0;
        try {
            for (int i = 0; i < after.count(); i++) {
                if (before.has(after.start(i), after.end(i))) continue;
                long from = PackHoles.punchFrom(after.start(i));
                long length = PackHoles.punchedLength(after.start(i), after.end(i));
                if (length > 0 && Posix.fallocate(fd, PUNCH_HOLE | Posix.FALLOC_FL_KEEP_SIZE, from, length) != 0) break;
            }
        } finally {
            Posix.close(fd);
        }
        return after.punched() - before.punched();
    }

    /**
     * The segments of {@code segments} (unit to a location in it) that no chunk they name has an
     * entry pointing at any more (read after the sweep's deletes): those the sweep deleted as many
     * entries in ({@code deletedIn}) as they hold chunks, from their headers alone; the others
     * when their chunk tables' ids, looked up together (one index query per 128 ids, not one per
     * segment: a day's sweep leaves thousands of segments partly dead), find no entry there. A
     * segment whose header or table cannot be read, or all of them when the lookup fails, stays.
     */
    private Set<Long> deadSegments(Map<Long, ChunkLocation> segments, Map<Long, Integer> deletedIn) {
        Set<Long> dead = new java.util.HashSet<>();
        Map<Long, List<ChunkId>> named = new HashMap<>();
        List<ChunkId> ids = new ArrayList<>();
        for (var e : segments.entrySet()) {
            ChunkLocation loc = e.getValue();
            try {
                int count = segmentChunks.computeIfAbsent(e.getKey(), k -> store.segmentChunks(loc));
                if (deletedIn.get(e.getKey()) >= count) { // an id has one entry: all of its chunks' entries went
                    dead.add(e.getKey());
                    continue;
                }
                byte[] table = store.readStored(loc.pack(), loc.offset() + PackFormat.SEGMENT_HEADER, count * PackFormat.SEGMENT_SLOT);
                List<ChunkId> in = new ArrayList<>(count);
                for (int k = 0; k < count; k++) in.add(ChunkId.fromBytes(table, k * PackFormat.SEGMENT_SLOT));
                named.put(e.getKey(), in);
                ids.addAll(in);
            } catch (CaskException ex) {
                // unreadable: leave it as it is
            }
        }
        if (ids.isEmpty()) return dead;
        Map<ChunkId, ChunkLocation> now;
        try {
            now = store.index().locateAll(ids);
        } catch (CaskException ex) {
            return dead;
        }
        for (var e : named.entrySet()) {
            ChunkLocation loc = segments.get(e.getKey());
            boolean live = false;
            for (ChunkId id : e.getValue()) {
                ChunkLocation l = now.get(id);
                if (l != null && l.pack() == loc.pack() && l.offset() == loc.offset()) {
                    live = true;
                    break;
                }
            }
            if (!live) dead.add(e.getKey());
        }
        return dead;
    }

    private static final Map<Path, Boolean> SUPPORT = new java.util.concurrent.ConcurrentHashMap<>();

    /** Whether the file system of {@code dir} punches holes (tried once per directory and process on a scratch file). */
    static boolean supported(Path dir) {
        if (!Posix.available()) return false;
        return SUPPORT.computeIfAbsent(dir.toAbsolutePath(), d -> {
            Path probe = d.resolve(".punch-probe-" + ProcessHandle.current().pid());
            try {
                Files.write(probe, new byte[(int) (2 * PackHoles.BLOCK)]);
                int fd = Posix.open(probe, Posix.O_WRONLY);
                if (fd < 0) return false;
                try {
                    return Posix.fallocate(fd, PUNCH_HOLE | Posix.FALLOC_FL_KEEP_SIZE, 0, PackHoles.BLOCK) == 0;
                } finally {
                    Posix.close(fd);
                }
            } catch (IOException | CaskException e) {
                return false;
            } finally {
                try {
                    Files.deleteIfExists(probe);
                } catch (IOException ignored) {
                    // a stray probe file is harmless
                }
            }
        });
    }
}
