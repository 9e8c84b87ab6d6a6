package dev.cask.volume;

import dev.cask.local.LocalImages;
import dev.cask.catalog.Version;
import dev.cask.device.BlockStatus;
import dev.cask.image.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Model-based test of live volumes: random writes, zeroes, trims, flushes, checkpoints, reopens
 * and crashes against a plain byte array. Disks have several extents (an MBR-partitioned raw
 * image) with unaligned boundaries. Every assertion carries the seed: -Dcask.seed=N replays it.
 */
class VolumeModelTest {
    @TempDir
    Path dir;

    /** A raw disk with an MBR partition at sector 63 (odd extents) and some random content. */
    private byte[] disk(Random rnd, int size) {
        byte[] d = new byte[size];
        for (int i = 0; i < size / 4096; i += 1 + rnd.nextInt(4)) {
            byte[] b = new byte[4096];
            rnd.nextBytes(b);
            System.arraycopy(b, 0, d, i * 4096, 4096);
        }
        Arrays.fill(d, 446, 512, (byte) 0);
        d[446 + 4] = (byte) 0x83;
        int start = 63;
        int count = size / 512 - 63 - 100;
        d[446 + 8] = (byte) start;
        d[446 + 12] = (byte) count;
        d[446 + 13] = (byte) (count >> 8);
        d[446 + 14] = (byte) (count >> 16);
        d[510] = 0x55;
        d[511] = (byte) 0xaa;
        return d;
    }

    @Test
    void randomOperationsMatchTheModel() throws Exception {
        randomOperations(Volume.DEFAULT_JOURNAL_LIMIT);
    }

    /** A 64 KiB journal limit: checkpoints start in the background and writers wait on them, mid-workload. */
    @Test
    void randomOperationsWithASmallJournalMatchTheModel() throws Exception {
        randomOperations(64 << 10);
    }

