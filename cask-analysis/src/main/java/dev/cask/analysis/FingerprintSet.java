package dev.cask.analysis;

import dev.cask.common.CaskException;

/**
 * The distinct non-zero chunks one strategy has seen: a primitive open-addressing hash table from
 * a 64-bit chunk fingerprint to the set of images holding that chunk (a bitmask).
 *
 * <p><b>Layout.</b> Two parallel arrays: {@code keys[slot]} (0 marks an empty slot; a fingerprint
 * of 0 is stored as 1, merging a 2^-64 case) and {@code masks[slot * words + w]}, where
 * {@code words = ceil(images / 64)}. No chunk sizes are kept: callers account bytes when a chunk
 * first enters the table or an image, when its size is at hand. Linear probing from
 * {@code unsignedMultiplyHigh(fingerprint, capacity)}; fingerprints are uniform (truncated
 * SHA-256), so no further mixing is needed. Entries are never removed.
 *
 * <p><b>Sizing.</b> Capacity is any integer; at 3/4 load it grows by half (so load stays between
 * 1/2 and 3/4). Bytes per slot: {@code 8 + 8 * words}, i.e. 16 for up to 64 images; per distinct
 * chunk that is 21 to 32 bytes. 50 GiB of distinct non-zero data at 4 KiB is 13.1 M chunks:
 * 280 to 420 MiB for one 4 KiB strategy, 0.85 to 1.25 GiB for fixed-4K, aligned-4K and cdc-4K
 * together. Growing briefly holds the old and the new arrays (2.5 times the old); growth is
 * serialized across all sets of the process by a lock, so only one set at a time pays that peak.
 * The hard limit is about 2^31 / words slots (a {@link CaskException} says so when exceeded).
 *
 * <p>Not thread-safe: each set belongs to one strategy, driven by one thread at a time.
 */
final class FingerprintSet {
    private static final Object GROWTH = new Object();
    private static final int MAX_SLOTS = Integer.MAX_VALUE - 64;

    private final int words;
    private final String owner;
    private long[] keys;
    private long[] masks;
    private int capacity;
    private int size;
    private int threshold;

    /** A set for {@code images} images (at least 1); {@code owner} names it in errors. */
    FingerprintSet(int images, int initialCapacity, String owner) {
        if (images < 1) throw new IllegalArgumentException("images " + images);
        this.words = (images + 63) >>> 6;
        this.owner = owner;
        allocate(Math.max(16, initialCapacity));
    }

    private void allocate(int cap) {
        long maskLength = (long) cap * words;
        if (maskLength > MAX_SLOTS) throw full();
        capacity = cap;
        keys = new long[cap];
        masks = new long[(int) maskLength];
        threshold = (int) (cap * 3L / 4);
    }

    /** Number of distinct fingerprints. */
    int size() {
        return size;
    }

    int capacity() {
        return capacity;
    }

    /** Heap bytes held by the arrays. */
    long heapBytes() {
        return 8L * keys.length + 8L * masks.length;
    }

    /**
     * The slot of {@code fingerprint}, inserting it with an empty image set when absent. Returns
     * the slot, or {@code -1 - slot} when it was inserted by this call.
     */
    int insert(long fingerprint) {
        long key = fingerprint == 0 ? 1 : fingerprint;
        int i = (int) Math.unsignedMultiplyHigh(key, capacity);
        long[] k = keys;
        while (true) {
            long at = k[i];
            if (at == key) return i;
            if (at == 0) break;
            if (++i == capacity) i = 0;
        }
        if (size >= threshold) {
            grow();
            return insert(fingerprint);
        }
        k[i] = key;
        size++;
        return -1 - i;
    }

    /** Adds {@code image} to the slot's set; true when it was not there before. */
    boolean addImage(int slot, int image) {
        int at = slot * words + (image >>> 6);
        long bit = 1L << image;
        long m = masks[at];
        if ((m & bit) != 0) return false;
        masks[at] = m | bit;
        return true;
    }

    /** Word {@code w} of the slot's image set (images {@code 64w .. 64w+63}). */
    long maskWord(int slot, int w) {
        return masks[slot * words + w];
    }

    int words() {
        return words;
    }

    private CaskException full() {
        return new CaskException("chunk table of " + owner + ": " + size + " distinct chunks fill it (limit about "
                + (MAX_SLOTS / words * 3L / 4) + "); use a larger block size or fewer images");
    }

    private void grow() {
        long want = Math.max(capacity + 16L, capacity + (capacity >>> 1));
        int cap = (int) Math.min(want, MAX_SLOTS / words);
        if (cap <= capacity) throw full();
        synchronized (GROWTH) {
            long[] oldKeys = keys;
            long[] oldMasks = masks;
            int oldCap = capacity;
            keys = null;
            masks = null;
            allocate(cap);
            for (int s = 0; s < oldCap; s++) {
                long key = oldKeys[s];
                if (key == 0) continue;
                int i = (int) Math.unsignedMultiplyHigh(key, capacity);
                while (keys[i] != 0) if (++i == capacity) i = 0;
                keys[i] = key;
                System.arraycopy(oldMasks, s * words, masks, i * words, words);
            }
        }
    }
}
