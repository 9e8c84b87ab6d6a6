package dev.cask.store.s3;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.ChunkLocation;
import dev.cask.store.IndexMismatch;
import dev.cask.store.local.PackFormat;
import dev.cask.store.local.PackReader;
import dev.cask.store.postgres.PostgresChunkIndex;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;

/**
 * Reading chunks out of pack objects for {@link S3ChunkStore}: where a chunk is (the store's
 * pending chunks, a bounded cache of index answers, the index), its record or segment (from the
 * pack still in memory, else one ranged GET, {@code Range: bytes=a-b}), and the checks a local
 * read makes (magic, CRC32C, the id in the record or at the segment's slot, the length after
 * decompression, a segment chunk's own CRC32C). Decompressed chunks (a segment's neighbours too)
 * go into a bounded in-memory cache: a chunk never changes, so a cached copy is as good as the
 * verified read that made it. {@link #getAll} looks chunks up in batches and reads neighbouring
 * records of a pack with one GET per run (gaps up to {@value #READ_GAP} bytes, at most
 * {@value #READ_SPAN} bytes a GET), decoding each record or segment once.
 *
 * <p><b>Damage.</b> A copy that fails its checks is read again where the index points now (another
 * node may have healed the chunk since this one cached its location); else it is marked in the
 * index's {@code damaged} table (a segment: every chunk its table names, read without checks) and
 * the read throws {@link CaskException.Corrupt} naming the chunk. The writer side heals it.
 *
 * <p>Thread-safe: the caches are concurrent, and the store's maps it reads are too.
 */
final class PackObjectReader {
    /** getAll reads two records of a pack with one GET when at most this many bytes lie between them. */
    static final int READ_GAP = 64 << 10;
    /** ... and when the GET stays within this many bytes. */
    static final int READ_SPAN = 8 << 20;

    private final S3StoreUrl url;
    private final S3Objects objects;
    private final PostgresChunkIndex index;
    /** The store's chunks not yet indexed (read only here). */
    private final Map<ChunkId, ChunkLocation> pending;
    /** The store's packs whose bytes are still in memory (read only here). */
    private final Map<Integer, OpenPack> inMemory;
    /** Damage marks this process wrote (a VM repeating a failing read costs no index write). */
    private final Set<String> marked = ConcurrentHashMap.newKeySet();
    private final Cache<ChunkId, ChunkLocation> located;
    private final Cache<ChunkId, byte[]> plain;

    PackObjectReader(S3StoreUrl url, S3Objects objects, PostgresChunkIndex index, Map<ChunkId, ChunkLocation> pending,
                     Map<Integer, OpenPack> inMemory, long cacheBytes) {
        this.url = url;
        this.objects = objects;
        this.index = index;
        this.pending = pending;
        this.inMemory = inMemory;
        long heap = Runtime.getRuntime().maxMemory();
        this.located = Caffeine.newBuilder().executor(Runnable::run).maximumSize(Math.max(1 << 16, heap / 16 / 160)).build();
        this.plain = cacheBytes <= 0 ? null : Caffeine.newBuilder().executor(Runnable::run)
                .maximumWeight(cacheBytes).<ChunkId, byte[]>weigher((k, v) -> v.length + 96).build();
    }

    /** A pack's chunks were indexed: {@code here} are those whose entry points into it now (the others' entries are elsewhere). */
    void committed(List<Map.Entry<ChunkId, ChunkLocation>> chunks, Set<ChunkId> here) {
        for (var e : chunks) {
            located.invalidate(e.getKey());
            if (here.contains(e.getKey())) located.put(e.getKey(), e.getValue());
        }
    }

    byte[] get(ChunkId id) {
        if (plain != null) {
            byte[] hit = plain.getIfPresent(id);
            if (hit != null) return hit.clone();
        }
        ChunkLocation loc = locate(id);
        if (loc == null) throw new CaskException.NotFound("chunk " + id.hex() + ": not in store " + url);
        byte[] data;
        try {
            data = read(id, loc, true);
        } catch (CaskException.Corrupt e) {
            data = readElsewhere(id, loc, e);
        }
        boolean decompressed = loc.inSegment() || loc.length() < PackFormat.RECORD_HEADER + data.length;
        if (plain != null && decompressed) plain.put(id, data.clone());
        return data;
    }

