package dev.cask.device;

import java.util.ArrayList;
import java.util.List;

/**
 * A filter: {@code length} bytes of another device starting at {@code offset}, seen as a device
 * of its own (a partition, an extent of a layout). Read-only; thread-safe when the underlying
 * device is. Closing a slice does not close the device under it.
 */
public final class SliceDevice implements BlockDevice {
    private final BlockDevice base;
    private final long offset;
    private final long length;

    public SliceDevice(BlockDevice base, long offset, long length) {
        BlockDevice.checkRange(base, offset, length);
        this.base = base;
        this.offset = offset;
        this.length = length;
    }

    @Override
    public long size() {
        return length;
    }

    @Override
    public Capabilities capabilities() {
        return base.capabilities();
    }

    @Override
    public void read(long off, byte[] buffer, int bufferOffset, int len) {
        BlockDevice.checkRange(this, off, len);
        base.read(offset + off, buffer, bufferOffset, len);
    }

    @Override
    public List<BlockStatus> blockStatus(long off, long len) {
        BlockDevice.checkRange(this, off, len);
        List<BlockStatus> out = new ArrayList<>();
        for (BlockStatus s : base.blockStatus(offset + off, len)) {
            out.add(new BlockStatus(s.offset() - offset, s.length(), s.hole()));
        }
        return out;
    }

    @Override
    public void close() {
        // the base device belongs to the caller
    }
}
