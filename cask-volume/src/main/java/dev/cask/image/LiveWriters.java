package dev.cask.image;

import java.util.OptionalInt;

/**
 * How the image layer reaches the process that has an image open read-write (holds its lease),
 * so that a command on the image's head gets what that process's clients see now rather than
 * its last checkpoint. The CLI passes the control socket client of {@code cask serve}; with
 * {@link #NONE} an image leased by another process is refused instead.
 */
@FunctionalInterface
public interface LiveWriters {
    /** Nobody to ask. */
    LiveWriters NONE = (image, message, always) -> OptionalInt.empty();

    /**
     * Asks whoever has {@code image} open read-write for a checkpoint with {@code message} and
     * returns the number of the version that holds its current content: a new version, or (unless
     * {@code always}) the last one when nothing changed since. Empty when no process that can be
     * asked has the image open. Throws the writer's error (with its kind) when the checkpoint fails.
     */
    OptionalInt checkpoint(String image, String message, boolean always);

    /** As {@link #checkpoint(String, String, boolean)}, the version made being of {@code kind} (a user's snapshot: USER). */
    default OptionalInt checkpoint(String image, String message, boolean always, dev.cask.catalog.VersionKind kind) {
        return checkpoint(image, message, always);
    }

    /**
     * The versions of {@code image} that running servers need kept (an open volume's base, a
     * read-only export's version); empty when nobody can be asked. Throws when a server answers
     * with an error: nothing may be removed on a guess.
     */
    default java.util.Set<Integer> inUse(String image) {
        return java.util.Set.of();
    }
}
