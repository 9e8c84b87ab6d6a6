package dev.cask.store.local;

import dev.cask.common.Pacer;
import dev.cask.store.ChunkDeleter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A collection that waits for another one in the same process (a {@code cask gc} asked of a
 * server while its background gc runs) says which one it waits for, as it does for one in
 * another process; and it starts once that one ends.
 */
class GcWaitMessageTest {
    @TempDir
    Path dir;

    @Test
    void aSecondCollectionInTheProcessNamesTheOneItWaitsFor() throws Exception {
        try (LocalChunkStore store = LocalChunkStore.open(dir, new LocalChunkStore.Options(1, 1 << 20, false))) {
            ChunkDeleter.Sweep first = store.begin("cask serve (background gc)", m -> {}, Pacer.unpaced());
            List<String> heard = new CopyOnWriteArrayList<>();
            Thread second = Thread.ofPlatform().start(() -> {
                try (ChunkDeleter.Sweep s = store.begin("cask gc (in cask serve)", heard::add, Pacer.unpaced())) {
                    heard.add("started");
                }
            });
            for (int i = 0; i < 600 && heard.isEmpty(); i++) Thread.sleep(50);
            assertEquals(List.of("another gc is running in this process (cask serve (background gc)); waiting for it"), heard);
            first.close();
            second.join(TimeUnit.SECONDS.toMillis(30));
            assertTrue(heard.contains("started"), "the second starts once the first ends: " + heard);
        }
    }
}
