package dev.cask.store.local;

/** Where a record is: the pack, the record's offset in it, and its length (header + payload). */
public record ChunkLocation(int pack, long offset, int length) {}
