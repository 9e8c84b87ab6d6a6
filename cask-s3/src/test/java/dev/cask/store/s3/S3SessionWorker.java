package dev.cask.store.s3;

import dev.cask.store.ChunkStore;

/**
 * A child process for {@link S3CollectionTest}: opens the store named by its first argument as a
 * cask node does (keys from {@code AWS_*}, the index URL from {@code $CASK_CATALOG}), opens a
 * writer session, puts one chunk in it, prints {@code session}, and then waits to be killed, the
 * session still open: a node that dies in the middle of an import. With a second argument
 * {@code upload}, see {@link #uploadAndDie}.
 */
public final class S3SessionWorker {
    private S3SessionWorker() {}

    public static void main(String[] args) throws Exception {
        if (args.length > 1 && args[1].equals("upload")) {
            uploadAndDie(args[0]);
            return;
        }
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

    /**
     * With {@code upload}: begins a pack and PUTs its object, begins a second one and PUTs nothing,
     * prints the two pack ids and waits to be killed: a node that dies between an upload and its
     * commit, and one that dies before its upload.
     */
    private static void uploadAndDie(String store) throws Exception {
        S3ChunkStore s = S3ChunkStore.open(store, System.getenv("CASK_CATALOG"));
        int uploaded = s.index().beginPack(s.url()::packKey);
        byte[] pack = dev.cask.store.local.PackFormat.encodePackHeader(uploaded);
        s.objects().put(s.url().packKey(uploaded), pack, pack.length);
        int begun = s.index().beginPack(s.url()::packKey);
        System.out.println(uploaded + " " + begun);
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
