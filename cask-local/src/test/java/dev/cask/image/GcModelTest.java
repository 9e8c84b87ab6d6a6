package dev.cask.image;

import dev.cask.local.LocalImages;
import dev.cask.catalog.Image;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.catalog.VersionKind;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.local.LocalChunkStore;
import dev.cask.volume.Volume;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Model-based test of the lifecycle: random sequences of imports (disks with blocks shared between
 * images, zero blocks, compressible and incompressible ones, and blocks, or whole disks, copied
 * from versions that were removed: dedup against garbage; some with an MBR, cut into several
 * extents), imports as a new version, clones, writes through open volumes, checkpoints, crashes
 * of a volume (its journal left for the next open or command to fold into a version), snapshots,
 * rollbacks, protection, rm of an image, rm
 * of a version ({@code NAME@VER}), prune with a random policy, gc (a dry run first at times; a
 * compaction threshold from 0, which rewrites every pack it may, to off; small packs so that
 * compaction really rewrites them) and reopening the whole store, against an in-memory model of
 * what every kept version holds.
 *
 * <p>After every operation the catalog must list exactly the model's images, heads and versions
 * (and a removal the catalog refuses must have a reason the model knows: the head, protected, a
 * clone's origin, an open volume's base). After every gc, after every reopen and at the end, every
 * kept version exports exactly the model's bytes (through the stream and the file export paths,
 * alternately), every open volume reads back its model, and {@code check --deep} finds no problem.
 *
 * <p>Seeded: each seed picks the store's knobs (pack limit 48 KiB to 256 KiB, segments off to
 * 1 MiB, plain cache on or off, the index's recent table merged into the settled one at its
 * default size or after every 16 or 256 new entries: an incremental sweep that scanned only the
 * recent table when a merge had moved entries it must look at would leave garbage the full scan
 * after it finds) and the operations. A failure names the seed and lists every
 * operation up to it; {@code -Dcask.seed=N} replays that seed alone (wall-clock time can only
 * change what a calendar rule of prune keeps when an hour boundary passes during the run),
 * {@code -Dcask.gcmodel.steps=N} sets the length of a run (default 200), {@code -Dcask.gcmodel.random=N} the
 * number of random seeds run after the fixed ones (default 1).
 */
class GcModelTest {
    @TempDir
    Path tmp;