    /** Where the chunk is: pending, cached, or in the index; null when nowhere. */
    ChunkLocation locate(ChunkId id) {
        ChunkLocation loc = pending.get(id);
        if (loc != null) return loc;
        loc = located.getIfPresent(id);
        if (loc != null) return loc;
        loc = index.find(id);
        if (loc != null) located.put(id, loc);
        return loc;
    }

    /**
     * The copy at {@code loc} failed its checks (or its object is gone): reads the copy the index
     * (or {@code pending}) points at now when that is another one (healed by another node, or
     * moved by a collection's compaction, since this one cached the location). When that copy
     * fails too, the index is asked again: a compaction may have moved the chunk once more between
     * the lookup and the read, and a new answer is followed, at most {@link #MOVES_FOLLOWED} times.
     * Where the answer stays the same, that copy is marked damaged and its failure thrown.
     */
    private byte[] readElsewhere(ChunkId id, ChunkLocation loc, CaskException.Corrupt failure) {
        located.invalidate(id);
        ChunkLocation tried = loc;
        CaskException.Corrupt failed = failure;
        for (int moves = 0; ; moves++) {
            ChunkLocation now = pending.get(id);
            if (now == null) now = index.find(id);
            if (now == null || now.equals(tried) || moves == MOVES_FOLLOWED) {
                if (!tried.equals(pending.get(id))) markCorrupt(id, tried, failed);
                throw failed;
            }
            beforeReadElsewhere.run();
            try {
                byte[] data = read(id, now, true);
                located.put(id, now);
                return data;
            } catch (CaskException.Corrupt e) {
                tried = now;
                failed = e;
            }
        }
    }

    /** Most moves of one chunk {@link #readElsewhere} follows: each is a whole compaction of its pack meanwhile. */
    static final int MOVES_FOLLOWED = 16;

    /** Test hook: runs in {@link #readElsewhere} between the index's answer and the read of the copy it names. */
    volatile Runnable beforeReadElsewhere = () -> {};

    /** Marks the copy of {@code id} at {@code loc} damaged; for a segment, every chunk its table names (read without checks). */
    private void markCorrupt(ChunkId id, ChunkLocation loc, CaskException.Corrupt failure) {
        List<Map.Entry<ChunkId, ChunkLocation>> marks = new ArrayList<>();
        marks.add(Map.entry(id, loc));
        if (loc.inSegment()) {
            try {
                byte[] span = readBytes(loc, () -> "chunk " + id.shortHex() + " (" + loc + ")");
                ChunkId[] named = PackFormat.segmentTableIdsUnchecked(span, 0, span.length);
                for (int k = 0; k < named.length; k++) {
                    if (k != loc.slot()) marks.add(Map.entry(named[k], new ChunkLocation(loc.pack(), loc.offset(), loc.length(), k)));
                }
            } catch (CaskException e) {
                failure.addSuppressed(e);
            }
        }
        marks.removeIf(m -> !marked.add(m.getKey().hex() + " " + m.getValue()));
        if (marks.isEmpty()) return;
        try {
            index.markDamaged(marks);
        } catch (CaskException e) {
            for (var m : marks) marked.remove(m.getKey().hex() + " " + m.getValue());
            failure.addSuppressed(e);
        }
    }

    /** The record or segment at {@code loc}: from the pack in memory, else one ranged GET of its object. */
    private byte[] readBytes(ChunkLocation loc, Supplier<String> what) {
        boolean bad = loc.inSegment()
                ? loc.slot() < 0 || loc.slot() >= PackFormat.MAX_SEGMENT_CHUNKS || loc.length() < PackFormat.segmentLength(2, 0) || loc.length() > PackFormat.MAX_SEGMENT
                : loc.length() < PackFormat.RECORD_HEADER || loc.length() > PackFormat.RECORD_HEADER + PackFormat.MAX_PAYLOAD;
        if (bad || loc.offset() < PackFormat.PACK_HEADER) {
            throw new IndexMismatch(what.get() + ": index entry has bad length " + loc.length() + " or slot " + loc.slot());
        }
        OpenPack p = inMemory.get(loc.pack());
        if (p != null) {
            byte[] b = p.read(loc.offset(), loc.length());
            if (b != null) return b;
        }
        return objects.getRange(url.packKey(loc.pack()), loc.offset(), loc.length(), what);
    }

