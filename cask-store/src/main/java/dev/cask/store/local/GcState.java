package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What a complete collection leaves the store for the next one, so that the next sweep looks only
 * at what changed (see {@code GcEpochs}, "Incremental sweeps"): kept in the index's
 * {@code gc_state} row next to the collector's memo.
 *
 * <ul>
 *   <li>{@code highest}: the highest pack number when the sweep began, and {@code open}: the packs
 *       then that were not sealed (a writer could still add entries to them), each with
 *       {@link Open#scannedTo}, the end of the furthest entry in it that the sweep's scan saw (or
 *       the previous state's figure, when larger), and {@link Open#live}, the bytes the entries
 *       below that still pointed at after the sweep. Every entry indexed after the scan points
 *       into one of those packs at or after its {@code scannedTo} (a pack gains entries in the
 *       order of their offsets: see {@code GcEpochs}), or into a pack numbered above
 *       {@code highest}.
 *   <li>{@code live}: for each pack sealed then, the bytes an index entry still pointed at after
 *       the sweep (records, and segments once; after an incremental sweep, a segment's bytes are
 *       taken off in proportion to its chunks freed). What compaction chooses from.
 *   <li>{@code deferred}: the chunks the sweep found unreachable but could not delete (stamped
 *       at or after its epoch by a concurrent put): the next sweep looks at them again.
 *   <li>{@code moved}: the index's count of changes to the settled table's locations
 *       ({@code gc.moved}, see {@code ChunkIndex}) in the snapshot an incremental sweep scanned,
 *       when it saw every entry the next sweep must look at in the recent table; -1 otherwise.
 *       While the count stays so, those entries stay there, and the next sweep scans only that
 *       table ({@code LocalSweep}).
 * </ul>
 *
 * <p>Encoding (big-endian): int format (3), int highest, int n + n (int pack, long scannedTo,
 * long live bytes) (open), int n + n (int pack, long live bytes), int n + n 32-byte chunk ids
 * (deferred), long moved (-1 or more). Format 2 has n ints for the open packs, read as scanned
 * to 0 with 0 live bytes (the next sweep scans all their entries, as it did then); format 1 also
 * ends after the deferred ids and reads as moved -1. Decoding checks that it consumed exactly the
 * bytes given. The row is a cache like the rest of the index: a state that does not decode is
 * ignored (the next sweep is a full one).
 */
record GcState(int highest, Map<Integer, Open> open, Map<Integer, Long> live, List<ChunkId> deferred, long moved) {
    static final int FORMAT = 3;

    /**
     * A pack not sealed when the sweep began: every entry in it below {@code scannedTo} was seen by
     * a scan, and those still there pointed at {@code live} bytes after the sweep.
     */
    record Open(long scannedTo, long live) {
        /** A pack no scan has looked at yet: the next one reads all its entries. */
        static final Open UNSEEN = new Open(0, 0);
    }

    byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(4 * 4 + 20 * open.size() + 12 * live.size() + ChunkId.LENGTH * deferred.size() + 4 + 8);
        b.putInt(FORMAT).putInt(highest);
        b.putInt(open.size());
        for (var e : open.entrySet()) b.putInt(e.getKey()).putLong(e.getValue().scannedTo()).putLong(e.getValue().live());
        b.putInt(live.size());
        for (var e : live.entrySet()) b.putInt(e.getKey()).putLong(e.getValue());
        b.putInt(deferred.size());
        byte[] id = new byte[ChunkId.LENGTH];
        for (ChunkId c : deferred) {
            c.copyTo(id, 0);
            b.put(id);
        }
        b.putLong(moved);
        return java.util.Arrays.copyOf(b.array(), b.position());
    }

    /** The state in {@code bytes}; throws {@link CaskException.Corrupt} when they are not one. */
    static GcState decode(byte[] bytes) {
        try {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            int format = b.getInt();
            if (format < 1 || format > FORMAT) throw new CaskException.Corrupt("gc state: format " + format + ", expected 1 to " + FORMAT);
            int highest = b.getInt();
            Map<Integer, Open> open = new HashMap<>();
            if (format >= 3) {
                for (int i = count(b, 20); i > 0; i--) {
                    int pack = b.getInt();
                    long to = b.getLong(), live = b.getLong();
                    if (to < 0 || live < 0) throw new CaskException.Corrupt("gc state: pack " + pack + " scanned to " + to + " with " + live + " live bytes, expected neither negative");
                    open.put(pack, new Open(to, live));
                }
            } else {
                for (int i = count(b, 4); i > 0; i--) open.put(b.getInt(), Open.UNSEEN);
            }
            Map<Integer, Long> live = new HashMap<>();
            for (int i = count(b, 12); i > 0; i--) live.put(b.getInt(), b.getLong());
            List<ChunkId> deferred = new ArrayList<>();
            for (int i = count(b, ChunkId.LENGTH); i > 0; i--) {
                byte[] id = new byte[ChunkId.LENGTH];
                b.get(id);
                deferred.add(ChunkId.fromBytes(id));
            }
            long moved = -1;
            if (format >= 2) {
                moved = b.getLong();
                if (moved < -1) throw new CaskException.Corrupt("gc state: settled changes " + moved + ", expected -1 or more");
            }
            if (b.hasRemaining()) throw new CaskException.Corrupt("gc state: " + b.remaining() + " bytes after its end");
            return new GcState(highest, open, live, deferred, moved);
        } catch (java.nio.BufferUnderflowException e) {
            throw new CaskException.Corrupt("gc state: truncated (" + bytes.length + " bytes)");
        }
    }

    private static int count(ByteBuffer b, int each) {
        int n = b.getInt();
        if (n < 0 || (long) n * each > b.remaining()) throw new CaskException.Corrupt("gc state: count " + n + " out of range");
        return n;
    }
}
