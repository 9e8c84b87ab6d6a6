package dev.cask.store.local;

import dev.cask.common.ByteArrays;
import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@link LocalChunkStore#getAll}: many chunks (a large read walking a tree) with few system calls,
 * few index queries and no allocation per chunk. Two kinds of caller: an export walking a whole
 * disk once ({@link ChunkStore.Reading#STREAM}), and an NBD client's large read of a live disk
 * ({@link ChunkStore.Reading#LIVE}).
 *
 * <p><b>How.</b> Chunks in the plain cache are handed over from there, chunks still pending (maybe
 * in the write buffer) take {@link LocalChunkStore#get}. Chunks no in-memory map knows are found
 * by {@linkplain #resolve probing}: a few ids at a time (1, 2, 4... up to 16) go to the index, in the order asked, and
 * each answer is read with what surrounds it. A segment is read whole: its table names every chunk
 * in it, so all the wanted ones are handed over from that one read with no index query of their
 * own (an imported disk, stored in disk order, answers an export's 256 chunks per query). A record
 * is read with what follows it in the pack (<em>run-ahead</em>): a checkpoint or an import stores
 * new blocks in disk order, so the records after the one probed are usually the next blocks asked
 * for; each record's header names its chunk, and every record or segment found there that holds a
 * wanted chunk is handed over. What is left (chunks whose location a cache knew, records the
 * run-ahead did not reach) is sorted by pack and offset and read in runs of nearby records (up to
 * {@link #SPAN} bytes, reading through gaps of up to {@link #GAP}), one positional read per run; a
 * segment is decompressed once for all the chunks wanted from it.
 *
 * <p><b>Checks.</b> Every chunk handed over passed what {@link LocalChunkStore#get} checks: a
 * record's magic, lengths, CRC32C and id (the id asked for), then its decompressed length; a
 * segment's CRC32C (header, table, frame), the id in its table and the chunk's own plain CRC32C.
 * The run-ahead reads bytes no index entry vouched for, so it only ever hands over what passes
 * those checks, and anything there that does not (a torn tail another writer is appending to,
 * damage) just ends the run-ahead: its chunks are left to the ordinary path, which asks the index,
 * reports the damage and marks it for healing exactly as a {@link LocalChunkStore#get} would. A
 * record that is not the chunk the index says (a stale location after compaction) is the same
 * {@link IndexMismatch} as for get; a pack compaction deleted under a cached location makes the
 * caller read the rest through get's fresh lookup.
 *
 * <p><b>Caches.</b> {@code STREAM} adds nothing to the caches: it would only push out what random
 * readers keep there. {@code LIVE} keeps the index's answers (small; the same blocks are read
 * again) and the chunks of a decompressed segment that the read did not ask for (the next read of
 * a sequential reader asks for them), but not the chunks it hands over: a large read of a disk is
 * rarely repeated soon (the guest keeps what it read in its own page cache), and copying each into
 * the plain cache cost more than the read itself.
 *
 * <p><b>Sizing.</b> A run-ahead reads as many bytes as the chunks still wanted would take at the
 * probed record's length (at most {@link #SPAN}); when the records it finds are mostly unwanted
 * (blocks written in random order), it stops for the rest of the call, so a read of scattered
 * records costs at most one wasted span. Span and segment buffers are recycled
 * ({@link ByteArrays}): zeroing fresh mebibytes was a fifth of an export's CPU. Error messages
 * naming a chunk are built only on failure (building one per chunk cost a tenth of an export).
 *
 * <p>Thread-safe; each call owns its buffers.
 */
final class BulkReads {
    /** Most pack bytes one read covers. */
    static final int SPAN = 4 << 20;
    /** Unwanted bytes between two wanted records that a span reads through rather than seek. */
    static final int GAP = 64 << 10;
    /**
     * Most ids {@link #resolve} looks up in one index query before it reads what they point at. It
     * starts with one and doubles: when the first answer's segment or run-ahead hands over the
     * whole read (a disk read in the order it was stored), one lookup was all it cost, where 16
     * ids cost 16 index pages (each a disk read when the index is not in the page cache).
     */
    private static final int PROBE = 16;

    private final LocalChunkStore store;
    private final PackReader reader;
    private final ChunkIndex index;

    BulkReads(LocalChunkStore store, PackReader reader, ChunkIndex index) {
        this.store = store;
        this.reader = reader;
        this.index = index;
    }

    /** See {@link LocalChunkStore#getAll(List, ChunkStore.ChunkSink, ChunkStore.Reading)}. */
    void getAll(List<ChunkId> ids, ChunkStore.ChunkSink sink, boolean live) {
        boolean[] delivered = new boolean[ids.size()];
        try {
            once(ids, (i, data, off, len) -> {
                delivered[i] = true;
                sink.chunk(i, data, off, len);
            }, live);
        } catch (CaskException e) {
            if (!LocalChunkStore.packGone(e)) throw e;
            // compaction moved some of these chunks and deleted their pack after their locations
            // were cached: the rest one by one, through get's fresh lookup
            for (int i = 0; i < ids.size(); i++) {
                if (delivered[i]) continue;
                byte[] data = store.get(ids.get(i));
                sink.chunk(i, data, 0, data.length);
            }
        }
    }

    private void once(List<ChunkId> ids, ChunkStore.ChunkSink sink, boolean live) {
        int n = ids.size();
        ChunkLocation[] locs = new ChunkLocation[n];
        boolean[] done = new boolean[n]; // handed over (the same id may be asked for at several indexes)
        Set<ChunkId> unknown = new HashSet<>();
        for (int i = 0; i < n; i++) {
            ChunkId id = ids.get(i);
            byte[] hit = store.plainHit(id);
            if (hit != null) {
                sink.chunk(i, hit, 0, hit.length);
                done[i] = true;
                continue;
            }
            if (store.pendingAt(id) != null) { // not necessarily flushed to the pack yet: get() knows how
                byte[] data = store.get(id);
                sink.chunk(i, data, 0, data.length);
                done[i] = true;
                continue;
            }
            ChunkLocation loc = store.cachedLocation(id);
            if (loc == null) unknown.add(id);
            locs[i] = loc;
        }
        Map<ChunkId, ChunkLocation> found = unknown.isEmpty() ? Map.of() : resolve(ids, locs, done, unknown, sink, live);
        Integer[] order = new Integer[n];
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (done[i]) continue;
            if (locs[i] == null) {
                ChunkId id = ids.get(i);
                if (!unknown.contains(id)) continue; // handed over by resolve
                locs[i] = found.get(id);
                if (locs[i] == null) {
                    byte[] data = store.get(id); // put by another process and synced since, or NotFound
                    sink.chunk(i, data, 0, data.length);
                    continue;
                }
            }
            order[m++] = i;
        }
        java.util.Arrays.sort(order, 0, m, (a, b) -> {
            ChunkLocation x = locs[a], y = locs[b];
            return x.pack() != y.pack() ? Integer.compare(x.pack(), y.pack()) : Long.compare(x.offset(), y.offset());
        });
        readSorted(ids, locs, order, m, sink, live);
    }

    /** Reads the chunks {@code order[0, m)} (sorted by location) in spans of nearby records. */
    private void readSorted(List<ChunkId> ids, ChunkLocation[] locs, Integer[] order, int m, ChunkStore.ChunkSink sink, boolean live) {
        byte[] scratch = new byte[0];
        ChunkLocation segAt = null; // the segment decoded last (its neighbours usually follow)
        PackFormat.Segment seg = null;
        boolean[] segTaken = null; // its slots handed over (live: the others go to the plain cache)
        byte[] segPlain = null;
        try {
            for (int k = 0; k < m; ) {
                ChunkLocation first = locs[order[k]];
                PackReader.checkEntry(first);
                long start = first.offset();
                long end = start + first.length();
                int j = k + 1;
                for (; j < m; j++) {
                    ChunkLocation l = locs[order[j]];
                    PackReader.checkEntry(l);
                    long e = Math.max(end, l.offset() + l.length());
                    if (l.pack() != first.pack() || l.offset() > end + GAP || e - start > SPAN) break;
                    end = e;
                }
                byte[] span = reader.readSpan(first.pack(), start, (int) (end - start));
                try {
                    ChunkLocation last = null;
                    PackFormat.Record r = null;
                    int plainLength = 0;
                    for (int q = k; q < j; q++) {
                        int i = order[q];
                        ChunkLocation l = locs[i];
                        ChunkId id = ids.get(i);
                        try {
                            if (l.inSegment()) {
                                // a segment: decode and decompress it once for all the chunks wanted from it
                                if (segAt == null || segAt.pack() != l.pack() || segAt.offset() != l.offset()) {
                                    if (live && seg != null) keepUntaken(seg, segPlain, segTaken);
                                    seg = null;
                                    segAt = null;
                                    String what = name(id, l);
                                    PackFormat.Segment s = PackFormat.decodeSegment(what, span, (int) (l.offset() - start), l.length());
                                    segPlain = segmentPlain(what, s, segPlain); // the sink copies what it keeps
                                    seg = s;
                                    segTaken = new boolean[s.count()];
                                    segAt = l;
                                }
                                if (l.slot() >= seg.count() || !seg.ids()[l.slot()].equals(id)) PackReader.checkSlot(name(id, l), seg, id, l);
                                int from = seg.plainOffset(l.slot());
                                PackFormat.checkPlainCrc(seg, segPlain, from, l.slot(), () -> name(id, l));
                                segTaken[l.slot()] = true;
                                sink.chunk(i, segPlain, from, seg.plainLengths()[l.slot()]);
                                continue;
                            }
                            if (!l.equals(last)) {
                                java.util.function.Supplier<String> what = () -> name(id, l);
                                r = PackFormat.decodeRecord(what, span, (int) (l.offset() - start), l.length());
                                if (!r.id().equals(id)) throw new IndexMismatch(what.get() + ": record holds chunk " + r.id().shortHex() + " instead");
                                plainLength = r.plainLength();
                                if (r.codec() != PackFormat.CODEC_NONE) {
                                    if (scratch.length < plainLength) scratch = new byte[Math.max(plainLength, 64 << 10)];
                                    PackReader.decompress(what, r, scratch);
                                } else if (r.payloadLength() != plainLength) {
                                    throw new CaskException.Corrupt(name(id, l) + ": stored length " + r.payloadLength() + " != plain length " + plainLength);
                                }
                                last = l;
                            }
                            if (r.codec() == PackFormat.CODEC_NONE) sink.chunk(i, r.payload(), r.payloadOffset(), plainLength);
                            else sink.chunk(i, scratch, 0, plainLength);
                        } catch (CaskException.Corrupt e) {
                            byte[] healed = store.copyElsewhere(id, l, e, false); // l may be a stale cached location
                            if (healed == null) throw e;
                            sink.chunk(i, healed, 0, healed.length);
                        }
                    }
                } finally {
                    ByteArrays.give(span);
                }
                k = j;
            }
            if (live && seg != null) keepUntaken(seg, segPlain, segTaken);
        } finally {
            ByteArrays.give(segPlain);
        }
    }

    private static String name(ChunkId id, ChunkLocation l) {
        return "chunk " + id.shortHex() + " (" + l + ")";
    }

    /** Live reads: the chunks of a decompressed segment the read did not take, into the plain cache if they pass their CRC. */
    private void keepUntaken(PackFormat.Segment s, byte[] plain, boolean[] taken) {
        for (int k = 0, from = 0; k < s.count(); from += s.plainLengths()[k], k++) {
            if (!taken[k] && PackFormat.plainCrcMatches(s, plain, from, k)) store.keepPlain(s.ids()[k], plain, from, s.plainLengths()[k]);
        }
    }

    /**
     * Decompresses segment {@code s} into {@code reuse} when it is long enough, else into a larger
     * recycled array ({@code reuse} is given back), counts the read, and returns the array that
     * holds the plain bytes.
     */
    private byte[] segmentPlain(String what, PackFormat.Segment s, byte[] reuse) {
        byte[] out = reuse;
        if (out == null || out.length < s.plainLength()) {
            ByteArrays.give(out);
            out = ByteArrays.take(Math.max(s.plainLength(), 64 << 10));
        }
        PackReader.segmentPlainInto(what, s, out);
        store.countSegmentRead();
        return out;
    }

    /**
     * Finds the {@code unknown} ids (those no cache knew; {@code locs[i]} is null for them) by
     * probing the index for a few at a time, in the order asked, and reading what each answer
     * points at together with its neighbours: a segment whole, a record with the records after it
     * ({@link #runAhead}). Every wanted chunk found that way is handed to the sink and removed from
     * {@code unknown}. Returns the index locations of the probed records that were not handed over
     * (for the caller's span reads, which report their faults); ids the index does not hold are
     * left out (the caller asks get, which reports them).
     */
    private Map<ChunkId, ChunkLocation> resolve(List<ChunkId> ids, ChunkLocation[] locs, boolean[] done,
                                                Set<ChunkId> unknown, ChunkStore.ChunkSink sink, boolean live) {
        Map<ChunkId, int[]> wanted = new LinkedHashMap<>(); // request indexes per unknown id, in the order asked
        for (int i = 0; i < ids.size(); i++) {
            if (done[i] || locs[i] != null || !unknown.contains(ids.get(i))) continue;
            wanted.merge(ids.get(i), new int[]{i}, (a, b) -> {
                int[] c = java.util.Arrays.copyOf(a, a.length + 1);
                c[a.length] = b[0];
                return c;
            });
        }
        Map<ChunkId, ChunkLocation> records = new HashMap<>();
        java.util.Iterator<ChunkId> next = wanted.keySet().iterator();
        Found handOver = new Found(wanted, unknown, records, done, sink);
        boolean runAhead = true;
        int probeSize = 1; // doubles up to PROBE: the first answer's neighbours are often all the read wants
        byte[] plainBuf = null;
        try {
            while (true) {
                List<ChunkId> probe = new ArrayList<>(probeSize);
                while (probe.size() < probeSize && next.hasNext()) {
                    ChunkId id = next.next();
                    if (unknown.contains(id)) probe.add(id); // not handed over by an earlier read
                }
                if (probe.isEmpty()) break;
                probeSize = Math.min(PROBE, probeSize * 2);
                Map<ChunkId, ChunkLocation> got = index.locateAll(probe);
                if (live) store.remember(got);
                for (ChunkId id : probe) {
                    ChunkLocation l = got.get(id);
                    if (l == null || !unknown.contains(id)) continue; // not indexed (the caller asks get), or handed over
                    PackReader.checkEntry(l);
                    if (!l.inSegment()) {
                        records.put(id, l);
                        if (runAhead) runAhead = runAhead(id, l, handOver, live);
                        continue;
                    }
                    String what = name(id, l);
                    byte[] span = reader.readSpan(l.pack(), l.offset(), l.length());
                    try {
                        PackFormat.Segment seg = PackFormat.decodeSegment(what, span, 0, l.length());
                        PackReader.checkSlot(what, seg, id, l);
                        plainBuf = segmentPlain(what, seg, plainBuf);
                        for (int slot = 0, from = 0; slot < seg.count(); from += seg.plainLengths()[slot], slot++) {
                            ChunkId sid = seg.ids()[slot];
                            int len = seg.plainLengths()[slot];
                            if (!handOver.wants(sid)) {
                                if (live && PackFormat.plainCrcMatches(seg, plainBuf, from, slot)) store.keepPlain(sid, plainBuf, from, len);
                                continue;
                            }
                            ChunkLocation in = new ChunkLocation(l.pack(), l.offset(), l.length(), slot);
                            PackFormat.checkPlainCrc(seg, plainBuf, from, slot, () -> name(sid, in));
                            handOver.give(sid, plainBuf, from, len);
                        }
                    } catch (CaskException.Corrupt e) {
                        store.copyElsewhere(id, l, e, false); // l came from the index just now: marks it
                        throw e;
                    } finally {
                        ByteArrays.give(span);
                    }
                }
            }
        } finally {
            ByteArrays.give(plainBuf);
        }
        return records;
    }

    /** The wanted chunks {@link #resolve} has not handed over yet, and how it hands one over. */
    private static final class Found {
        final Map<ChunkId, int[]> wanted;
        final Set<ChunkId> unknown;
        final Map<ChunkId, ChunkLocation> records;
        final boolean[] done;
        final ChunkStore.ChunkSink sink;

        Found(Map<ChunkId, int[]> wanted, Set<ChunkId> unknown, Map<ChunkId, ChunkLocation> records, boolean[] done, ChunkStore.ChunkSink sink) {
            this.wanted = wanted;
            this.unknown = unknown;
            this.records = records;
            this.done = done;
            this.sink = sink;
        }

        boolean wants(ChunkId id) {
            return unknown.contains(id) && wanted.containsKey(id);
        }

        /** Hands verified bytes of a wanted chunk to every index that asked for it. */
        void give(ChunkId id, byte[] data, int off, int len) {
            for (int i : wanted.get(id)) {
                sink.chunk(i, data, off, len);
                done[i] = true;
            }
            unknown.remove(id);
            records.remove(id); // a record location probed earlier is no longer needed
        }

        int left() {
            return unknown.size();
        }
    }

    /**
     * Reads from the record of {@code probed} at {@code l} (an index answer) onwards, as many bytes
     * as the chunks still wanted would take at that record's length, and hands over every wanted
     * chunk whose record or segment there passes its checks (the probed record first: the id
     * there must be {@code probed}). Stops at the first thing that does not decode or check, which
     * is left to the caller's ordinary reads. Returns false when the records found were mostly not
     * wanted (blocks stored in another order than asked): run-ahead is then not worth its reads.
     */
    private boolean runAhead(ChunkId probed, ChunkLocation l, Found found, boolean live) {
        java.util.function.Supplier<String> what = () -> "read-ahead from " + l; // its failures are never reported
        long want = (long) Math.max(1, found.left()) * l.length();
        int length = (int) Math.max(l.length(), Math.min(SPAN, want));
        byte[] span = ByteArrays.take(length);
        byte[] scratch = null;
        int parsed = 0;
        int handed = 0;
        try {
            int got = reader.readUpTo(l.pack(), l.offset(), span, length);
            int pos = 0;
            while (pos + 4 <= got && found.left() > 0) {
                int magic = PackFormat.magicAt(span, pos);
                if (magic == PackFormat.RECORD_MAGIC) {
                    if (pos + PackFormat.RECORD_HEADER > got) break;
                    int recordLength = PackFormat.RECORD_HEADER + PackFormat.storedLength(what, span, pos);
                    if (pos + recordLength > got) break;
                    PackFormat.Record r = PackFormat.decodeRecord(what, span, pos, recordLength);
                    if (pos == 0 && !r.id().equals(probed)) break; // the index entry is wrong: the ordinary read reports it
                    parsed++;
                    if (found.wants(r.id())) {
                        int plainLength = r.plainLength();
                        if (r.codec() == PackFormat.CODEC_NONE) {
                            if (r.payloadLength() != plainLength) break;
                            found.give(r.id(), r.payload(), r.payloadOffset(), plainLength);
                        } else {
                            if (scratch == null || scratch.length < plainLength) {
                                ByteArrays.give(scratch);
                                scratch = ByteArrays.take(Math.max(plainLength, 64 << 10));
                            }
                            PackReader.decompress(what, r, scratch);
                            found.give(r.id(), scratch, 0, plainLength);
                        }
                        handed++;
                    }
                    pos += recordLength;
                } else if (magic == PackFormat.SEGMENT_MAGIC) {
                    if (pos + PackFormat.SEGMENT_HEADER > got) break;
                    int segmentLength = PackFormat.segmentLength(what, span, pos);
                    if (pos + segmentLength > got) break;
                    PackFormat.Segment seg = PackFormat.decodeSegment(what, span, pos, segmentLength);
                    parsed++;
                    boolean any = false;
                    for (ChunkId sid : seg.ids()) any |= found.wants(sid);
                    if (any) {
                        if (scratch == null || scratch.length < seg.plainLength()) {
                            ByteArrays.give(scratch);
                            scratch = ByteArrays.take(Math.max(seg.plainLength(), 64 << 10));
                        }
                        PackReader.segmentPlainInto(what, seg, scratch);
                        store.countSegmentRead();
                        for (int slot = 0, from = 0; slot < seg.count(); from += seg.plainLengths()[slot], slot++) {
                            int len = seg.plainLengths()[slot];
                            if (!PackFormat.plainCrcMatches(seg, scratch, from, slot)) continue; // the ordinary read reports it
                            ChunkId sid = seg.ids()[slot];
                            if (found.wants(sid)) {
                                found.give(sid, scratch, from, len);
                                handed++;
                            } else if (live) {
                                store.keepPlain(sid, scratch, from, len);
                            }
                        }
                    }
                    pos += segmentLength;
                } else {
                    break; // not a record or segment: damage, or the end of what a writer has appended
                }
            }
        } catch (CaskException.Corrupt e) {
            // damage, or a record another process is appending right now: the ordinary read of
            // what is left decides (and reports and marks real damage)
        } finally {
            ByteArrays.give(span);
            ByteArrays.give(scratch);
        }
        return handed * 4 >= parsed;
    }
}
