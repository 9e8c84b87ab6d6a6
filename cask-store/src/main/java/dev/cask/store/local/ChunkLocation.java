package dev.cask.store.local;

/**
 * Where a chunk is: the pack, the offset and length of the record or segment that holds it, and
 * for a segment the chunk's slot in its table ({@link #SINGLE} for a record of its own).
 */
public record ChunkLocation(int pack, long offset, int length, int slot) {
    /** The slot of a chunk stored in a record of its own. */
    public static final int SINGLE = -1;

    /** A chunk in a record of its own. */
    public ChunkLocation(int pack, long offset, int length) {
        this(pack, offset, length, SINGLE);
    }

    public boolean inSegment() {
        return slot != SINGLE;
    }

    /**
     * The record or segment holding the chunk as one number, for sets and maps of them: the pack
     * in the high 24 bits, the offset in the low 40 (a pack is far smaller than 1 TiB). Every chunk
     * of a segment has the same unit.
     */
    public long unit() {
        return ((long) pack << 40) ^ offset;
    }

    @Override
    public String toString() {
        return "pack " + pack + " at offset " + offset + (inSegment() ? ", slot " + slot : "");
    }
}
