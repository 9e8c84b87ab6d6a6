package dev.cask.catalog.sqlite;

import dev.cask.catalog.NewVersion;
import dev.cask.catalog.VersionKey;
import dev.cask.common.CaskException;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A second process for {@link SqliteCatalogTest}: opens the catalog, waits until a start file
 * appears, then commits to one image until it has won {@code wins} compare-and-swaps, reading
 * the head again after every lost one. Prints "conflicts N" and exits 0; any other failure
 * exits 1 with the stack trace on stderr.
 *
 * <p>Arguments: DB-FILE IMAGE WORKER-NAME WINS START-FILE
 */
public final class CommitWorker {
    private CommitWorker() {}

    public static void main(String[] args) throws Exception {
        Path db = Path.of(args[0]);
        String image = args[1];
        String worker = args[2];
        int wins = Integer.parseInt(args[3]);
        Path start = Path.of(args[4]);
        try (SqliteCatalog catalog = SqliteCatalog.open(db)) {
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
    static int commitLoop(SqliteCatalog catalog, String image, String worker, int wins) {
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
