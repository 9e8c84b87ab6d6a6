package dev.cask.local;

import dev.cask.image.ImageParts;
import dev.cask.image.Images;
import dev.cask.catalog.sqlite.SqliteCatalog;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.volume.FileLeases;
import dev.cask.volume.LocalJournals;

import java.nio.file.Path;
import java.util.List;

/**
 * The embedded default, composed: a local store directory holds the packs and index
 * ({@link LocalChunkStore}), the catalog ({@link SqliteCatalog} in {@value Images#CATALOG_FILE}),
 * the journals and the leases (files in {@code journals/}). The one place in the image layer that
 * names the local store and the SQLite catalog; everything else receives them as
 * {@link dev.cask.store.ChunkStore}, {@link dev.cask.catalog.Catalog},
 * {@link dev.cask.volume.JournalStore} and {@link dev.cask.volume.Leases}, and the local
 * store's extra abilities as {@link StoreCapabilities} ({@link LocalStoreTools}).
 */
public final class LocalImages {
    /** The journals (and leases) directory inside a local store. */
    public static final String JOURNALS_DIR = "journals";

    private LocalImages() {}

    public static Images open(Path storeDir) {
        return open(storeDir, LocalChunkStore.Options.defaults());
    }

    @SuppressWarnings("exports") // LocalChunkStore is exported to the modules that compose a local store
    public static Images open(Path storeDir, LocalChunkStore.Options options) {
        LocalChunkStore store = LocalChunkStore.open(storeDir, options);
        try {
            Path journals = storeDir.resolve(JOURNALS_DIR);
            return new Images(new ImageParts(store, SqliteCatalog.open(storeDir.resolve(Images.CATALOG_FILE)),
                    new LocalJournals(journals), new FileLeases(journals), storeDir.toString(), List.of(new LocalStoreTools(store))));
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    /** The local store under {@code images} (tests and tools of the local store); Unsupported for another store. */
    @SuppressWarnings("exports")
    public static LocalChunkStore store(Images images) {
        if (images.store() instanceof LocalChunkStore l) return l;
        throw new dev.cask.common.CaskException.Unsupported("store " + images.storeName() + " is not a local store");
    }
}
