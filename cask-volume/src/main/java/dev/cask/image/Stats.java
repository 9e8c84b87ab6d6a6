package dev.cask.image;

/**
 * Space accounting of a store. {@code logicalBytes}: the disk sizes of every image's head;
 * {@code allocatedBytes}: the non-hole bytes of those heads (what a raw copy of their data
 * would take); {@code storedBytes}: what the packs occupy on disk (chunk data after compression
 * plus record and pack overhead); {@code dedupRatio} = allocated / stored (deduplication and
 * compression together; 0 when nothing is stored).
 */
public record Stats(int images, int versions, long logicalBytes, long allocatedBytes, long storedBytes,
                    long uniqueChunks, int packs, double dedupRatio) {}
