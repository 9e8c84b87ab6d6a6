package dev.cask.local;

import dev.cask.image.StoreChecksContract;
import dev.cask.store.local.LocalChunkStore;

import java.nio.file.Path;

/** The checks contract against a local store ({@link LocalStoreTools}): its packs are files. */
class LocalStoreChecksTest extends StoreChecksContract {
    @Override
    protected Opened open(Path dir) {
        LocalChunkStore store = LocalChunkStore.open(dir.resolve("store"), new LocalChunkStore.Options(1, 128 << 10, false, 64 << 10, 3, 0));
        return new Opened(store, new LocalStoreTools(store));
    }

    @Override
    protected Path packFile(Path dir, int pack) {
        return dir.resolve("store").resolve("packs").resolve(String.format("%08d.pack", pack));
    }
}
