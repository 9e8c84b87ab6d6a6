package dev.cask.format;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

/**
 * Finds the data and the holes of a sparse file with {@code lseek(SEEK_DATA / SEEK_HOLE)},
 * which Java's file API does not offer, through the foreign function API.
 *
 * <p>Opens its own read-only descriptor on the path (Java does not expose a channel's
 * descriptor). Thread-safe: {@code lseek} on a private descriptor is only used for its
 * return value, and {@link #nextData}/{@link #nextHole} are synchronized. When the platform
 * lacks the calls (or the file system does not support them), the whole file is data.
 */
@SuppressWarnings("restricted") // lseek through the foreign function API is the point of this class
public final class SparseFiles implements AutoCloseable {
    private static final int O_RDONLY = 0;
    private static final int SEEK_DATA = 3;
    private static final int SEEK_HOLE = 4;
    private static final MethodHandle OPEN;
    private static final MethodHandle LSEEK;
    private static final MethodHandle CLOSE;

    static {
        MethodHandle open = null, lseek = null, close = null;
        try {
            Linker linker = Linker.nativeLinker();
            SymbolLookup libc = linker.defaultLookup();
            open = linker.downcallHandle(libc.find("open").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT),
                    Linker.Option.firstVariadicArg(2));
            lseek = linker.downcallHandle(libc.find("lseek").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            close = linker.downcallHandle(libc.find("close").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        } catch (Throwable t) {
            open = lseek = close = null;
        }
        OPEN = open;
        LSEEK = lseek;
        CLOSE = close;
    }

    private final int fd;
    private final long size;

    private SparseFiles(int fd, long size) {
        this.fd = fd;
        this.size = size;
    }

    /** Opens the map of {@code path}; never fails for lack of support (then all is data). */
    public static SparseFiles open(Path path, long size) {
        int fd = -1;
        if (OPEN != null) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment cpath = arena.allocateFrom(path.toString());
                fd = (int) OPEN.invokeExact(cpath, O_RDONLY);
            } catch (Throwable t) {
                fd = -1;
            }
        }
        return new SparseFiles(fd, size);
    }

    /** Offset of the first data byte at or after {@code offset}, or {@code size} when none. */
    public synchronized long nextData(long offset) {
        if (offset >= size) return size;
        if (fd < 0) return offset;
        long r = seek(offset, SEEK_DATA);
        if (r == -2) return offset; // unsupported: treat as data
        return r < 0 ? size : Math.min(r, size);
    }

    /** Offset of the first hole byte at or after {@code offset}, or {@code size} when none. */
    public synchronized long nextHole(long offset) {
        if (offset >= size) return size;
        if (fd < 0) return size;
        long r = seek(offset, SEEK_HOLE);
        if (r < 0) return size;
        return Math.min(r, size);
    }

    private long seek(long offset, int whence) {
        try {
            long r = (long) LSEEK.invokeExact(fd, offset, whence);
            if (r >= 0) return r;
            // ENXIO (no more data) reads as "none"; anything else (EINVAL: unsupported) as unsupported.
            return whence == SEEK_DATA ? -1 : -2;
        } catch (Throwable t) {
            return -2;
        }
    }

    @Override
    public synchronized void close() {
        if (fd >= 0 && CLOSE != null) {
            try {
                int ignored = (int) CLOSE.invokeExact(fd);
            } catch (Throwable t) {
                // nothing to do: the descriptor is gone either way
            }
        }
    }
}
