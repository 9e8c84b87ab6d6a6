package dev.cask.volume;

import dev.cask.common.CaskException;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Optional;

/**
 * {@link Leases} as exclusive locks on files: image {@code NAME}'s lease is a lock on
 * {@code DIR/NAME.lease} ('/' in the name spelled '+', which names never contain), the file
 * left in place between holders. The lock goes with the process that holds it (kill -9
 * included), so a dead holder never keeps an image. It keeps the processes of one host apart,
 * nothing more: two hosts sharing a store need the shared catalog's leases. No take-over while
 * held, so the epoch is always 0 and {@link Lease#check} never fails.
 *
 * <p>Safe from any thread; the only state is the directory and the set of leases held through
 * this object, which {@link #close} releases.
 */
public final class FileLeases implements Leases {
    private final Path dir;
    private final java.util.Set<Held> held = java.util.concurrent.ConcurrentHashMap.newKeySet();

    public FileLeases(Path dir) {
        this.dir = dir;
    }

    Path file(String image) {
        return dir.resolve(image.replace('/', '+') + ".lease");
    }

    @Override
    public String where() {
        return dir.toString();
    }

    @Override
    public Optional<Lease> tryTake(String image) {
        Path p = file(image);
        try {
            Files.createDirectories(dir);
            FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            FileLock lk;
            try {
                lk = ch.tryLock();
            } catch (OverlappingFileLockException e) {
                lk = null;
            }
            if (lk == null) {
                ch.close();
                return Optional.empty();
            }
            Held h = new Held(image, p, ch, lk, held);
            held.add(h);
            return Optional.of(h);
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot take its lease " + p + ": " + e.getMessage(), e);
        }
    }

    @Override
    public boolean isHeld(String image) {
        Path p = file(image);
        if (!Files.exists(p)) return false;
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            FileLock lk = ch.tryLock();
            if (lk == null) return true;
            lk.release();
            return false;
        } catch (OverlappingFileLockException e) {
            return true;
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot check its lease " + p + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        for (Held h : java.util.List.copyOf(held)) h.close();
    }

    private record Held(String image, Path path, FileChannel channel, FileLock lock, java.util.Set<Held> heldBy) implements Lease {
        @Override
        public boolean equals(Object o) {
            return this == o; // identity: the set of held leases holds this record, which must not hash it
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(this);
        }

        @Override
        public long epoch() {
            return 0;
        }

        @Override
        public void check() {
            // a file lock is never taken over while its process lives
        }

        @Override
        public void close() {
            heldBy.remove(this);
            try {
                if (lock.isValid()) lock.release();
                channel.close();
            } catch (IOException e) {
                throw new CaskException.Io("image '" + image + "': cannot release its lease " + path + ": " + e.getMessage(), e);
            }
        }
    }
}
