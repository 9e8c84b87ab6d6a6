package dev.cask.common;

/**
 * Where long work reports how far it got. Core code calls it; only the CLI decides whether
 * to draw a bar. Implementations must be thread-safe: import workers report concurrently.
 */
public interface Progress {
    /** Sets the total amount of work (bytes) and a label; may be called again for a new phase. */
    void start(String label, long total);

    /** Like {@link #start}, but the work is counted in items (entries, versions), not bytes. */
    default void startItems(String label, long total) {
        start(label, total);
    }

    /** Adds {@code delta} units of finished work that moved data (bytes read, hashed, written). */
    void advance(long delta);

    /**
     * Adds {@code delta} bytes of finished work that moved no data: holes skipped. They count
     * towards the total (and the time left) but not towards the rate of data.
     */
    default void skip(long delta) {
        advance(delta);
    }

    /** The phase is over. */
    void done();

    Progress NONE = new Progress() {
        @Override public void start(String label, long total) {}
        @Override public void advance(long delta) {}
        @Override public void done() {}
    };
}
