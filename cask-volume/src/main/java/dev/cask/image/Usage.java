package dev.cask.image;

import dev.cask.catalog.Image;
import dev.cask.catalog.Version;
import dev.cask.store.ChunkId;
import dev.cask.tree.Layout;
import dev.cask.tree.PointerCache;
import dev.cask.tree.TreeReader;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * Who holds which stored bytes ({@code cask du}): for each owner (an image, or with
 * {@code --versions} a version), the bytes of the chunks only it references ({@code exclusive}:
 * what removing it would free, once garbage collection runs), and the bytes of the chunks it
 * shares with other owners.
 *
 * <p><b>Bytes</b> are stored bytes: a chunk stored as a record of its own counts the record's
 * length in its pack (header and compressed payload); a chunk in a segment (compressed together
 * with its neighbours) counts the segment's length divided by the number of chunks in it. Data
 * and pointer chunks both count; holes cost nothing. Only the index is read, never a pack.
 *
 * <p><b>Marking by tree.</b> Every tree of every version is walked once, store-wide, with one
 * map of chunk id to owner. A subtree whose top was met before is skipped whole: by the same
 * owner, it is counted already; by another, its top is marked shared and the walk goes on
 * without entering it. Afterwards the marks are pushed down from every shared top (each chunk
 * at most once), since everything below a chunk two owners reference is referenced by both. So
 * a thousand clones cost about one image: their trees are the same chunks, met at the top.
 * Memory: one map entry per distinct chunk referenced.
 *
 * <p>An owner's {@code shared} bytes need one more walk of just its trees (counting the shared
 * chunks it reaches once each), so they are computed only for the owners asked for by name;
 * the store-wide shared total is always known.
 */
public final class Usage {
    private static final int SHARED = -1;

    /** One owner's bytes; {@code sharedBytes} is -1 when it was not computed. */
    public record Row(String owner, long exclusiveBytes, long sharedBytes) {}

    /** The rows asked for; the bytes referenced by more than one owner, and by any, store-wide. */
    public record Report(List<Row> rows, long sharedBytes, long totalBytes) {}

    private final Images images;
    private final dev.cask.store.ChunkStore store;
    private final StoreCapabilities.StoredSizes sizes;
    private final PointerCache cache = new PointerCache();
    private final Map<ChunkId, Integer> owner = new HashMap<>();
    private final List<ChunkId> sharedTops = new ArrayList<>();
    private final Map<ChunkId, Integer> sharedLevels = new HashMap<>();

    /** Unsupported when the store cannot say what its chunks cost ({@link StoreCapabilities.StoredSizes}). */
    public Usage(Images images) {
        this.images = images;
        this.store = images.store();
        this.sizes = images.capability(StoreCapabilities.StoredSizes.class, "usage of stored bytes");
    }

    /** Per image: exclusive bytes of every image; {@code name} (when not null) alone is listed, with its shared bytes. */
    public Report images(String name) {
        if (name != null) images.image(name);
        List<Image> all = images.list("");
        Map<String, Integer> index = new LinkedHashMap<>();
        for (Image img : all) index.put(img.name(), index.size());
        List<String> owners = new ArrayList<>(index.keySet());
        return run(owners, v -> index.get(v.image()), name == null ? null : Set.of(index.get(name)));
    }

    /** Per version of {@code name}: bytes only that version references (store-wide), and bytes it shares. */
    public Report versions(String name) {
        images.image(name);
        List<String> owners = new ArrayList<>();
        Map<Integer, Integer> byNumber = new HashMap<>();
        for (Version v : images.log(name)) {
            byNumber.put(v.number(), owners.size());
            owners.add(v.key().toString());
        }
        Map<String, Integer> others = new HashMap<>();
        int first = owners.size();
        for (Image img : images.list("")) {
            if (!img.name().equals(name)) others.put(img.name(), first + others.size());
        }
        for (int i = 0; i < others.size(); i++) owners.add("other");
        Set<Integer> rows = new HashSet<>();
        for (int i = 0; i < first; i++) rows.add(i);
        return run(owners, v -> v.image().equals(name) ? byNumber.get(v.number()) : others.get(v.image()), rows);
    }

