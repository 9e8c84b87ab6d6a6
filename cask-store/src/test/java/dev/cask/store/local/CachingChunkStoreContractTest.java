package dev.cask.store.local;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.ChunkStoreContract;
import dev.cask.store.cache.CachingChunkStore;
import dev.cask.store.cache.DiskChunkCache;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The {@link ChunkStore} contract for {@link CachingChunkStore} over a {@link LocalChunkStore}
 * (in this package to damage the store's packs as {@link LocalChunkStoreTest} does). Damaging a
 * chunk damages both of its copies: the pack record, and the cache's file when there is one
 * (which the cache must then find, delete and read past, reaching the damaged record).
 */
class CachingChunkStoreContractTest extends ChunkStoreContract {
    private static final LocalChunkStore.Options OPTIONS = LocalChunkStore.Options.defaults().withSegments(64 << 10, 3);

    @Override
    protected ChunkStore open(Path dir) {
        LocalChunkStore local = LocalChunkStore.open(dir.resolve("store"), OPTIONS);
        return new CachingChunkStore(local, DiskChunkCache.open(dir.resolve("cache"), 64L << 20));
    }

    @Override
    protected void corruptPayload(Path dir, ChunkId id) {
        new LocalChunkStoreTest().corruptPayload(dir.resolve("store"), id);
        String hex = id.hex();
        Path cached = dir.resolve("cache").resolve("chunks").resolve(hex.substring(0, 2)).resolve(hex);
        try {
            if (Files.exists(cached)) {
                byte[] b = Files.readAllBytes(cached);
                b[b.length / 2] ^= 0x5a;
                Files.write(cached, b);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
