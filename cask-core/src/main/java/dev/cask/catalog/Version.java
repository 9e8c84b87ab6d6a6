package dev.cask.catalog;

import java.time.Instant;

/**
 * An immutable snapshot of an image. {@code size} is the disk size in bytes; {@code content}
 * is the encoded layout and roots (see {@code dev.cask.tree.Layout}); {@code parent} is the
 * version it was made from (the previous head, or a clone's source), null for the first
 * version of an imported image or when that parent was deleted.
 */
public record Version(String image, int number, VersionKey parent, Instant time, String message,
                      long size, byte[] content) {
    public VersionKey key() {
        return new VersionKey(image, number);
    }
}
