package dev.cask.store.s3;

import dev.cask.store.ScanSink;
import dev.cask.catalog.Catalog;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.image.GarbageCollector;
import dev.cask.image.StoreCapabilities;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import dev.cask.store.local.PackFormat;
import dev.cask.store.local.PackReader;
import dev.cask.store.local.PackScan;
import dev.cask.store.postgres.PostgresChunkIndex;
import dev.cask.volume.JournalStore;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;

/**
 * The {@link StoreCapabilities} a store on S3 offers today. What the local store's
 * {@code LocalStoreTools} is to its packs and index, with the same meanings.
 *
 * <p><b>Counts and sizes</b> ({@code cask stats}, {@code du}, the bytes {@code prune} frees) are
 * answered from the index in PostgreSQL without reading an object: stored bytes are the sealed
 * pack objects' lengths (an object is written whole and never again, so its row's length is the
 * object's), a pack's header is the fixed overhead, and a chunk in a segment costs the segment's
 * length shared by the entries pointing into it. Packs not sealed (an upload under way, or one a
 * crash left) are not counted: no entry names them.
 *
 * <p><b>Checks</b> ({@code cask check}) read the pack objects: a scan GETs each sealed pack whole
 * and runs the local store's {@link PackScan} over its bytes (the format is the same; nothing is
 * ever punched out of an object); the index pass walks the entries by pack and offset and reads
 * each entry's record or segment out of its pack, which it GETs once and keeps (only the last pack,
 * at most the pack limit, 32 MiB by default) while that pack's entries are checked; the buffer
 * starts out as the pack the scan read last, so every byte a check looks at was read by this check.
 * A check downloads every pack about twice, with one GET per pack and pass. Damage marks are the index's
 * {@code damaged} rows, the same marks reads make (the next put of a marked chunk stores it again).
 * Objects no row names (a crash between an upload and its commit) are not looked for: {@link
 * S3Collection} deletes them.
 *
 * <p><b>Repair</b> ({@code check --repair}, {@link #rebuildIndex}) does not drop the index as the
 * local store's does (other nodes go on writing, and their entries are the index): it makes the
 * index agree with the pack objects, holding the gc lock so no collection moves or deletes packs
 * meanwhile. Pass 1 checks every entry against its pack's bytes (as {@code check} does) and
 * collects those whose copy is damaged or whose object is gone; pass 2 scans every sealed pack
 * object, adds an entry for each whole chunk the index lacks (stamped as a put's, an entry a node
 * added meanwhile kept) and remembers a good copy of each chunk of pass 1; pass 3 moves those
 * entries to their good copies by compare-and-swap, and drops the entries of chunks no pack holds
 * whole (the next put of their bytes stores them again; {@code check} names the versions that
 * need them). An I/O error stops it, having changed only what it reported.
 *
 * <p><b>Garbage collection</b> ({@code cask gc}, a server's background gc) marks as on a local
 * store and deletes through {@link S3Collection}: index entries, then pack objects (rewriting
 * those partly garbage first).
 *
 * <p>Thread-safe as the index is; the index pass's one-pack buffer is guarded by {@code this}.
 */
