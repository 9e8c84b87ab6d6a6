package dev.cask.cli;

import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.catalog.postgres.PostgresJournals;
import dev.cask.catalog.postgres.PostgresLeases;
import dev.cask.common.CaskException;
import dev.cask.image.ImageParts;
import dev.cask.image.Images;
import dev.cask.store.ChunkStore;
import dev.cask.store.cache.CachingChunkStore;
import dev.cask.store.cache.DiskChunkCache;
import dev.cask.store.s3.S3ChunkStore;
import dev.cask.store.s3.S3Settings;
import dev.cask.store.s3.S3StoreTools;
import dev.cask.store.s3.S3StoreUrl;
import dev.cask.volume.LocalJournals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Composes a shared store ({@link StoreChoice.Shared}): the catalog in PostgreSQL
 * ({@link PostgresCatalog}), the packs in S3 with their index in the same database
 * ({@link S3ChunkStore}), the leases in the same database ({@link PostgresLeases}: one writer per
 * image across every node, fencing every commit by its epoch), and the journals: this node's files
 * in {@code STATE/journals} ({@link LocalJournals}), every sync copied into the same database
 * ({@link PostgresJournals}), so another node replays what a dead one flushed.
 * The store offers the
 * {@link dev.cask.image.StoreCapabilities} {@link S3StoreTools} answers (stats, du and prune's freed
 * bytes from the index; check from the pack objects; gc through {@code S3Collection}); check
 * --repair says it is not supported on it yet.
 *
 * <p>With {@code --cache DIR} ({@link NodeCache}) the S3 store's chunks are read through this
 * node's chunk cache: a {@link CachingChunkStore} wraps the {@link S3ChunkStore}, while the
 * capabilities stay the S3 store's own ({@link S3StoreTools} is given the unwrapped store), so what
 * looks at the pack objects never sees the cache.
 *
 * <p>The one class of the CLI that names the AWS SDK's and the JDBC driver's users: it is loaded
 * only when a shared store is opened, so a command on a local store never loads either. The
 * catalog is opened first, so an unreachable database is one line naming its URL (never its
 * password); the bucket is checked next.
 */
final class SharedImages {
    private SharedImages() {}

    /**
     * Lets commands on other hosts reach this server (a snapshot of an image it serves, what it
     * needs kept): its control server also listens on TCP on {@code bindHost} (the NBD listen
     * address's host; an ephemeral port) with a new random token, and the endpoint is published in
     * the catalog's {@code nodes} table under this node's lease holder name (withdrawn at stop).
     * A wildcard {@code bindHost} is published as this host's name. Returns what was published.
     */
    static String advertise(Images images, dev.cask.server.ControlServer control, String bindHost) {
        PostgresLeases leases = (PostgresLeases) images.leases();
        byte[] raw = new byte[32];
        new java.security.SecureRandom().nextBytes(raw);
        String token = java.util.HexFormat.of().formatHex(raw);
        try {
            java.net.InetAddress bind = java.net.InetAddress.getByName(bindHost);
            java.net.InetSocketAddress at = control.listenTcp(bind, token);
            String host = bind.isAnyLocalAddress() ? java.net.InetAddress.getLocalHost().getHostName() : bindHost;
            leases.advertise(host, at.getPort(), token);
            return host + ":" + at.getPort();
        } catch (java.net.UnknownHostException e) {
            throw new CaskException.InvalidInput("control listener: unknown host '" + bindHost + "': " + e.getMessage());
        }
    }

    /** The control client of a shared store's commands: this host's servers, then every other node the catalog lists. */
    static dev.cask.server.ControlClient controlClient(Images images, Path controlDir) {
        PostgresLeases leases = (PostgresLeases) images.leases();
        return new dev.cask.server.ControlClient(controlDir,
                () -> leases.nodes().stream().map(n -> new dev.cask.server.ControlClient.Remote(n.holder(), n.host(), n.port(), n.token())).toList(),
                r -> leases.forgetNode(new PostgresLeases.Node(r.holder(), r.host(), r.port(), r.token())));
    }

    static Images open(StoreChoice.Shared s) {
        return open(s, null, null);
    }

    /**
     * The shared store, its leases with time to live {@code leaseTtl} (null: {@link
     * PostgresLeases#DEFAULT_TTL}), and its chunks read through this node's {@code cache} (null:
     * none), a {@link CachingChunkStore} wrapping the {@link S3ChunkStore}; the store's
     * capabilities ({@link S3StoreTools}) are the S3 store's, passed as they are.
     */
    static Images open(StoreChoice.Shared s, java.time.Duration leaseTtl, NodeCache cache) {
        CatalogUrl catalogUrl = CatalogUrl.parse(s.catalog());
        S3StoreUrl storeUrl = S3StoreUrl.parse(s.store());
        Path journals = s.state().resolve("journals");
        try {
            Files.createDirectories(journals);
        } catch (IOException e) {
            throw new CaskException.Io("state directory " + s.state() + " (for store " + s.store() + "): cannot create it: " + e.getMessage(), e);
        }
        PostgresCatalog catalog = PostgresCatalog.open(catalogUrl, PostgresCatalog.Options.defaults(), dev.cask.common.Clocks.system());
        PostgresLeases leases = null;
        PostgresJournals journalStore = null;
        DiskChunkCache chunkCache = null;
        try {
            leases = PostgresLeases.open(catalogUrl, PostgresCatalog.Options.defaults(), leaseTtl == null ? PostgresLeases.DEFAULT_TTL : leaseTtl);
            journalStore = PostgresJournals.open(catalogUrl, PostgresCatalog.Options.defaults(), new LocalJournals(journals));
            // the cache first: a directory in use or refused is one line before anything connects to S3
            chunkCache = cache == null ? null : DiskChunkCache.open(cache.dir(), cache.bytes());
            S3ChunkStore store = S3ChunkStore.open(storeUrl, S3Settings.fromEnvironment(), catalogUrl, PostgresCatalog.Options.defaults(),
                    S3ChunkStore.Options.defaults());
            ChunkStore reads = chunkCache == null ? store : new CachingChunkStore(store, chunkCache);
            return new Images(new ImageParts(reads, catalog, journalStore, leases, storeUrl.toString(), List.of(new S3StoreTools(store))));
        } catch (RuntimeException e) {
            if (chunkCache != null) chunkCache.close();
            if (journalStore != null) journalStore.close();
            if (leases != null) leases.close();
            catalog.close();
            throw e;
        }
    }
}
