package dev.cask.device;

import java.util.ArrayList;
import java.util.List;

/** Helpers over {@link BlockDevice}s that every layer uses. */
public final class Devices {
    private Devices() {}

    /** True when every byte of {@code buffer[off, off+len)} is zero. */
    public static boolean isZero(byte[] buffer, int off, int len) {
        int i = off;
        int end = off + len;
        // Compare 8 bytes at a time through a long view; the JIT vectorises this loop.
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(buffer);
        for (; i + 8 <= end; i += 8) {
            if (bb.getLong(i) != 0) return false;
        }
        for (; i < end; i++) {
            if (buffer[i] != 0) return false;
        }
        return true;
    }

    /** Merges adjacent entries of the same kind; the input must be sorted and contiguous. */
    public static List<BlockStatus> coalesce(List<BlockStatus> in) {
        List<BlockStatus> out = new ArrayList<>(in.size());
        for (BlockStatus s : in) {
            if (!out.isEmpty()) {
                BlockStatus last = out.getLast();
                if (last.hole() == s.hole() && last.end() == s.offset()) {
                    out.set(out.size() - 1, new BlockStatus(last.offset(), last.length() + s.length(), s.hole()));
                    continue;
                }
            }
            out.add(s);
        }
        return out;
    }
}
