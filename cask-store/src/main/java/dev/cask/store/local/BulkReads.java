package dev.cask.store.local;

import dev.cask.store.ChunkLocation;
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
 * <p><b>How.</b> The chunks are taken in the order asked. For the next one not handed over yet:
 * the plain cache, this process's unsynced chunks ({@link LocalChunkStore#get}), else its location,
 * from the location cache or by asking the index about it and the next few no cache knows (1, 2,
 * 4... up to {@link #PROBE} ids a query). What the location holds is read with what surrounds it.
 * A segment is read whole: its table names every chunk in it, so all the wanted ones are handed
 * over from that one read (an imported disk, stored in disk order, answers an export's 256 chunks
 * per lookup). A record is read with what follows it in the pack (<em>run-ahead</em>): imports and
 * checkpoints store new blocks in disk order, so the records after it are usually the next blocks
 * asked for; each record's header names its chunk, and every record there that holds a wanted
 * chunk where a get would read it (the location cache says so, else the index, asked about all of
 * a read's such chunks at once) is handed over, with every segment's wanted chunks. So a read of a
 * disk in the order it was stored costs one system call per run and, where locations are cached
 * (after a checkpoint, once an opened image is warmed), one quiet cache lookup per record, where
 * it cost a system call, three cache lookups (in maps of a million entries: a sixth of a served
 * disk's CPU) and two copies per 4 KiB. When the run-ahead finds mostly unwanted records
 * (blocks stored in another order), it stops for the rest of the call, and the remaining chunks are
 * looked up one by one, then read sorted by pack and offset in spans of nearby records (up to
 * {@link #SPAN} bytes, reading through gaps of up to {@link #GAP}), one system call per span.
 *
 * <p><b>Checks.</b> Every chunk handed over passed what {@link LocalChunkStore#get} checks: a
 * record's magic, lengths, CRC32C and id (the id asked for), then its decompressed length; a
 * segment's CRC32C (header, table, frame), the id in its table and the chunk's own plain CRC32C.
 * The run-ahead reads further than any one answer vouched for, so it hands over a record only
 * where a get would read it (never a copy the index has left, such as one a heal replaced because
 * only rehashing could tell it was wrong), and only what passes those checks; anything there that
 * does not (a torn tail another writer is appending to, damage) just ends the run-ahead: its chunks are left to the ordinary path, which asks the index,
 * reports the damage and marks it for healing exactly as a {@link LocalChunkStore#get} would. A
 * copy that fails its checks where a cache or the index said the chunk is makes the read ask the
 * index where it is now (compaction may have moved it, another process healed it), as get does;
 * only when that is the same copy is it marked damaged and the error thrown, naming the chunk.
 *
 * <p><b>Caches.</b> {@code STREAM} adds nothing to the caches: it would only push out what random
 * readers keep there. {@code LIVE} keeps the index's answers (small; the same blocks are read
 * again) and a decompressed segment, as one entry ({@link PlainCache}; one copy of the frame's
 * plain bytes, never a copy per chunk, which cost more than the read itself), when it holds chunks
 * the read did not ask for (the next read of a sequential reader asks for them, and finds them
 * through their locations), or when a read decompressed the same segment recently
 * ({@link LocalChunkStore#decodedBefore}: the second reader of it). A guest keeps what it read
 * in its own page cache, but the other clones of its image do not share that cache and ask for the
 * same segments. Until session 29 a segment whose chunks a read took all was never kept, and
 * every later reader paid the whole decompression again (sequential 1M reads of a fixture image
 * read over and over ran at 0.72-0.90 x qemu-nbd, the decompression half of the server's CPU;
 * kept, at 1.45-1.77 x). Kept on the first read instead, one pass of 1M reads over the four
 * fixture images (which share segments) cost the server 4.5-4.7 s of CPU against 4.2-4.5 s keeping
 * none (the copy, and the collector moving it: most large reads are read once); kept on the
 * second, 3.9-4.2 s.
 *
 * <p><b>Sizing.</b> A run-ahead reads as many bytes as the chunks still wanted would take at the
 * first record's length (at most {@link #SPAN}); it stops for the rest of the call once fewer than
 * a quarter of the records it found were wanted, so a read of scattered records costs at most
 * about one wasted span. Span and segment buffers are recycled
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
     * Most ids looked up in one index query before what they point at is read. It starts with one
     * and doubles: when the first answer's segment or run-ahead hands over the
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
        } catch (SinkFailed e) {
            throw (RuntimeException) e.getCause();
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
        Found found = new Found(ids, sink);
        List<ChunkId> distinct = found.distinct();
        Map<ChunkId, ChunkLocation> records = new HashMap<>(); // to read in sorted spans: records no read handed over yet
        boolean ahead = true;
        int probeSize = 1;
        byte[][] plainBuf = {null};
        try {
            for (int k = 0; k < distinct.size() && found.left() > 0; k++) {
                ChunkId id = distinct.get(k);
                if (!found.wants(id) || records.containsKey(id)) continue;
                if (fromCaches(id, found)) continue;
                ChunkLocation cached = store.cachedLocation(id);
                if (cached != null) {
                    ahead = take(id, cached, records, found, ahead, live, plainBuf);
                    continue;
                }
                // ask the index about this one and the next few wanted ones no cache answers
                List<ChunkId> probe = new ArrayList<>(probeSize);
                probe.add(id);
                for (int q = k + 1; q < distinct.size() && probe.size() < probeSize; q++) {
                    ChunkId more = distinct.get(q);
                    if (!found.wants(more) || records.containsKey(more) || fromCaches(more, found)) continue;
                    if (store.cachedLocation(more) == null) probe.add(more); // else its own turn takes it
                }
                probeSize = Math.min(PROBE, probeSize * 2);
                Map<ChunkId, ChunkLocation> got = index.locateAll(probe);
                if (live) store.remember(got);
                for (ChunkId p : probe) {
                    ChunkLocation l = got.get(p);
                    if (l != null && found.wants(p)) ahead = take(p, l, records, found, ahead, live, plainBuf);
                }
            }
            // chunks no cache and no index entry knew: put by another process and synced since, or NotFound (get knows)
            for (ChunkId id : distinct) {
                if (found.wants(id) && !records.containsKey(id)) {
                    byte[] data = store.get(id);
                    found.give(id, data, 0, data.length);
                }
            }
            readSorted(records, found);
        } finally {
            ByteArrays.give(plainBuf[0]);
        }
    }

    /** Hands {@code id} over from the plain cache, or through get when this process has not synced it yet; false when neither has it. */
    private boolean fromCaches(ChunkId id, Found found) {
        byte[] hit = store.plainHit(id);
        if (hit != null) {
            found.give(id, hit, 0, hit.length);
            return true;
        }
        if (store.pendingAt(id) != null) { // not necessarily flushed to the pack yet: get() knows how
            byte[] data = store.get(id);
            found.give(id, data, 0, data.length);
            return true;
        }
        return false;
    }

    /**
     * {@code id} is at {@code l} (the location cache's or the index's answer): while {@code ahead},
     * read with what follows it ({@link #runAhead}); if that did not hand it over (the run-ahead
     * reports nothing), a segment is read whole now ({@link #readSegment}, which reports), a
     * record noted for the sorted span reads. Returns whether run-ahead is still worth trying.
     */
    private boolean take(ChunkId id, ChunkLocation l, Map<ChunkId, ChunkLocation> records, Found found, boolean ahead,
                         boolean live, byte[][] plainBuf) {
        PackReader.checkEntry(l);
        if (l.inSegment() && fromCachedSegment(id, l, found)) return ahead;
        if (ahead) ahead = runAhead(id, l, found, live);
        if (!found.wants(id)) return ahead;
        // the run-ahead did not hand it over (it does not report failures): the ordinary reads do
        if (l.inSegment()) readSegment(id, l, found, live, plainBuf);
        else records.put(id, l);
        return ahead;
    }

    /**
     * Hands over, from the plain cache's copy of the segment at {@code l} (which says it holds
     * {@code id}), every wanted chunk in it whose bytes pass their CRC32C, as {@link #readSegment}
     * would; false when that segment is not cached or {@code id} itself is not handed over (its
     * ordinary read then reports what is wrong).
     */
    private boolean fromCachedSegment(ChunkId id, ChunkLocation l, Found found) {
        try (PlainCache.Pinned d = store.segmentHit(l)) { // handed over from the cache's slab, pinned meanwhile
            if (d == null || !d.holds(id, l.slot())) return false;
            PackFormat.Segment seg = d.table();
            byte[] plain = d.bytes();
            for (int slot = 0, from = d.plainAt(); slot < seg.count(); from += seg.plainLengths()[slot], slot++) {
                ChunkId sid = seg.ids()[slot];
                if (found.wants(sid) && PackFormat.plainCrcMatches(seg, plain, from, slot)) found.give(sid, plain, from, seg.plainLengths()[slot]);
            }
        }
        return !found.wants(id);
    }

    /**
     * Reads the segment at {@code l}, which holds {@code id}, and hands over every wanted chunk in
     * it; with {@code live} the segment goes to the plain cache. When it fails its checks, the copy
     * the index points at now is read instead if that is another one (a cached location compaction
     * made stale, a heal by another process); else the copy is marked damaged and the error thrown.
     */
    private void readSegment(ChunkId id, ChunkLocation l, Found found, boolean live, byte[][] plainBuf) {
        String what = name(id, l);
        byte[] span;
        try {
            span = reader.readSpan(l.pack(), l.offset(), l.length());
        } catch (CaskException.Corrupt e) {
            giveElsewhere(id, l, e, found);
            return;
        }
        try {
            PackFormat.Segment seg = PackFormat.decodeSegment(what, span, 0, l.length());
            PackReader.checkSlot(what, seg, id, l);
            plainBuf[0] = segmentPlain(what, seg, plainBuf[0]);
            byte[] plain = plainBuf[0];
            boolean others = false;
            for (int slot = 0, from = 0; slot < seg.count(); from += seg.plainLengths()[slot], slot++) {
                ChunkId sid = seg.ids()[slot];
                int len = seg.plainLengths()[slot];
                if (!found.wants(sid)) {
                    others = true;
                    continue;
                }
                int at = slot;
                if (sid.equals(id) || PackFormat.plainCrcMatches(seg, plain, from, slot)) {
                    PackFormat.checkPlainCrc(seg, plain, from, slot, () -> name(sid, new ChunkLocation(l.pack(), l.offset(), l.length(), at)));
                    found.give(sid, plain, from, len);
                }
                // another wanted chunk whose bytes fail their CRC: its own lookup reads and reports it
            }
            if (live && (others || store.decodedBefore(l))) store.keepSegment(l, seg, plain); // see "Caches" above
        } catch (CaskException.Corrupt e) {
            giveElsewhere(id, l, e, found);
        } finally {
            ByteArrays.give(span);
        }
    }

    /** The copy of {@code id} at {@code l} failed: hands over the copy the index points at now, or throws {@code e} (marked). */
    private void giveElsewhere(ChunkId id, ChunkLocation l, CaskException.Corrupt e, Found found) {
        byte[] healed = store.copyElsewhere(id, l, e, false);
        if (healed == null) throw e;
        found.give(id, healed, 0, healed.length);
    }

    /** Reads the {@code records} still wanted, sorted by pack and offset, in spans of nearby records. */
    private void readSorted(Map<ChunkId, ChunkLocation> records, Found found) {
        List<Map.Entry<ChunkId, ChunkLocation>> order = new ArrayList<>(records.size());
        for (var e : records.entrySet()) if (found.wants(e.getKey())) order.add(e);
        order.sort((a, b) -> {
            ChunkLocation x = a.getValue(), y = b.getValue();
            return x.pack() != y.pack() ? Integer.compare(x.pack(), y.pack()) : Long.compare(x.offset(), y.offset());
        });
        byte[] scratch = new byte[0];
        int m = order.size();
        for (int k = 0; k < m; ) {
            ChunkLocation first = order.get(k).getValue();
            long start = first.offset();
            long end = start + first.length();
            int j = k + 1;
            for (; j < m; j++) {
                ChunkLocation l = order.get(j).getValue();
                long e = Math.max(end, l.offset() + l.length());
                if (l.pack() != first.pack() || l.offset() > end + GAP || e - start > SPAN) break;
                end = e;
            }
            byte[] span = reader.readSpan(first.pack(), start, (int) (end - start));
            try {
                for (int q = k; q < j; q++) {
                    ChunkId id = order.get(q).getKey();
                    ChunkLocation l = order.get(q).getValue();
                    try {
                        java.util.function.Supplier<String> what = () -> name(id, l);
                        PackFormat.Record r = PackReader.recordHolding(what, id, span, (int) (l.offset() - start), l.length());
                        int plainLength = r.plainLength();
                        if (r.codec() == PackFormat.CODEC_NONE) {
                            if (r.payloadLength() != plainLength) {
                                throw new CaskException.Corrupt(what.get() + ": stored length " + r.payloadLength() + " != plain length " + plainLength);
                            }
                            found.give(id, r.payload(), r.payloadOffset(), plainLength);
                        } else {
                            if (scratch.length < plainLength) scratch = new byte[Math.max(plainLength, 64 << 10)];
                            PackReader.decompress(what, r, scratch);
                            found.give(id, scratch, 0, plainLength);
                        }
                    } catch (CaskException.Corrupt e) {
                        giveElsewhere(id, l, e, found); // l may be a stale cached location
                    }
                }
            } finally {
                ByteArrays.give(span);
            }
            k = j;
        }
    }

    private static String name(ChunkId id, ChunkLocation l) {
        return "chunk " + id.shortHex() + " (" + l + ")";
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

    /** The caller's sink threw (its cause): passed through every catch of a bad copy untouched, then rethrown as it was. */
    private static final class SinkFailed extends RuntimeException {
        SinkFailed(RuntimeException cause) {
            super(cause);
        }
    }

    /** The chunks a read asks for, by id (each may be asked for at several indexes), and which are still to hand over. */
    private static final class Found {
        final Map<ChunkId, int[]> wanted = new LinkedHashMap<>();
        final Set<ChunkId> left;
        final ChunkStore.ChunkSink sink;

        Found(List<ChunkId> ids, ChunkStore.ChunkSink sink) {
            this.sink = sink;
            for (int i = 0; i < ids.size(); i++) {
                int at = i;
                wanted.merge(ids.get(i), new int[]{i}, (a, b) -> {
                    int[] c = java.util.Arrays.copyOf(a, a.length + 1);
                    c[a.length] = at;
                    return c;
                });
            }
            left = new HashSet<>(wanted.keySet());
        }

        /** The ids asked for, each once, in the order first asked. */
        List<ChunkId> distinct() {
            return new ArrayList<>(wanted.keySet());
        }

        boolean wants(ChunkId id) {
            return left.contains(id);
        }

        /**
         * Hands verified bytes of a wanted chunk to every index that asked for it. What the sink
         * throws is wrapped in {@link SinkFailed}, so that no catch here takes it for damage.
         */
        void give(ChunkId id, byte[] data, int off, int len) {
            left.remove(id);
            try {
                for (int i : wanted.get(id)) sink.chunk(i, data, off, len);
            } catch (RuntimeException e) {
                throw new SinkFailed(e);
            }
        }

        int left() {
            return left.size();
        }
    }

    /**
     * Reads from the record or segment of {@code probed} at {@code l} (an answer of a cache or the
     * index) onwards and hands over the wanted chunks found there. The first read takes just that
     * record or segment, which must hold {@code probed} where {@code l} says; it tells how many
     * pack bytes a chunk takes here (a record's length, a segment's length over its count), and
     * the next read takes as many bytes as the chunks still wanted would then take (at most
     * {@link #SPAN}), and so on while a read hands something over.
     *
     * <p>A record found this way is handed over only where a {@link LocalChunkStore#get} would
     * read it: its location must be the one the location cache holds for its chunk, or, when the
     * cache holds none, the one the index holds (asked for all such chunks of a read at once). So
     * a copy the index no longer points at (one a heal replaced because only rehashing could tell
     * it was wrong, a duplicate, one compaction left) is never read in its place. The chunks of a
     * segment are taken as its table names them, as a get of one of them takes its neighbours
     * into the plain cache. Each copy is then checked as any read checks it (magic, lengths,
     * CRC32C, the slot's plain CRC32C). Anything
     * that does not decode or check ends the run-ahead and is left to the caller's ordinary reads,
     * which report it. Returns false when the records and segments it found were mostly not wanted
     * (blocks stored in another order than asked): run-ahead is then not worth its reads.
     */
    private boolean runAhead(ChunkId probed, ChunkLocation l, Found found, boolean live) {
        java.util.function.Supplier<String> what = () -> "read-ahead from " + l; // its failures are never reported
        Ahead a = new Ahead(found, live, what, l.pack());
        byte[] span = ByteArrays.take(l.length());
        try {
            int got = reader.readUpTo(l.pack(), l.offset(), span, l.length());
            a.window(span, got, l.offset(), probed, l);
            if (a.chunks == 0) return true; // the probed copy did not check: nothing learnt about the order here
            long perChunk = Math.max(1, a.consumed / a.chunks);
            long at = l.offset() + a.consumed;
            while (!a.stopped && found.left() > 0) {
                int length = (int) Math.min(SPAN, (found.left() + 1) * perChunk);
                if (span.length < length) {
                    ByteArrays.give(span);
                    span = ByteArrays.take(length);
                }
                got = reader.readUpTo(l.pack(), at, span, length);
                int handedBefore = a.handed;
                long consumedBefore = a.consumed;
                a.window(span, got, at, null, null);
                if (a.handed == handedBefore || a.consumed == consumedBefore || got < length) break;
                at += a.consumed - consumedBefore;
            }
        } catch (CaskException.Corrupt e) {
            // the pack is gone or cut short under a cached location: the ordinary read decides
        } finally {
            ByteArrays.give(span);
            a.done();
        }
        return a.handed * 4 >= a.items;
    }

    /** What a run-ahead found so far: records and segments parsed, chunks handed over, bytes consumed. */
    private final class Ahead {
        final Found found;
        final boolean live;
        final java.util.function.Supplier<String> what;
        final int pack;
        int items;
        int chunks;
        int handed;
        long consumed;
        boolean stopped;
        byte[] scratch;

        Ahead(Found found, boolean live, java.util.function.Supplier<String> what, int pack) {
            this.found = found;
            this.live = live;
            this.what = what;
            this.pack = pack;
        }

        /**
         * One read's bytes {@code span[0, got)}, from pack offset {@code base}: the whole records
         * and segments in it, in two passes. The first walks their headers and tables (unchecked)
         * for the wanted chunks and where each is, and asks where {@link LocalChunkStore#get}
         * would read each of them (the location cache, else the index, in one query); the second
         * checks and hands over those found where get would read them. With {@code probed}, the
         * first record or segment must hold it at {@code l} (else nothing is taken), and counts as
         * where get would read it. Sets {@link #stopped} at anything that does not decode or
         * check; a record or segment cut by the end of the span is left for the next read.
         */
        void window(byte[] span, int got, long base, ChunkId probed, ChunkLocation l) {
            // pass 1: where things are, and which wanted chunks are where a get would read them
            List<int[]> spots = new ArrayList<>(); // {pos, length, 1 for a segment}
            Map<ChunkId, ChunkLocation> candidates = new HashMap<>(); // records: handed over where a get would read them
            Map<ChunkId, ChunkLocation> trusted = new HashMap<>(); // segment slots: the table vouches for them (see the class essay)
            boolean damage = false; // pass 1 ended at something that is not a whole record or segment (not at the span's end)
            int pos = 0;
            try {
                while (pos + 4 <= got) {
                    int magic = PackFormat.magicAt(span, pos);
                    boolean first = probed != null && pos == 0;
                    if (magic == PackFormat.RECORD_MAGIC && !(first && l.inSegment())) {
                        if (pos + PackFormat.RECORD_HEADER > got) break;
                        int length = PackFormat.RECORD_HEADER + PackFormat.storedLength(what, span, pos);
                        if (pos + length > got) break;
                        ChunkId id = ChunkId.fromBytes(span, pos + 16);
                        if (first && !id.equals(probed)) {
                            damage = true; // the location is wrong: the ordinary read reports it
                            break;
                        }
                        if (found.wants(id)) candidates.put(id, new ChunkLocation(pack, base + pos, length));
                        spots.add(new int[]{pos, length, 0});
                        pos += length;
                    } else if (magic == PackFormat.SEGMENT_MAGIC && !(first && !l.inSegment())) {
                        if (pos + PackFormat.SEGMENT_HEADER > got) break;
                        int length = PackFormat.segmentLength(what, span, pos);
                        if (pos + length > got) break;
                        ChunkId[] ids = PackFormat.segmentTableIdsUnchecked(span, pos, length);
                        if (first && (l.slot() >= ids.length || !ids[l.slot()].equals(probed))) {
                            damage = true;
                            break;
                        }
                        for (int k = 0; k < ids.length; k++) {
                            if (found.wants(ids[k])) trusted.put(ids[k], new ChunkLocation(pack, base + pos, length, k));
                        }
                        spots.add(new int[]{pos, length, 1});
                        pos += length;
                    } else {
                        damage = true; // not a record or segment: damage, or the end of what a writer has appended
                        break;
                    }
                }
            } catch (CaskException.Corrupt e) {
                damage = true; // a header that does not hold together
            }
            Map<ChunkId, ChunkLocation> there = whereGetReads(candidates, probed, l);
            there.putAll(trusted);
            // pass 2: check and hand over
            int done = 0;
            try {
                for (int[] spot : spots) {
                    if (spot[2] == 0) {
                        PackFormat.Record r = PackFormat.decodeRecord(what, span, spot[0], spot[1]);
                        items++;
                        chunks++;
                        ChunkLocation at = new ChunkLocation(pack, base + spot[0], spot[1]);
                        if (found.wants(r.id()) && at.equals(there.get(r.id()))) record(r);
                    } else {
                        PackFormat.Segment seg = PackFormat.decodeSegment(what, span, spot[0], spot[1]);
                        items++;
                        chunks += seg.count();
                        segment(seg, base + spot[0], spot[1], there);
                    }
                    done = spot[0] + spot[1];
                }
            } catch (CaskException.Corrupt e) {
                stopped = true; // damage, or a record another process is appending right now
            }
            consumed += done;
            if (damage) stopped = true;
        }

        /** Of {@code candidates} (wanted chunks and where they were found), those a get would read there. */
        private Map<ChunkId, ChunkLocation> whereGetReads(Map<ChunkId, ChunkLocation> candidates, ChunkId probed, ChunkLocation l) {
            Map<ChunkId, ChunkLocation> there = new HashMap<>();
            List<ChunkId> ask = new ArrayList<>();
            for (var c : candidates.entrySet()) {
                ChunkId id = c.getKey();
                if (id.equals(probed)) {
                    there.put(id, l); // the caller's answer, from the cache or the index
                    continue;
                }
                ChunkLocation cached = store.cachedLocation(id);
                if (cached != null) there.put(id, cached);
                else if (store.pendingAt(id) == null) ask.add(id); // a pending copy: get reads that one
            }
            if (!ask.isEmpty()) {
                Map<ChunkId, ChunkLocation> indexed = index.locateAll(ask);
                if (live) store.remember(indexed);
                there.putAll(indexed);
            }
            return there;
        }

        private void record(PackFormat.Record r) {
            int plainLength = r.plainLength();
            if (r.codec() == PackFormat.CODEC_NONE) {
                if (r.payloadLength() != plainLength) throw new CaskException.Corrupt(what.get() + ": stored length != plain length");
                found.give(r.id(), r.payload(), r.payloadOffset(), plainLength);
            } else {
                PackReader.decompress(what, r, scratch(plainLength));
                found.give(r.id(), scratch, 0, plainLength);
            }
            handed++;
        }

        private void segment(PackFormat.Segment seg, long offset, int length, Map<ChunkId, ChunkLocation> there) {
            boolean any = false;
            for (int k = 0; k < seg.count(); k++) {
                if (found.wants(seg.ids()[k]) && new ChunkLocation(pack, offset, length, k).equals(there.get(seg.ids()[k]))) any = true;
            }
            if (!any) return;
            PackReader.segmentPlainInto(what, seg, scratch(seg.plainLength()));
            store.countSegmentRead();
            boolean others = false;
            for (int slot = 0, from = 0; slot < seg.count(); from += seg.plainLengths()[slot], slot++) {
                ChunkId sid = seg.ids()[slot];
                if (!found.wants(sid)) {
                    others = true;
                    continue;
                }
                int len = seg.plainLengths()[slot];
                if (!PackFormat.plainCrcMatches(seg, scratch, from, slot)) continue; // its own read reports it
                if (new ChunkLocation(pack, offset, length, slot).equals(there.get(sid))) {
                    found.give(sid, scratch, from, len);
                    handed++;
                }
            }
            ChunkLocation at = new ChunkLocation(pack, offset, length, 0);
            if (live && (others || store.decodedBefore(at))) store.keepSegment(at, seg, scratch);
        }

        private byte[] scratch(int length) {
            if (scratch == null || scratch.length < length) {
                ByteArrays.give(scratch);
                scratch = ByteArrays.take(Math.max(length, 64 << 10));
            }
            return scratch;
        }

        void done() {
            ByteArrays.give(scratch);
        }
    }
}
