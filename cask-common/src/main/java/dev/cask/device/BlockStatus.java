package dev.cask.device;

/**
 * One entry of a device's allocation map: {@code length} bytes at {@code offset} are a hole
 * (unallocated and reading as zeros) or data (allocated; the bytes may still be zeros).
 */
public record BlockStatus(long offset, long length, boolean hole) {
    public BlockStatus {
        if (offset < 0 || length <= 0) throw new IllegalArgumentException("bad extent " + offset + "+" + length);
    }

    public long end() {
        return offset + length;
    }
}
