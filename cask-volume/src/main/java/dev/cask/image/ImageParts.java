package dev.cask.image;

import dev.cask.catalog.Catalog;
import dev.cask.store.ChunkStore;
import dev.cask.volume.JournalStore;
import dev.cask.volume.Leases;

import java.util.List;

/**
 * What an {@code Images} runs on: the store, the catalog, journal storage and leases, the
 * store's name for messages ({@code /srv/cask}, {@code s3://bucket/prefix}), and objects
 * offering {@link StoreCapabilities} beside the store's own. {@link Images#close} closes the leases,
 * the journal storage, the catalog and the store.
 */
public record ImageParts(ChunkStore store, Catalog catalog, JournalStore journals, Leases leases, String storeName,
                         List<Object> capabilities) {
    public ImageParts {
        java.util.Objects.requireNonNull(store, "store");
        java.util.Objects.requireNonNull(catalog, "catalog");
        java.util.Objects.requireNonNull(journals, "journals");
        java.util.Objects.requireNonNull(leases, "leases");
        capabilities = List.copyOf(capabilities);
    }
}
