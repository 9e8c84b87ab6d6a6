package dev.cask.catalog;

/** What a caller supplies to commit a version; the catalog adds number and time. */
public record NewVersion(String message, long size, byte[] content, VersionKind kind) {
    public NewVersion {
        if (kind == null) kind = VersionKind.USER;
    }

    /** A user version. */
    public NewVersion(String message, long size, byte[] content) {
        this(message, size, content, VersionKind.USER);
    }
}
