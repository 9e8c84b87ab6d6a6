package dev.cask.common;

/**
 * The one exception type users see. Its message is a single line that names the object and the
 * values involved ({@code pack 7 at offset 1048576: bad magic 0x0, expected 0x6361736b}); the CLI
 * prints it on stderr and exits 1 (2 for a {@link Usage} error). Subclasses say what kind of failure it was so callers (and the
 * NBD server later) can map them to protocol errors.
 */
public class CaskException extends RuntimeException {
    public CaskException(String message) {
        super(message);
    }

    public CaskException(String message, Throwable cause) {
        super(message, cause);
    }

    /** Something named does not exist: an image, a version, a chunk, a file. */
    public static class NotFound extends CaskException {
        public NotFound(String message) {
            super(message);
        }
    }

    /** Input from outside (a file, a name, a request) is malformed or out of range. */
    public static class InvalidInput extends CaskException {
        public InvalidInput(String message) {
            super(message);
        }

        public InvalidInput(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /**
     * A value a user typed is malformed: an image name, a size, a version reference, a format, a
     * duration. The CLI treats it as a usage error (exit 2); elsewhere it is an InvalidInput.
     */
    public static class Usage extends InvalidInput {
        public Usage(String message) {
            super(message);
        }
    }

    /** Stored data failed verification: corrupt data becomes this error, never wrong bytes. */
    public static class Corrupt extends CaskException {
        public Corrupt(String message) {
            super(message);
        }
    }

    /** A compare-and-swap lost, a name is taken, a lease is held by someone else. */
    public static class Conflict extends CaskException {
        public Conflict(String message) {
            super(message);
        }
    }

    /**
     * A writer whose lease was taken over (it stopped renewing it past its time to live) tried to
     * change something: refused, so that two writers never both change an image (fencing).
     */
    public static class Fenced extends Conflict {
        public Fenced(String message) {
            super(message);
        }
    }

    /**
     * The store or catalog in use cannot do what was asked (a check of packs on a store that has
     * none to scan, for instance): not a failure of the data, and not the user's typing.
     */
    public static class Unsupported extends CaskException {
        public Unsupported(String message) {
            super(message);
        }
    }

    /** An I/O error from the operating system, with the object it happened to. */
    public static class Io extends CaskException {
        public Io(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
