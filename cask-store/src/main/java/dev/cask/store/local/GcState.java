package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What a complete collection leaves the store for the next one, so that the next sweep looks only
 * at what changed (see {@code GcEpochs}, "Incremental sweeps"): kept in the index's
 * {@code gc_state} row next to the collector's memo.
 *
 * <ul>
 *   <li>{@code highest}: the highest pack number when the sweep began, and {@code open}: the packs
 *       then that were not sealed (a writer could still add entries to them). Every entry indexed
 *       after that moment points into one of those or into a pack numbered above {@code highest}.
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
 * <p>Encoding (big-endian): int format (2), int highest, int n + n ints (open), int n + n
 * (int pack, long live bytes), int n + n 32-byte chunk ids (deferred), long moved (-1 or more).
 * Format 1 ends after the deferred ids and reads as moved -1. Decoding checks that it consumed
 * exactly the bytes given. The row is a cache like the rest of the index: a state that does not
 * decode is ignored (the next sweep is a full one).
 */
record GcState(int highest, Set<Integer> open, Map<Integer, Long> live, List<ChunkId> deferred, long moved) {
    static final int FORMAT = 2;

    byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(4 * 4 + 4 * open.size() + 12 * live.size() + ChunkId.LENGTH * deferred.size() + 4 + 8);
        b.putInt(FORMAT).putInt(highest);
        b.putInt(open.size());
        for (int p : open) b.putInt(p);
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
            if (format != FORMAT && format != 1) throw new CaskException.Corrupt("gc state: format " + format + ", expected 1 or " + FORMAT);
            int highest = b.getInt();
            Set<Integer> open = new HashSet<>();
            for (int i = count(b, 4); i > 0; i--) open.add(b.getInt());
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
