package dev.cask.catalog;

import java.time.Instant;

/**
 * An immutable snapshot of an image. {@code size} is the disk size in bytes; {@code content}
 * is the encoded layout and roots (see {@code dev.cask.tree.Layout}); {@code parent} is the
 * version it was made from (the previous head, or a clone's source; when that version was
 * removed, its nearest surviving ancestor), null for the first version of an imported image or
 * when that parent's image was deleted. {@code kind} says who made it; {@code isProtected}
 * (the only thing about a version that changes) keeps it from {@code rm NAME@VER} and retention.
 */
public record Version(String image, int number, VersionKey parent, Instant time, String message,
                      long size, byte[] content, VersionKind kind, boolean isProtected) {
    public Version {
        if (kind == null) kind = VersionKind.USER;
    }

    /** A user version, not protected. */
    public Version(String image, int number, VersionKey parent, Instant time, String message, long size, byte[] content) {
        this(image, number, parent, time, message, size, content, VersionKind.USER, false);
    }

    public VersionKey key() {
        return new VersionKey(image, number);
    }
}
