package dev.cask.common;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * How background work shares the machine with a server's clients: it is paced (after each step it
 * rests a multiple of the time the step took) and it can be stopped (the work notices at its next
 * step or wait and throws {@link Stopped}, between two steps, where stopping is safe).
 *
 * <p><b>Pace.</b> The work calls {@link #step} often (after each pointer chunk read, each batch
 * of deletes, each batch of copied chunks). Time since the last rest is work; once at least
 * a quantum of it has gathered, {@code step} sleeps {@code rest} times that long.
 * With {@code rest} 3 the work is busy at most a quarter of the time, whatever the disk: a slow
 * disk makes each step, and so each rest, longer, which a bytes-per-second budget would not.
 * Time spent waiting for another process (a lock) counts as work too; the work should not call
 * {@code step} across such waits (see {@link #waitFor}).
 *
 * <p><b>Quantum.</b> Work gathers for at least {@link #QUANTUM_NANOS} (20 ms) before a rest: rests
 * shorter than that cost more in wake-ups than they give. A collection with less work than one
 * quantum runs at once. {@code cask.gc.quantum.ms} sets it for {@link #background()}. Whether
 * longer bursts (at the same share of the time) disturb served disks less was measured in
 * session 21 (bench/results/README.md; bench/burst-latency.sh): 200 ms bursts against 20 ms ones
 * in the lifecycle benchmark, daily and hourly, differed by less than the runs' noise, and a
 * spinning process's bursts of 1, 20 and 200 ms ranked differently from one run to the next.
 *
 * <p><b>Busy clients.</b> {@link #background(ClientActivity)} (a server's gc) rests
 * {@link #BACKGROUND_BUSY_REST} (199) times each step instead, busy 0.5 % of the time, while a
 * client asked for something in the last {@link #ACTIVE_WINDOW_NANOS} (1 s), and the pace above
 * when none did: a gc on an idle server is done in its CPU time times four, and one beside busy
 * disks takes a core so seldom that few requests meet it. Why a smaller share rather than a
 * lower priority: on the 2-core host of the lifecycle benchmark a request that arrives while the
 * work holds a core waits about a scheduler tick whatever the priority (session 23,
 * bench/results/README.md), so what a busy core costs the clients' p99 is the share of their
 * requests that meet it. In that benchmark (hourly gc beside 600 requests a second) the p99
 * during gc against without it was read 4.7, write 2.6 at rest 3 (session 23); 1.15 and 1.45 at
 * 99 (the pooled write p99 still 1.68); 1.27 and 1.41 at 199 (session 24), the pooled p99s 1.21 and 1.32, near
 * windows of the same length without gc. The busy rest holds for at most {@link #BUSY_LIMIT_NANOS} (30 minutes)
 * of a pacer's life; after that it keeps to the pace above whatever the clients do, so that a large
 * store's collection beside always-busy disks still ends (a collection of 9 s of CPU takes 30
 * minutes at the busy rest). {@code cask.gc.rest.busy} (0 to 1000) and {@code cask.gc.busy.limit}
 * (a duration: {@code 30m}, {@code 1h}, {@code 0} for never) set them.
 *
 * <p><b>Hurry.</b> {@link #hurry} (from any thread) ends a rest at once and makes every later
 * step rest nothing: for work someone has begun to wait for (a paced checkpoint that a full
 * journal, a snapshot or a shutdown now needs finished).
 *
 * <p><b>Stop.</b> {@link #stop} (from any thread) wakes a rest or a {@link #waitFor} at once.
 * Nothing is interrupted: an interrupt would close the {@code FileChannel}s the work shares
 * with other threads. {@link #unpaced()}: no rest, never stopped unless asked (cask gc).
 *
 * <p>Thread-safe.
 */
public final class Pacer {
    /** Work gathered before a rest, by default (see "Quantum" above). */
    public static final long QUANTUM_NANOS = 20_000_000L;

    /** Thrown by {@link #step}, {@link #check} and {@link #waitFor} once {@link #stop} was called. */
    public static final class Stopped extends CaskException {
        public Stopped(String message) {
            super(message);
        }
    }

    private final double rest;
    private final long quantumNanos;
    private final double busyRest;
    private final long busyLimitNanos;
    /** Whose requests make the pace {@link #busyRest}, or null. */
    private final ClientActivity clients;
    /** On the clients' clock: when this pacer began (the busy limit counts from here). */
    private final long born;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition woken = lock.newCondition();
    private volatile boolean stopped;
    private volatile boolean hurried;
    private volatile String why = "stopped";
    /** Guarded by {@link #lock}. */
    private long workSince = System.nanoTime();
    private long restedNanos;
    private long busyRestedNanos;

    /** {@code rest}: how many times a step's duration to sleep after it (0: none). */
    public Pacer(double rest) {
        this(rest, QUANTUM_NANOS);
    }

    /** {@code rest} as above; {@code quantumNanos}: the work gathered before a rest (at least 1 ms, at most 10 s). */
    public Pacer(double rest, long quantumNanos) {
        this(rest, quantumNanos, rest, 0, null);
    }

    /**
     * {@code rest} and {@code quantumNanos} as above; {@code busyRest} instead of {@code rest}
     * while one of {@code clients} asked for something in the last {@link #ACTIVE_WINDOW_NANOS},
     * during the first {@code busyLimitNanos} of this pacer (0: never).
     */
    public Pacer(double rest, long quantumNanos, double busyRest, long busyLimitNanos, ClientActivity clients) {
        if (!(rest >= 0) || rest > 1000) throw new IllegalArgumentException("rest " + rest);
        if (!(busyRest >= 0) || busyRest > 1000) throw new IllegalArgumentException("busy rest " + busyRest);
        if (busyLimitNanos < 0) throw new IllegalArgumentException("busy limit " + busyLimitNanos + " ns");
        if (quantumNanos < 1_000_000L || quantumNanos > 10_000_000_000L) throw new IllegalArgumentException("quantum " + quantumNanos + " ns");
        this.rest = rest;
        this.quantumNanos = quantumNanos;
        this.busyRest = busyRest;
        this.busyLimitNanos = busyLimitNanos;
        this.clients = clients;
        this.born = clients == null ? 0 : clients.now();
    }

    /** Full speed; stops only when asked. */
    public static Pacer unpaced() {
        return new Pacer(0);
    }

    /** The rest of background maintenance (a server's gc, {@code cask gc --paced}): busy at most a quarter of the time. */
    public static final double BACKGROUND_REST = 3;

    /**
     * The pace of background maintenance: {@link #BACKGROUND_REST}, or the system property
     * {@code cask.gc.rest} (a multiple, 0 to 1000), in bursts of {@link #QUANTUM_NANOS}, or the
     * system property {@code cask.gc.quantum.ms} (milliseconds, 1 to 10,000); anything else fails here.
     */
    public static Pacer background() {
        return background(null);
    }

    /** The rest while clients are busy (see "Busy clients" above). */
    public static final double BACKGROUND_BUSY_REST = 199;

    /** A request this recent makes the clients busy (see "Busy clients" above). */
    public static final long ACTIVE_WINDOW_NANOS = 1_000_000_000L;

    /** How long into a pacer's life the busy rest holds at most (see "Busy clients" above). */
    public static final long BUSY_LIMIT_NANOS = 30 * 60 * 1_000_000_000L;

    /**
     * The pace of a server's background maintenance: {@link #background()}, resting
     * {@link #BACKGROUND_BUSY_REST} times (the system property {@code cask.gc.rest.busy}, 0 to
     * 1000) while {@code clients} are busy, for at most {@link #BUSY_LIMIT_NANOS} ({@code
     * cask.gc.busy.limit}, a duration); {@code clients} null: as {@link #background()}.
     */
    public static Pacer background(ClientActivity clients) {
        double r = multiple("cask.gc.rest", BACKGROUND_REST);
        String quantum = System.getProperty("cask.gc.quantum.ms", Long.toString(QUANTUM_NANOS / 1_000_000L));
        long q;
        try {
            q = Long.parseLong(quantum);
        } catch (NumberFormatException e) {
            q = -1;
        }
        if (q < 1 || q > 10_000) throw new IllegalArgumentException("system property cask.gc.quantum.ms: '" + quantum + "' is not a whole number of milliseconds from 1 to 10000");
        double b = multiple("cask.gc.rest.busy", BACKGROUND_BUSY_REST);
        String limit = System.getProperty("cask.gc.busy.limit", BUSY_LIMIT_NANOS / 60_000_000_000L + "m");
        long l;
        try {
            l = Durations.parse(limit).toNanos();
        } catch (CaskException.Usage | ArithmeticException e) {
            throw new IllegalArgumentException("system property cask.gc.busy.limit: '" + limit + "' is not a duration (30m, 1h, 0 for never)");
        }
        return new Pacer(r, q * 1_000_000L, b, l, clients);
    }

    /** The rest of a server's timer checkpoint while its clients are busy (see {@link #checkpoint}). */
    public static final double CHECKPOINT_BUSY_REST = 19;

    /**
     * The pace of a checkpoint nobody waits for (a server's timer): no rest while no client is
     * busy, {@link #CHECKPOINT_BUSY_REST} (the system property {@code cask.checkpoint.rest.busy},
     * 0 to 1000) times each step while {@code clients} are, for at most {@code busyLimitNanos}
     * (what is left of the timer's interval for its round of checkpoints: past it the next one is
     * as good as due, and this goes on at full speed; 0: never rests). Whoever comes to need it finished {@link #hurry hurries} it. Why less than the gc's
     * rest: a checkpoint holds the journal it folds, and the same fraction of a core matters less
     * beside a few seconds of work than a gc's long tail (the measurements: bench/results/README.md,
     * session 27, bench/checkpoint-latency.sh).
     */
    public static Pacer checkpoint(ClientActivity clients, long busyLimitNanos) {
        double b = multiple("cask.checkpoint.rest.busy", CHECKPOINT_BUSY_REST);
        return new Pacer(0, QUANTUM_NANOS, b, busyLimitNanos, clients);
    }

    /** The system property {@code property}, a rest multiple from 0 to 1000, or {@code otherwise} when unset; anything else fails, naming both. */
    private static double multiple(String property, double otherwise) {
        String text = System.getProperty(property, Double.toString(otherwise));
        double m;
        try {
            m = Double.parseDouble(text);
        } catch (NumberFormatException e) {
            m = Double.NaN;
        }
        if (!(m >= 0 && m <= 1000)) throw new IllegalArgumentException("system property " + property + ": '" + text + "' is not a number from 0 to 1000");
        return m;
    }

    /** The multiple of each step's time rested after it while no client is busy. */
    public double rest() {
        return rest;
    }

    /** The multiple of each step's time rested after it while clients are busy. */
    public double busyRest() {
        return busyRest;
    }

    /** The multiple the next rest takes: 0 once {@link #hurry hurried}, {@link #busyRest} while clients are busy (within the busy limit), else {@link #rest}. */
    public double restNow() {
        if (hurried) return 0;
        return busyNow() ? busyRest : rest;
    }

    /** From now on no rest: a rest under way ends at once, later steps return at once (stop requests still count). */
    public void hurry() {
        hurried = true;
        wake();
    }

    /** Wakes a rest or a {@link #waitFor} under way, to look at the flags again. */
    private void wake() {
        lock.lock();
        try {
            woken.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Whether {@link #hurry} was called. */
    public boolean isHurried() {
        return hurried;
    }

    private boolean busyNow() {
        return clients != null && busyRest != rest && clients.within(ACTIVE_WINDOW_NANOS) && clients.now() - born < busyLimitNanos;
    }

    /** Asks the work to stop; {@code reason} is the message of its {@link Stopped}. Wakes a rest or a wait. */
    public void stop(String reason) {
        why = reason;
        stopped = true;
        wake();
    }

    public boolean isStopped() {
        return stopped;
    }

    /** Throws {@link Stopped} once {@link #stop} was called. */
    public void check() {
        if (stopped) throw new Stopped(why);
    }

    /**
     * The end of a step: rests {@code rest} times the work gathered since the last rest once that
     * is at least the quantum; throws {@link Stopped} when asked to stop (before or
     * during the rest).
     */
    public void step() {
        check();
        if (hurried || rest == 0 && busyRest == 0) return;
        lock.lock();
        try {
            long now = System.nanoTime();
            long work = now - workSince;
            if (work < quantumNanos) return;
            boolean busy = busyNow();
            long sleep = (long) (work * (busy ? busyRest : rest));
            long until = now + sleep;
            for (long left = sleep; left > 0 && !stopped && !hurried; left = until - System.nanoTime()) {
                try {
                    woken.awaitNanos(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new Stopped("interrupted");
                }
            }
            long after = System.nanoTime();
            restedNanos += after - now;
            if (busy) busyRestedNanos += after - now;
            workSince = after;
        } finally {
            lock.unlock();
        }
        check();
    }

    /**
     * A wait for someone else (another gc's lock, a writer): sleeps up to {@code millis}, returns
     * early on {@link #stop} by throwing {@link Stopped}. The time waited is not counted as work.
     */
    public void waitFor(long millis) {
        check();
        lock.lock();
        try {
            long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
            for (long left = until - System.nanoTime(); left > 0 && !stopped; left = until - System.nanoTime()) {
                try {
                    woken.awaitNanos(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new Stopped("interrupted");
                }
            }
            workSince = System.nanoTime();
        } finally {
            lock.unlock();
        }
        check();
    }

    /** Seconds rested so far (not counting {@link #waitFor}). */
    public double restedSeconds() {
        lock.lock();
        try {
            return restedNanos / 1e9;
        } finally {
            lock.unlock();
        }
    }

    /** Of {@link #restedSeconds}, the seconds rested at the busy rest (clients were busy). */
    public double busyRestedSeconds() {
        lock.lock();
        try {
            return busyRestedNanos / 1e9;
        } finally {
            lock.unlock();
        }
    }
}
