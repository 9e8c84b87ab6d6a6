package dev.cask.format;

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
 * Writes any {@link BlockDevice} out as raw bytes: to a sparse file (holes are skipped, the file
 * is written to a temporary name, fsynced and renamed over the destination, so a failed export
 * never leaves a half-written file under the real name; fsync on request), or to a stream with holes as zeros.
 * Reads go in 4 MiB windows so a parallel device keeps its workers busy.
 */
public final class RawExport {
    private static final int WINDOW = 4 << 20;

    private RawExport() {}

    /**
     * Writes {@code dev} to {@code dest}; with {@code fsync} the file is flushed to disk before
     * the rename, otherwise it is left to the page cache, as {@code qemu-img convert} does.
     */
    public static void toFile(BlockDevice dev, Path dest, Progress progress, boolean fsync) {
        Path dir = dest.toAbsolutePath().getParent();
        Path tmp = dir.resolve("." + dest.getFileName() + ".cask-tmp");
        long size = dev.size();
        progress.start("export", size);
        try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
             var reader = java.util.concurrent.Executors.newSingleThreadExecutor(r -> {
                 Thread t = new Thread(r, "cask-export-read");
                 t.setDaemon(true);
                 return t;
             })) {
            // Read window i+1 (on the reader thread) while window i is written: the device's
            // parallel reads and the file writes overlap.
            byte[][] bufs = {new byte[WINDOW], new byte[WINDOW]};
            long[] pending = null;
            java.util.concurrent.Future<?> inFlight = null;
            int which = 0;
            for (long[] win : windows(dev, size, progress)) {
                byte[] buf = bufs[which];
                java.util.concurrent.Future<?> f = reader.submit(() -> dev.read(win[0], buf, 0, (int) win[1]));
                if (inFlight != null) writeWindow(out, inFlight, bufs[1 - which], pending, progress);
                inFlight = f;
                pending = win;
                which = 1 - which;
            }
            if (inFlight != null) writeWindow(out, inFlight, bufs[1 - which], pending, progress);
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

    /** The data ranges of the device cut into windows of at most {@link #WINDOW} bytes; holes count as progress. */
    private static java.util.List<long[]> windows(BlockDevice dev, long size, Progress progress) {
        java.util.List<long[]> out = new java.util.ArrayList<>();
        for (long w = 0; w < size; w += 1L << 30) {
            long wlen = Math.min(1L << 30, size - w);
            for (BlockStatus st : dev.blockStatus(w, wlen)) {
                if (st.hole()) {
                    progress.advance(st.length());
                    continue;
                }
                for (long pos = st.offset(); pos < st.end(); pos += WINDOW) {
                    out.add(new long[]{pos, Math.min(WINDOW, st.end() - pos)});
                }
            }
        }
        return out;
    }

    private static void writeWindow(FileChannel out, java.util.concurrent.Future<?> read, byte[] buf, long[] win,
                                    Progress progress) throws IOException {
        try {
            read.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CaskException("export interrupted");
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) throw re;
            throw new CaskException("export read failed: " + e.getCause(), e.getCause());
        }
        ByteBuffer bb = ByteBuffer.wrap(buf, 0, (int) win[1]);
        long p = win[0];
        while (bb.hasRemaining()) p += out.write(bb, p);
        progress.advance(win[1]);
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
