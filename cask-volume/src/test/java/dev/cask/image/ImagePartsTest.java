package dev.cask.image;

import dev.cask.catalog.sqlite.SqliteCatalog;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.volume.FileLeases;
import dev.cask.volume.Leases;
import dev.cask.volume.LocalJournals;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Images} over parts it knows only by their interfaces: a store that is no local store
 * (a forwarding one, as an S3 store is to the image layer), a catalog, journals and leases in
 * directories of their own. Everything but the store's own capabilities works; those fail with
 * Unsupported naming the store.
 */
class ImagePartsTest {
    @TempDir
    Path dir;

    /** Forwards every call; offers no capability (a subclass may add what it watches). */
    static class Forwarding implements ChunkStore {
        final ChunkStore inner;

        Forwarding(ChunkStore inner) {
            this.inner = inner;
        }

        @Override public ChunkId put(byte[] data, int off, int len) { return inner.put(data, off, len); }
        @Override public byte[] get(ChunkId id) { return inner.get(id); }
        @Override public boolean contains(ChunkId id) { return inner.contains(id); }
        @Override public void list(Consumer<ChunkId> sink) { inner.list(sink); }
        @Override public void sync() { inner.sync(); }
        @Override public void close() { inner.close(); }
    }

    private Images images() {
        LocalChunkStore local = LocalChunkStore.open(dir.resolve("chunks"), LocalChunkStore.Options.defaults());
        Path state = dir.resolve("state");
        return new Images(new ImageParts(new Forwarding(local), SqliteCatalog.open(dir.resolve("catalog.db")), new LocalJournals(state),
                new FileLeases(state), "test://store", List.of()));
    }

    @Test
    void imagesVolumesAndLeasesWorkOverInterfacesAndMissingCapabilitiesSaySo() throws Exception {
        byte[] disk = new byte[1 << 20];
        new Random(3).nextBytes(disk);
        try (Images images = images()) {
            images.importStream(new ByteArrayInputStream(disk), "vm", 4096, Progress.NONE);
            byte[] patch = new byte[4096];
            java.util.Arrays.fill(patch, (byte) 7);
            try (Volume v = images.openVolume("vm")) {
                v.write(8192, patch, 0, patch.length, false);
                v.flush();
                // one writer: a second open, a removal and a held lease are refused while it is open
                assertThrows(CaskException.Conflict.class, () -> images.openVolume("vm"));
                assertThrows(CaskException.Conflict.class, () -> images.remove("vm"));
                assertTrue(images.leases().isHeld("vm"));
                assertTrue(images.leases().tryTake("vm").isEmpty());
            }
            assertTrue(!images.leases().isHeld("vm"));
            System.arraycopy(patch, 0, disk, 8192, patch.length);
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            images.export("vm", out, Progress.NONE);
            assertArrayEquals(disk, out.toByteArray());
            assertEquals(2, images.log("vm").size(), "the close's checkpoint is a version");

            for (Runnable r : List.<Runnable>of(images::stats, () -> images.check(false, Progress.NONE), images::collector, () -> new Usage(images))) {
                CaskException.Unsupported e = assertThrows(CaskException.Unsupported.class, r::run);
                assertTrue(e.getMessage().endsWith("not supported on store test://store yet"), e.getMessage());
            }
            assertEquals(List.of(), images.openNotices());
            images.remove("vm");
            assertTrue(images.list("").isEmpty());
        }
    }

    @Test
    void aFileLeaseIsExclusiveUntilClosed() {
        Leases leases = new FileLeases(dir.resolve("leases"));
        assertTrue(!leases.isHeld("team/vm"));
        try (Leases.Lease l = leases.tryTake("team/vm").orElseThrow()) {
            assertEquals("team/vm", l.image());
            assertEquals(0, l.epoch());
            l.check();
            assertTrue(leases.isHeld("team/vm"));
            assertTrue(leases.tryTake("team/vm").isEmpty());
            assertTrue(leases.tryTake("team/other").map(o -> {
                o.close();
                return true;
            }).orElse(false));
        }
        assertTrue(!leases.isHeld("team/vm"));
        leases.tryTake("team/vm").orElseThrow().close();
    }
}
