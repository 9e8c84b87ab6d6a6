package dev.cask.cli;

import dev.cask.common.CaskException;

import java.nio.file.Path;
import java.util.Map;

/**
 * What the global options say to open: a local store directory (the embedded default: packs,
 * index, SQLite catalog, journals and leases in one directory), or a shared store (packs in S3,
 * catalog and chunk index in PostgreSQL, this node's journals, leases and control sockets in a
 * local state directory).
 *
 * <p>Rules, checked before anything is opened (a violation is a usage error, exit 2):
 * {@code --store s3://...} needs {@code --catalog postgresql://...} (or {@code $CASK_CATALOG}),
 * since the store's chunk index lives in that database; a local store keeps its catalog in its
 * directory, so {@code --catalog} with a local store is refused rather than ignored (a command run
 * once without it would see a different catalog, and gc would sweep what the other names).
 *
 * <p>The state directory of a shared store: {@code --state DIR}, else {@code $CASK_STATE}, else
 * {@code /var/lib/cask/STORE} for root and {@code ${XDG_STATE_HOME:-~/.local/state}/cask/STORE}
 * for anyone else, where STORE is the store URL without {@code s3://} and with '/' spelled '+'
 * (so one host can use several shared stores). It holds what only this node knows: the journals of
 * the volumes it serves (flushed writes not yet in a version) and their leases, and its control
 * socket; it must survive a reboot.
 */
sealed interface StoreChoice {
    /** How the store is named in messages. */
    String name();

    /** Where this node's running servers keep their control sockets (checkpoint and in-use requests). */
    Path controlDir();

    record Local(Path dir) implements StoreChoice {
        @Override
        public String name() {
            return dir.toString();
        }

        @Override
        public Path controlDir() {
            return dir;
        }
    }

    record Shared(String store, String catalog, Path state) implements StoreChoice {
        @Override
        public String name() {
            return store;
        }

        @Override
        public Path controlDir() {
            return state;
        }

        @Override
        public String toString() {
            return "Shared[" + store + ", " + dev.cask.catalog.postgres.CatalogUrl.redact(catalog) + ", " + state + "]";
        }
    }

    /**
     * The choice {@code store} (an option's or {@code $CASK_STORE}'s value, or null), {@code catalog}
     * ({@code --catalog} or {@code $CASK_CATALOG}, or null), {@code state} ({@code --state}, or
     * null) and {@code env} make; {@code localDefault} is the local store when none is named.
     * Usage errors name the option at fault.
     */
    static StoreChoice of(String store, String catalog, Path state, Map<String, String> env, Path localDefault) {
        boolean s3 = store != null && store.startsWith("s3://");
        if (!s3 && store != null && store.matches("^[A-Za-z][A-Za-z0-9+.-]*://.*")) {
            throw new CaskException.Usage("--store '" + store + "': unknown kind of store (expected a directory or s3://BUCKET[/PREFIX])");
        }
        if (!s3) {
            if (catalog != null) {
                throw new CaskException.Usage("--catalog: a local store keeps its catalog in its directory; --catalog goes with --store s3://BUCKET[/PREFIX]");
            }
            if (state != null) throw new CaskException.Usage("--state: a local store keeps its journals in its directory; --state goes with --store s3://BUCKET[/PREFIX]");
            return new Local(store != null ? Path.of(store) : localDefault);
        }
        if (catalog == null) {
            throw new CaskException.Usage("--store " + store + ": a store on S3 needs --catalog postgresql://... (or $CASK_CATALOG): its chunk index lives there");
        }
        // checked now, so that a typo is a usage error before anything connects (neither loads the SDK nor JDBC)
        String normal = dev.cask.store.s3.S3StoreUrl.parse(store).toString();
        dev.cask.catalog.postgres.CatalogUrl.parse(catalog, env);
        return new Shared(normal, catalog, state != null ? state : defaultState(normal, env));
    }

    private static Path defaultState(String store, Map<String, String> env) {
        String name = store.substring("s3://".length()).replace('/', '+');
        String explicit = env.get("CASK_STATE");
        if (explicit != null && !explicit.isBlank()) return Path.of(explicit);
        if ("root".equals(System.getProperty("user.name"))) return Path.of("/var/lib/cask", name);
        String xdg = env.get("XDG_STATE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".local", "state");
        return base.resolve("cask").resolve(name);
    }
}