    /** The verified plain bytes of {@code id} at {@code loc}; a segment's neighbours that pass their CRC go into the plain cache. */
    private byte[] read(ChunkId id, ChunkLocation loc, boolean keepNeighbours) {
        Supplier<String> what = () -> "chunk " + id.shortHex() + " (" + loc + ")";
        return decode(id, loc, readBytes(loc, what), 0, loc.length(), keepNeighbours, null);
    }

    /**
     * Decodes the record or segment {@code buf[off, off+len)} found at {@code loc} and returns the
     * plain bytes of {@code id}. For a segment, {@code alsoWanted} (slot -> id, may be null) are
     * other chunks of it a bulk read wants: their verified bytes are put in {@code out}.
     */
    private byte[] decode(ChunkId id, ChunkLocation loc, byte[] buf, int off, int len, boolean keepNeighbours, Map<ChunkId, byte[]> out) {
        Supplier<String> what = () -> "chunk " + id.shortHex() + " (" + loc + ")";
        if (loc.inSegment()) {
            PackFormat.Segment s = PackFormat.decodeSegment(what, buf, off, len);
            if (loc.slot() >= s.count()) throw new IndexMismatch(what.get() + ": segment has only " + s.count() + " chunks");
            if (!s.ids()[loc.slot()].equals(id)) throw new IndexMismatch(what.get() + ": segment slot holds chunk " + s.ids()[loc.slot()].shortHex() + " instead");
            byte[] all = PackReader.segmentPlain(what.get(), s);
            for (int k = 0, from = 0; k < s.count(); from += s.plainLengths()[k], k++) {
                if (k == loc.slot()) continue;
                boolean wanted = out != null && out.containsKey(s.ids()[k]) && out.get(s.ids()[k]) == null;
                if ((wanted || (keepNeighbours && plain != null)) && PackFormat.plainCrcMatches(s, all, from, k)) {
                    byte[] b = java.util.Arrays.copyOfRange(all, from, from + s.plainLengths()[k]);
                    if (wanted) out.put(s.ids()[k], b);
                    if (keepNeighbours && plain != null) plain.put(s.ids()[k], b);
                }
            }
            return PackFormat.chunkPlain(what.get(), s, all, loc.slot());
        }
        return PackReader.plainBytes(what.get(), PackReader.recordHolding(what, id, buf, off, len));
    }

    void prefetch(java.util.Collection<ChunkId> ids) {
        List<ChunkId> wanted = new ArrayList<>();
        for (ChunkId id : ids) {
            if (!pending.containsKey(id) && located.getIfPresent(id) == null && (plain == null || plain.getIfPresent(id) == null)) wanted.add(id);
        }
        if (wanted.size() >= 2) located.putAll(index.locateAll(wanted));
    }

    // ---------------------------------------------------------------- bulk reads

    /**
     * Looks the chunks up together (pending, cache, then one index query per 2,048), reads each record
     * or segment once, neighbouring ones of a pack with one GET, and answers every index of
     * {@code ids}. A {@link ChunkStore.Reading#LIVE} read keeps segment neighbours in the plain cache. A record
     * that fails its checks is read again through {@link #get} (another node may have healed it;
     * else it is marked and the error names the chunk).
     */
    void getAll(List<ChunkId> ids, ChunkStore.ChunkSink sink, ChunkStore.Reading reading) {
        boolean live = reading == ChunkStore.Reading.LIVE;
        Map<ChunkId, byte[]> got = new HashMap<>();
        Map<ChunkId, ChunkLocation> where = new HashMap<>();
        Set<ChunkId> unknown = new java.util.LinkedHashSet<>();
        for (ChunkId id : ids) {
            if (got.containsKey(id) || where.containsKey(id)) continue;
            byte[] hit = plain == null ? null : plain.policy().getIfPresentQuietly(id);
            if (hit != null) {
                got.put(id, hit);
                continue;
            }
            ChunkLocation loc = pending.get(id);
            if (loc == null) loc = located.policy().getIfPresentQuietly(id);
            if (loc != null) where.put(id, loc);
            else unknown.add(id);
        }
        if (!unknown.isEmpty()) {
            Map<ChunkId, ChunkLocation> found = index.locateAll(new ArrayList<>(unknown));
            for (ChunkId id : unknown) {
                ChunkLocation loc = found.get(id);
                if (loc == null) loc = pending.get(id); // committed and dropped from pending meanwhile is in found
                if (loc == null) throw new CaskException.NotFound("chunk " + id.hex() + ": not in store " + url);
                where.put(id, loc);
                if (live) located.put(id, loc);
            }
        }
        readLocated(where, got, live);
        for (int i = 0; i < ids.size(); i++) {
            byte[] b = got.get(ids.get(i));
            sink.chunk(i, b, 0, b.length);
        }
    }