    private void randomOperations(long journalLimit) throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        int size = (2 << 20) + 4096 * 3 + 512;
        byte[] model = disk(rnd, size);
        Path raw = dir.resolve("d.raw");
        Files.write(raw, model);
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.importFile(raw, "t/vol", "raw", 0, false, dev.cask.common.Progress.NONE, w -> {});
            assertEquals(3, dev.cask.tree.Layout.decode(images.resolve("t/vol").content()).extents().size(), "seed=" + seed);
            Volume v = images.openVolume("t/vol", journalLimit);
            byte[] flushed = model.clone();
            int checkpoints = 0;
            for (int step = 0; step < 600; step++) {
                String at = "seed=" + seed + " step=" + step;
                int op = rnd.nextInt(100);
                long off = rnd.nextInt(size);
                int len = 1 + rnd.nextInt(Math.min(3 * 4096 * (rnd.nextBoolean() ? 1 : 8), size - (int) off));
                if (op < 35) {
                    byte[] data = new byte[len];
                    if (rnd.nextInt(5) > 0) rnd.nextBytes(data);
                    boolean fua = rnd.nextInt(10) == 0;
                    v.write(off, data, 0, len, fua);
                    System.arraycopy(data, 0, model, (int) off, len);
                    if (fua) flushed = model.clone();
                } else if (op < 45) {
                    v.zero(off, len, false);
                    Arrays.fill(model, (int) off, (int) off + len, (byte) 0);
                } else if (op < 50) {
                    v.trim(off, len);
                    // whole blocks may read as zero; partial ones stay: read back and accept either per byte range
                    byte[] got = new byte[len];
                    v.read(off, got, 0, len);
                    for (int i = 0; i < len; i++) {
                        assertTrue(got[i] == 0 || got[i] == model[(int) off + i], at + ": trim changed a byte to something else");
                    }
                    System.arraycopy(got, 0, model, (int) off, len);
                } else if (op < 58) {
                    v.flush();
                    flushed = model.clone();
                } else if (op < 62) {
                    Version c = v.checkpoint("step " + step);
                    flushed = model.clone();
                    if (c != null) {
                        checkpoints++;
                        byte[] exported = new byte[size];
                        try (var dev = images.open(c)) {
                            dev.read(0, exported, 0, size);
                        }
                        assertArrayEquals(model, exported, at + ": checkpoint version " + c.number() + " content");
                    }
                } else if (op < 64) {
                    v.close();
                    flushed = model.clone();
                    v = images.openVolume("t/vol", journalLimit);
                } else if (op < 66) {
                    // a crash: no checkpoint, journal left behind; after reopen every block is old-or-new
                    v.flush();
                    flushed = model.clone();
                    v.abandon();
                    v = images.openVolume("t/vol", journalLimit);
                    byte[] got = new byte[size];
                    v.read(0, got, 0, size);
                    assertArrayEquals(flushed, got, at + ": flushed writes must survive a crash");
                } else if (op < 83) {
                    byte[] got = new byte[len];
                    Arrays.fill(got, (byte) 0x5a); // callers recycle buffers: a read must write every byte, holes too
                    v.read(off, got, 0, len);
                    assertArrayEquals(Arrays.copyOfRange(model, (int) off, (int) off + len), got, at + ": read " + off + "+" + len);
                } else {
                    // into a direct buffer, as the NBD server reads large replies, at an offset in it
                    java.nio.ByteBuffer direct = java.nio.ByteBuffer.allocateDirect(len + 7);
                    for (int i = 0; i < len + 7; i++) direct.put(i, (byte) 0x5a);
                    v.read(off, direct, 3, len);
                    byte[] got = new byte[len];
                    direct.get(3, got);
                    assertArrayEquals(Arrays.copyOfRange(model, (int) off, (int) off + len), got, at + ": direct read " + off + "+" + len);
                    assertEquals((byte) 0x5a, direct.get(2), at + ": nothing written before the range");
                    assertEquals((byte) 0x5a, direct.get(len + 3), at + ": nothing written after the range");
                }
                if (step % 50 == 0) {
                    for (BlockStatus st : v.blockStatus(0, size)) {
                        if (!st.hole()) continue;
                        for (long i = st.offset(); i < st.end(); i++) {
                            assertEquals(0, model[(int) i], at + ": hole at " + i + " must read as zero");
                        }
                    }
                }
            }
            v.close();
            assertTrue(checkpoints > 0, "seed=" + seed);
            byte[] finalContent = new byte[size];
            try (var dev = images.open(images.resolve("t/vol"))) {
                dev.read(0, finalContent, 0, size);
            }
            assertArrayEquals(model, finalContent, "seed=" + seed + ": close checkpoints everything");
            if (journalLimit < size) {
                assertTrue(images.log("t/vol").stream().anyMatch(x -> x.message().equals("checkpoint: journal full")),
                        "seed=" + seed + ": a full journal starts a checkpoint");
            }
            assertTrue(images.check(true, dev.cask.common.Progress.NONE).ok(), "seed=" + seed);
        }
    }

    @Test
    void aSecondWriterIsRefusedAndTheLeaseIsReleasedOnClose() throws Exception {
        Path raw = dir.resolve("d.raw");
        Files.write(raw, new byte[1 << 20]);
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.importFile(raw, "a", "raw", 0, false, dev.cask.common.Progress.NONE, w -> {});
            Volume v = images.openVolume("a");
            var e = assertThrows(dev.cask.common.CaskException.Conflict.class, () -> images.openVolume("a"));
            assertTrue(e.getMessage().contains("'a'"), e.getMessage());
            v.write(4096, new byte[]{1, 2, 3}, 0, 3, true);
            v.close();
            assertEquals(2, images.log("a").size(), "close checkpoints the write");
            Volume again = images.openVolume("a");
            assertNotNull(again);
            assertEquals(null, again.checkpoint("nothing"), "no change, no version");
            again.close();
            assertEquals(2, images.log("a").size());
        }
    }

    @Test
    void writesDuringCheckpointsAreNeitherLostNorStale() throws Exception {
        Path raw = dir.resolve("z.raw");
        Files.write(raw, new byte[4 << 20]);
        try (Images images = LocalImages.open(dir.resolve("store"))) {
            images.importFile(raw, "c", "raw", 0, true, dev.cask.common.Progress.NONE, w -> {});
            Volume v = images.openVolume("c");
            int threads = 4;
            int blocksEach = 256;
            byte[][] last = new byte[threads * blocksEach][];
            java.util.List<Thread> ts = new java.util.ArrayList<>();
            java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
            // writers go on until two checkpoints have run beside them (however fast either side is)
            java.util.concurrent.atomic.AtomicInteger checkpoints = new java.util.concurrent.atomic.AtomicInteger();
            for (int t = 0; t < threads; t++) {
                int id = t;
                ts.add(Thread.ofPlatform().start(() -> {
                    Random r = new Random(id);
                    try {
                        for (int n = 0; (n < 1500 || checkpoints.get() < 2) && failure.get() == null; n++) {
                            int blk = id * blocksEach + r.nextInt(blocksEach);
                            byte[] b = new byte[4096];
                            r.nextBytes(b);
                            v.write((long) blk * 4096, b, 0, 4096, false);
                            synchronized (last) {
                                last[blk] = b;
                            }
                        }
                    } catch (Throwable e) {
                        failure.set(e);
                    }
                }));
            }
            int versions = 0;
            while (ts.stream().anyMatch(Thread::isAlive)) {
                if (v.checkpoint("busy") != null) checkpoints.set(++versions);
            }
            for (Thread t : ts) t.join();
            if (failure.get() != null) throw new AssertionError(failure.get());
            v.close();
            assertTrue(versions > 1, "checkpoints ran while writing: " + versions);
            byte[] got = new byte[4 << 20];
            try (var d = images.open(images.resolve("c"))) {
                d.read(0, got, 0, got.length);
            }
            for (int blk = 0; blk < last.length; blk++) {
                if (last[blk] == null) continue;
                assertArrayEquals(last[blk], Arrays.copyOfRange(got, blk * 4096, blk * 4096 + 4096), "block " + blk);
            }
        }
    }

    private static byte[] filled(int value) {
        byte[] b = new byte[4096];
        Arrays.fill(b, (byte) value);
        return b;
    }

    /** A store at {@code storeDir} holding image "a": 1 MiB of zeros, whole disk. */
    private Images blankImage(Path storeDir) throws Exception {
        Path raw = dir.resolve("d.raw");
        Files.write(raw, new byte[1 << 20]);
        Images images = LocalImages.open(storeDir);
        images.importFile(raw, "a", "raw", 0, true, dev.cask.common.Progress.NONE, w -> {});
        return images;
    }

    private static Path journalFile(Path store, String image) throws Exception {
        try (var files = Files.list(store.resolve("journals"))) {
            return files.filter(p -> p.getFileName().toString().startsWith(image + ".journal-")).max(java.util.Comparator.naturalOrder()).orElseThrow();
        }
    }

    /**
     * An unflushed block is rewritten in place (the journal does not grow); a flushed one never is
     * (the rewrite is appended). Crash replay returns the last write either way.
     */
    @Test
    void unflushedBlocksAreOverwrittenInPlaceAndFlushedOnesNever() throws Exception {
        Path storeDir = dir.resolve("store");
        try (Images images = blankImage(storeDir)) {
            Volume v = images.openVolume("a");
            byte[] run = new byte[8 * 4096];
            new Random(1).nextBytes(run);
            v.write(8 * 4096, run, 0, run.length, false);
            long size = Files.size(journalFile(storeDir, "a"));
            new Random(2).nextBytes(run);
            v.write(8 * 4096, run, 0, run.length, false);
            v.write(10 * 4096, filled(3), 0, 4096, false); // one block inside the run
            System.arraycopy(filled(3), 0, run, 2 * 4096, 4096);
            assertEquals(size, Files.size(journalFile(storeDir, "a")), "rewrites of unflushed blocks go in place");
            byte[] got = new byte[run.length];
            v.read(8 * 4096, got, 0, got.length);
            assertArrayEquals(run, got, "reads see the rewrite");
            v.flush();
            v.write(10 * 4096, filled(4), 0, 4096, false);
            long appended = Files.size(journalFile(storeDir, "a"));
            assertTrue(appended > size, "a flushed block is never overwritten: the rewrite is appended");
            v.write(10 * 4096, filled(5), 0, 4096, false);
            assertEquals(appended, Files.size(journalFile(storeDir, "a")), "the appended copy is unflushed: in place again");
            v.flush();
            v.abandon();
            v = images.openVolume("a");
            System.arraycopy(filled(5), 0, run, 2 * 4096, 4096);
            v.read(8 * 4096, got, 0, got.length);
            assertArrayEquals(run, got, "replay returns the last writes");
            v.close();
        }
    }

    /** A crash that tears an in-place rewrite loses only that unflushed rewrite: the block reads as its flushed value. */
    @Test
    void aTornInPlaceRewriteFallsBackToTheFlushedValue() throws Exception {
        Path storeDir = dir.resolve("store");
        try (Images images = blankImage(storeDir)) {
            Volume v = images.openVolume("a");
            v.write(4096, filled(1), 0, 4096, true);          // flushed (FUA)
            v.write(4096, filled(2), 0, 4096, false);         // appended, unflushed
            v.write(4096, filled(3), 0, 4096, false);         // in place over the 2s
            v.abandon();
            Path j = journalFile(storeDir, "a");
            byte[] all = Files.readAllBytes(j);
            int at = -1;
            for (int i = 0; i + 4096 <= all.length && at < 0; i++) {
                if (all[i] == 3 && Arrays.equals(all, i, i + 4096, filled(3), 0, 4096)) at = i;
            }
            assertTrue(at > 0, "the rewrite is in the journal");
            for (int i = at + 2048; i < at + 4096; i++) all[i] = 2; // half old, half new: torn
            Files.write(j, all);
            v = images.openVolume("a");
            byte[] got = new byte[4096];
            v.read(4096, got, 0, 4096);
            assertArrayEquals(filled(1), got, "the torn block is skipped and the flushed value stands");
            v.close();
        }
    }

    /** Readers racing in-place rewrites of the same blocks see whole blocks, never an error or a mix. */
    @Test
    void readsRacingInPlaceRewritesSeeWholeBlocks() throws Exception {
        try (Images images = blankImage(dir.resolve("store"))) {
            Volume v = images.openVolume("a");
            for (int b = 0; b < 16; b++) v.write(b * 4096L, filled(1), 0, 4096, false);
            java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
            java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
            java.util.List<Thread> ts = new java.util.ArrayList<>();
            for (int t = 0; t < 2; t++) {
                int id = t;
                ts.add(Thread.ofPlatform().start(() -> {
                    Random r = new Random(id);
                    try {
                        while (!stop.get()) {
                            byte[] run = new byte[4 * 4096];
                            int first = r.nextInt(13);
                            for (int k = 0; k < 4; k++) Arrays.fill(run, k * 4096, (k + 1) * 4096, (byte) (1 + r.nextInt(200)));
                            v.write(first * 4096L, run, 0, run.length, false);
                        }
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    }
                }));
                ts.add(Thread.ofPlatform().start(() -> {
                    Random r = new Random(id + 10);
                    byte[] got = new byte[4096];
                    try {
                        while (!stop.get()) {
                            int b = r.nextInt(16);
                            v.read(b * 4096L, got, 0, 4096);
                            for (int i = 1; i < 4096; i++) {
                                if (got[i] != got[0]) throw new AssertionError("block " + b + " read torn: byte " + i + " is " + got[i] + ", byte 0 is " + got[0]);
                            }
                        }
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    }
                }));
            }
            Thread.sleep(1500);
            stop.set(true);
            for (Thread t : ts) t.join();
            if (failure.get() != null) throw new AssertionError(failure.get());
            v.close();
        }
    }
}
