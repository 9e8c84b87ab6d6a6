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
 * <p>Stateless apart from the directory; safe from any thread.
 */
public final class FileLeases implements Leases {
    private final Path dir;

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
            return Optional.of(new Held(image, p, ch, lk));
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

    private record Held(String image, Path path, FileChannel channel, FileLock lock) implements Lease {
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
            try {
                if (lock.isValid()) lock.release();
                channel.close();
            } catch (IOException e) {
                throw new CaskException.Io("image '" + image + "': cannot release its lease " + path + ": " + e.getMessage(), e);
            }
        }
    }
}
