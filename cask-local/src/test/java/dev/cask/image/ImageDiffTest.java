package dev.cask.image;

import dev.cask.local.LocalImages;
import dev.cask.catalog.Version;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.tree.Layout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ImageDiff} reads only the tree paths where two versions differ: two versions of a 2 GiB
 * disk (sparse, 32 MiB of data) that differ in 1 MiB, compared through a store that counts every
 * chunk read. A count, never a time.
 */
class ImageDiffTest {
    @TempDir
    Path dir;

    /** Forwards to a store and counts the chunks read through it. */
    static final class CountingStore implements ChunkStore {
        final ChunkStore inner;
        final AtomicLong gets = new AtomicLong();

        CountingStore(ChunkStore inner) {
            this.inner = inner;
        }

        @Override public ChunkId put(byte[] data, int off, int len) { return inner.put(data, off, len); }
        @Override public byte[] get(ChunkId id) { gets.incrementAndGet(); return inner.get(id); }
        @Override public boolean contains(ChunkId id) { return inner.contains(id); }
        @Override public void list(Consumer<ChunkId> sink) { inner.list(sink); }
        @Override public void sync() { inner.sync(); }
        @Override public void close() { }
    }

    /** A sparse 2 GiB raw file with 32 pieces of 1 MiB of random data, 64 MiB apart; {@code changed}: piece 7 differs. */
    private Path disk(String name, boolean changed) throws IOException {
        Path p = dir.resolve(name);
        Random rnd = new Random(1);
        byte[] piece = new byte[1 << 20];
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(2L << 30);
            for (int i = 0; i < 32; i++) {
                rnd.nextBytes(piece);
                if (changed && i == 7) new Random(99).nextBytes(piece);
                f.seek(i * (64L << 20) + 12288);
                f.write(piece);
            }
        }
        return p;
    }

    @Test
    void diffOfTwoVersionsReadsOnlyTheChangedPaths() throws IOException {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.importFile(disk("a.raw", false), "vm", "raw", 0, true, Progress.NONE, w -> { });
            ImageAdmin.Imported b = new ImageAdmin(images).importAsVersion(disk("b.raw", true), "vm", "raw", 0, true, false, "backup 2",
                    Progress.NONE, w -> { });
            assertEquals(2, b.version().number());
            assertTrue(b.storedBytesAdded() < (1 << 20) + (64 << 10), "only the changed MiB is new: " + b.storedBytesAdded());
            Version one = images.resolve("vm@1");
            CountingStore counting = new CountingStore(images.store());
            ImageDiff diff = new ImageDiff(counting);
            List<ImageDiff.Range> ranges = diff.diff(Layout.decode(one.content()), Layout.decode(b.version().content()));
            assertEquals(List.of(new ImageDiff.Range(7 * (64L << 20) + 12288, 1 << 20)), ranges);
            // depth 3 at 4 KiB blocks: per side the top, one level-2 chunk and the 2-3 level-1 chunks over 256 blocks
            assertTrue(counting.gets.get() <= 10, "pointer chunks read: " + counting.gets.get());
            assertEquals(counting.gets.get(), diff.pointerChunksRead());
            // the same version: nothing read at all
            CountingStore again = new CountingStore(images.store());
            assertEquals(List.of(), new ImageDiff(again).diff(Layout.decode(one.content()), Layout.decode(one.content())));
            assertEquals(0, again.gets.get());
        }
    }

    @Test
    void layoutsThatDoNotLineUpAreComparedByLeafIds() throws IOException {
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            Path small = dir.resolve("s.raw");
            byte[] data = new byte[4 << 20];
            new Random(3).nextBytes(data);
            java.nio.file.Files.write(small, data);
            Version a = images.importFile(small, "a", "raw", 4096, true, Progress.NONE, w -> { });
            Version b = images.importFile(small, "b", "raw", 65536, true, Progress.NONE, w -> { });
            // same bytes cut into other blocks: ids differ everywhere, so everything is listed (never less)
            List<ImageDiff.Range> r = new ImageDiff(images.store()).diff(Layout.decode(a.content()), Layout.decode(b.content()));
            assertEquals(List.of(new ImageDiff.Range(0, 4 << 20)), r);
            // a resized copy lines up again: only the grown part (zeros on one side, holes on the other) is equal
            Version grown = new ImageAdmin(images).resize("a", 64L << 20, false).version();
            assertEquals(List.of(), new ImageDiff(images.store()).diff(Layout.decode(a.content()), Layout.decode(grown.content())));
        }
    }
}
