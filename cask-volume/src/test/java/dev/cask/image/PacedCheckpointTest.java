package dev.cask.image;

import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKind;
import dev.cask.catalog.sqlite.SqliteCatalog;
import dev.cask.common.ClientActivity;
import dev.cask.common.Pacer;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.volume.FileLeases;
import dev.cask.volume.LocalJournals;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A paced checkpoint (a server's timer checkpoint beside busy clients) rests between its batches,
 * and whoever then needs the volume's checkpoint lock (a snapshot, a close) hurries it instead of
 * waiting out its rests: the paced checkpoint stores the rest of its blocks at full speed, both
 * versions hold what was written, and nothing waits the minutes the pacer asked for. The pacer
 * here would rest 1000 times each batch's time (each batch takes at least 5 ms in the store
 * below): about 5 s per batch, over five minutes for the 64 batches, were it not hurried.
 */
class PacedCheckpointTest {
    @TempDir
    Path dir;

    /** Counts batches stored; each takes at least 5 ms, so that a batch is always a whole quantum of work. */
    static final class Slow extends ImagePartsTest.Forwarding {
        final AtomicInteger batches = new AtomicInteger();

        Slow(ChunkStore inner) {
            super(inner);
        }

        @Override
        public ChunkId[] putAll(byte[] data, int[] offsets, int length, Access access) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            ChunkId[] ids = inner.putAll(data, offsets, length, access);
            batches.incrementAndGet();
            return ids;
        }
    }

    /** Clients that are always busy: a clock that stands still at their last request. */
    private static Pacer busyPacer(double rest) {
        ClientActivity clients = new ClientActivity(() -> 1_000_000_000L);
        clients.request();
        return new Pacer(0, 1_000_000L, rest, Long.MAX_VALUE, clients);
    }

    private Images images(ChunkStore store) {
        Path state = dir.resolve("state");
        return new Images(new ImageParts(store, SqliteCatalog.open(dir.resolve("catalog.db")), new LocalJournals(state),
                new FileLeases(state), "test://store", List.of()));
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void aSnapshotHurriesAPacedCheckpoint() {
        Slow store = new Slow(LocalChunkStore.open(dir.resolve("chunks"), LocalChunkStore.Options.defaults()));
        byte[] data = random(64 << 20, 1);
        byte[] more = random(1 << 20, 2);
        try (Images images = images(store)) {
            images.create("vm", 256 << 20, 4096);
            try (Volume v = images.openVolume("vm", 1L << 30)) {
                v.write(0, data, 0, data.length, false);
                Pacer pacer = busyPacer(1000);
                assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
                    CompletableFuture<Version> paced = CompletableFuture.supplyAsync(() -> v.checkpoint("automatic checkpoint", pacer));
                    while (store.batches.get() < 1) Thread.sleep(5); // its first batch stored: it rests now
                    v.write(128 << 20, more, 0, more.length, false);
                    Version snap = v.checkpoint("snapshot", true, VersionKind.USER);
                    Version auto = paced.join();
                    assertNotNull(auto);
                    assertTrue(pacer.isHurried(), "the snapshot hurried the paced checkpoint");
                    assertTrue(auto.number() < snap.number(), "the snapshot came after the paced checkpoint it waited for");
                    assertEquals("automatic checkpoint", auto.message());
                    assertReads(images, "vm@" + auto.number(), 0, data);
                    assertReads(images, "vm@" + snap.number(), 0, data);
                    assertReads(images, "vm@" + snap.number(), 128 << 20, more);
                });
            }
        }
    }

    @Test
    void aCloseHurriesAPacedCheckpoint() {
        Slow store = new Slow(LocalChunkStore.open(dir.resolve("chunks"), LocalChunkStore.Options.defaults()));
        byte[] data = random(64 << 20, 3);
        try (Images images = images(store)) {
            images.create("vm", 256 << 20, 4096);
            Volume v = images.openVolume("vm", 1L << 30);
            v.write(0, data, 0, data.length, false);
            Pacer pacer = busyPacer(1000);
            assertTimeoutPreemptively(Duration.ofSeconds(120), () -> {
                CompletableFuture<Version> paced = CompletableFuture.supplyAsync(() -> v.checkpoint("automatic checkpoint", pacer));
                while (store.batches.get() < 1) Thread.sleep(5);
                v.close();
                assertNotNull(paced.join());
                assertTrue(pacer.isHurried(), "the close hurried the paced checkpoint");
                assertReads(images, "vm", 0, data);
            });
        }
    }

    /** Beside busy clients a paced checkpoint rests (at the busy multiple); its version is whole. */
    @Test
    void aPacedCheckpointRestsBesideBusyClients() {
        Slow store = new Slow(LocalChunkStore.open(dir.resolve("chunks"), LocalChunkStore.Options.defaults()));
        byte[] data = random(8 << 20, 4);
        try (Images images = images(store)) {
            images.create("vm", 64 << 20, 4096);
            try (Volume v = images.openVolume("vm", 1L << 30)) {
                v.write(4096, data, 0, data.length, false);
                Pacer pacer = busyPacer(1);
                Version auto = v.checkpoint("automatic checkpoint", pacer);
                assertNotNull(auto);
                assertTrue(pacer.busyRestedSeconds() > 0, "rested beside busy clients: " + pacer.busyRestedSeconds() + " s");
                assertEquals(pacer.restedSeconds(), pacer.busyRestedSeconds(), "every rest was a busy one");
                assertTrue(!pacer.isHurried());
                assertReads(images, "vm@" + auto.number(), 4096, data);
            }
        }
    }

    private static void assertReads(Images images, String ref, long offset, byte[] expected) {
        byte[] back = new byte[expected.length];
        try (var dev = images.open(images.resolve(ref))) {
            dev.read(offset, back, 0, back.length);
        }
        assertArrayEquals(expected, back, ref + " at " + offset);
    }
}
