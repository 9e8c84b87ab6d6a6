package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.common.Pacer;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import dev.cask.store.ChunkStore;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Recompression of cold packs ({@code cask gc --recompress}): the live chunks of every sealed pack
 * that no recompression wrote are copied into new packs in {@link Resemblance} order (chunks that
 * look alike next to each other), as segments of up to {@link #SEGMENT_BYTES} at zstd level
 * {@link #LEVEL}, and the old packs are deleted. The write path cannot afford either (it stores
 * what a VM or an import hands it, in that order, at level 1 or 3, while someone waits); a cold
 * pack's chunks are read rarely and stay, so the store can spend the CPU once.
 *
 * <p><b>Segment size and level</b> trade space against random reads. A random 4 KiB read of a
 * chunk whose segment is not in the plain cache decompresses the whole segment, and an image's
 * chunks now share segments with their look-alikes from other images, so the segments covering
 * one image hold more bytes than the image. zstd -b on the unique blocks of the four fixture
 * images in this order (472 MiB; the store adds ~11 MB of framing and pointer chunks):
 * 1 MiB at level 6 180.0 MB, 256 KiB at level 9 183.2, 128 KiB at level 14 180.1, 96 KiB at level
 * 14 181.9, 64 KiB at level 14 185.4 (level 14 compresses at ~12 MB/s per core, 6 at ~120).
 * Random 4K reads (QD32) of bookworm-server's data from the recompressed store against qemu-nbd,
 * with a 256 MiB plain cache (the default until session 29, an eighth of a server's 2 GiB heap,
 * less than the segments covering that image): 1 MiB at level 6 0.16 x, 256 KiB at 9 0.32 x,
 * 128 KiB at 14 0.66 x, 64 KiB at 14 0.87 x (single runs). 96 KiB at level 14, the default: the
 * store at 0.703 x casync's (the speed issue's 0.72 x with room), random reads 0.71 x
 * (bookworm-server) and 0.82 x (trixie-minbase) with 256 MiB; at today's default of 512 MiB
 * ({@link LocalChunkStore#plainCacheBytes}) 1.01 x and 1.18 x (medians of 3,
 * bench/recompress-bench.sh).
 *
 * <p><b>Crash order</b>, as {@link Compactor}'s: (1) the packs are locked (the same test: sealed,
 * not this process's, no writer), their entries read in one scan; (2) each live chunk is read
 * (verified) once to sketch it; (3) in look-alike order, in batches of {@link #BATCH_BYTES} plain
 * bytes, the chunks are read again and appended as copies to packs of this run's own (the open
 * pack is sealed first), each batch fsynced before the next; (4) once every chunk has its copy,
 * pack by pack, the entries still pointing into the pack are switched to the copies, in key
 * order, {@link Compactor#SWITCH_ROWS} a transaction, and the pack is deleted (then the directory
 * fsynced); (5) the new packs are sealed and recorded in the index's {@code recompressed} table.
 * A crash before (4) leaves copies nothing points at (garbage for the next collection) and every
 * pack whole; during (4), some packs switched and deleted and the rest whole, each a valid state
 * that the next recompression carries on from; before (5) ends, new packs not recorded, which
 * the next recompression takes again (harmless). A {@link Pacer} may stop the run between batches
 * and between packs for the same reason. A damaged chunk ends the run before (4): nothing is
 * switched, the read marked the copy damaged, {@code cask check} names it.
 *
 * <p><b>Safety</b> is compaction's: entries only move (a switch is a compare-and-swap on the old
 * pack, so an entry a heal moved meanwhile stays where the heal put it), a sweep never runs at the
 * same time (this runs inside one, after compaction), and a reader holding a stale location finds
 * the pack gone and asks the index again ({@code LocalChunkStore.get}).
 *
 * <p><b>Sizing.</b> At most {@link #MAX_CHUNKS} chunks per run (sketch and order ~100 bytes a
 * chunk, the copies' locations ~150): the packs are taken oldest first until that many; the next
 * run takes the rest (and cannot pair them with the chunks of this one: look-alikes across runs
 * are missed). Reads: every chunk is read twice (sketch, copy); the copy pass reads in the new
 * order, so a segment may be decompressed for several batches.
 */
final class Recompressor {
    /** zstd level of the new segments (see the class essay; {@code -Dcask.recompress.level}). */
    static final int LEVEL = Integer.getInteger("cask.recompress.level", 14);
    /** Plain bytes per new segment at most (see the class essay; {@code -Dcask.recompress.segment-bytes}). */
    static final int SEGMENT_BYTES = Integer.getInteger("cask.recompress.segment-bytes", 96 << 10);
    /** Plain bytes copied per batch: appended, fsynced, then the next ({@code -Dcask.recompress.batch}: tests make many). */
    static final int BATCH_BYTES = Math.max(1, Integer.getInteger("cask.recompress.batch", 8 << 20));
    /** Chunks per run at most. */
    static final int MAX_CHUNKS = Integer.getInteger("cask.recompress.max-chunks", 1 << 20);
    /** Threads compressing the new segments (the run's own thread reads, appends and switches). */
    static final int THREADS = Math.max(1, Runtime.getRuntime().availableProcessors());
    /** Chunks asked for per {@code getAll}. */
    private static final int READ_AHEAD = 256;

    /** What a run did: packs read and deleted, packs written, chunks copied, the bytes the old packs occupied and the copies hold. */
    record Result(int packsRead, int packsWritten, long chunks, long bytesBefore, long bytesAfter) {
        static final Result NONE = new Result(0, 0, 0, 0, 0);
    }

    private final LocalChunkStore store;
    private final Pacer pacer;

    Recompressor(LocalChunkStore store, Pacer pacer) {
        this.store = store;
        this.pacer = pacer;
    }

    Result run(Progress progress) {
        Set<Integer> done = store.index().recompressedPacks();
        Map<Integer, FileChannel> locked = new TreeMap<>();
        try {
            // the highest pack too, unlike compaction: the copies go to packs numbered above it
            // before it is deleted, so its number is never used again
            for (int p : store.packIds()) {
                if (done.contains(p) || store.ownsPack(p)) continue;
                FileChannel ch = Compactor.lock(store, p);
                if (ch != null) locked.put(p, ch);
            }
            if (locked.isEmpty()) return Result.NONE;
            pacer.check();
            Map<Integer, Map<ChunkId, ChunkLocation>> found = store.index().entriesIn(locked.keySet());
            // oldest packs first, up to MAX_CHUNKS chunks; the rest are let go for the next run
            List<Integer> packs = new ArrayList<>();
            List<ChunkId> ids = new ArrayList<>();
            for (int p : new ArrayList<>(locked.keySet())) {
                Map<ChunkId, ChunkLocation> in = found.getOrDefault(p, Map.of());
                if (!packs.isEmpty() && ids.size() + in.size() > MAX_CHUNKS) {
                    close(locked.remove(p));
                    continue;
                }
                packs.add(p);
                ids.addAll(in.keySet()); // in pack order
            }
            if (ids.isEmpty()) return Result.NONE; // packs nothing points into are compaction's
            return recompress(packs, found, ids, progress);
        } finally {
            for (FileChannel ch : locked.values()) close(ch);
        }
    }

    private Result recompress(List<Integer> packs, Map<Integer, Map<ChunkId, ChunkLocation>> found, List<ChunkId> ids, Progress progress) {
        long before = 0;
        for (int p : packs) {
            try {
                before += store.occupiedBytes(p);
            } catch (IOException e) {
                throw new CaskException.Io("pack " + p + ": " + e.getMessage(), e);
            }
        }
        progress.startItems("recompress", 2L * ids.size());
        // (2) sketches, in pack order (each segment decompressed once)
        long[][] sketches = new long[ids.size()][];
        for (int from = 0; from < ids.size(); from += READ_AHEAD) {
            pacer.step();
            int base = from;
            List<ChunkId> part = ids.subList(from, Math.min(ids.size(), from + READ_AHEAD));
            store.getAll(part, (i, data, off, len) -> sketches[base + i] = Resemblance.sketch(data, off, len), ChunkStore.Reading.STREAM);
            progress.advance(part.size());
        }
        int[] order = Resemblance.order(sketches);
        // (3) copies, in that order, into packs of their own
        PackEncoder encoder = new PackEncoder(store.options().zstdLevel(), LEVEL);
        store.sealOpenPack();
        java.util.concurrent.ExecutorService workers = java.util.concurrent.Executors.newFixedThreadPool(THREADS, r -> {
            Thread t = new Thread(r, "cask-recompress");
            t.setDaemon(true);
            return t;
        });
        try {
            return copyAndSwitch(packs, found, ids, order, encoder, workers, before, progress);
        } finally {
            workers.shutdownNow();
        }
    }

    private Result copyAndSwitch(List<Integer> packs, Map<Integer, Map<ChunkId, ChunkLocation>> found, List<ChunkId> ids, int[] order,
                                 PackEncoder encoder, java.util.concurrent.ExecutorService workers, long before, Progress progress) {
        Map<ChunkId, ChunkLocation> moved = new HashMap<>();
        long after = 0;
        Set<Long> units = new HashSet<>();
        Set<Integer> written = new java.util.TreeSet<>();
        for (int from = 0; from < order.length; ) {
            pacer.step();
            List<ChunkId> batch = new ArrayList<>();
            List<byte[]> plains = new ArrayList<>();
            long bytes = 0;
            while (from < order.length && bytes < BATCH_BYTES) {
                int to = Math.min(order.length, from + READ_AHEAD);
                List<ChunkId> part = new ArrayList<>(to - from);
                for (int k = from; k < to; k++) part.add(ids.get(order[k]));
                byte[][] got = new byte[part.size()][];
                store.getAll(part, (i, data, off, len) -> got[i] = java.util.Arrays.copyOfRange(data, off, off + len), ChunkStore.Reading.LIVE);
                for (int k = 0; k < got.length; k++) {
                    batch.add(part.get(k));
                    plains.add(got[k]);
                    bytes += got[k].length;
                }
                from = to;
            }
            Map<ChunkId, ChunkLocation> copies = store.appendVerbatim(encode(batch, plains, encoder, workers)); // fsynced when it returns
            for (ChunkLocation l : copies.values()) {
                written.add(l.pack());
                if (!l.inSegment() || units.add(l.unit())) after += l.length();
            }
            moved.putAll(copies);
            progress.advance(batch.size());
        }
        // (4) pack by pack: switch, then delete
        for (int p : packs) {
            pacer.step();
            switchAndDelete(p, found.getOrDefault(p, Map.of()), moved);
        }
        // (5) the last copies' pack sealed (every entry into it is indexed now), the new packs recorded
        store.sealOpenPack();
        store.index().markRecompressed(written);
        progress.done();
        return new Result(packs.size(), written.size(), ids.size(), before, after);
    }

    /**
     * The records and segments of one batch, in its order: runs of equal-length chunks, up to
     * {@link #SEGMENT_BYTES} each, as segments where that pays, else as single records
     * ({@link PackEncoder#runs}, as {@code LocalChunkStore.appendCopies} cuts them), compressed on
     * {@code workers} in parallel.
     */
    private static List<LocalChunkStore.Verbatim> encode(List<ChunkId> ids, List<byte[]> plains, PackEncoder encoder,
                                                         java.util.concurrent.ExecutorService workers) {
        List<java.util.concurrent.Future<List<LocalChunkStore.Verbatim>>> runs = encoder.runs(ids, plains, SEGMENT_BYTES, run -> workers.submit(run::get));
        List<LocalChunkStore.Verbatim> out = new ArrayList<>();
        for (var f : runs) {
            try {
                out.addAll(f.get());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CaskException.Io("recompression interrupted", e);
            } catch (java.util.concurrent.ExecutionException e) {
                if (e.getCause() instanceof RuntimeException r) throw r;
                throw new CaskException.Io("recompression failed: " + e.getCause(), e.getCause());
            }
        }
        return out;
    }

    private void switchAndDelete(int p, Map<ChunkId, ChunkLocation> entries, Map<ChunkId, ChunkLocation> moved) {
        Map<ChunkId, ChunkLocation> moves = new HashMap<>();
        for (ChunkId id : entries.keySet()) moves.put(id, moved.get(id));
        Compactor.switchEntries(store, pacer, p, moves);
        try {
            Compactor.deletePack(store, p);
        } catch (java.nio.file.NoSuchFileException gone) {
            // deleted by someone else meanwhile: nothing points into it any more either way
        } catch (IOException e) {
            throw new CaskException.Io("pack " + p + ": deleting it after its recompression failed: " + e.getMessage(), e);
        }
    }

    private static void close(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // releases the lock
        }
    }
}
