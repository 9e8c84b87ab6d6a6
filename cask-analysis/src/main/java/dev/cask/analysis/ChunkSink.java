package dev.cask.analysis;

/** Where a {@link Chunker} delivers the chunks it cuts, in disk order. */
interface ChunkSink {
    /**
     * One chunk: {@code a[off, off+len)}, starting at disk offset {@code offset}. The bytes may be
     * all zero; they are valid only during the call.
     */
    void chunk(byte[] a, int off, int len, long offset);

    /** {@code count} chunks of {@code length} zero bytes back to back, the first at {@code offset}. */
    void zeroChunks(long count, int length, long offset);
}
