package dev.cask.device;

import java.util.ArrayList;
import java.util.List;

/** Helpers over {@link BlockDevice}s that every layer uses. */
public final class Devices {
    private Devices() {}

    private static final byte[] ZEROS = new byte[1 << 16];

    /** True when every byte of {@code buffer[off, off+len)} is zero (vectorised compare against zeros). */
    public static boolean isZero(byte[] buffer, int off, int len) {
        for (int pos = off, end = off + len; pos < end; pos += ZEROS.length) {
            int n = Math.min(ZEROS.length, end - pos);
            if (java.util.Arrays.mismatch(buffer, pos, pos + n, ZEROS, 0, n) >= 0) return false;
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
