package dev.cask.volume;

import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.common.CaskException;
import dev.cask.image.Images;
import dev.cask.local.LocalImages;
import dev.cask.image.LiveWriters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Which version a crash's journal is replayed onto: always the one its writes were made on (the
 * journal's base), whatever happened to the head since; and a failed open leaves the journal
 * directory as it found it. Crashes here are {@link Volume#abandon} (no checkpoint, journal kept).
 */
class RecoveryTest {
    private static final int SIZE = 1 << 20;
    @TempDir
    Path dir;

    private static byte[] fill(int value) {
        byte[] b = new byte[4096];
        Arrays.fill(b, (byte) value);
        return b;
    }

    private static byte[] read(Volume v) {
        byte[] got = new byte[SIZE];
        v.read(0, got, 0, SIZE);
        return got;
    }

    private static byte[] expected(Object... offsetAndBlock) {
        byte[] d = new byte[SIZE];
        for (int i = 0; i < offsetAndBlock.length; i += 2) System.arraycopy(offsetAndBlock[i + 1], 0, d, (Integer) offsetAndBlock[i], 4096);
        return d;
    }

    private static List<String> journalFiles(Images images) throws Exception {
        Path journals = LocalImages.store(images).dir().resolve("journals");
        if (!Files.isDirectory(journals)) return List.of();
        try (var files = Files.list(journals)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    /**
     * A checkpoint commits the sealed generation and deletes it; the generation that took the
     * writes meanwhile was created on the older version. After a crash it must replay onto the
     * committed checkpoint, or the checkpointed writes would vanish.
     */
    @Test
    void aGenerationStartedByACheckpointReplaysOntoThatCheckpoint() {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.create("img", SIZE, 4096);
            Volume v = images.openVolume("img");
            v.write(0, fill(1), 0, 4096, false);
            Version two = v.checkpoint("with block 0");
            v.write(8192, fill(2), 0, 4096, false);
            v.flush();
            v.abandon();
            try (Volume again = images.openVolume("img")) {
                assertArrayEquals(expected(0, fill(1), 8192, fill(2)), read(again));
                assertEquals(two.number(), again.baseVersion().number(), "the head was the journal's base: nothing to recover into a version");
            }
        }
    }

    /** The head moved while the journal waited (an older cask's rollback): fold onto the journal's base, commit on top. */
    @Test
    void aJournalLeftUnderAMovedHeadIsFoldedOntoItsOwnBase() {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.create("img", SIZE, 4096);
            Volume v = images.openVolume("img");
            v.write(0, fill(1), 0, 4096, false);
            Version two = v.checkpoint("with block 0");
            v.write(8192, fill(2), 0, 4096, false);
            v.flush();
            v.abandon();
            Version one = images.catalog().version("img", 1);
            Version three = images.catalog().commit("img", two.number(), new NewVersion("rollback to version 1", one.size(), one.content()),
                    new VersionKey("img", two.number()));
            try (Volume again = images.openVolume("img")) {
                assertArrayEquals(expected(0, fill(1), 8192, fill(2)), read(again), "the journal's base, not version 1, is under its writes");
                Version recovered = again.baseVersion();
                assertEquals(three.number() + 1, recovered.number());
                assertEquals(new VersionKey("img", three.number()), recovered.parent());
                assertTrue(recovered.message().contains("recovered from a journal based on version " + two.number()), recovered.message());
            }
            try (var dev = images.open(images.resolve("img@" + three.number()))) {
                byte[] got = new byte[SIZE];
                dev.read(0, got, 0, SIZE);
                assertArrayEquals(new byte[SIZE], got, "the rollback stays in the history");
            }
        }
    }

    /** A journal without writes (a crash right after open or a checkpoint) makes no version, whatever the head. */
    @Test
    void anEmptyJournalUnderAMovedHeadIsDropped() {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.create("img", SIZE, 4096);
            Volume v = images.openVolume("img");
            v.write(0, fill(1), 0, 4096, false);
            v.checkpoint("with block 0");
            v.abandon();
            Version one = images.catalog().version("img", 1);
            images.catalog().commit("img", 2, new NewVersion("rollback to version 1", one.size(), one.content()), new VersionKey("img", 2));
            try (Volume again = images.openVolume("img")) {
                assertArrayEquals(new byte[SIZE], read(again));
                assertEquals(3, again.baseVersion().number());
                again.write(4096, fill(3), 0, 4096, false);
                again.flush();
                again.abandon();
            }
            try (Volume third = images.openVolume("img")) {
                assertArrayEquals(expected(4096, fill(3)), read(third), "writes made on version 3 replay onto version 3");
                assertEquals(3, third.baseVersion().number());
            }
        }
    }

    /** Item 4 of issue 10: an open that fails (bad journal, held lease, bad legacy journal) leaves no journal file behind. */
    @Test
    void aFailedOpenLeavesNoJournalFiles() throws Exception {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.create("img", SIZE, 4096);
            Path journals = LocalImages.store(images).dir().resolve("journals");

            // a format 1 journal whose header is damaged
            try (Volume v = images.openVolume("img")) {
                v.write(0, fill(1), 0, 4096, false);
            }
            Files.write(journals.resolve("img.journal"), new byte[64]);
            List<String> before = journalFiles(images);
            assertThrows(CaskException.Corrupt.class, () -> images.openVolume("img"));
            assertEquals(before, journalFiles(images), "nothing created by the failed open stays");
            Files.delete(journals.resolve("img.journal"));

            // a generation whose header is damaged
            Volume v = images.openVolume("img");
            v.write(0, fill(2), 0, 4096, false);
            v.flush();
            v.abandon();
            List<String> left = journalFiles(images);
            Path generation = journals.resolve(left.stream().filter(n -> n.startsWith("img.journal-")).findFirst().orElseThrow());
            byte[] bytes = Files.readAllBytes(generation);
            bytes[3] ^= 1;
            Files.write(generation, bytes);
            assertThrows(CaskException.Corrupt.class, () -> images.openVolume("img"));
            assertEquals(left, journalFiles(images));
            bytes[3] ^= 1;
            Files.write(generation, bytes);

            // the lease held by another open
            try (Volume holder = images.openVolume("img")) {
                List<String> held = journalFiles(images);
                assertThrows(CaskException.Conflict.class, () -> images.openVolume("img"));
                assertEquals(held, journalFiles(images));
                assertArrayEquals(expected(0, fill(2)), read(holder));
            }
        }
    }

    /**
     * Commands on the head of an image another writer has open: export and snapshot get its
     * checkpoint when it can be asked, and are refused (Conflict, naming a version to use instead)
     * when it cannot; rollback and rm are refused either way.
     */
    @Test
    void theHeadOfAnImageOpenElsewhereComesFromItsWriterOrIsRefused() throws Exception {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.create("img", SIZE, 4096);
            try (Volume v = images.openVolume("img")) {
                v.write(4096, fill(7), 0, 4096, false); // not flushed, not checkpointed
                CaskException.Conflict refused = assertThrows(CaskException.Conflict.class, () -> images.current("img", "export"));
                assertTrue(refused.getMessage().contains("image 'img'") && refused.getMessage().contains("img@1"), refused.getMessage());
                assertEquals(1, images.current("img@1", "export").version().number(), "an explicit version needs no writer");

                // the writer answers, as a running server does through its control socket
                images.withLiveWriters((image, message, always) -> {
                    Version made = v.checkpoint(message, always);
                    return OptionalInt.of((made != null ? made : v.baseVersion()).number());
                });
                Images.Current c = images.current("img", "export");
                assertEquals(Images.Source.SERVER_CHECKPOINT, c.source());
                assertEquals("checkpoint for export", c.version().message());
                try (var dev = images.open(c.version())) {
                    byte[] got = new byte[SIZE];
                    dev.read(0, got, 0, SIZE);
                    assertArrayEquals(expected(4096, fill(7)), got);
                }
                assertEquals(c.version().number(), images.current("img", "export").version().number(), "nothing changed: no new version");
                Images.Snapshot unchanged = images.snapshot("img", "before upgrade");
                assertFalse(unchanged.added(), "nothing written since the export's checkpoint: no version added");
                assertEquals(c.version().number(), unchanged.version().number());
                assertThrows(CaskException.Conflict.class, () -> images.rollback("img", "1"));
                assertThrows(CaskException.Conflict.class, () -> images.remove("img"));
                images.withLiveWriters(LiveWriters.NONE);
            }
        }
    }
}
