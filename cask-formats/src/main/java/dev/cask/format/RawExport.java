package dev.cask.format;

import dev.cask.common.Posix;

import dev.cask.common.ByteArrays;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * Writes any {@link BlockDevice} out as raw bytes: to a sparse file (holes are skipped; the file
 * is written under a temporary name, fsynced on request, and renamed over the destination, so a
 * failed export never leaves a half-written file under the real name), or to a stream with holes as zeros.
 * A file is written in windows of 8 MiB of data, one thread per core, each window read whole
 * ({@link dev.cask.tree.LayoutDevice} in streaming mode reads it with one bulk read, so a stored
 * segment that a window covers is decompressed once) and written at its offset; large windows
 * keep segments split between two windows few.
 */
public final class RawExport {
    private static final int WINDOW = 8 << 20;
    private static final int THREADS = Math.max(2, Runtime.getRuntime().availableProcessors());

    private RawExport() {}

    /**
     * Writes {@code dev} to {@code dest}; with {@code fsync} the file is flushed to disk before
     * the rename, otherwise it is left to the page cache, as {@code qemu-img convert} does.
     */
    public static void toFile(BlockDevice dev, Path dest, Progress progress, boolean fsync) {
        if (Posix.isBlockDevice(dest)) {
            toBlockDevice(dev, dest, progress);
            return;
        }
        Path dir = dest.toAbsolutePath().getParent();
        Path tmp = dir.resolve("." + dest.getFileName() + ".cask-tmp");
        long size = dev.size();
        progress.start("export", size);
        try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            writeWindows(dev, out, windows(dev, size, progress, null), progress);
            out.truncate(size);
            extend(tmp, size);
            if (fsync) out.force(true);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new CaskException.Io(dest + ": export failed: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            deleteQuietly(tmp);
            throw e;
        }
        try {
            Files.move(tmp, dest, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new CaskException.Io(dest + ": cannot rename " + tmp + " into place: " + e.getMessage(), e);
        }
        progress.done();
    }

    /**
     * Copies the windows from the device to their offsets in the file, on one thread per core:
     * each takes the next window, reads it whole and writes it with a positional write, so reads
     * and writes of different windows overlap and no thread waits for another's order. The first
     * failure stops the others (each finishes the window it is in) and is thrown once all have stopped.
     */
    private static void writeWindows(BlockDevice dev, FileChannel out, java.util.List<long[]> wins, Progress progress)
            throws IOException {
        int threads = Math.min(THREADS, Math.max(1, wins.size()));
        java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        Runnable copier = () -> {
            byte[] buf = ByteArrays.take(WINDOW); // recycled: fresh memory costs page faults
            try {
                for (int i; failure.get() == null && (i = next.getAndIncrement()) < wins.size(); ) {
                    long[] win = wins.get(i);
                    dev.read(win[0], buf, 0, (int) win[1]);
                    ByteBuffer bb = ByteBuffer.wrap(buf, 0, (int) win[1]);
                    for (long p = win[0]; bb.hasRemaining(); ) p += out.write(bb, p);
                    progress.advance(win[1]);
                }
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            } finally {
                ByteArrays.give(buf);
            }
        };
        Thread[] helpers = new Thread[threads - 1];
        for (int t = 0; t < helpers.length; t++) {
            helpers[t] = new Thread(copier, "cask-export-" + (t + 1));
            helpers[t].setDaemon(true);
            helpers[t].start();
        }
        copier.run(); // the calling thread is one of the copiers
        for (Thread h : helpers) {
            try {
                h.join();
            } catch (InterruptedException e) {
                failure.compareAndSet(null, e);
                Thread.currentThread().interrupt();
            }
        }
        Throwable t = failure.get();
        if (t == null) return;
        if (t instanceof IOException io) throw io;
        if (t instanceof RuntimeException re) throw re;
        if (t instanceof Error err) throw err;
        throw new CaskException("export interrupted");
    }

    /**
     * Writes {@code dev} over the first {@code dev.size()} bytes of the block device {@code dest}, in
     * place: holes are zeroed first, then the data windows are written, then the device is flushed.
     */
    public static void toBlockDevice(BlockDevice dev, Path dest, Progress progress) {
        long size = dev.size();
        long deviceSize = Posix.sizeOf(dest);
        if (deviceSize < size) {
            throw new CaskException.InvalidInput("block device " + dest + ": " + deviceSize + " bytes, smaller than the image ("
                    + size + " bytes); nothing written");
        }
        progress.start("export", size);
        java.util.List<long[]> holes = new java.util.ArrayList<>();
        java.util.List<long[]> wins = windows(dev, size, progress, holes);
        try (FileChannel out = FileChannel.open(dest, StandardOpenOption.WRITE)) {
            zeroRanges(dest, out, holes);
            writeWindows(dev, out, wins, progress);
            out.force(true);
        } catch (IOException e) {
            throw new CaskException.Io("block device " + dest + ": export failed: " + e.getMessage(), e);
        }
        progress.done();
    }

    /** Makes each range read as zeros: fallocate(ZERO_RANGE) on the 512-aligned middle, written zeros elsewhere. */
    private static void zeroRanges(Path dest, FileChannel out, java.util.List<long[]> ranges) throws IOException {
        if (ranges.isEmpty()) return;
        int fd = Posix.available() ? Posix.open(dest, Posix.O_WRONLY) : -1;
        try {
            boolean fallocate = fd >= 0;
            for (long[] r : ranges) {
                long start = r[0], end = r[0] + r[1];
                long a = (start + 511) & ~511L, b = end & ~511L;
                if (fallocate && b > a) {
                    int rc = Posix.fallocate(fd, Posix.FALLOC_FL_ZERO_RANGE | Posix.FALLOC_FL_KEEP_SIZE, a, b - a);
                    if (rc == 0) {
                        writeZeros(out, start, a);
                        writeZeros(out, b, end);
                        continue;
                    }
                    fallocate = false; // not supported here: write zeros from now on
                }
                writeZeros(out, start, end);
            }
        } finally {
            Posix.close(fd);
        }
    }

    private static void writeZeros(FileChannel out, long start, long end) throws IOException {
        ByteBuffer zeros = ByteBuffer.allocate((int) Math.min(1 << 20, Math.max(0, end - start)));
        for (long p = start; p < end; ) {
            zeros.clear().limit((int) Math.min(zeros.capacity(), end - p));
            while (zeros.hasRemaining()) p += out.write(zeros, p);
        }
    }

    /**
     * The data ranges of the device cut into windows of at most {@link #WINDOW} bytes; holes count
     * as progress, and are added to {@code holes} (offset, length) when it is not null.
     */
    private static java.util.List<long[]> windows(BlockDevice dev, long size, Progress progress, java.util.List<long[]> holes) {
        java.util.List<long[]> out = new java.util.ArrayList<>();
        for (long w = 0; w < size; w += 1L << 30) {
            long wlen = Math.min(1L << 30, size - w);
            for (BlockStatus st : dev.blockStatus(w, wlen)) {
                if (st.hole()) {
                    progress.skip(st.length());
                    if (holes != null) holes.add(new long[]{st.offset(), st.length()});
                    continue;
                }
                for (long pos = st.offset(); pos < st.end(); pos += WINDOW) {
                    out.add(new long[]{pos, Math.min(WINDOW, st.end() - pos)});
                }
            }
        }
        return out;
    }

    /** Makes the file exactly {@code size} bytes long, leaving any tail as a hole (ftruncate). */
    private static void extend(Path file, long size) throws IOException {
        try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(size);
        }
    }

    public static void toStream(BlockDevice dev, OutputStream out, Progress progress) {
        long size = dev.size();
        progress.start("export", size);
        byte[] buf = new byte[WINDOW];
        try {
            for (long pos = 0; pos < size; pos += WINDOW) {
                int n = (int) Math.min(WINDOW, size - pos);
                dev.read(pos, buf, 0, n);
                out.write(buf, 0, n);
                progress.advance(n);
            }
            out.flush();
        } catch (IOException e) {
            throw new CaskException.Io("export to stream failed: " + e.getMessage(), e);
        }
        progress.done();
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // best effort
        }
    }
}