    static Stream<Long> seeds() {
        Long given = Long.getLong("cask.seed");
        if (given != null) return Stream.of(given);
        int more = Integer.getInteger("cask.gcmodel.random", 1); // a soak: -Dcask.gcmodel.random=100
        return Stream.concat(Stream.of(1L, 2L, 3L, 4L, 5L, 6L), new Random().longs(more).boxed());
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void everyKeptVersionReadsBackAfterEveryGc(long seed) throws Exception {
        Path where = dev.cask.powercut.PowerCut.scratch(tmp); // a tmpfs when there is one: fsyncs cost nothing there
        try {
            new Run(seed, where).run(Integer.getInteger("cask.gcmodel.steps", 200));
        } finally {
            dev.cask.powercut.PowerCut.delete(where);
        }
    }

    /** What the model knows of an image. */
    static final class Img {
        final TreeMap<Integer, byte[]> versions = new TreeMap<>();
        final Set<Integer> protectedVersions = new HashSet<>();
        int head;
        /** The version it was cloned from, while that version's image exists. */
        VersionKey origin;
        Volume vol;
        /** The open volume's content (its writes on top of its base). */
        byte[] live;
        /** A crash left a journal (a volume abandoned after a flush). */
        boolean crashed;
        /** The content that journal holds when it has writes (folding it makes a version), else null. */
        byte[] pending;
    }

    static final class Run {
        static final int BLOCK = 4096;
        final long seed;
        final Random rnd;
        final Path dir;
        final Path scratch;
        final LocalChunkStore.Options options;
        /** The index's {@code cask.index.merge-rows} (0: its default). */
        final long mergeRows;
        final boolean plainCache;
        final TreeMap<String, Img> model = new TreeMap<>();
        final List<String> ops = new ArrayList<>();
        /** Contents of versions made so far, kept and removed (the last 24): sources of shared blocks. */
        final List<byte[]> recent = new ArrayList<>();
        /** Contents of removed versions (the last 12): imports and writes dedup against them, swept or not. */
        final List<byte[]> removed = new ArrayList<>();
        final byte[][] pool = new byte[24][];
        Images images;
        int names;
        int gcs;
        /** Collections that swept incrementally (after a complete one). */
        int incremental;
        /** Collections that marked by difference from the previous one in the same process. */
        int byDifference;
        /**
         * Counted collections that had another collection (not a dry run) before them since the store
         * was last opened: only those can mark by difference (what a collection marked is kept by the
         * open store, and a reopen forgets it).
         */
        int couldMarkByDifference;
        /** A collection (not a dry run) ran since the store was last opened. */
        boolean collectedSinceOpen;
        long freed;
        long packsRewritten;
        long packsDeleted;
        long recompressed;
        int exports;

        Run(long seed, Path tmp) {
            this.seed = seed;
            this.rnd = new Random(seed);
            this.dir = tmp.resolve("store-" + Long.toUnsignedString(seed));
            this.scratch = tmp.resolve("scratch-" + Long.toUnsignedString(seed));
            long packLimit = new long[] {48 << 10, 96 << 10, 256 << 10}[rnd.nextInt(3)];
            int segment = new int[] {0, 16 << 10, 64 << 10, 1 << 20}[rnd.nextInt(4)];
            this.options = new LocalChunkStore.Options(1, packLimit, false, segment, 3, 0);
            this.plainCache = rnd.nextBoolean();
            this.mergeRows = new long[] {0, 16, 256}[new Random(seed ^ 0x6d65726765L).nextInt(3)]; // its own draw: the operations stay those of the seed
            for (int i = 0; i < pool.length; i++) pool[i] = i % 2 == 0 ? noise() : text();
        }

        void run(int steps) throws Exception {
            String knobs = "pack limit " + options.packLimit() + ", segments " + options.segmentBytes() + ", plain cache " + plainCache
                    + ", merge rows " + mergeRows;
            System.out.println("GcModelTest seed " + seed + ": " + knobs);
            String before = System.getProperty("cask.cache.bytes");
            String mergeBefore = System.getProperty("cask.index.merge-rows");
            if (!plainCache) System.setProperty("cask.cache.bytes", "0");
            System.setProperty("cask.index.merge-rows", Long.toString(mergeRows));
            try {
                Files.createDirectories(scratch);
                images = open();
                for (int step = 0; step < steps; step++) step(step);
                log("end: close every volume, verify");
                for (Img m : model.values()) if (m.vol != null) closeVolume(nameOf(m), m);
                verifyAll("at the end");
                log("end: open every volume a crash left (replaying its journal), verify, close");
                for (var e : model.entrySet()) {
                    Img m = e.getValue();
                    if (!m.crashed) continue;
                    openVolume("    ", e.getKey(), m);
                    byte[] got = new byte[m.live.length];
                    m.vol.read(0, got, 0, got.length);
                    assertArrayEquals(m.live, got, "the replayed journal of " + e.getKey());
                    closeVolume(e.getKey(), m);
                }
                log("end: reopen, gc, verify");
                images.close();
                images = open();
                gc(0.0, false);
                if (gcs >= 3) assertTrue(incremental > 0, gcs + " gcs, none incremental");
                if (couldMarkByDifference >= 3) {
                    assertTrue(byDifference > 0, gcs + " gcs, " + couldMarkByDifference + " of them after another in the same open store, none marked by difference");
                }
                System.out.println("GcModelTest seed " + seed + ": " + steps + " steps, " + gcs + " gcs (" + incremental + " incremental, " + byDifference + " marked by difference of "
                        + couldMarkByDifference + " that could) freed " + freed + " chunks, "
                        + packsRewritten + " packs rewritten, " + packsDeleted + " deleted whole, " + recompressed + " recompressed, " + exports + " exports checked");
                if (Boolean.getBoolean("cask.gcmodel.print")) System.out.println("operations:\n  " + String.join("\n  ", ops));
            } catch (Throwable t) {
                throw new AssertionError("GcModelTest seed=" + seed + " (replay with -Dcask.seed=" + seed + "; " + knobs + ") failed at: "
                        + (ops.isEmpty() ? "start" : ops.getLast()) + "\n" + t + "\noperations:\n  " + String.join("\n  ", ops), t);
            } finally {
                if (images != null) {
                    try {
                        for (Img m : model.values()) if (m.vol != null) m.vol.close();
                        images.close();
                    } catch (RuntimeException ignored) {
                        // already failing
                    }
                }
                if (before == null) System.clearProperty("cask.cache.bytes");
                else System.setProperty("cask.cache.bytes", before);
                if (mergeBefore == null) System.clearProperty("cask.index.merge-rows");
                else System.setProperty("cask.index.merge-rows", mergeBefore);
            }
        }

        Images open() {
            collectedSinceOpen = false;
            Images i = LocalImages.open(dir, options);
            i.withLiveWriters(new LiveWriters() {
                @Override
                public OptionalInt checkpoint(String image, String message, boolean always) {
                    return checkpoint(image, message, always, VersionKind.AUTO);
                }

                /** As a server does: the open volume checkpoints, and the model learns the version. */
                @Override
                public OptionalInt checkpoint(String image, String message, boolean always, VersionKind kind) {
                    Img m = model.get(image);
                    if (m == null || m.vol == null) return OptionalInt.empty();
                    Version v = m.vol.checkpoint(message, always, kind);
                    if (v == null) return OptionalInt.of(m.vol.baseVersion().number());
                    committed(m, v.number(), m.live.clone());
                    ops.add("    (" + image + " checkpointed for it: version " + v.number() + ")");
                    return OptionalInt.of(v.number());
                }
            });
            return i;
        }

        void log(String s) {
            ops.add(s);
        }

        // ------------------------------------------------------------ content

        byte[] noise() {
            byte[] b = new byte[BLOCK];
            rnd.nextBytes(b);
            return b;
        }

        byte[] text() {
            byte[] b = new byte[BLOCK];
            String line = "block " + rnd.nextInt(1 << 20) + " of words that compress: the quick brown fox " + rnd.nextInt(1000) + "\n";
            byte[] l = line.getBytes(StandardCharsets.US_ASCII);
            for (int i = 0; i < BLOCK; i++) b[i] = l[i % l.length];
            return b;
        }

        /** A 4 KiB block as disks have them: zeros, shared, copied from another version (maybe garbage), text, noise. */
        byte[] block() {
            int r = rnd.nextInt(100);
            if (r < 15) return new byte[BLOCK];
            if (r < 35) return pool[rnd.nextInt(pool.length)];
            if (r < 50) {
                List<byte[]> from = !removed.isEmpty() && rnd.nextBoolean() ? removed : recent;
                if (!from.isEmpty()) {
                    byte[] src = from.get(rnd.nextInt(from.size()));
                    int at = BLOCK * rnd.nextInt(src.length / BLOCK);
                    return Arrays.copyOfRange(src, at, at + BLOCK);
                }
            }
            if (r < 75) return text();
            return noise();
        }

        byte[] disk(int size) {
            byte[] d = new byte[size];
            for (int at = 0; at < size; at += BLOCK) System.arraycopy(block(), 0, d, at, Math.min(BLOCK, size - at));
            return d;
        }

        /** A copy of {@code d} whose first sector is an MBR with one partition from sector 63 to 16 sectors before the end. */
        static byte[] withMbr(byte[] d) {
            byte[] b = d.clone();
            Arrays.fill(b, 446, 512, (byte) 0);
            int count = b.length / 512 - 63 - 16;
            b[446 + 4] = (byte) 0x83;
            b[446 + 8] = 63;
            for (int i = 0; i < 4; i++) b[446 + 12 + i] = (byte) (count >>> (8 * i));
            b[510] = 0x55;
            b[511] = (byte) 0xaa;
            return b;
        }

        int size() {
            int s = (1 + rnd.nextInt(8)) * (64 << 10);
            if (rnd.nextInt(5) == 0) s += 512 * (1 + rnd.nextInt(7)); // a disk that ends mid-block
            return s;
        }

        void remember(byte[] content, List<byte[]> list, int max) {
            list.add(content);
            if (list.size() > max) list.removeFirst();
        }

        void committed(Img m, int number, byte[] content) {
            m.versions.put(number, content);
            m.head = number;
            remember(content, recent, 24);
        }

        void dropped(byte[] content) {
            if (content != null) remember(content, removed, 12);
        }

        // ------------------------------------------------------------ operations

        String newName() {
            String n = "vm-" + names++;
            return rnd.nextInt(3) == 0 ? "team/" + n : n;
        }

        String nameOf(Img m) {
            for (var e : model.entrySet()) if (e.getValue() == m) return e.getKey();
            throw new IllegalStateException();
        }

        String anyImage() {
            List<String> all = new ArrayList<>(model.keySet());
            return all.get(rnd.nextInt(all.size()));
        }

        int anyVersion(Img m) {
            List<Integer> all = new ArrayList<>(m.versions.keySet());
            return all.get(rnd.nextInt(all.size()));
        }

        void step(int step) throws Exception {
            String at = "#" + step + " ";
            int r = rnd.nextInt(1000);
            boolean full = model.size() >= 10;
            if (model.isEmpty() || (r < 90 && !full)) {
                importNew(at);
            } else if (r < 90 || (r >= 130 && r < 170 && full) || (r >= 590 && r < 640)) {
                rmImage(at, anyImage());
            } else if (r < 130) {
                importAsVersion(at, anyImage());
            } else if (r < 170) {
                cloneImage(at, anyImage());
            } else if (r < 380) {
                write(at);
            } else if (r < 470) {
                checkpoint(at);
            } else if (r < 500) {
                snapshot(at, anyImage());
            } else if (r < 530) {
                String n = openVolumes().isEmpty() ? anyImage() : openVolumes().get(rnd.nextInt(openVolumes().size()));
                Img m = model.get(n);
                if (m.vol != null && rnd.nextInt(3) == 0) {
                    log(at + "crash volume " + n + " (flushed, not checkpointed)");
                    crash(m);
                } else {
                    log(at + "close volume " + n);
                    if (m.vol != null) closeVolume(n, m);
                }
            } else if (r < 560) {
                rollback(at, anyImage());
            } else if (r < 590) {
                protect(at, anyImage());
            } else if (r < 760) {
                rmVersion(at, anyImage());
            } else if (r < 830) {
                prune(at);
            } else if (r < 900) {
                double threshold = new double[] {0.0, 0.05, 0.2, 0.5, 2.0}[rnd.nextInt(5)];
                log(at + "gc, compaction threshold " + threshold);
                gc(threshold, rnd.nextInt(4) == 0);
            } else if (r < 940) {
                log(at + "reopen the store");
                reopen();
            } else {
                String n = anyImage();
                Img m = model.get(n);
                int v = anyVersion(m);
                log(at + "export " + n + "@" + v);
                exportEquals(n, v, m.versions.get(v), at);
            }
            consistent(at);
        }

        List<String> openVolumes() {
            return model.entrySet().stream().filter(e -> e.getValue().vol != null).map(Map.Entry::getKey).toList();
        }

        void importNew(String at) throws Exception {
            String name = newName();
            byte[] content = !removed.isEmpty() && rnd.nextInt(8) == 0 ? removed.get(rnd.nextInt(removed.size())) : disk(size());
            int bs = rnd.nextInt(6) == 0 ? 8192 : BLOCK;
            boolean stream = rnd.nextBoolean();
            log(at + "import " + name + " (" + content.length + " bytes, block " + bs + (stream ? ", stream" : ", file") + ")");
            Version v;
            if (stream) {
                v = images.importStream(new ByteArrayInputStream(content), name, bs, Progress.NONE);
            } else if (rnd.nextInt(3) > 0) {
                Path src = scratch.resolve("src.raw");
                Files.write(src, content);
                v = images.importFile(src, name, "raw", bs, true, Progress.NONE, w -> {});
            } else { // an MBR with a partition at sector 63: three extents, each a tree of its own
                content = withMbr(content);
                Path src = scratch.resolve("src.raw");
                Files.write(src, content);
                v = images.importFile(src, name, "raw", 0, false, Progress.NONE, w -> {});
                assertEquals(3, dev.cask.tree.Layout.decode(v.content()).extents().size(), "extents of " + name);
                ops.add("    (with an MBR: 3 extents)");
            }
            Img m = new Img();
            model.put(name, m);
            committed(m, v.number(), content);
        }

        void importAsVersion(String at, String name) throws Exception {
            Img m = model.get(name);
            byte[] content = rnd.nextBoolean() && !removed.isEmpty() ? removed.get(rnd.nextInt(removed.size())) : disk(size());
            if (rnd.nextBoolean()) { // mostly the same disk, a few blocks changed: a backup of it
                byte[] base = m.versions.get(m.head);
                content = base.clone();
                for (int k = rnd.nextInt(4); k >= 0; k--) {
                    int b = rnd.nextInt(content.length / BLOCK);
                    System.arraycopy(block(), 0, content, b * BLOCK, BLOCK);
                }
            }
            log(at + "import as a version of " + name + " (" + content.length + " bytes)" + (m.vol != null ? ": refused, open" : ""));
            Path src = scratch.resolve("src.raw");
            Files.write(src, content);
            try {
                ImageAdmin.Imported r = new ImageAdmin(images).importAsVersion(src, name, "raw", 0, true, false, "backup", Progress.NONE, w -> {});
                assertTrue(m.vol == null, "import as a version of an image open read-write went through");
                folded(name, m);
                committed(m, r.version().number(), content);
            } catch (CaskException.Conflict e) {
                assertTrue(m.vol != null, "refused: " + e.getMessage());
            }
        }

        void cloneImage(String at, String src) {
            Img s = model.get(src);
            boolean head = rnd.nextBoolean();
            String ref = head ? src : src + "@" + anyVersion(s);
            String name = newName();
            log(at + "clone " + ref + " as " + name);
            Images.Current c = images.cloneImage(ref, name);
            if (head) folded(src, s);
            VersionKey origin = c.version().parent();
            Img m = new Img();
            m.origin = origin;
            model.put(name, m);
            committed(m, c.version().number(), model.get(origin.image()).versions.get(origin.number()));
            if (head) assertEquals(s.head, origin.number(), "a clone of the head clones the current content");
        }

        Img openOne(String at) {
            List<String> open = openVolumes();
            if (!open.isEmpty() && rnd.nextInt(4) > 0) return model.get(open.get(rnd.nextInt(open.size())));
            String name = anyImage();
            Img m = model.get(name);
            if (m.vol == null) openVolume(at, name, m);
            return m;
        }

        void openVolume(String at, String name, Img m) {
            log(at + "open volume " + name + (m.crashed ? " (replays the crash's journal)" : ""));
            m.vol = images.openVolume(name);
            m.live = m.pending != null ? m.pending.clone() : m.versions.get(m.head).clone();
            m.crashed = false;
            m.pending = null;
            assertEquals(m.head, m.vol.baseVersion().number());
        }

        void write(String at) {
            Img m = openOne(at);
            String name = nameOf(m);
            int n = 1 + rnd.nextInt(12);
            StringBuilder what = new StringBuilder(at + "write " + name + ":");
            for (int k = 0; k < n; k++) {
                int size = m.live.length;
                int off;
                int len;
                byte[] data;
                if (rnd.nextBoolean()) { // whole blocks: the checkpoint's chunks may dedup (against garbage too)
                    off = BLOCK * rnd.nextInt(size / BLOCK);
                    len = Math.min(BLOCK * (1 + rnd.nextInt(3)), size - off);
                    data = new byte[len];
                    for (int p = 0; p < len; p += BLOCK) System.arraycopy(block(), 0, data, p, Math.min(BLOCK, len - p));
                } else {
                    off = rnd.nextInt(size);
                    len = 1 + rnd.nextInt(Math.min(3 * BLOCK, size - off));
                    data = new byte[len];
                    if (rnd.nextInt(4) > 0) rnd.nextBytes(data);
                }
                if (rnd.nextInt(8) == 0) {
                    what.append(" zero ").append(off).append('+').append(len);
                    m.vol.zero(off, len, false);
                    Arrays.fill(m.live, off, off + len, (byte) 0);
                } else {
                    boolean fua = rnd.nextInt(10) == 0;
                    what.append(" ").append(off).append('+').append(len).append(fua ? " fua" : "");
                    m.vol.write(off, data, 0, len, fua);
                    System.arraycopy(data, 0, m.live, off, len);
                }
            }
            if (rnd.nextInt(4) == 0) {
                what.append(", flush");
                m.vol.flush();
            }
            log(what.toString());
            if (rnd.nextInt(3) == 0) checkpoint(at, m);
        }

        void checkpoint(String at) {
            checkpoint(at, openOne(at));
        }

        void checkpoint(String at, Img m) {
            String name = nameOf(m);
            boolean always = rnd.nextInt(5) == 0;
            log(at + "checkpoint " + name + (always ? " (always)" : ""));
            Version v = m.vol.checkpoint("model checkpoint", always);
            if (v != null) committed(m, v.number(), m.live.clone());
        }

        void snapshot(String at, String name) {
            log(at + "snapshot " + name);
            Img m = model.get(name);
            int before = m.head;
            Images.Snapshot s = images.snapshot(name, "model snapshot");
            folded(name, m);
            // a new version came through the volume's checkpoint (the model knows it); else the head holds it
            assertEquals(m.head, s.version().number(), "snapshot of " + name + " (head was " + before + ")");
        }

        void crash(Img m) {
            m.vol.flush();
            m.pending = m.vol.isDirty() ? m.live.clone() : null;
            dev.cask.volume.Crash.abandon(m.vol);
            m.vol = null;
            m.live = null;
            m.crashed = true;
        }

        /** A command settled the image: the journal a crash left became a version (when it had writes), and is gone. */
        void folded(String name, Img m) {
            if (!m.crashed) return;
            if (m.pending != null) {
                committed(m, m.head + 1, m.pending);
                ops.add("    (" + name + ": the crash's journal folded into version " + m.head + ")");
            }
            m.crashed = false;
            m.pending = null;
        }

        void closeVolume(String name, Img m) {
            int before = images.image(name).head();
            m.vol.close();
            m.vol = null;
            int after = images.image(name).head();
            if (after != before) {
                assertEquals(before + 1, after);
                committed(m, after, m.live);
                ops.add("    (" + name + " checkpointed on close: version " + after + ")");
            }
            m.live = null;
        }

        void rollback(String at, String name) {
            Img m = model.get(name);
            int to = anyVersion(m);
            log(at + "rollback " + name + " to " + to + (m.vol != null ? ": refused, open" : ""));
            try {
                Version v = images.rollback(name, String.valueOf(to));
                assertTrue(m.vol == null, "rollback of an open image went through");
                folded(name, m);
                committed(m, v.number(), m.versions.get(to));
            } catch (CaskException.Conflict e) {
                assertTrue(m.vol != null, "refused: " + e.getMessage());
            }
        }

        void protect(String at, String name) {
            Img m = model.get(name);
            int v = anyVersion(m);
            boolean on = !m.protectedVersions.contains(v);
            log(at + (on ? "protect " : "unprotect ") + name + "@" + v);
            images.catalog().setProtected(name, v, on);
            if (on) m.protectedVersions.add(v);
            else m.protectedVersions.remove(v);
        }

        void rmImage(String at, String name) {
            Img m = model.get(name);
            if (m.vol != null && rnd.nextBoolean()) {
                log(at + "close volume " + name);
                closeVolume(name, m);
            }
            log(at + "rm " + name + (m.vol != null ? ": refused, open" : ""));
            try {
                images.remove(name);
                assertTrue(m.vol == null, "rm of an open image went through");
            } catch (CaskException.Conflict e) {
                assertTrue(m.vol != null, "refused: " + e.getMessage());
                return;
            }
            model.remove(name);
            for (byte[] c : m.versions.values()) dropped(c);
            for (Img o : model.values()) if (o.origin != null && o.origin.image().equals(name)) o.origin = null;
        }

        /** Why the catalog must keep version {@code n} of {@code name}, or null. */
        String mustKeep(String name, int n) {
            Img m = model.get(name);
            if (n == m.head) return "the head";
            if (m.protectedVersions.contains(n)) return "protected";
            for (var e : model.entrySet()) {
                if (new VersionKey(name, n).equals(e.getValue().origin)) return "origin of clone '" + e.getKey() + "'";
            }
            return null;
        }

        void rmVersion(String at, String name) {
            Img m = model.get(name);
            List<Integer> older = new ArrayList<>(m.versions.headMap(m.head).keySet());
            int n = rnd.nextInt(8) == 0 || older.isEmpty() ? m.head : older.get(rnd.nextInt(older.size()));
            String keep = mustKeep(name, n);
            log(at + "rm " + name + "@" + n + (keep != null ? ": refused, " + keep : ""));
            Pruner pruner = new Pruner(images, Pruner.InUse.NONE, Clock.systemUTC(), ZoneOffset.UTC);
            try {
                pruner.remove(name, n);
            } catch (CaskException.Conflict e) {
                if (keep != null) {
                    assertTrue(e.getMessage().contains(keep), "refused for another reason than " + keep + ": " + e.getMessage());
                } else {
                    // an open volume's journals name their base versions: those stay
                    assertTrue((m.vol != null || m.crashed) && images.journals().baseVersions(name).contains(n) && e.getMessage().contains("in use"),
                            "refused: " + e.getMessage());
                    ops.add("    (refused: in use by a journal)");
                }
                return;
            }
            assertEquals(null, keep, "rm " + name + "@" + n + " went through");
            dropped(m.versions.remove(n));
        }

        void prune(String at) {
            RetentionPolicy p = new RetentionPolicy(rnd.nextInt(4), rnd.nextInt(6) == 0 ? Duration.ofDays(1) : null, rnd.nextInt(3),
                    rnd.nextInt(2), rnd.nextInt(2), 0, 0, rnd.nextBoolean());
            String prefix = switch (rnd.nextInt(3)) {
                case 0 -> "";
                case 1 -> "team";
                default -> anyImage();
            };
            boolean count = rnd.nextInt(3) == 0;
            log(at + "prune '" + prefix + "' " + p.format() + (count ? " (counting bytes)" : ""));
            Pruner.Report r = new Pruner(images, Pruner.InUse.NONE, Clock.systemUTC(), ZoneOffset.UTC).prune(prefix, p, false, count);
            for (Pruner.ImageResult ir : r.images()) {
                Img m = model.get(ir.image());
                for (Version v : ir.removed()) {
                    String keep = mustKeep(ir.image(), v.number());
                    assertEquals(null, keep, "prune removed " + v.key());
                    assertTrue(m.vol == null || v.number() != m.vol.baseVersion().number(), "prune removed the open volume's base " + v.key());
                    assertTrue(!m.crashed || v.number() != m.head, "prune removed the base of a crash's journal " + v.key());
                    dropped(m.versions.remove(v.number()));
                }
                if (!ir.removed().isEmpty()) ops.add("    (" + ir.image() + ": removed " + ir.removed().stream().map(Version::number).toList() + ")");
            }
        }

        void gc(double threshold, boolean dryFirst) {
            long chunks = LocalImages.store(images).chunkCount();
            GarbageCollector.Result dry = null;
            if (dryFirst) {
                dry = images.collector().run(true, m -> {}, Progress.NONE);
                assertEquals(chunks, LocalImages.store(images).chunkCount(), "a dry run changed the index");
            }
            // a third of the gcs also recompress (their own draw: the seed's operations stay what they were)
            boolean recompress = new Random(seed ^ 0x7265636fL ^ gcs).nextInt(3) == 0;
            if (collectedSinceOpen) couldMarkByDifference++;
            GarbageCollector.Result r = images.collector().compactThreshold(threshold).recompress(recompress).run(false, m -> {}, Progress.NONE);
            collectedSinceOpen = true;
            gcs++;
            if (recompress) recompressed += r.recompressed().packsRead();
            freed += r.chunksFreed();
            packsRewritten += r.compacted().packsRewritten();
            packsDeleted += r.compacted().packsDeleted();
            ops.add("    (freed " + r.chunksFreed() + " chunks, " + r.compacted().packsRewritten() + " packs rewritten, "
                    + r.compacted().packsDeleted() + " deleted, " + r.compacted().chunksCopied() + " chunks copied"
                    + (recompress ? ", " + r.recompressed().packsRead() + " packs recompressed" : "") + ")");
            assertEquals(0, r.compacted().packsDamaged(), r.toString());
            assertEquals(chunks - r.chunksFreed(), LocalImages.store(images).chunkCount(), r.toString());
            if (dry != null) assertEquals(dry.chunksFreed(), r.chunksFreed(), "the dry run said " + dry + ", the gc did " + r);
            if (r.incremental()) incremental++;
            if (r.markedByDifference()) byDifference++;
            // an incremental sweep must free all a full one would: a dry run scans the whole index
            GarbageCollector.Result after = images.collector().run(true, m -> {}, Progress.NONE);
            assertEquals(0, after.chunksFreed(), "a full scan after the " + (r.incremental() ? "incremental " : "") + "gc " + r
                    + " finds garbage it left: " + after);
            verifyAll("after gc " + r);
            if (rnd.nextInt(4) == 0) {
                boolean fullAgain = rnd.nextBoolean();
                GarbageCollector.Result again = images.collector().full(fullAgain).compactThreshold(threshold).run(false, m -> {}, Progress.NONE);
                assertEquals(0, again.chunksFreed(), "a second gc found garbage the first left: " + again);
                assertEquals(!fullAgain, again.incremental(), "a gc right after a complete one sweeps incrementally unless asked not to: " + again);
            }
        }

        void reopen() {
            for (var e : model.entrySet()) if (e.getValue().vol != null) closeVolume(e.getKey(), e.getValue());
            images.close();
            images = null;
            images = open();
            verifyAll("after reopen");
            for (var e : model.entrySet()) if (rnd.nextInt(4) == 0) openVolume("    ", e.getKey(), e.getValue());
        }

        // ------------------------------------------------------------ checks

        /** The catalog lists exactly the model's images, heads and versions. */
        void consistent(String at) {
            assertEquals(model.keySet(), new TreeSet<>(images.list("").stream().map(Image::name).toList()), at + "images");
            for (var e : model.entrySet()) {
                Img m = e.getValue();
                assertEquals(m.head, images.image(e.getKey()).head(), at + "head of " + e.getKey());
                assertEquals(m.versions.keySet(), new TreeSet<>(images.log(e.getKey()).stream().map(Version::number).toList()),
                        at + "versions of " + e.getKey());
            }
        }

        void exportEquals(String name, int number, byte[] want, String at) throws Exception {
            Version v = images.catalog().version(name, number);
            byte[] got;
            if (rnd.nextBoolean()) {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                images.export(v, out, Progress.NONE);
                got = out.toByteArray();
            } else {
                Path dest = scratch.resolve("export.raw");
                images.export(v, dest, "raw", false, Progress.NONE);
                got = Files.readAllBytes(dest);
                Files.delete(dest);
            }
            exports++;
            if (!Arrays.equals(want, got)) {
                int first = 0;
                while (first < Math.min(want.length, got.length) && want[first] == got[first]) first++;
                throw new AssertionError(at + ": " + name + "@" + number + " exports other bytes (" + got.length + " bytes, want "
                        + want.length + "; first difference at byte " + first + ")");
            }
        }

        void verifyAll(String at) {
            try {
                for (var e : model.entrySet()) {
                    for (var v : e.getValue().versions.entrySet()) exportEquals(e.getKey(), v.getKey(), v.getValue(), at);
                    Img m = e.getValue();
                    if (m.vol != null) {
                        byte[] got = new byte[m.live.length];
                        m.vol.read(0, got, 0, got.length);
                        assertArrayEquals(m.live, got, at + ": the open volume " + e.getKey() + " reads other bytes");
                    }
                }
            } catch (Exception e) {
                throw new AssertionError(at + ": " + e, e);
            }
            CheckReport c = images.check(true, Progress.NONE);
            assertEquals(List.of(), c.problems().stream().map(CheckReport.Finding::message).toList(), at + ": check --deep");
        }
    }
}
