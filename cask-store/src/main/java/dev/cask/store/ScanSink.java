package dev.cask.store;

import dev.cask.common.CaskException;

/**
 * What a scan of a pack found (the local store's {@code PackScan}, or the same scan of a pack
 * object in S3): every chunk of every good record and segment, and a line per problem. Here, in
 * the store interface's package, so that {@code cask check} (the image layer) reads any store's
 * packs without naming the local store.
 */
public interface ScanSink {
    /**
     * A chunk whose record or segment passed its magic, length and CRC checks. {@code plain}
     * returns its plain bytes, decompressed and (for a segment) checked against the chunk's
     * CRC32C, or throws {@link CaskException.Corrupt} naming the chunk; a segment is
     * decompressed once for all its chunks when they ask in turn, during this scan.
     */
    void chunk(ChunkId id, ChunkLocation location, java.util.function.Supplier<byte[]> plain);

    void problem(String line);

    /** A problem with the pack file as a whole (it cannot be read, its header names another pack); by default a {@link #problem}. */
    default void packProblem(PackProblem kind, String line) {
        problem(line);
    }

    /** Bytes of a pack that are no good record or segment; by default reported as a {@link #problem}. */
    default void damage(Damage d) {
        problem(d.message());
    }

    /** What {@link ScanSink#packProblem} reports. */
    enum PackProblem { UNREADABLE, MISNAMED }

    /**
     * A stretch of a pack a scan could not read as records: a bad pack header ({@code HEADER},
     * the whole pack), bytes between good records ({@code RECORD}), or bytes after the last good
     * record up to the end of the pack ({@code TAIL}: torn, when a writer died mid-append).
     */
    record Damage(int pack, long offset, long length, Kind kind, String message) {
        public enum Kind { HEADER, RECORD, TAIL }
    }
}