public final class S3StoreTools implements StoreCapabilities.Counts, StoreCapabilities.StoredSizes, StoreCapabilities.Checks,
        StoreCapabilities.Collecting, StoreCapabilities.Repairs {
    private final S3ChunkStore store;
    private final PostgresChunkIndex index;
    private final S3Objects objects;
    private final S3StoreUrl url;
    /** The pack the index pass read last, its bytes, or the fault reading it threw. */
    private int lastPack = -1;
    private byte[] lastBytes;
    private CaskException lastFault;

    public S3StoreTools(S3ChunkStore store) {
        this.store = store;
        this.index = store.index();
        this.objects = store.objects();
        this.url = store.url();
    }

    @Override
    public long storedBytes() {
        return index.sealedPacks().bytes();
    }

    @Override
    public long chunkCount() {
        return index.count();
    }

    @Override
    public int packCount() {
        return index.sealedPacks().packs();
    }

    @Override
    public long fixedOverheadBytes() {
        return (long) PackFormat.PACK_HEADER * packCount();
    }

    @Override
    public Map<ChunkId, Long> storedBytes(Collection<ChunkId> ids) {
        return index.storedBytes(new ArrayList<>(ids));
    }

    /** A collector deleting through {@link S3Collection}; its dry run reads the index as {@code check} does. */
    @Override
    public GarbageCollector collector(Catalog catalog, JournalStore journals) {
        return new GarbageCollector(catalog, store, new S3Collection(store), this, journals);
    }

    // ---------------------------------------------------------------- checks

    @Override
    public List<Integer> packIds() {
        return index.packs().stream().filter(PostgresChunkIndex.Pack::sealed).map(PostgresChunkIndex.Pack::id).toList();
    }

    @Override
    public void scanPack(int id, ScanSink sink, Progress progress) {
        byte[] all;
        synchronized (this) {
            read(id);
            all = lastBytes;
            if (lastFault != null) {
                sink.packProblem(ScanSink.PackProblem.UNREADABLE, "pack " + id + ": cannot read " + url.objectUrl(url.packKey(id)) + ": " + lastFault.getMessage());
                return;
            }
        }
        PackScan.scan(all, id, sink, progress);
    }

    /** GETs pack {@code id} whole into the one-pack buffer (its bytes, or the fault). */
    private void read(int id) {
        lastPack = id;
        lastBytes = null;
        lastFault = null;
        try {
            lastBytes = objects.get(url.packKey(id), () -> "pack " + id);
        } catch (CaskException e) {
            lastFault = e;
        }
    }

    @Override
    public void forEachIndexEntry(BiConsumer<ChunkId, ChunkLocation> sink) {
        index.forEachEntry(sink);
    }

    @Override
    public ChunkLocation locate(ChunkId id) {
        return index.find(id);
    }

    @Override
    public synchronized CaskException entryFault(ChunkId id, ChunkLocation loc, boolean deep) {
        try {
            PackReader.checkEntry(loc);
            if (loc.pack() != lastPack) read(loc.pack());
            String what = "chunk " + id.shortHex() + " (" + loc + ")";
            if (lastFault != null) return lastFault instanceof CaskException.Corrupt
                    ? new CaskException.Corrupt(what + ": " + lastFault.getMessage()) : new CaskException.Io(what + ": " + lastFault.getMessage(), lastFault);
            if (loc.offset() + loc.length() > lastBytes.length) {
                return new CaskException.Corrupt(what + ": object " + url.objectUrl(url.packKey(loc.pack())) + " ends at offset " + lastBytes.length);
            }
            byte[] rec = java.util.Arrays.copyOfRange(lastBytes, (int) loc.offset(), (int) (loc.offset() + loc.length()));
            return PackReader.entryFault(id, loc, rec, deep);
        } catch (CaskException e) {
            return e;
        }
    }

    // ---------------------------------------------------------------- repair

    @Override
    public long rebuildIndex(java.util.function.Consumer<String> problems, Progress progress) {
        dev.cask.common.Pacer pacer = dev.cask.common.Pacer.unpaced();
        try (PostgresChunkIndex.GcLock lock = index.lockGc(problems, () -> pacer.waitFor(100))) {
            // pass 1: entries whose copy is damaged or gone
            Map<ChunkId, ChunkLocation> bad = new java.util.HashMap<>();
            index.forEachEntry((id, loc) -> {
                CaskException fault = entryFault(id, loc, false);
                if (fault instanceof CaskException.Corrupt) bad.put(id, loc);
                else if (fault != null) throw fault;
            });
            // pass 2: every whole chunk of every pack: entries the index lacks, and good copies of the bad ones
            Map<ChunkId, ChunkLocation> good = new java.util.HashMap<>();
            List<Map.Entry<ChunkId, ChunkLocation>> found = new ArrayList<>();
            long added = 0;
            List<Integer> packs = packIds();
            progress.startItems("repair: scan packs", packs.size());
            for (int id : packs) {
                scanPack(id, new ScanSink() {
                    @Override
                    public void chunk(ChunkId cid, ChunkLocation location, java.util.function.Supplier<byte[]> plain) {
                        found.add(Map.entry(cid, location));
                        ChunkLocation wrong = bad.get(cid);
                        if (wrong != null && !wrong.equals(location)) good.putIfAbsent(cid, location);
                    }

                    @Override
                    public void problem(String line) {
                        problems.accept(line);
                    }
                }, Progress.NONE);
                if (found.size() >= 10_000) {
                    added += index.addFound(found);
                    found.clear();
                }
                progress.advance(1);
            }
            added += index.addFound(found);
            progress.done();
            if (added > 0) problems.accept(added + " chunks found in packs had no index entry: added");
            // pass 3: move bad entries to good copies, drop those no pack holds whole
            Map<ChunkId, ChunkLocation[]> moves = new java.util.HashMap<>();
            for (var e : bad.entrySet()) {
                ChunkLocation to = good.get(e.getKey());
                if (to != null) moves.put(e.getKey(), new ChunkLocation[]{e.getValue(), to});
            }
            java.util.Set<ChunkId> moved = index.relocate(moves);
            for (ChunkId id : moved) problems.accept("chunk " + id.shortHex() + " (" + bad.get(id) + "): moved to the good copy in " + good.get(id));
            for (var e : bad.entrySet()) {
                if (moves.containsKey(e.getKey())) continue;
                if (index.dropEntryAt(e.getKey(), e.getValue())) {
                    problems.accept("chunk " + e.getKey().shortHex() + " (" + e.getValue() + "): no pack holds it whole; its index entry is dropped"
                            + " (the next import or checkpoint of its bytes stores it again)");
                }
            }
        }
        synchronized (this) { // the next check reads the packs as they are now
            lastPack = -1;
            lastBytes = null;
            lastFault = null;
        }
        return index.count();
    }

    /** Nothing: pack objects are written whole, never appended to, so an open never cuts a torn tail. */
    @Override
    public List<String> cutOnOpen() {
        return List.of();
    }

    @Override
    public void checked(ChunkId id, ChunkLocation loc, CaskException fault) {
        if (fault instanceof CaskException.Corrupt) index.markDamaged(List.of(Map.entry(id, loc)));
        else if (fault == null) index.clearDamaged(id, loc);
    }

    @Override
    public List<Map.Entry<ChunkId, ChunkLocation>> damageMarks() {
        return index.damageMarks();
    }
}
