package dev.cask.store.local;

import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A dedup hit on a chunk in this process's {@code pending} takes no index stamp: the chunk's
 * entry is inserted by a later sync, stamped with the epoch of that time (GcEpochs, rule 1). That
 * holds only while no sync is between committing the chunk's entry and dropping it from
 * {@code pending}: in that window the entry exists, stamped with the epoch of its insert, which a
 * gc may have raised since.
 *
 * <p>The race, made deterministic with a hook in that window: writer A's sync has indexed chunk c
 * (epoch G-1); a gc raises the epoch to G and finds no writer session; writer B's session
 * registration completes (B called {@code session} before A's sync began, so nothing made it wait
 * for that sync; played here by registering straight through {@link GcEpochs}), and B puts the
 * same bytes while c is still in {@code pending}. A's version never reaches the catalog (its
 * commit failed, or it was removed before the gc read the catalog), so nothing marks c, and the
 * sweep deletes what is stamped before G. B was told c is stored and commits a version that
 * references it: c must survive (stamped G by B's put, or stored again).
 */
class PendingHitRaceTest {
    @TempDir
    Path dir;

    @Test
    void aPendingHitWhileASyncIndexesTheChunkIsStampedInTheNewEpoch() throws Exception {
        byte[] c = new byte[4096];
        new Random(3).nextBytes(c);
        try (LocalChunkStore store = LocalChunkStore.open(dir, new LocalChunkStore.Options(1, 1 << 20, false))) {
            ChunkId id = store.put(c); // writer A: pending
            AtomicReference<ChunkDeleter.Sweep> gc = new AtomicReference<>();
            AtomicReference<Throwable> failed = new AtomicReference<>();
            Thread[] b = new Thread[1];
            store.afterIndexCommit = () -> {
                store.afterIndexCommit = () -> {};
                gc.set(store.begin(m -> {})); // the epoch is raised to G; no session is open, none is waited for
                ChunkStore.Session session = new GcEpochs(store).open("writer B"); // registered after the gc looked
                b[0] = new Thread(() -> {
                    try (session) {
                        store.put(c);
                        store.sync();
                    } catch (Throwable t) {
                        failed.set(t);
                    }
                });
                b[0].start();
                try {
                    b[0].join(500); // a put that waits for this sync to end is right: go on without it then
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
            };
            store.sync(); // writer A's
            b[0].join();
            assertNull(failed.get());
            try (ChunkDeleter.Sweep sweep = gc.get()) {
                List<ChunkId> candidates = new ArrayList<>();
                sweep.forEachCandidate(candidates::add); // nothing marks c: A's version is not in the catalog
                sweep.delete(candidates);
            }
            assertTrue(store.contains(id), "writer B's put was told chunk " + id.shortHex() + " is stored, and the gc swept it");
        }
    }
}
