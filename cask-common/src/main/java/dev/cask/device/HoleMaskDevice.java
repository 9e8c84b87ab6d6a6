package dev.cask.device;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A filter: another device with some byte ranges masked out, so they read as zeros and
 * {@link #blockStatus} reports them as holes. An importer therefore never reads them and stores
 * nothing for them (zero blocks are holes). Used by fs-aware import for the blocks a file system
 * marks free; the filter itself knows nothing about file systems.
 *
 * <p>Everything outside the mask reads exactly as the device under it. Read-only; thread-safe when
 * the underlying device is (the mask is immutable). Closing the filter does not close the device.
 */
public final class HoleMaskDevice implements BlockDevice {
    private final BlockDevice base;
    private final ByteRanges mask;

    /** {@code mask} is in the device's byte offsets; ranges past its end are ignored. */
    public HoleMaskDevice(BlockDevice base, ByteRanges mask) {
        this.base = base;
        this.mask = mask;
    }

    @Override
    public long size() {
        return base.size();
    }

    @Override
    public Capabilities capabilities() {
        return base.capabilities();
    }

    @Override
    public void read(long offset, byte[] buffer, int bufferOffset, int length) {
        BlockDevice.checkRange(this, offset, length);
        long end = offset + length;
        // read the unmasked pieces only; masked pieces are zeros
        long at = offset;
        for (int i = mask.firstEndingAfter(offset); i < mask.count() && mask.start(i) < end; i++) {
            long s = Math.max(offset, mask.start(i));
            long e = Math.min(end, mask.end(i));
            if (s > at) base.read(at, buffer, bufferOffset + (int) (at - offset), (int) (s - at));
            Arrays.fill(buffer, bufferOffset + (int) (s - offset), bufferOffset + (int) (e - offset), (byte) 0);
            at = e;
        }
        if (end > at) base.read(at, buffer, bufferOffset + (int) (at - offset), (int) (end - at));
    }

    @Override
    public List<BlockStatus> blockStatus(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        List<BlockStatus> out = new ArrayList<>();
        for (BlockStatus st : base.blockStatus(offset, length)) {
            if (st.hole()) {
                out.add(st);
                continue;
            }
            long at = st.offset();
            for (int i = mask.firstEndingAfter(st.offset()); i < mask.count() && mask.start(i) < st.end(); i++) {
                long s = Math.max(st.offset(), mask.start(i));
                long e = Math.min(st.end(), mask.end(i));
                if (s > at) out.add(new BlockStatus(at, s - at, false));
                out.add(new BlockStatus(s, e - s, true));
                at = e;
            }
            if (st.end() > at) out.add(new BlockStatus(at, st.end() - at, false));
        }
        return Devices.coalesce(out);
    }

    @Override
    public void close() {
        // the base device belongs to the caller
    }
}
