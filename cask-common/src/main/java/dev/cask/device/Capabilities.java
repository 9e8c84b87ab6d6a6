package dev.cask.device;

/**
 * What a {@link BlockDevice} supports, in NBD's terms. Block sizes follow NBD_INFO_BLOCK_SIZE:
 * minimum (requests must be aligned to it), preferred, and the largest single request.
 */
public record Capabilities(boolean write, boolean flush, boolean fua, boolean trim, boolean zero,
                           boolean fastZero, boolean extents, boolean multiConn,
                           int minBlockSize, int preferredBlockSize, int maxBlockSize) {

    /** A read-only device with an allocation map. */
    public static Capabilities readOnly(int preferredBlockSize) {
        return new Capabilities(false, false, false, false, false, false, true, true,
                1, preferredBlockSize, 32 << 20);
    }
}
