package dev.cask.image;

import dev.cask.catalog.Version;
import dev.cask.catalog.sqlite.SqliteCatalog;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.volume.FileLeases;
import dev.cask.volume.LocalJournals;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A sustained writer: what came into the journal while a "journal full" checkpoint ran is past the
 * limit again when it ends, and the next checkpoint starts then, with no further write to start it
 * (before, the next checkpoint waited for the next write: a gap in which nothing was stored).
 */
class JournalFullCheckpointTest {
    @TempDir
    Path dir;

    /** Holds the first checkpoint's store call until released, so the test can write meanwhile. */
    static final class Gate extends ImagePartsTest.Forwarding {
        final CountDownLatch entered = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        private final AtomicBoolean first = new AtomicBoolean(true);

        Gate(ChunkStore inner) {
            super(inner);
        }

        @Override
        public ChunkId[] putAll(byte[] data, int[] offsets, int length, Access access) {
            if (first.compareAndSet(true, false)) {
                entered.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return inner.putAll(data, offsets, length, access);
        }
    }

    @Test
    void theNextCheckpointStartsWhenOneEndsWithTheJournalStillFull() throws Exception {
        Gate store = new Gate(LocalChunkStore.open(dir.resolve("chunks"), LocalChunkStore.Options.defaults()));
        Path state = dir.resolve("state");
        long limit = 64 << 10;
        byte[] first = new byte[128 << 10], second = new byte[96 << 10];
        new Random(1).nextBytes(first);
        new Random(2).nextBytes(second);
        try (Images images = new Images(new ImageParts(store, SqliteCatalog.open(dir.resolve("catalog.db")), new LocalJournals(state),
                new FileLeases(state), "test://store", List.of()))) {
            images.create("vm", 16 << 20, 4096);
            try (Volume v = images.openVolume("vm", limit)) {
                v.write(0, first, 0, first.length, false); // past the limit: a checkpoint starts, and waits in the store
                assertTrue(store.entered.await(60, TimeUnit.SECONDS), "a journal-full checkpoint started");
                v.write(1 << 20, second, 0, second.length, false); // past the limit again (not twice it: no writer waits)
                store.release.countDown();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (journalFull(images) < 2 && System.nanoTime() < deadline) Thread.sleep(20);
                assertTrue(journalFull(images) >= 2, "a second journal-full checkpoint followed without another write: "
                        + images.log("vm").stream().map(Version::message).toList());
                byte[] back = new byte[first.length];
                v.read(0, back, 0, back.length);
                assertArrayEquals(first, back);
                back = new byte[second.length];
                v.read(1 << 20, back, 0, back.length);
                assertArrayEquals(second, back);
            }
        }
    }

    private static long journalFull(Images images) {
        return images.log("vm").stream().filter(x -> x.message().equals("checkpoint: journal full")).count();
    }
}