    /** Reads every chunk of {@code where} into {@code got}: one decode per record or segment, one GET per run of neighbours. */
    private void readLocated(Map<ChunkId, ChunkLocation> where, Map<ChunkId, byte[]> got, boolean live) {
        // chunks by the record or segment that holds them
        Map<Long, List<ChunkId>> byPiece = new HashMap<>();
        Map<Long, ChunkLocation> pieces = new java.util.TreeMap<>(); // in (pack, offset) order: a pack is under 4 GiB
        for (var e : where.entrySet()) {
            ChunkLocation loc = e.getValue();
            long key = ((long) loc.pack() << 32) | loc.offset();
            byPiece.computeIfAbsent(key, k -> new ArrayList<>()).add(e.getKey());
            pieces.putIfAbsent(key, loc);
        }
        List<ChunkLocation> run = new ArrayList<>();
        List<Long> runKeys = new ArrayList<>();
        for (var e : pieces.entrySet()) {
            ChunkLocation loc = e.getValue();
            if (!run.isEmpty()) {
                ChunkLocation first = run.getFirst(), last = run.getLast();
                long end = last.offset() + last.length();
                boolean joins = loc.pack() == first.pack() && !inMemory.containsKey(loc.pack()) && loc.offset() >= end
                        && loc.offset() - end <= READ_GAP && loc.offset() + loc.length() - first.offset() <= READ_SPAN;
                if (!joins) {
                    readRun(run, runKeys, byPiece, where, got, live);
                    run.clear();
                    runKeys.clear();
                }
            }
            run.add(loc);
            runKeys.add(e.getKey());
        }
        if (!run.isEmpty()) readRun(run, runKeys, byPiece, where, got, live);
    }

    private void readRun(List<ChunkLocation> run, List<Long> keys, Map<Long, List<ChunkId>> byPiece,
                         Map<ChunkId, ChunkLocation> where, Map<ChunkId, byte[]> got, boolean live) {
        ChunkLocation first = run.getFirst(), last = run.getLast();
        byte[] span = null;
        long base = first.offset();
        if (run.size() > 1) {
            ChunkId anyId = byPiece.get(keys.getFirst()).getFirst();
            try {
                span = objects.getRange(url.packKey(first.pack()), base, (int) (last.offset() + last.length() - base),
                        () -> "chunk " + anyId.shortHex() + " (" + first + ")");
            } catch (CaskException.Corrupt e) {
                // the object is gone or short (compaction deleted it after this node cached where its
                // chunks were, or damage): each chunk alone, through the single read that asks the index again
                for (Long k : keys) for (ChunkId w : byPiece.get(k)) got.put(w, get(w));
                return;
            }
        }
        for (int i = 0; i < run.size(); i++) {
            ChunkLocation loc = run.get(i);
            List<ChunkId> wanted = byPiece.get(keys.get(i));
            ChunkId id = wanted.getFirst();
            Map<ChunkId, byte[]> out = new HashMap<>();
            for (ChunkId w : wanted) if (!w.equals(id)) out.put(w, null);
            try {
                byte[] buf = span != null ? span : readBytes(loc, () -> "chunk " + id.shortHex() + " (" + loc + ")");
                int off = span != null ? (int) (loc.offset() - base) : 0;
                got.put(id, decode(id, loc, buf, off, loc.length(), live, out));
                for (ChunkId w : wanted) {
                    if (w.equals(id)) continue;
                    byte[] b = out.get(w);
                    if (b == null) b = get(w); // its slot failed its own CRC, or the index moved it: the single read decides
                    got.put(w, b);
                }
            } catch (CaskException.Corrupt e) {
                for (ChunkId w : wanted) got.put(w, get(w)); // throws Corrupt naming the chunk, or reads a healed copy
            }
        }
    }
}
