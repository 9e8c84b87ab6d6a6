package dev.cask.cli;

import dev.cask.local.LocalImages;
import dev.cask.common.CaskException;
import dev.cask.image.Images;
import dev.cask.store.local.LocalChunkStore;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code cask init [PATH]}: creates a store on purpose, in a new or an empty directory (parents
 * included). Every other command refuses an explicit store path that does not exist (see
 * {@link Main#store()}), so this is how a store at a chosen path comes to be. A directory that
 * already holds a store is left alone (exit 1), as {@code restic init} does.
 */
@Command(name = "init", mixinStandardHelpOptions = true,
        description = {"Create a store in PATH (a new or empty directory; default: --store, $CASK_STORE, else the default store).",
                "A shared store (--store s3://BUCKET --catalog postgresql://HOST/DB): creates its tables, checks its bucket."})
final class InitCommand extends Common implements Callable<Integer> {
    @Parameters(index = "0", arity = "0..1", paramLabel = "PATH", description = "Directory of the new store.")
    Path path;

    @Override
    public Integer call() {
        if (main.choice() instanceof StoreChoice.Shared shared) {
            if (path != null) throw new CaskException.Usage("init: give PATH or a shared store (--store s3://...), not both");
            try (Images ignored = SharedImages.open(shared)) { // creates the catalog's tables and the chunk index when missing
                out().println("store " + shared.store() + " is ready (catalog " + dev.cask.catalog.postgres.CatalogUrl.redact(shared.catalog())
                        + ", this node's state in " + shared.state() + ")");
            }
            return 0;
        }
        Path dir = path != null ? path : main.storeDir();
        if (Files.exists(dir.resolve(LocalChunkStore.HEADER_FILE))) {
            throw new CaskException.Conflict("store " + dir + ": already a cask store (nothing changed)");
        }
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
            throw new CaskException.InvalidInput("store " + dir + ": exists and is not a directory");
        }
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new CaskException.Io("store " + dir + ": cannot create the directory: " + e.getMessage(), e);
        }
        try (Images ignored = LocalImages.open(dir)) {
            out().println("created store " + dir);
        }
        return 0;
    }
}
