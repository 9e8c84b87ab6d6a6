package dev.cask.server.nbd;

import dev.cask.device.Capabilities;

import static dev.cask.server.nbd.NbdProtocol.*;

/**
 * What the server tells a client about an export, computed once per connection from the
 * device's {@link Capabilities}: size, transmission flags and block sizes. The same inputs give
 * the same answer, so {@code NBD_OPT_INFO} and a following {@code NBD_OPT_GO} agree, as the
 * spec requires.
 *
 * <p>Flags are honest: write-side flags only for a writable export and only what the device
 * supports; {@code NBD_FLAG_SEND_FAST_ZERO} whenever WRITE_ZEROES is offered (a device that
 * cannot zero fast gets {@code NBD_ENOTSUP} for fast-zero requests, which the spec allows and
 * which lets copy tools skip pre-zeroing); {@code NBD_FLAG_SEND_DF} only with structured
 * replies; {@code NBD_FLAG_CAN_MULTI_CONN} only when the device says so.
 *
 * <p>Block sizes follow the spec's constraints or the export is refused: the minimum is a power
 * of two up to 64 KiB, the preferred a power of two of at least max(minimum, 512), and the
 * maximum payload (the device's, capped at {@link NbdProtocol#MAX_PAYLOAD}) at least the
 * preferred.
 */
record ExportInfo(long size, int flags, boolean readOnly, Capabilities capabilities,
                  int minBlockSize, int preferredBlockSize, int maxPayload,
                  String description, String canonicalName) {

    static ExportInfo of(Export export, boolean structured) {
        Capabilities caps = export.device().capabilities();
        long size = export.device().size();
        if (size < 0) throw new IllegalStateException("device size " + size + " is negative");
        int min = caps.minBlockSize();
        int preferred = caps.preferredBlockSize();
        int max = Math.min(caps.maxBlockSize(), MAX_PAYLOAD);
        if (min < 1 || min > 65536 || Integer.bitCount(min) != 1) {
            throw new IllegalStateException("minimum block size " + min + " is not a power of two from 1 to 65536");
        }
        if (Integer.bitCount(preferred) != 1 || preferred < Math.max(min, 512)) {
            throw new IllegalStateException("preferred block size " + preferred + " is not a power of two of at least " + Math.max(min, 512));
        }
        if (max < preferred) {
            throw new IllegalStateException("maximum payload " + max + " (device " + caps.maxBlockSize() + ", server " + MAX_PAYLOAD
                    + ") is smaller than the preferred block size " + preferred);
        }
        boolean readOnly = export.readOnly() || !caps.write();
        int flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_CACHE;
        if (readOnly) {
            flags |= NBD_FLAG_READ_ONLY;
        } else {
            if (caps.flush()) flags |= NBD_FLAG_SEND_FLUSH;
            if (caps.fua()) flags |= NBD_FLAG_SEND_FUA;
            if (caps.trim()) flags |= NBD_FLAG_SEND_TRIM;
            if (caps.zero()) flags |= NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
        }
        if (structured) flags |= NBD_FLAG_SEND_DF;
        if (caps.multiConn()) flags |= NBD_FLAG_CAN_MULTI_CONN;
        String description = export.description() == null ? "" : export.description();
        return new ExportInfo(size, flags, readOnly, caps, min, preferred, max, description, export.canonicalName());
    }
}
