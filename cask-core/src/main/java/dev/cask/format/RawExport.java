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
 * never leaves a half-written file under the real name), or to a stream with holes as zeros.
 * Reads go in 4 MiB windows so a parallel device keeps its workers busy.
 */
public final class RawExport {
    private static final int WINDOW = 4 << 20;

    private RawExport() {}

    public static void toFile(BlockDevice dev, Path dest, Progress progress) {
        Path dir = dest.toAbsolutePath().getParent();
        Path tmp = dir.resolve("." + dest.getFileName() + ".cask-tmp");
        long size = dev.size();
        progress.start("export", size);
        try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            byte[] buf = new byte[WINDOW];
            for (long w = 0; w < size; w += 1L << 30) {
                long wlen = Math.min(1L << 30, size - w);
                for (BlockStatus st : dev.blockStatus(w, wlen)) {
                    if (st.hole()) {
                        progress.advance(st.length());
                        continue;
                    }
                    for (long pos = st.offset(); pos < st.end(); pos += WINDOW) {
                        int n = (int) Math.min(WINDOW, st.end() - pos);
                        dev.read(pos, buf, 0, n);
                        ByteBuffer bb = ByteBuffer.wrap(buf, 0, n);
                        long p = pos;
                        while (bb.hasRemaining()) p += out.write(bb, p);
                        progress.advance(n);
                    }
                }
            }
            out.truncate(size);
            extend(tmp, size);
            out.force(true);
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
