package dev.cask.store;

/**
 * Where a chunk is: the pack, the offset and length of the record or segment that holds it, and
 * for a segment the chunk's slot in its table ({@link #SINGLE} for a record of its own). What an
 * index maps a chunk id to, in every store whose packs have the pack format (docs/format.md): a
 * local directory or S3 objects.
 */
public record ChunkLocation(int pack, long offset, int length, int slot) {
    /** The slot of a chunk stored in a record of its own. */
    public static final int SINGLE = -1;

    /** Bytes of a pack's header (magic, format, pack number): its first record starts at this offset. */
    public static final int PACK_HEADER = 16;

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