    /**
     * The stored bytes that only the versions in {@code going} reference (store-wide): what
     * removing all of them together would free once garbage collection runs. More than the sum
     * of their {@link #versions} rows when they share chunks with each other and nothing else.
     */
    public long exclusiveOf(Set<dev.cask.catalog.VersionKey> going) {
        if (going.isEmpty()) return 0;
        return run(List.of("going", "kept"), v -> going.contains(v.key()) ? 0 : 1, null).rows().getFirst().exclusiveBytes();
    }

    private Report run(List<String> owners, Function<Version, Integer> ownerOf, Set<Integer> detailed) {
        Map<Integer, List<Version>> versionsOf = new HashMap<>();
        for (Version v : images.catalog().allVersions()) {
            Integer o = ownerOf.apply(v);
            if (o == null) continue; // an image made while this ran
            versionsOf.computeIfAbsent(o, k -> new ArrayList<>()).add(v);
            for (Layout.Extent e : Layout.decode(v.content()).extents()) mark(e.root().top(), e.root().depth(), o);
        }
        for (ChunkId top : sharedTops) pushDown(top, sharedLevels.get(top));
        Map<ChunkId, Long> bytes = storedBytes();
        long[] exclusive = new long[owners.size()];
        long shared = 0;
        long total = 0;
        for (Map.Entry<ChunkId, Integer> e : owner.entrySet()) {
            long b = bytes.getOrDefault(e.getKey(), 0L);
            total += b;
            if (e.getValue() == SHARED) shared += b;
            else exclusive[e.getValue()] += b;
        }
        List<Row> rows = new ArrayList<>();
        for (int o = 0; o < owners.size(); o++) {
            if (detailed != null && !detailed.contains(o)) continue;
            long s = detailed == null ? -1 : sharedOf(versionsOf.getOrDefault(o, List.of()), bytes);
            rows.add(new Row(owners.get(o), exclusive[o], s));
        }
        return new Report(rows, shared, total);
    }

    /** Phase 1: records each chunk's first owner, or SHARED; enters a subtree only the first time it is met. */
    private void mark(ChunkId id, int level, int o) {
        if (id.isZero()) return;
        Integer prev = owner.get(id);
        if (prev == null) {
            owner.put(id, o);
            if (level > 0) {
                byte[] p = TreeReader.pointerChunk(store, cache, id);
                for (int s = 0; s < p.length / ChunkId.LENGTH; s++) mark(ChunkId.fromBytes(p, s * ChunkId.LENGTH), level - 1, o);
            }
        } else if (prev != o && prev != SHARED) {
            owner.put(id, SHARED);
            if (level > 0) {
                sharedTops.add(id);
                sharedLevels.put(id, level);
            }
        }
    }

    /** Phase 2: everything below a shared chunk is shared. */
    private void pushDown(ChunkId id, int level) {
        if (level == 0) return;
        byte[] p = TreeReader.pointerChunk(store, cache, id);
        for (int s = 0; s < p.length / ChunkId.LENGTH; s++) {
            ChunkId c = ChunkId.fromBytes(p, s * ChunkId.LENGTH);
            if (c.isZero() || owner.get(c) == SHARED) continue;
            owner.put(c, SHARED);
            pushDown(c, level - 1);
        }
    }

    /** The shared chunks one owner's versions reach, each counted once. */
    private long sharedOf(List<Version> versions, Map<ChunkId, Long> bytes) {
        Set<ChunkId> seen = new HashSet<>();
        long[] sum = {0};
        for (Version v : versions) {
            for (Layout.Extent e : Layout.decode(v.content()).extents()) sharedWalk(e.root().top(), e.root().depth(), seen, bytes, sum);
        }
        return sum[0];
    }

    private void sharedWalk(ChunkId id, int level, Set<ChunkId> seen, Map<ChunkId, Long> bytes, long[] sum) {
        if (id.isZero() || !seen.add(id)) return;
        if (owner.get(id) == SHARED) sum[0] += bytes.getOrDefault(id, 0L);
        if (level == 0) return;
        byte[] p = TreeReader.pointerChunk(store, cache, id);
        for (int s = 0; s < p.length / ChunkId.LENGTH; s++) sharedWalk(ChunkId.fromBytes(p, s * ChunkId.LENGTH), level - 1, seen, bytes, sum);
    }

    /** Stored bytes of every marked chunk (see the class comment); a chunk missing from the index counts 0. */
    private Map<ChunkId, Long> storedBytes() {
        return sizes.storedBytes(owner.keySet());
    }
}
