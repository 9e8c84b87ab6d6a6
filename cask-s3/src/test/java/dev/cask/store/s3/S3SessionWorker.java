package dev.cask.store.s3;

import dev.cask.store.ChunkStore;

/**
 * A child process for {@link S3CollectionTest}: opens the store named by its first argument as a
 * cask node does (keys from {@code AWS_*}, the index URL from {@code $CASK_CATALOG}), opens a
 * writer session, puts one chunk in it, prints {@code session}, and then waits to be killed, the
 * session still open: a node that dies in the middle of an import.
 */
public final class S3SessionWorker {
    private S3SessionWorker() {}

    public static void main(String[] args) throws Exception {
        try (S3ChunkStore s = S3ChunkStore.open(args[0], System.getenv("CASK_CATALOG"))) {
            ChunkStore.Session session = s.session("import in a node that will be killed");
            s.put(new byte[]{9, 9, 9});
            s.sync();
            System.out.println("session");
            System.out.flush();
            Thread.sleep(Long.MAX_VALUE);
            session.close();
        }
    }
}
