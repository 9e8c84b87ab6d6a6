package dev.cask.image;

import dev.cask.store.ChunkId;

import java.util.List;

/**
 * What {@code cask check} found: problems (damage something needs, naming image, version and
 * offset where one is affected), notes (damage nothing refers to), and the pack bytes garbage
 * collection could free ({@code reclaimableBytes}: see {@link Checker}). Only problems make a
 * check fail. Each problem and note is a {@link Finding}: its kind and the objects it is about
 * as fields, and the human line.
 */
public record CheckReport(int packs, long records, long indexEntries, int versions, long chunksChecked,
                          long indexRebuiltTo, List<Finding> problems, List<Finding> notes, long reclaimableBytes) {
    public boolean ok() {
        return problems.isEmpty();
    }

    /** What a finding is about; {@link #json} is its name in {@code check --json}. */
    public enum Kind {
        /** A pack file cannot be read. */
        UNREADABLE_PACK("unreadable-pack"),
        /** A pack's header is bad or names another pack. */
        BAD_PACK_HEADER("bad-pack-header"),
        /** Bytes between good records that are no good record or segment (bit rot, a bad write). */
        BAD_RECORD("bad-record"),
        /** Bytes after a pack's last good record: what a writer that died mid-append left. */
        TORN_TAIL("torn-tail"),
        /** An index entry points at a good record or segment that holds another chunk, or is out of range. */
        INDEX_MISMATCH("index-mismatch"),
        /** A chunk's copy fails its checks (CRC, decompression, hash). */
        CORRUPT_CHUNK("corrupt-chunk"),
        /** A chunk a version references is not in the store. */
        MISSING_CHUNK("missing-chunk"),
        /** A version's content does not decode or disagrees with its size. */
        BAD_VERSION("bad-version"),
        /** A pointer chunk points past the end of its disk. */
        BAD_TREE("bad-tree");

        public final String json;

        Kind(String json) {
            this.json = json;
        }
    }

    /**
     * One problem or note. Fields that do not apply are null: {@code pack} and {@code offset}
     * (the record, segment or damaged stretch in a pack), {@code chunk}, {@code image} and
     * {@code version} (a version affected) and {@code byteOffset} (where in that version's disk).
     */
    public record Finding(Kind kind, Integer pack, Long offset, ChunkId chunk, String image, Integer version,
                          Long byteOffset, String message) {
        static Finding inPack(Kind kind, Integer pack, Long offset, ChunkId chunk, String message) {
            return new Finding(kind, pack, offset, chunk, null, null, null, message);
        }

        @Override
        public String toString() {
            return message;
        }
    }
}
