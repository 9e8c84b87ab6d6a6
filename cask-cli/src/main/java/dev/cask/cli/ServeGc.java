package dev.cask.cli;

import dev.cask.common.Pacer;
import dev.cask.common.Progress;
import dev.cask.common.Sizes;
import dev.cask.image.GarbageCollector;
import dev.cask.image.Images;

import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;

/**
 * The background garbage collection of {@code cask serve --gc-interval}: the collection of
 * {@code cask gc} (sweep, then compaction) on the server's own store, every interval, on a thread
 * of its own, while the clients keep reading and writing.
 *
 * <p><b>Pace.</b> It runs on one daemon thread of its own ({@code cask-gc}, at the lowest Java
 * priority, which Linux ignores unless told otherwise), never the checkpoint timer's (a
 * collection can take minutes; checkpoints and prunes must not wait for it), paced by a
 * {@link Pacer#background(dev.cask.common.ClientActivity)} that rests three times as long as each
 * step took (a pointer chunk read, a transaction of 4,096 deletes, a batch of up to 8 MiB of
 * copied chunks): it keeps the disk and a core busy at most a quarter of the time, however fast
 * the disk is; and 199 times while the server's NBD clients are busy (a request in the last
 * second), for at most 30 minutes of a collection, busy 0.5 % of the time, so that few of their
 * requests meet it on a core (the measurements: bench/results/README.md, sessions 23 and 24).
 *
 * <p><b>What runs alongside.</b> A collection waits, when it starts, for the writer sessions
 * open at that moment: this server's checkpoints among them (the latch of a session of this
 * process), and imports of other processes. That never deadlocks: a checkpoint holds its session
 * only across its puts, its store sync and its catalog commit, and none of those waits for the
 * collection (it holds no lock a checkpoint takes: gc.lock and its own process lock are taken by
 * collections only, the store's and the index's locks only for one short step at a time).
 * Checkpoints that start after that run alongside it; the safety rule that makes that right is
 * in {@code GcEpochs}. Another collection of the store (a {@code cask gc}, another server's) makes
 * this one wait, with a log line; one of this one makes {@code cask gc} wait, saying so.
 *
 * <p><b>Log.</b> One INFO line per collection: chunks and bytes freed, packs compacted, seconds
 * (and of them resting, and of that at the busy rest); one INFO line per wait; one ERROR line when it fails, after which the
 * server keeps serving and the next one runs an interval later. Phases are DEBUG lines.
 *
 * <p><b>Stop.</b> {@link #stop} ends a running collection at its next step (stopping between two
 * steps is as safe as a kill -9 there, and the next collection goes on from there); the waits
 * for another gc or a writer end too (they poll). Nothing is interrupted (an interrupt would
 * close file channels the store shares with the clients' reads).
 */
final class ServeGc {
    private static final System.Logger LOG = System.getLogger("cask.serve");

    private final Images images;
    private final Duration every;
    private final dev.cask.common.ClientActivity clients;
    private final ScheduledExecutorService thread;
    private Pacer running; // guarded by "this"
    private boolean stopped; // guarded by "this"

    /**
     * Whether gc threads take the shortest scheduler slice ({@code Background.shortSlice}), so a
     * client's request that wakes up behind one waits 0.1 ms for the core rather than a whole
     * default slice; system property {@code cask.gc.short.slice}, on by default.
     */
    static final boolean SHORT_SLICE = Boolean.parseBoolean(System.getProperty("cask.gc.short.slice", "true"));

    /**
     * A gc thread's priority: nice 10 ({@code Background.lowerPriority}); with the system
     * properties {@code cask.gc.idle.cpu=true} also {@code SCHED_IDLE}, and {@code cask.gc.idle.io=true}
     * the idle I/O class. Both are off by default: in the lifecycle benchmark a gc in SCHED_IDLE
     * and the idle I/O class made served disks' p99 latency during gc worse (0.4 to 21 ms on an
     * otherwise quiet point; nice 10 alone: 0.4 to 2.1 ms), as a low-priority thread that holds
     * something a client needs (the filesystem journal an fsync commits, a lock) stalls it for as
     * long as it waits to run. Kept as knobs for experiments.
     */
    static void lowerThisThread() {
        dev.cask.common.Background.lowerPriority();
        if (SHORT_SLICE) dev.cask.common.Background.shortSlice(dev.cask.common.Background.threadId());
        if (Boolean.getBoolean("cask.gc.idle.cpu")) dev.cask.common.Background.idleCpu();
        if (Boolean.getBoolean("cask.gc.idle.io")) dev.cask.common.Background.idleIo();
    }

