package dev.cask.store.local;

import dev.cask.store.ScanSink;
import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Cuts the torn tails that writers which died mid-append (kill -9, a crash, a power cut) left
 * on their packs, so that {@code cask check} does not trip over them forever.
 *
 * <p><b>What a torn tail is.</b> The bytes of a pack after its last whole, valid record or
 * segment, up to the end of the file, in which no valid record or segment starts: the record
 * its writer was appending when it died (a write cut short, or a power cut that kept part of
 * the unsynced pages). Bytes between good records are damage, never a tail, and are left alone.
 *
 * <p><b>Why cutting one is safe.</b> Three rules make it so:
 * <ol>
 *   <li>Only the process that created a pack appends to it, and it holds an exclusive
 *       {@code fcntl} lock on the pack from just after creating it (before the pack has a header)
 *       until it seals it. The lock dies with the process. So a pack whose lock another process
 *       can take has no writer, and never will again: nothing can be appended behind a cut.
 *   <li>A writer keeps a marker {@code packs/NNNNNNNN.open}, made after it took the lock and
 *       deleted after sealing. Only packs with a marker are looked at when a store opens (a
 *       sealed pack is whole: its writer flushed and fsynced it), so opening costs nothing after
 *       a clean shutdown, and one scan of the abandoned pack after a crash.
 *   <li>Index entries are added only after the pack bytes they point at are fsynced, so they
 *       point at whole records. A tail is cut only when no index entry points at or after its
 *       offset (checked, so that damage to a record the index needs is reported by
 *       {@code cask check}, never silently cut away).
 * </ol>
 * A pack shorter than its header (its writer died between creating it and writing the header)
 * is left as it is on a shared open: deleting it could race with a writer that created it and
 * has not locked it yet. {@code cask check --repair} opens the store alone, so it cuts every torn
 * tail ({@link #cutAlone}) and deletes such packs. A cask older than these rules does not lock
 * its packs: do not run one at the same time as this one on the same store.
 *
 * <p>Not thread-safe; called while a store opens and during a repair.
 */
final class PackRecovery {
    private PackRecovery() {}

    static Path markerPath(Path packDir, int pack) {
        return packDir.resolve(String.format("%08d.open", pack));
    }

    private static List<Path> markers(Path packDir) {
        try (Stream<Path> s = Files.list(packDir)) {
            return s.filter(p -> p.getFileName().toString().matches("\\d{8}\\.open")).sorted().toList();
        } catch (IOException e) {
            throw new CaskException.Io("packs " + packDir + ": cannot list: " + e.getMessage(), e);
        }
    }

    /** Cuts the torn tails of packs whose writers died; returns a line per cut. */
    static List<String> cutAbandonedTails(LocalChunkStore store) {
        List<String> lines = new ArrayList<>();
        for (Path marker : markers(store.packDir())) {
            int id = Integer.parseInt(marker.getFileName().toString().substring(0, 8));
            Path pack = store.packPath(id);
            try {
                if (!Files.exists(pack)) { // its writer deleted the pack (nothing in it was synced) and died
                    Files.deleteIfExists(marker);
                    continue;
                }
                try (FileChannel ch = FileChannel.open(pack, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                    FileLock lock;
                    try {
                        lock = ch.tryLock();
                    } catch (OverlappingFileLockException e) {
                        lock = null; // this process writes it
                    }
                    if (lock == null) continue; // a live writer
                    if (ch.size() >= PackFormat.PACK_HEADER) {
                        ScanSink.Damage tail = lastDamage(store, id);
                        if (tail != null && tail.kind() == ScanSink.Damage.Kind.TAIL
                                && store.index().firstEntryAtOrAfter(id, tail.offset()) < 0) {
                            ch.truncate(tail.offset());
                            ch.force(true);
                            lines.add(cutLine(tail));
                        }
                    }
                    Files.deleteIfExists(marker);
                } // closing the channel releases the lock
            } catch (IOException e) {
                throw new CaskException.Io("pack " + id + ": recovery after a writer died failed: " + e.getMessage(), e);
            }
        }
        return lines;
    }

    private static String cutLine(ScanSink.Damage tail) {
        return "pack " + tail.pack() + " at offset " + tail.offset() + ": cut a torn tail of " + tail.length()
                + " bytes (left by a writer that died mid-append; nothing referred to it)";
    }

    /** The last damage a scan of the pack finds, or null. */
    private static ScanSink.Damage lastDamage(LocalChunkStore store, int id) {
        ScanSink.Damage[] last = {null};
        store.scanPack(id, new ScanSink() {
            @Override
            public void chunk(ChunkId cid, ChunkLocation location, java.util.function.Supplier<byte[]> plain) {}

            @Override
            public void problem(String line) {}

            @Override
            public void damage(ScanSink.Damage d) {
                last[0] = d;
            }
        }, Progress.NONE);
        return last[0];
    }

    /**
     * With the store to itself (a rebuild of the index, which indexes no damaged bytes): cuts a
     * torn tail, or deletes a pack shorter than its header. Returns a line saying what it did, or null.
     */
    static String cutAlone(Path pack, ScanSink.Damage last) {
        try {
            if (last.kind() == ScanSink.Damage.Kind.TAIL) {
                try (FileChannel ch = FileChannel.open(pack, StandardOpenOption.WRITE)) {
                    ch.truncate(last.offset());
                    ch.force(true);
                }
                return cutLine(last);
            }
            if (last.kind() == ScanSink.Damage.Kind.HEADER && last.length() < PackFormat.PACK_HEADER) {
                Files.delete(pack);
                return "pack " + last.pack() + ": deleted (" + last.length() + " bytes, shorter than a pack header: its writer died creating it)";
            }
            return null;
        } catch (IOException e) {
            throw new CaskException.Io("pack " + last.pack() + ": cutting a torn tail at offset " + last.offset() + " failed: " + e.getMessage(), e);
        }
    }

    /** Deletes every marker (with the store to itself, no writer is alive). */
    static void deleteMarkers(Path packDir) {
        for (Path m : markers(packDir)) {
            try {
                Files.deleteIfExists(m);
            } catch (IOException e) {
                throw new CaskException.Io("marker " + m + ": cannot delete: " + e.getMessage(), e);
            }
        }
    }
}
