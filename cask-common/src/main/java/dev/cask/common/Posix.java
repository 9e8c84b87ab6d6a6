package dev.cask.common;

import dev.cask.common.CaskException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The few POSIX calls Java's file API lacks ({@code open}, {@code lseek} with
 * {@code SEEK_DATA}/{@code SEEK_HOLE}/{@code SEEK_END}, {@code fallocate}, {@code close}), through
 * the foreign function API, each with the {@code errno} of the call captured
 * ({@link Linker.Option#captureCallState}): a failed call returns {@code -errno}, never a bare -1,
 * so callers decide on the documented answer ({@code ENXIO}: no data past here) and treat every
 * other error as what it is. Reading {@code errno} after the call instead would read whatever the
 * JVM's own calls left there.
 *
 * <p>Stateless and thread-safe; descriptors are the caller's to close. When the platform lacks a
 * call ({@link #available()} false) every method throws {@link CaskException.Io}.
 */
@SuppressWarnings("restricted") // native calls are the point of this class
public final class Posix {
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_CLOEXEC = 0x80000;
    public static final int SEEK_END = 2;
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;
    public static final int FALLOC_FL_KEEP_SIZE = 1;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;

    // errno values (Linux)
    public static final int ENXIO = 6;
    public static final int EINVAL = 22;
    public static final int ENODEV = 19;
    public static final int ENOSYS = 38;
    public static final int EOPNOTSUPP = 95;

    private static final StructLayout CAPTURE;
    private static final VarHandle ERRNO;
    private static final MethodHandle OPEN;
    private static final MethodHandle LSEEK;
    private static final MethodHandle FALLOCATE;
    private static final MethodHandle CLOSE;
    private static final MethodHandle STRERROR;
    private static final MethodHandle ISATTY;

    static {
        StructLayout capture = null;
        VarHandle errno = null;
        MethodHandle open = null, lseek = null, fallocate = null, close = null, strerror = null, isatty = null;
        try {
            Linker linker = Linker.nativeLinker();
            SymbolLookup libc = linker.defaultLookup();
            Linker.Option ccs = Linker.Option.captureCallState("errno");
            capture = Linker.Option.captureStateLayout();
            errno = capture.varHandle(MemoryLayout.PathElement.groupElement("errno"));
            open = linker.downcallHandle(libc.find("open").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT),
                    ccs, Linker.Option.firstVariadicArg(2));
            lseek = linker.downcallHandle(libc.find("lseek").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT), ccs);
            fallocate = linker.downcallHandle(libc.find("fallocate").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                            ValueLayout.JAVA_LONG), ccs);
            close = linker.downcallHandle(libc.find("close").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT), ccs);
            strerror = linker.downcallHandle(libc.find("strerror").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
            isatty = linker.downcallHandle(libc.find("isatty").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        } catch (Throwable t) {
            open = lseek = fallocate = close = strerror = isatty = null;
        }
        CAPTURE = capture;
        ERRNO = errno;
        OPEN = open;
        LSEEK = lseek;
        FALLOCATE = fallocate;
        CLOSE = close;
        STRERROR = strerror;
        ISATTY = isatty;
    }

    private Posix() {}

    /** True when every call here can be made on this platform. */
    public static boolean available() {
        return CLOSE != null;
    }

    private static void requireAvailable(String what) {
        if (!available()) throw new CaskException.Io(what + ": native calls (open, lseek, fallocate) are not available on this platform", null);
    }

    /** Opens {@code path}; returns the descriptor, or {@code -errno}. */
    public static int open(Path path, int flags) {
        requireAvailable(path.toString());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int fd = (int) OPEN.invokeExact(state, arena.allocateFrom(path.toString()), flags | O_CLOEXEC);
            return fd >= 0 ? fd : -errno(state);
        } catch (Throwable t) {
            throw new CaskException.Io(path + ": open failed: " + t, t);
        }
    }

    /** {@code lseek(fd, offset, whence)}: the new offset, or {@code -errno}. */
    public static long lseek(int fd, long offset, int whence) {
        requireAvailable("lseek");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            long r = (long) LSEEK.invokeExact(state, fd, offset, whence);
            return r >= 0 ? r : -errno(state);
        } catch (Throwable t) {
            throw new CaskException.Io("lseek failed: " + t, t);
        }
    }

    /** {@code fallocate(fd, mode, offset, length)}: 0, or {@code -errno}. */
    public static int fallocate(int fd, int mode, long offset, long length) {
        requireAvailable("fallocate");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment state = arena.allocate(CAPTURE);
            int r = (int) FALLOCATE.invokeExact(state, fd, mode, offset, length);
            return r == 0 ? 0 : -errno(state);
        } catch (Throwable t) {
            throw new CaskException.Io("fallocate failed: " + t, t);
        }
    }

    /** Closes a descriptor; errors are ignored (the descriptor is gone either way). */
    public static void close(int fd) {
        if (fd < 0 || !available()) return;
        try (Arena arena = Arena.ofConfined()) {
            int ignored = (int) CLOSE.invokeExact(arena.allocate(CAPTURE), fd);
        } catch (Throwable t) {
            // nothing to do
        }
    }

    /** True when {@code fd} is a terminal ({@code isatty(3)}); false where the call is missing. */
    public static boolean isatty(int fd) {
        if (ISATTY == null) return false;
        try {
            return (int) ISATTY.invokeExact(fd) == 1;
        } catch (Throwable t) {
            return false;
        }
    }

    /** The C library's text for an errno value, e.g. {@code "Invalid argument"}. */
    public static String strerror(int errno) {
        if (STRERROR != null) {
            try {
                MemorySegment s = (MemorySegment) STRERROR.invokeExact(errno);
                if (!s.equals(MemorySegment.NULL)) return s.reinterpret(1024).getString(0);
            } catch (Throwable ignored) {
                // fall through
            }
        }
        return "errno " + errno;
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }

    /** True when {@code path} (after symbolic links) is a block device node. */
    public static boolean isBlockDevice(Path path) {
        try {
            int mode = (Integer) Files.getAttribute(path, "unix:mode");
            return (mode & 0170000) == 0060000;
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return false;
        }
    }

    /** The size of a block device (or any file), found with {@code lseek(SEEK_END)}. */
    public static long sizeOf(Path path) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) throw new CaskException.Io(path + ": cannot open: " + strerror(-fd), null);
        try {
            long end = lseek(fd, 0, SEEK_END);
            if (end < 0) throw new CaskException.Io(path + ": cannot find its size (lseek SEEK_END): " + strerror((int) -end), null);
            return end;
        } finally {
            close(fd);
        }
    }
}