    /**
     * Starts collecting {@code images}' store every {@code every} (first after {@link #firstDelay}),
     * paced by {@link Pacer#background(dev.cask.common.ClientActivity)} with {@code clients}, the
     * server's NBD requests.
     */
    ServeGc(Images images, Duration every, dev.cask.common.ClientActivity clients) {
        this.images = images;
        this.every = every;
        this.clients = clients;
        Pacer.background(clients); // a bad cask.gc.rest (or .busy, busy.limit) fails here, not in every run
        ThreadFactory nice = dev.cask.common.Background.threads("cask-gc"); // nice 10: clients' threads first
        this.thread = Executors.newSingleThreadScheduledExecutor(r -> nice.newThread(() -> {
            lowerThisThread();
            r.run();
        }));
        long first = firstDelay(every).toMillis();
        thread.scheduleWithFixedDelay(this::runOnce, first, every.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * When the first collection runs: one interval, plus a tenth of it (at most 5 minutes), so
     * that with the prune's interval equal to this one each collection follows a prune and frees
     * what it removed.
     */
    static Duration firstDelay(Duration every) {
        return every.plus(Duration.ofMillis(Math.min(every.toMillis() / 10, Duration.ofMinutes(5).toMillis())));
    }

    /** One collection, logged; never throws (a periodic task that throws is not run again). */
    void runOnce() {
        Pacer pacer = Pacer.background(clients);
        synchronized (this) {
            if (stopped) return;
            running = pacer;
        }
        long t0 = System.nanoTime();
        try {
            LOG.log(System.Logger.Level.DEBUG, "gc: starting");
            GarbageCollector.Result r = images.collector().paced("cask serve (background gc)", pacer)
                    .run(false, m -> LOG.log(System.Logger.Level.INFO, "gc: " + m), PHASES);
            var c = r.compacted();
            LOG.log(System.Logger.Level.INFO, String.format(Locale.ROOT,
                    "gc: freed %d chunks (%s); punched %s in %d packs; compacted %d packs (%d rewritten, %d deleted whole: %s became %s); %d chunks marked from %d versions; %.1f s (%.1f s of it resting, %.1f s of that beside busy clients)",
                    r.chunksFreed(), Sizes.human(r.bytesFreed()), Sizes.human(c.bytesPunched()), c.packsPunched(),
                    c.packsRewritten() + c.packsDeleted(), c.packsRewritten(), c.packsDeleted(),
                    Sizes.human(c.bytesBefore()), Sizes.human(c.bytesAfter()), r.chunksMarked(), r.versions(), r.seconds(), pacer.restedSeconds(), pacer.busyRestedSeconds()));
            if (c.packsDamaged() > 0) {
                LOG.log(System.Logger.Level.WARNING, "gc: " + c.packsDamaged() + " pack(s) left uncompacted: a live chunk in each is damaged (cask check names it)");
            }
        } catch (Pacer.Stopped s) {
            LOG.log(System.Logger.Level.INFO, String.format(Locale.ROOT, "gc: stopped (%s) after %.1f s; what it freed stays freed, the next gc carries on",
                    s.getMessage(), (System.nanoTime() - t0) / 1e9));
        } catch (RuntimeException | Error e) {
            // one line: the formatter appends the cause's message (and, at debug, its stack trace)
            LOG.log(System.Logger.Level.ERROR, String.format(Locale.ROOT, "gc failed after %.1f s (still serving; the next gc runs in %s)",
                    (System.nanoTime() - t0) / 1e9, dev.cask.common.Durations.format(every)), e);
        } finally {
            synchronized (this) {
                running = null;
            }
        }
    }

    /** Phase lines at DEBUG (mark, sweep, compact, with their sizes). */
    private static final Progress PHASES = new Progress() {
        @Override
        public void start(String label, long total) {
            LOG.log(System.Logger.Level.DEBUG, () -> "gc: " + label + " (" + total + ")");
        }

        @Override
        public void advance(long delta) {}

        @Override
        public void done() {}
    };

    /** True while a collection runs. */
    synchronized boolean running() {
        return running != null;
    }

    /** No more collections; a running one ends at its next step. Returns at once (see {@link #await}). */
    void stop(String reason) {
        synchronized (this) {
            stopped = true;
            if (running != null) running.stop(reason);
        }
        thread.shutdown(); // not shutdownNow: no interrupt (see the class comment); cancels the timer
    }

    /** Waits up to {@code timeout} for a running collection to end; false when it did not. */
    boolean await(Duration timeout) throws InterruptedException {
        return thread.awaitTermination(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }
}
