package dev.cask.format;

import dev.cask.common.Posix;

import dev.cask.common.CaskException;

import java.nio.file.Path;

/**
 * Finds the data and the holes of a sparse file with {@code lseek(SEEK_DATA / SEEK_HOLE)},
 * which Java's file API does not offer ({@link Posix}, errno captured with each call).
 *
 * <p>Only the documented answers count: {@code SEEK_DATA} failing with {@code ENXIO} means "no data
 * at or after this offset"; {@code EINVAL} or {@code EOPNOTSUPP} (a block device, a file system
 * without the calls) means the map is unknown, and then everything is data (the importer still
 * finds zero blocks while it reads them). Any other error is an I/O error naming the file: never
 * "no more data", which would import a disk as zeros.
 *
 * <p>Opens its own read-only descriptor on the path (Java does not expose a channel's
 * descriptor). Thread-safe: {@code lseek} on a private descriptor is only used for its return
 * value, and {@link #nextData}/{@link #nextHole} are synchronized.
 */
public final class SparseFiles implements AutoCloseable {
    private final Path path;
    private final int fd;
    private final long size;
    /** Set once the file system has said it cannot map this file: all of it is data. */
    private boolean unmapped;

    private SparseFiles(Path path, int fd, long size) {
        this.path = path;
        this.fd = fd;
        this.size = size;
        this.unmapped = fd < 0;
    }

    /** Opens the map of {@code path}; without the native calls, or for a block device, all is data. */
    public static SparseFiles open(Path path, long size) {
        if (!Posix.available() || Posix.isBlockDevice(path)) return new SparseFiles(path, -1, size);
        int fd = Posix.open(path, Posix.O_RDONLY);
        if (fd < 0) throw new CaskException.Io(path + ": cannot open to map its holes: " + Posix.strerror(-fd), null);
        return new SparseFiles(path, fd, size);
    }

    /** Offset of the first data byte at or after {@code offset}, or {@code size} when none. */
    public synchronized long nextData(long offset) {
        if (offset >= size) return size;
        if (unmapped) return offset;
        long r = Posix.lseek(fd, offset, Posix.SEEK_DATA);
        if (r >= 0) return Math.min(r, size);
        int errno = (int) -r;
        if (errno == Posix.ENXIO) return size; // documented: no data at or after offset
        unsupportedOrFail(errno, offset, "SEEK_DATA");
        return offset;
    }

    /** Offset of the first hole byte at or after {@code offset}, or {@code size} when none. */
    public synchronized long nextHole(long offset) {
        if (offset >= size) return size;
        if (unmapped) return size;
        long r = Posix.lseek(fd, offset, Posix.SEEK_HOLE);
        if (r >= 0) return Math.min(r, size);
        int errno = (int) -r;
        if (errno == Posix.ENXIO) return size; // the file shrank below offset: the rest reads as zeros anyway
        unsupportedOrFail(errno, offset, "SEEK_HOLE");
        return size;
    }

    private void unsupportedOrFail(int errno, long offset, String whence) {
        if (errno == Posix.EINVAL || errno == Posix.EOPNOTSUPP || errno == Posix.ENOSYS) {
            unmapped = true;
            return;
        }
        throw new CaskException.Io(path + ": lseek(" + whence + ") at offset " + offset + " failed: " + Posix.strerror(errno)
                + " (errno " + errno + ")", null);
    }

    @Override
    public synchronized void close() {
        Posix.close(fd);
    }
}
