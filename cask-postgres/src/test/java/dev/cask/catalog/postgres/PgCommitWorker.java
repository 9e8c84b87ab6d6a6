package dev.cask.catalog.postgres;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.VersionKey;
import dev.cask.common.CaskException;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * Another process (another node) for {@link PostgresCatalogTest}: opens the catalog named by
 * {@code $CASK_CATALOG} (so its password is not on a command line), waits until a start file
 * appears, then commits to one image until it has won {@code wins} compare-and-swaps, reading the
 * head again after every lost one. Prints "conflicts N" and exits 0; any other failure exits 1
 * with the stack trace on stderr.
 *
 * <p>Arguments: IMAGE WORKER-NAME WINS START-FILE
 */
public final class PgCommitWorker {
    private PgCommitWorker() {}

    public static void main(String[] args) throws Exception {
        String image = args[0];
        String worker = args[1];
        int wins = Integer.parseInt(args[2]);
        Path start = Path.of(args[3]);
        try (PostgresCatalog catalog = PostgresCatalog.open(System.getenv("CASK_CATALOG"))) {
            System.out.println("ready");
            System.out.flush();
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (!start.toFile().exists()) {
                if (System.nanoTime() > deadline) throw new IllegalStateException("no start file " + start);
                Thread.sleep(5);
            }
            System.out.println("conflicts " + commitLoop(catalog, image, worker, wins));
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }
    }

    /** Commits until {@code wins} commits succeeded; returns how many were lost to others. */
    static int commitLoop(Catalog catalog, String image, String worker, int wins) {
        int conflicts = 0;
        for (int won = 0; won < wins; ) {
            int head = catalog.image(image).head();
            byte[] content = (worker + " " + won).getBytes(StandardCharsets.UTF_8);
            try {
                catalog.commit(image, head, new NewVersion(worker + " " + won, content.length, content), new VersionKey(image, head));
                won++;
            } catch (CaskException.Conflict lost) {
                conflicts++;
            }
        }
        return conflicts;
    }
}
