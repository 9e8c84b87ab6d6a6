package dev.cask.common;

import java.util.function.LongSupplier;

/**
 * When a server's clients last asked for something: the NBD connections stamp it at every
 * request, and background work ({@link Pacer#background(ClientActivity)}) reads it to rest longer
 * while clients are busy and to get on with it while they are not, as ZFS's scrub slows down
 * after foreground I/O.
 *
 * <p>Why a stamp and not a rate: on a machine with few cores a client's request that arrives
 * while the background work holds a core waits for it, whatever the scheduler is told (measured
 * on a 2-core host in session 23, bench/results/README.md: nice 10, the shortest slice and
 * {@code SCHED_IDLE} all left a served disk's p99 at about one scheduler tick). What helps is
 * being busy a smaller share of the time while requests come, which only needs to know whether
 * they come.
 *
 * <p>Cheap to stamp: one read of a volatile per request, and a write only once the stamp is a
 * millisecond old. Thread-safe. Times are {@link System#nanoTime} unless a clock is given (tests).
 */
public final class ClientActivity {
    private static final long COARSE_NANOS = 1_000_000L;

    private final LongSupplier clock;
    private volatile long last;
    private volatile boolean any;

    public ClientActivity() {
        this(System::nanoTime);
    }

    /** With {@code clock} in nanoseconds, as {@link System#nanoTime} (for tests). */
    public ClientActivity(LongSupplier clock) {
        this.clock = clock;
    }

    /** A client asked for something now. */
    public void request() {
        long now = clock.getAsLong();
        if (!any || now - last >= COARSE_NANOS) {
            last = now;
            any = true;
        }
    }

    /** Whether a client asked for something in the last {@code nanos} nanoseconds (to within a millisecond). */
    public boolean within(long nanos) {
        return any && clock.getAsLong() - last <= nanos;
    }

    /** The clock this activity is stamped with. */
    public long now() {
        return clock.getAsLong();
    }
}
