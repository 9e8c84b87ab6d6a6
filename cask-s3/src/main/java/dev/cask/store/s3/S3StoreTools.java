package dev.cask.store.s3;

import dev.cask.image.StoreCapabilities;
import dev.cask.store.ChunkId;
import dev.cask.store.local.PackFormat;
import dev.cask.store.postgres.PostgresChunkIndex;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Map;

/**
 * The {@link StoreCapabilities} a store on S3 offers today, answered from its index in
 * PostgreSQL without reading an object: {@link StoreCapabilities.Counts} ({@code cask stats}) and
 * {@link StoreCapabilities.StoredSizes} ({@code cask du}, {@code stats}' live bytes, the bytes
 * {@code prune} frees). What the local store's {@code LocalStoreTools} is to its packs and index,
 * with the same meanings: stored bytes are the sealed pack objects' lengths (an object is written
 * whole and never again, so its row's length is the object's), a pack's header is the fixed
 * overhead, and a chunk in a segment costs the segment's length shared by the entries pointing
 * into it. Packs not sealed (an upload under way, or one a crash left) are not counted: no entry
 * names them. Checks and garbage collection are not offered yet (issue 14, item 9): those commands
 * say so. Thread-safe as the index is.
 */
public final class S3StoreTools implements StoreCapabilities.Counts, StoreCapabilities.StoredSizes {
    private final PostgresChunkIndex index;

    public S3StoreTools(S3ChunkStore store) {
        this.index = store.index();
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
}
