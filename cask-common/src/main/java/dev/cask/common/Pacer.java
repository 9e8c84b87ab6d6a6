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
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition woken = lock.newCondition();
    private volatile boolean stopped;
    private volatile String why = "stopped";
    /** Guarded by {@link #lock}. */
    private long workSince = System.nanoTime();
    private long restedNanos;

    /** {@code rest}: how many times a step's duration to sleep after it (0: none). */
    public Pacer(double rest) {
        this(rest, QUANTUM_NANOS);
    }

    /** {@code rest} as above; {@code quantumNanos}: the work gathered before a rest (at least 1 ms, at most 10 s). */
    public Pacer(double rest, long quantumNanos) {
        if (!(rest >= 0) || rest > 1000) throw new IllegalArgumentException("rest " + rest);
        if (quantumNanos < 1_000_000L || quantumNanos > 10_000_000_000L) throw new IllegalArgumentException("quantum " + quantumNanos + " ns");
        this.rest = rest;
        this.quantumNanos = quantumNanos;
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
        String rest = System.getProperty("cask.gc.rest", Double.toString(BACKGROUND_REST));
        String quantum = System.getProperty("cask.gc.quantum.ms", Long.toString(QUANTUM_NANOS / 1_000_000L));
        double r;
        long q;
        try {
            r = Double.parseDouble(rest);
        } catch (NumberFormatException e) {
            r = Double.NaN;
        }
        try {
            q = Long.parseLong(quantum);
        } catch (NumberFormatException e) {
            q = -1;
        }
        if (!(r >= 0 && r <= 1000)) throw new IllegalArgumentException("system property cask.gc.rest: '" + rest + "' is not a number from 0 to 1000");
        if (q < 1 || q > 10_000) throw new IllegalArgumentException("system property cask.gc.quantum.ms: '" + quantum + "' is not a whole number of milliseconds from 1 to 10000");
        return new Pacer(r, q * 1_000_000L);
    }

    /** The multiple of each step's time rested after it. */
    public double rest() {
        return rest;
    }

    /** Asks the work to stop; {@code reason} is the message of its {@link Stopped}. Wakes a rest or a wait. */
    public void stop(String reason) {
        why = reason;
        stopped = true;
        lock.lock();
        try {
            woken.signalAll();
        } finally {
            lock.unlock();
        }
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
        if (rest == 0) return;
        lock.lock();
        try {
            long now = System.nanoTime();
            long work = now - workSince;
            if (work < quantumNanos) return;
            long sleep = (long) (work * rest);
            long until = now + sleep;
            for (long left = sleep; left > 0 && !stopped; left = until - System.nanoTime()) {
                try {
                    woken.awaitNanos(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new Stopped("interrupted");
                }
            }
            long after = System.nanoTime();
            restedNanos += after - now;
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
}
