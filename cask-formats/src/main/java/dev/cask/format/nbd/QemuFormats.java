package dev.cask.format.nbd;

import dev.cask.common.ByteArrays;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import dev.cask.common.Posix;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;

/**
 * The image formats QEMU knows and cask does not parse itself, read and written by QEMU's own
 * drivers through {@code qemu-nbd} ({@link QemuNbd}), with NBD as the interchange: an import
 * reads the image as an {@link NbdDevice} (holes found with BLOCK_STATUS, never read); an export
 * creates an empty image with {@code qemu-img create}, writes the data ranges through
 * {@code qemu-nbd}, and renames it into place when qemu-nbd has exited cleanly.
 *
 * <p>Encrypted images are refused by name (QEMU would need the key), before anything is stored.
 * Also the copy between any two devices that nbd:// import and export use ({@link #copy}).
 */
public final class QemuFormats {
    /** Formats imported through qemu-nbd (qemu-img info's names). */
    public static final List<String> READ = List.of("vmdk", "vhdx", "vpc", "vdi", "qed", "qcow", "parallels", "bochs", "cloop", "dmg");
    /** Formats exported through qemu-nbd. */
    public static final List<String> WRITE = List.of("vmdk", "vhdx", "vpc", "vdi", "qed", "qcow", "parallels");

    private static final int WINDOW = 4 << 20;
    private static final Pattern ENCRYPTED = Pattern.compile("\"encrypted\"\\s*:\\s*true");

    private QemuFormats() {}

    /** The format name for a user's word: {@code vhd} is QEMU's {@code vpc}. */
    public static String canonical(String format) {
        return format.equals("vhd") ? "vpc" : format;
    }

    /** Opens {@code file} (already probed or named as {@code format}, one of {@link #READ}) read-only through qemu-nbd. */
    public static BlockDevice open(Path file, String format) {
        String info = QemuNbd.qemuImg(file + " (as " + format + ")", "read " + format + " images", "info", "--output=json", "-f", format, file.toString());
        if (ENCRYPTED.matcher(info).find()) {
            throw new CaskException.InvalidInput(file + ": the " + format + " image is encrypted; cask imports only unencrypted images"
                    + " (decrypt it first with qemu-img convert)");
        }
        QemuNbd server = QemuNbd.start(file, format, true, "read " + format + " images");
        NbdDevice nbd;
        try {
            nbd = server.connect();
        } catch (RuntimeException e) {
            server.kill();
            throw e;
        }
        return new Served(nbd, server);
    }

    /**
     * Writes {@code src} to a new {@code format} image at {@code dest} (one of {@link #WRITE}): made
     * under a temporary name and renamed into place, so a failed export leaves no file under the real name.
     */
    public static void export(BlockDevice src, Path dest, String format, Progress progress, boolean fsync) {
        String f = canonical(format);
        if (!WRITE.contains(f)) {
            throw new CaskException.InvalidInput("export format '" + format + "': unknown (known: raw, qcow2, " + String.join(", ", WRITE) + ", vhd)");
        }
        if (Posix.isBlockDevice(dest)) {
            throw new CaskException.InvalidInput("block device " + dest + ": cask writes raw bytes into block devices (--format raw), "
                    + f + " only into files");
        }
        Path abs = dest.toAbsolutePath();
        Path tmp = abs.getParent().resolve("." + abs.getFileName() + ".cask-tmp-" + Long.toHexString(ThreadLocalRandom.current().nextLong()));
        long size = (src.size() + 511) & ~511L; // every one of these formats counts in sectors
        try {
            String purpose = "write " + f + " images";
            if (f.equals("vpc")) {
                QemuNbd.qemuImg(dest.toString(), purpose, "create", "-q", "-f", f, "-o", "subformat=dynamic,force_size=on", tmp.toString(), Long.toString(size));
            } else {
                QemuNbd.qemuImg(dest.toString(), purpose, "create", "-q", "-f", f, tmp.toString(), Long.toString(size));
            }
            QemuNbd server = QemuNbd.start(tmp, f, false, purpose);
            try (NbdDevice out = server.connect()) {
                if (out.size() < src.size()) {
                    throw new CaskException.Io(dest + ": qemu made a " + f + " image of " + out.size() + " bytes for a disk of " + src.size(), null);
                }
                copy(src, out, false, progress);
                out.flush();
            } catch (RuntimeException e) {
                server.kill();
                throw e;
            }
            server.close();
            if (fsync) {
                try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                    ch.force(true);
                }
            }
            Files.move(tmp, dest, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new CaskException.Io(dest + ": export failed: " + e.getMessage(), e);
        } finally {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // best effort
            }
        }
    }

    /** Writes {@code src} into the NBD export {@code uri} in place; an export smaller than the disk is refused first. */
    public static void exportTo(BlockDevice src, NbdUri uri, Progress progress) {
        try (NbdDevice out = NbdDevice.connect(uri, true)) {
            if (out.size() < src.size()) {
                throw new CaskException.InvalidInput(uri + ": export of " + out.size() + " bytes, smaller than the image ("
                        + src.size() + " bytes); nothing written");
            }
            copy(src, out, true, progress);
            out.flush();
        }
    }

    /**
     * Copies {@code src} over the first {@code src.size()} bytes of {@code dst}, in windows of 4 MiB of
     * data; holes are skipped, or zeroed on {@code dst} with {@code zeroHoles} (a target that may hold old data).
     */
    public static void copy(BlockDevice src, BlockDevice dst, boolean zeroHoles, Progress progress) {
        long size = src.size();
        progress.start("export", size);
        byte[] buf = ByteArrays.take(WINDOW);
        try {
            for (long w = 0; w < size; w += 1L << 30) {
                for (BlockStatus st : src.blockStatus(w, Math.min(1L << 30, size - w))) {
                    if (st.hole()) {
                        if (zeroHoles) dst.zero(st.offset(), st.length(), false);
                        progress.skip(st.length());
                        continue;
                    }
                    for (long pos = st.offset(); pos < st.end(); pos += WINDOW) {
                        int n = (int) Math.min(WINDOW, st.end() - pos);
                        src.read(pos, buf, 0, n);
                        dst.write(pos, buf, 0, n, false);
                        progress.advance(n);
                    }
                }
            }
        } finally {
            ByteArrays.give(buf);
        }
        progress.done();
    }

    /** An image served by its own qemu-nbd: closing the device disconnects and stops the server. */
    private static final class Served implements BlockDevice {
        private final NbdDevice nbd;
        private final QemuNbd server;

        Served(NbdDevice nbd, QemuNbd server) {
            this.nbd = nbd;
            this.server = server;
        }

        @Override
        public long size() {
            return nbd.size();
        }

        @Override
        public Capabilities capabilities() {
            return nbd.capabilities();
        }

        @Override
        public void read(long offset, byte[] buffer, int bufferOffset, int length) {
            nbd.read(offset, buffer, bufferOffset, length);
        }

        @Override
        public List<BlockStatus> blockStatus(long offset, long length) {
            return nbd.blockStatus(offset, length);
        }

        @Override
        public void close() {
            try {
                nbd.close();
            } finally {
                server.close();
            }
        }
    }
}
