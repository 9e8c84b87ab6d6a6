package dev.cask.store.s3;

import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;

import java.util.Random;

/**
 * A child process for {@link S3CrashTest}: opens the store named by its first argument the way a
 * cask node does (endpoint, region and keys from {@code AWS_*} environment variables; the index URL,
 * with its password, from {@code $CASK_CATALOG}, never the command line), then, from round FIRST
 * on, puts the chunks of each round ({@link #round}) and syncs, printing {@code synced R} after
 * each sync returned. It runs until it is killed.
 *
 * <p>Arguments: STORE FIRST-ROUND
 */
public final class S3PutWorker {
    private S3PutWorker() {}

    public static void main(String[] args) {
        String store = args[0];
        int first = Integer.parseInt(args[1]);
        try (S3ChunkStore s = S3ChunkStore.open(store, System.getenv("CASK_CATALOG"))) {
            System.out.println("ready");
            System.out.flush();
            for (int r = first; r < first + 100_000; r++) {
                round(r, s);
                s.sync();
                System.out.println("synced " + r);
                System.out.flush();
            }
        } catch (Throwable t) {
            t.printStackTrace();
            System.exit(1);
        }
    }

    /** The chunks of round {@code r} (the same every time): a batch of 48 blocks and 3 single chunks; puts them when {@code store} is given. */
    static byte[][] round(int r, ChunkStore store) {
        Random rnd = new Random(r);
        int block = 4096;
        byte[] buf = new byte[48 * block];
        int[] offsets = new int[48];
        for (int i = 0; i < 48; i++) {
            offsets[i] = i * block;
            if (i % 4 == 0) {
                for (int k = 0; k < block; k++) buf[i * block + k] = (byte) rnd.nextInt();
            } else {
                byte[] text = ("round " + (r % 7) + " block " + i + " of a disk image ").repeat(200).getBytes(); // repeats across rounds: dedup hits
                System.arraycopy(text, 0, buf, i * block, block);
            }
        }
        byte[][] out = new byte[51][];
        for (int i = 0; i < 48; i++) out[i] = java.util.Arrays.copyOfRange(buf, i * block, (i + 1) * block);
        for (int i = 0; i < 3; i++) {
            out[48 + i] = new byte[10_000 + rnd.nextInt(60_000)];
            rnd.nextBytes(out[48 + i]);
        }
        if (store != null) {
            ChunkId[] ids = store.putAll(buf, offsets, block);
            for (int i = 0; i < 48; i++) if (!ids[i].equals(ChunkId.of(out[i]))) throw new AssertionError("id of block " + i);
            for (int i = 0; i < 3; i++) store.put(out[48 + i]);
        }
        return out;
    }
}
