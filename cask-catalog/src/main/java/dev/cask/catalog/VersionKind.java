package dev.cask.catalog;

/**
 * Who made a version. {@link #USER} versions (an import, {@code cask snapshot}, a rollback, a
 * resize, a new or cloned image) are kept until a user removes them; {@link #AUTO} versions (a
 * server's checkpoints: on its timer, when a journal is full, when the last client goes, for an
 * export or clone of a served head, a crash's journal folded in) are what retention thins. The
 * kind is recorded when the version is committed, never guessed from its message.
 */
public enum VersionKind {
    USER("user"), AUTO("auto");

    private final String word;

    VersionKind(String word) {
        this.word = word;
    }

    /** The word stored in the catalog and shown by {@code log}. */
    public String word() {
        return word;
    }

    public static VersionKind fromWord(String word) {
        for (VersionKind k : values()) if (k.word.equals(word)) return k;
        throw new dev.cask.common.CaskException.Corrupt("unknown version kind '" + word + "' (expected user or auto)");
    }
}
