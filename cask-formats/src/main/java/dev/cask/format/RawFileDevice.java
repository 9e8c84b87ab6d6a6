package dev.cask.format;

import dev.cask.common.Posix;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * A raw disk image file, or a block device, as a read-only {@link BlockDevice}. The allocation
 * map of a file comes from the file system ({@code SEEK_DATA}/{@code SEEK_HOLE}), so importing a
 * sparse 2 TiB file reads only its data. A block device has no such map: its size comes from
 * {@code lseek(SEEK_END)} and all of it is data (the importer finds the zero blocks while it reads).
 * Thread-safe: reads are positional.
 */
public final class RawFileDevice implements BlockDevice {
    private final Path path;
    private final FileChannel channel;
    private final long size;
    private final SparseFiles sparse;

    private RawFileDevice(Path path, FileChannel channel, long size, SparseFiles sparse) {
        this.path = path;
        this.channel = channel;
        this.size = size;
        this.sparse = sparse;
    }

    public static RawFileDevice open(Path path) {
        try {
            if (Files.isDirectory(path)) throw new CaskException.InvalidInput(path + ": is a directory, not a disk image");
            FileChannel ch = FileChannel.open(path, StandardOpenOption.READ);
            try {
                long size = Files.isRegularFile(path) ? ch.size() : Posix.sizeOf(path);
                return new RawFileDevice(path, ch, size, SparseFiles.open(path, size));
            } catch (RuntimeException e) {
                ch.close();
                throw e;
            }
        } catch (NoSuchFileException e) {
            throw new CaskException.NotFound(path + ": no such file");
        } catch (IOException e) {
            throw new CaskException.Io(path + ": cannot open: " + e.getMessage(), e);
        }
    }

    public Path path() {
        return path;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public Capabilities capabilities() {
        return Capabilities.readOnly(4096);
    }

    @Override
    public void read(long offset, byte[] buffer, int bufferOffset, int length) {
        BlockDevice.checkRange(this, offset, length);
        ByteBuffer bb = ByteBuffer.wrap(buffer, bufferOffset, length);
        try {
            long pos = offset;
            while (bb.hasRemaining()) {
                int n = channel.read(bb, pos);
                if (n < 0) {
                    // the file shrank under us: the rest reads as zeros
                    while (bb.hasRemaining()) bb.put((byte) 0);
                    break;
                }
                pos += n;
            }
        } catch (IOException e) {
            throw new CaskException.Io(path + ": read at offset " + offset + " failed: " + e.getMessage(), e);
        }
    }

    @Override
    public List<BlockStatus> blockStatus(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        List<BlockStatus> out = new ArrayList<>();
        long end = offset + length;
        long pos = offset;
        while (pos < end) {
            long data = Math.min(sparse.nextData(pos), end);
            if (data > pos) {
                out.add(new BlockStatus(pos, data - pos, true));
                pos = data;
                continue;
            }
            long hole = Math.min(Math.max(sparse.nextHole(pos), pos + 1), end);
            out.add(new BlockStatus(pos, hole - pos, false));
            pos = hole;
        }
        return out;
    }

    @Override
    public void close() {
        sparse.close();
        try {
            channel.close();
        } catch (IOException e) {
            // read-only: nothing to lose
        }
    }
}
