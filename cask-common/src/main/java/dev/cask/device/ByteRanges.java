package dev.cask.device;

import java.util.Arrays;

/**
 * An immutable set of byte ranges: sorted, disjoint and never adjacent (touching ranges are
 * merged when built). Kept as two {@code long} arrays, 16 bytes a range, so a million ranges cost
 * 16 MiB; lookups are binary searches. Thread-safe (immutable).
 */
public final class ByteRanges {
    public static final ByteRanges EMPTY = new ByteRanges(new long[0], new long[0], 0);

    private final long[] starts;
    private final long[] ends;
    private final int count;

    private ByteRanges(long[] starts, long[] ends, int count) {
        this.starts = starts;
        this.ends = ends;
        this.count = count;
    }

    public int count() {
        return count;
    }

    public boolean isEmpty() {
        return count == 0;
    }

    public long start(int i) {
        java.util.Objects.checkIndex(i, count);
        return starts[i];
    }

    public long end(int i) {
        java.util.Objects.checkIndex(i, count);
        return ends[i];
    }

    /** The sum of the lengths of the ranges. */
    public long totalBytes() {
        long sum = 0;
        for (int i = 0; i < count; i++) sum += ends[i] - starts[i];
        return sum;
    }

    /** The index of the first range that ends after {@code offset} ({@code count()} when none does). */
    public int firstEndingAfter(long offset) {
        int lo = 0;
        int hi = count;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (ends[mid] <= offset) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /** These ranges moved by {@code delta} bytes. */
    public ByteRanges shifted(long delta) {
        long[] s = new long[count];
        long[] e = new long[count];
        for (int i = 0; i < count; i++) {
            s[i] = Math.addExact(starts[i], delta);
            e[i] = Math.addExact(ends[i], delta);
        }
        return new ByteRanges(s, e, count);
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < Math.min(count, 8); i++) b.append(i == 0 ? "" : ", ").append(starts[i]).append('-').append(ends[i]);
        return b.append(count > 8 ? ", ... (" + count + " ranges)]" : "]").toString();
    }

    /** Collects ranges in ascending order; adjacent ones are merged. */
    public static final class Builder {
        private long[] starts = new long[16];
        private long[] ends = new long[16];
        private int count;

        public Builder() {}

        /** Adds {@code [start, end)}; it MUST NOT start before the end of the range added last. Empty ranges are ignored. */
        public Builder add(long start, long end) {
            if (start < 0 || end < start) throw new IllegalArgumentException("bad range " + start + "-" + end);
            if (start == end) return this;
            if (count > 0) {
                long last = ends[count - 1];
                if (start < last) throw new IllegalArgumentException("range " + start + "-" + end + " starts before " + last);
                if (start == last) {
                    ends[count - 1] = end;
                    return this;
                }
            }
            if (count == starts.length) {
                starts = Arrays.copyOf(starts, count * 2);
                ends = Arrays.copyOf(ends, count * 2);
            }
            starts[count] = start;
            ends[count] = end;
            count++;
            return this;
        }

        /** Adds every range of {@code r}, which MUST all lie after what was added so far. */
        public Builder addAll(ByteRanges r) {
            for (int i = 0; i < r.count; i++) add(r.starts[i], r.ends[i]);
            return this;
        }

        public int count() {
            return count;
        }

        public ByteRanges build() {
            return count == 0 ? EMPTY : new ByteRanges(Arrays.copyOf(starts, count), Arrays.copyOf(ends, count), count);
        }
    }
}
