package dev.cask.image;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.local.ChunkLocation;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.tree.Layout;
import dev.cask.tree.PointerCache;
import dev.cask.tree.Root;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * {@code cask check}: three passes, each reporting problems as single lines.
 * <ol>
 *   <li>Packs: every record's and segment's magic, lengths and CRC32C (the CRC covers the
 *       compressed bytes, so this finds bit rot without decompressing); with {@code deep}, also
 *       decompress (a segment once for all its chunks), check each segment chunk's own CRC32C
 *       and rehash every chunk against its id. {@code records} counts the chunks found.
 *   <li>Index: every entry points at a record holding that chunk.
 *   <li>Versions: every version of every image decodes, and every chunk its trees reference is
 *       in the index and not found bad by the passes above. A problem names the image, the
 *       version and the byte offset of the disk it affects.
 * </ol>
 * Subtrees shared by several versions (clones, unchanged history) are checked once when good;
 * a bad subtree is walked again for each version so each affected version is named.
 */
final class Checker {
    private final LocalChunkStore store;
    private final Catalog catalog;
    private final PointerCache cache;
    private final List<String> problems = new ArrayList<>();
    private final Set<ChunkId> bad = new HashSet<>();
    private final Set<ChunkId> goodSubtrees = new HashSet<>();
    private long records;
    private long entries;
    private long chunksChecked;

    Checker(LocalChunkStore store, Catalog catalog, PointerCache cache) {
        this.store = store;
        this.catalog = catalog;
        this.cache = cache;
    }

    CheckReport check(boolean deep, Progress progress) {
        List<Integer> packs = store.packIds();
        progress.start(deep ? "check packs (deep)" : "check packs", store.storedBytes());
        for (int id : packs) {
            store.scanPack(id, new LocalChunkStore.ScanSink() {
                @Override
                public void chunk(ChunkId cid, ChunkLocation loc, java.util.function.Supplier<byte[]> plainBytes) {
                    records++;
                    if (deep) {
                        try {
                            byte[] plain = plainBytes.get();
                            ChunkId actual = ChunkId.of(plain);
                            if (!actual.equals(cid)) {
                                problems.add("chunk " + cid.shortHex() + " (" + loc + "): bytes hash to " + actual.shortHex());
                                bad.add(cid);
                            }
                        } catch (CaskException e) {
                            problems.add(e.getMessage());
                            bad.add(cid);
                        }
                    }
                }

                @Override
                public void problem(String line) {
                    problems.add(line);
                }
            }, progress);
        }
        progress.done();

        long total = store.chunkCount();
        progress.startItems("check index", total);
        store.forEachIndexEntry((cid, loc) -> {
            entries++;
            String p = store.verifyEntry(cid, loc, false);
            if (p != null) {
                problems.add("index entry " + p);
                bad.add(cid);
            }
            progress.advance(1);
        });
        progress.done();

        List<Version> versions = catalog.allVersions();
        progress.startItems("check versions", versions.size());
        for (Version v : versions) {
            checkVersion(v);
            progress.advance(1);
        }
        progress.done();
        return new CheckReport(packs.size(), records, entries, versions.size(), chunksChecked, -1, List.copyOf(problems));
    }

    private void checkVersion(Version v) {
        String who = "image '" + v.image() + "' version " + v.number();
        Layout layout;
        try {
            layout = Layout.decode(v.content());
        } catch (CaskException e) {
            problems.add(who + ": " + e.getMessage());
            return;
        }
        if (layout.size() != v.size()) problems.add(who + ": layout covers " + layout.size() + " bytes, version says " + v.size());
        for (Layout.Extent e : layout.extents()) {
            Root r = e.root();
            if (!r.top().isZero()) subtree(who, e.offset(), r, r.top(), r.depth(), 0);
        }
    }

    /** Checks the subtree {@code id} at {@code level} whose first block is {@code first}; true when all of it is good. */
    private boolean subtree(String who, long base, Root r, ChunkId id, int level, long first) {
        long offset = base + first * r.blockSize();
        if (level == 0) {
            chunksChecked++;
            if (bad.contains(id)) {
                problems.add(who + ": offset " + offset + ": data chunk " + id.shortHex() + " is corrupt");
                return false;
            }
            if (!store.contains(id)) {
                problems.add(who + ": offset " + offset + ": data chunk " + id.shortHex() + " is missing");
                return false;
            }
            return true;
        }
        if (goodSubtrees.contains(id)) return true;
        chunksChecked++;
        byte[] p;
        try {
            p = dev.cask.tree.TreeReader.pointerChunk(store, cache, id);
        } catch (CaskException.NotFound e) {
            problems.add(who + ": offset " + offset + ": pointer chunk " + id.shortHex() + " is missing (" + describeSpan(r, level) + " of the disk unreadable)");
            return false;
        } catch (CaskException e) {
            problems.add(who + ": offset " + offset + " (" + describeSpan(r, level) + " of the disk unreadable): " + e.getMessage());
            return false;
        }
        if (bad.contains(id)) {
            problems.add(who + ": offset " + offset + ": pointer chunk " + id.shortHex() + " is corrupt");
            return false;
        }
        long span = 1L << (Root.FANOUT_BITS * (level - 1));
        boolean ok = true;
        for (int slot = 0; slot < p.length / ChunkId.LENGTH; slot++) {
            ChunkId child = ChunkId.fromBytes(p, slot * ChunkId.LENGTH);
            if (child.isZero()) continue;
            long childFirst = first + slot * span;
            if (childFirst >= r.blockCount()) {
                problems.add(who + ": pointer chunk " + id.shortHex() + " points past the end of the disk (block " + childFirst + ")");
                ok = false;
                continue;
            }
            ok &= subtree(who, base, r, child, level - 1, childFirst);
        }
        if (ok) goodSubtrees.add(id);
        return ok;
    }

    private static String describeSpan(Root r, int level) {
        long bytes = (long) r.blockSize() << (Root.FANOUT_BITS * level);
        return dev.cask.common.Sizes.human(bytes);
    }
}
