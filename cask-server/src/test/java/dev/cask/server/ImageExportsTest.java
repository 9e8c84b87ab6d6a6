package dev.cask.server;

import dev.cask.local.LocalImages;
import dev.cask.image.Images;
import dev.cask.server.nbd.Export;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An image whose last client left is closed, which checkpoints it (seconds, or minutes for a full
 * journal). Meanwhile clients of other images connect and read at once, and a client of the same
 * image gets in once the close is done, seeing what was written. The close is held up
 * deterministically: its checkpoint waits for the chunk store's lock, which the test holds.
 */
class ImageExportsTest {
    @TempDir
    Path dir;

    /** True while {@code t} is inside a volume's checkpoint, waiting (for the store's lock). */
    private static boolean checkpointing(Thread t) {
        return t.getState() != Thread.State.RUNNABLE
                && Arrays.stream(t.getStackTrace()).anyMatch(f -> f.getClassName().endsWith("Volume") && f.getMethodName().startsWith("checkpoint"));
    }

    @Test
    void aClosingImageKeepsNoClientOfAnotherImageWaiting() throws Exception {
        Path store = dir.resolve("store");
        try (Images images = LocalImages.open(store); ImageExports exports = new ImageExports(images)) {
            images.create("a", 16 << 20, 4096);
            images.create("b", 16 << 20, 4096);
            byte[] written = new byte[4096];
            Arrays.fill(written, (byte) 7);
            Export a = exports.open("a");
            a.device().write(8192, written, 0, written.length, false);
            Thread closer;
            CompletableFuture<Export> again;
            synchronized (images.store()) { // the close's checkpoint stores its blocks under the store's lock: it waits here
                closer = Thread.ofPlatform().start(a::release); // a's last client leaves: its close checkpoints
                for (int i = 0; i < 60_000 && !checkpointing(closer); i++) Thread.sleep(1);
                assertTrue(checkpointing(closer), "the close is checkpointing the write, held up by the store's lock");

                Export b = CompletableFuture.supplyAsync(() -> exports.open("b")).get(60, TimeUnit.SECONDS);
                byte[] got = new byte[4096];
                b.device().read(0, got, 0, got.length);
                assertArrayEquals(new byte[4096], got, "b reads while a is being closed");
                b.release();
                assertTrue(exports.openImages().contains("a"), "a is still being closed: " + exports.openImages());
                again = CompletableFuture.supplyAsync(() -> exports.open("a"));
                Thread.sleep(200);
                assertTrue(!again.isDone(), "a new client of a waits for a's close (it must take the lease back)");
            }
            Export a2 = again.get(60, TimeUnit.SECONDS);
            byte[] got = new byte[4096];
            a2.device().read(8192, got, 0, got.length);
            assertArrayEquals(written, got, "a's new client sees what was written before the close");
            a2.release();
            closer.join();
            assertEquals(2, images.log("a").size(), "the close made a version of the write");
        }
    }
}
