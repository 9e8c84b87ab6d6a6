package dev.cask.image;

import dev.cask.store.ScanSink;
import dev.cask.catalog.Catalog;
import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.image.CheckReport.Finding;
import dev.cask.image.CheckReport.Kind;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.ChunkLocation;
import dev.cask.store.IndexMismatch;
import dev.cask.tree.Layout;
import dev.cask.tree.PointerCache;
import dev.cask.tree.Root;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * {@code cask check}: four passes, reporting single lines.
 * <ol>
 *   <li>Packs: every record's and segment's magic, lengths and CRC32C (the CRC covers the
 *       compressed bytes, so this finds bit rot without decompressing); with {@code deep}, also
 *       decompress (a segment once for all its chunks), check each segment chunk's own CRC32C
 *       and rehash every chunk against its id. {@code records} counts the chunks found.
 *   <li>Index: every entry points at a record holding that chunk.
 *   <li>Versions: every version of every image decodes, and every chunk its trees reference is
 *       in the index and not found bad by the passes above. A problem names the image, the
 *       version and the byte offset of the disk it affects.
 *   <li>Reclaimable bytes: pack bytes no index entry covers (copies a racing process stored
 *       twice, records of a killed import that never synced, torn tails, damaged stretches) and
 *       records and segments whose chunks no version references (a killed or interrupted
 *       import's synced chunks; chunks of an import or checkpoint still running). Garbage
 *       collection frees them.
 * </ol>
 *
 * <p><b>What is a problem.</b> Only damage that something needs: a chunk a version references
 * (missing, corrupt), an index entry that points at bad bytes (a later import would take the
 * chunk as stored and reference it; {@code --repair} drops the entry), a pack header in front of
 * records. Damage nothing refers to (a torn tail, a bad record no index entry points at) is a
 * note with its reclaimable bytes, not a problem: any damage the index or a version needs is
 * found again by the index pass, which reads every entry's record. (Journals hold their blocks'
 * data themselves, not chunk ids: they need nothing from the packs.) Exit status 1 means
 * problems, never notes.
 *
 * <p><b>Damage marks.</b> The index pass records every entry it finds bad as damaged in the
 * store's index ({@link StoreCapabilities.Checks#checked}), so that the next import or checkpoint of the
 * same bytes writes a new copy and moves the entry to it (healing, see the store's
 * {@code Healing}); a deep scan's bad copy at an indexed location is marked too. A mark on an
 * entry that now reads good (rehashed, so a segment's chunk is checked against its own CRC too),
 * or on a location its entry no longer has, is cleared. After a heal the bad record is pointed
 * at by nothing: a note with reclaimable bytes.
 *
 * <p><b>Findings.</b> Every problem and note is a {@link Finding}: a {@link Kind} and the pack,
 * offset, chunk, image, version and byte offset it is about (null where not applicable), plus
 * the human line, which the text output prints as it is. Kinds are decided from the failure's
 * type ({@link IndexMismatch}, {@link ScanSink.Damage.Kind}), never from its words.
 *
 * <p>Memory: the referenced chunk ids are kept as sorted 64-bit prefixes (8 bytes each; a
 * collision could only hide a few reclaimable bytes), indexed segments as one map entry each.
 * Subtrees shared by several versions (clones, unchanged history) are checked once when good;
 * a bad subtree is walked again for each version so each affected version is named.
 */
final class Checker {
    /** The store's packs, index and damage marks. */
    private final StoreCapabilities.Checks store;
    /** The store as the image layer reads it (pointer chunks, contains). */
    private final ChunkStore chunks;
    private final Catalog catalog;
    private final PointerCache cache;
    private final List<Finding> problems = new ArrayList<>();
    private final List<Finding> notes = new ArrayList<>();
    private final List<ScanSink.Damage> damages = new ArrayList<>();
    /** Damages an index entry points into: problems, not notes. */
    private final Set<ScanSink.Damage> needed = new HashSet<>();
    /** Chunks a deep scan found bad: the index decides whether they are a problem or a note. */
    private final java.util.Map<ChunkId, List<DeepBad>> deepBad = new java.util.HashMap<>();

    /** A copy of a chunk a deep scan found bad, and why. */
    private record DeepBad(ChunkLocation at, CaskException.Corrupt fault) {}
    /** 64-bit prefixes of the chunk ids versions reference; sorted after the versions pass. */
    private long[] referenced = new long[1024];
    private int referencedCount;
    private final Set<ChunkId> bad = new HashSet<>();
    private final Set<ChunkId> goodSubtrees = new HashSet<>();
    private long records;
    private long entries;
    private long chunksChecked;

    Checker(ChunkStore chunks, StoreCapabilities.Checks store, Catalog catalog, PointerCache cache) {
        this.chunks = chunks;
        this.store = store;
        this.catalog = catalog;
        this.cache = cache;
    }

    CheckReport check(boolean deep, Progress progress) {
        List<Integer> packs = store.packIds();
        progress.start(deep ? "check packs (deep)" : "check packs", store.storedBytes());
        for (int id : packs) {
            store.scanPack(id, new ScanSink() {
                @Override
                public void chunk(ChunkId cid, ChunkLocation loc, java.util.function.Supplier<byte[]> plainBytes) {
                    records++;
                    if (deep) {
                        try {
                            byte[] plain = plainBytes.get();
                            ChunkId actual = ChunkId.of(plain);
                            if (!actual.equals(cid)) {
                                deepBad.computeIfAbsent(cid, k -> new ArrayList<>()).add(new DeepBad(loc, new CaskException.Corrupt(
                                        "chunk " + cid.shortHex() + " (" + loc + "): bytes hash to " + actual.shortHex())));
                            }
                        } catch (CaskException.Corrupt e) {
                            deepBad.computeIfAbsent(cid, k -> new ArrayList<>()).add(new DeepBad(loc, e));
                        }
                    }
                }

                @Override
                public void problem(String line) {
                    problems.add(Finding.inPack(Kind.BAD_RECORD, id, null, null, line));
                }

                @Override
                public void packProblem(ScanSink.PackProblem kind, String line) {
                    problems.add(Finding.inPack(kind == ScanSink.PackProblem.UNREADABLE ? Kind.UNREADABLE_PACK : Kind.BAD_PACK_HEADER,
                            id, kind == ScanSink.PackProblem.UNREADABLE ? null : 0L, null, line));
                }

                @Override
                public void damage(ScanSink.Damage d) {
                    if (d.kind() == ScanSink.Damage.Kind.HEADER && d.length() > ChunkLocation.PACK_HEADER) {
                        problems.add(finding(d)); // records behind a bad header: a rebuild of the index would lose them
                    } else {
                        damages.add(d); // a problem or a note once the index pass knows whether an entry points into it
                    }
                }
            }, progress);
        }
        progress.done();
        // damage marks made before this check (by reads, by earlier checks): id -> marked copies
        java.util.Map<ChunkId, List<ChunkLocation>> marks = new java.util.HashMap<>();
        for (var m : store.damageMarks()) marks.computeIfAbsent(m.getKey(), k -> new ArrayList<>()).add(m.getValue());
        for (var e : deepBad.entrySet()) {
            ChunkLocation indexed = store.locate(e.getKey());
            for (DeepBad at : e.getValue()) {
                if (at.at().equals(indexed)) {
                    problems.add(Finding.inPack(Kind.CORRUPT_CHUNK, at.at().pack(), at.at().offset(), e.getKey(), at.fault().getMessage()));
                    bad.add(e.getKey());
                    store.checked(e.getKey(), at.at(), at.fault());
                } else {
                    notes.add(Finding.inPack(Kind.CORRUPT_CHUNK, at.at().pack(), at.at().offset(), e.getKey(),
                            at.fault().getMessage() + " (a copy the index does not point at: reclaimable)"));
                }
            }
        }

        long total = store.chunkCount();
        progress.startItems("check index", total);
        store.forEachIndexEntry((cid, loc) -> {
            entries++;
            boolean known = bad.contains(cid); // the deep scan reported (and marked) this very copy
            CaskException fault = store.entryFault(cid, loc, false);
            List<ChunkLocation> marked = marks.remove(cid);
            boolean markedHere = marked != null && marked.stream().anyMatch(m -> sameCopy(m, loc));
            if (fault == null && markedHere && !known) {
                fault = store.entryFault(cid, loc, true); // read it whole before trusting it again
            }
            if (fault != null) {
                problems.add(Finding.inPack(fault instanceof IndexMismatch ? Kind.INDEX_MISMATCH : Kind.CORRUPT_CHUNK,
                        loc.pack(), loc.offset(), cid, "index entry " + fault.getMessage()));
                bad.add(cid);
                if (!markedHere) store.checked(cid, loc, fault);
            }
            if (marked != null) {
                for (ChunkLocation m : marked) {
                    if (!sameCopy(m, loc) || (fault == null && !known)) store.checked(cid, m, null); // stale, or good now
                }
            }
            if (loc.inSegment()) segments.putIfAbsent(key(loc), loc.length());
            else covered += loc.length();
            for (ScanSink.Damage d : damages) { // none, or a few: a scan of them per entry is nothing
                if (d.pack() == loc.pack() && loc.offset() < d.offset() + d.length() && d.offset() < loc.offset() + loc.length()) needed.add(d);
            }
            progress.advance(1);
        });
        progress.done();
        for (var m : marks.entrySet()) for (ChunkLocation at : m.getValue()) store.checked(m.getKey(), at, null); // no entry any more
        for (ScanSink.Damage d : damages) {
            if (needed.contains(d)) problems.add(finding(d));
            else notes.add(new Finding(kindOf(d), d.pack(), d.offset(), null, null, null, null,
                    d.message() + " (nothing refers to it: " + d.length() + " bytes reclaimable)"));
        }

        List<Version> versions = catalog.allVersions();
        progress.startItems("check versions", versions.size());
        for (Version v : versions) {
            checkVersion(v);
            progress.advance(1);
        }
        progress.done();
        long reclaimable = reclaimable(packs.size());
        return new CheckReport(packs.size(), records, entries, versions.size(), chunksChecked, -1, List.copyOf(problems),
                List.copyOf(notes), reclaimable);
    }

    private static boolean sameCopy(ChunkLocation a, ChunkLocation b) {
        return a.pack() == b.pack() && a.offset() == b.offset() && a.slot() == b.slot();
    }

    private static Kind kindOf(ScanSink.Damage d) {
        return switch (d.kind()) {
            case HEADER -> Kind.BAD_PACK_HEADER;
            case RECORD -> Kind.BAD_RECORD;
            case TAIL -> Kind.TORN_TAIL;
        };
    }

    private static Finding finding(ScanSink.Damage d) {
        return Finding.inPack(kindOf(d), d.pack(), d.offset(), null, d.message());
    }

    /** A finding about version {@code v} at byte {@code offset} of its disk, about chunk {@code id} (or null). */
    private Finding inVersion(Kind kind, Version v, Long offset, ChunkId id, String message) {
        ChunkLocation at = id == null || kind == Kind.MISSING_CHUNK ? null : store.locate(id);
        return new Finding(kind, at == null ? null : at.pack(), at == null ? null : at.offset(), id, v.image(), v.number(), offset, message);
    }

    /** Indexed segments: (pack, offset) -> length. */
    private final java.util.Map<Long, Integer> segments = new java.util.HashMap<>();
    /** Pack bytes the index's records cover (segments are added from {@link #segments}). */
    private long covered;

    private static long key(ChunkLocation loc) {
        return ((long) loc.pack() << 40) | loc.offset();
    }

    private void reference(ChunkId id) {
        if (referencedCount == referenced.length) referenced = java.util.Arrays.copyOf(referenced, referenced.length * 2);
        referenced[referencedCount++] = prefix(id);
    }

    private static long prefix(ChunkId id) {
        return java.nio.ByteBuffer.wrap(id.toBytes()).getLong();
    }

    private boolean isReferenced(ChunkId id) {
        return java.util.Arrays.binarySearch(referenced, 0, referencedCount, prefix(id)) >= 0;
    }

    /** Pass 4: bytes no index entry covers, plus records and segments no version needs. */
    private long reclaimable(int packs) {
        java.util.Arrays.sort(referenced, 0, referencedCount);
        for (int v : segments.values()) covered += v;
        long unindexed = Math.max(0, store.storedBytes() - (long) packs * ChunkLocation.PACK_HEADER - covered);
        long[] orphaned = {0};
        Set<Long> liveSegments = new HashSet<>();
        store.forEachIndexEntry((cid, loc) -> {
            boolean live = isReferenced(cid);
            if (loc.inSegment()) {
                if (live) liveSegments.add(key(loc));
            } else if (!live) {
                orphaned[0] += loc.length();
            }
        });
        for (var e : segments.entrySet()) if (!liveSegments.contains(e.getKey())) orphaned[0] += e.getValue();
        return unindexed + orphaned[0];
    }

    private void checkVersion(Version v) {
        String who = "image '" + v.image() + "' version " + v.number();
        Layout layout;
        try {
            layout = Layout.decode(v.content());
        } catch (CaskException e) {
            problems.add(inVersion(Kind.BAD_VERSION, v, null, null, who + ": " + e.getMessage()));
            return;
        }
        if (layout.size() != v.size()) problems.add(inVersion(Kind.BAD_VERSION, v, null, null, who + ": layout covers " + layout.size() + " bytes, version says " + v.size()));
        for (Layout.Extent e : layout.extents()) {
            Root r = e.root();
            if (!r.top().isZero()) subtree(v, who, e.offset(), r, r.top(), r.depth(), 0);
        }
    }

    /** Checks the subtree {@code id} at {@code level} whose first block is {@code first}; true when all of it is good. */
    private boolean subtree(Version v, String who, long base, Root r, ChunkId id, int level, long first) {
        long offset = base + first * r.blockSize();
        if (level == 0) {
            chunksChecked++;
            reference(id);
            if (bad.contains(id)) {
                problems.add(inVersion(Kind.CORRUPT_CHUNK, v, offset, id, who + ": offset " + offset + ": data chunk " + id.shortHex() + " is corrupt"));
                return false;
            }
            if (!chunks.contains(id)) {
                problems.add(inVersion(Kind.MISSING_CHUNK, v, offset, id, who + ": offset " + offset + ": data chunk " + id.shortHex() + " is missing"));
                return false;
            }
            return true;
        }
        if (goodSubtrees.contains(id)) return true;
        chunksChecked++;
        reference(id);
        byte[] p;
        try {
            p = dev.cask.tree.TreeReader.pointerChunk(chunks, cache, id);
        } catch (CaskException.NotFound e) {
            problems.add(inVersion(Kind.MISSING_CHUNK, v, offset, id, who + ": offset " + offset + ": pointer chunk " + id.shortHex() + " is missing (" + describeSpan(r, level) + " of the disk unreadable)"));
            return false;
        } catch (CaskException e) {
            problems.add(inVersion(e instanceof IndexMismatch ? Kind.INDEX_MISMATCH : Kind.CORRUPT_CHUNK, v, offset, id,
                    who + ": offset " + offset + " (" + describeSpan(r, level) + " of the disk unreadable): " + e.getMessage()));
            return false;
        }
        if (bad.contains(id)) {
            problems.add(inVersion(Kind.CORRUPT_CHUNK, v, offset, id, who + ": offset " + offset + ": pointer chunk " + id.shortHex() + " is corrupt"));
            return false;
        }
        long span = 1L << (Root.FANOUT_BITS * (level - 1));
        boolean ok = true;
        for (int slot = 0; slot < p.length / ChunkId.LENGTH; slot++) {
            ChunkId child = ChunkId.fromBytes(p, slot * ChunkId.LENGTH);
            if (child.isZero()) continue;
            long childFirst = first + slot * span;
            if (childFirst >= r.blockCount()) {
                problems.add(inVersion(Kind.BAD_TREE, v, offset, id, who + ": pointer chunk " + id.shortHex() + " points past the end of the disk (block " + childFirst + ")"));
                ok = false;
                continue;
            }
            ok &= subtree(v, who, base, r, child, level - 1, childFirst);
        }
        if (ok) goodSubtrees.add(id);
        return ok;
    }

    private static String describeSpan(Root r, int level) {
        long bytes = (long) r.blockSize() << (Root.FANOUT_BITS * level);
        return dev.cask.common.Sizes.human(bytes);
    }
}
