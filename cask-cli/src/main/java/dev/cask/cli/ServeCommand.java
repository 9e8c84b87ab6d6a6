package dev.cask.cli;

import dev.cask.common.CaskException;
import dev.cask.image.Images;
import dev.cask.image.GarbageCollector;
import dev.cask.server.ControlServer;
import dev.cask.server.ImageExports;
import dev.cask.server.nbd.NbdServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * {@code cask serve}: serves every image of the store over NBD until stopped (SIGINT/SIGTERM),
 * checkpointing dirty volumes on a timer and when their last client disconnects, pruning them by
 * retention on the same timer, collecting the store's garbage on a thread of its own ({@link
 * ServeGc}), and closing (so checkpointing) every volume on the way out.
 *
 * <p>Stopping is done by the main thread, not a JVM shutdown hook: java.util.logging closes its
 * handlers in a shutdown hook of its own, which runs alongside ours, so a hook's log lines are
 * lost. SIGINT/SIGTERM handlers ({@link Stop}) wake the main thread, which stops in the order
 * {@link #shutDown} describes, logs each step and returns 0. A hook remains for other ways out.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve every image over NBD, read-write as NAME and read-only as NAME@VER:",
                "  nbd://HOST:PORT/NAME  nbd://HOST:PORT/NAME@VER",
                "Runs until interrupted; other cask commands keep working on the store meanwhile."})
final class ServeCommand extends Common implements Callable<Integer> {
    @Option(names = "--listen", paramLabel = "HOST:PORT", defaultValue = "127.0.0.1:10809",
            description = {"TCP address to listen on,", "default: ${DEFAULT-VALUE}"})
    String listen;
    @Option(names = "--socket", paramLabel = "PATH", description = "Also listen on this Unix socket.")
    String socket;
    @Option(names = "--checkpoint-interval", paramLabel = "DURATION", defaultValue = "5m",
            description = "Commit a version of every written image this often (30s, 5m, 1h; 0 turns it off; default: ${DEFAULT-VALUE});"
                    + " these checkpoints rest while clients are busy, so that served disks keep their latency.")
    String interval;
    @Option(names = "--prune-interval", paramLabel = "DURATION", defaultValue = "1h",
            description = {"Apply retention to the images open read-write this often (default: ${DEFAULT-VALUE}; 0 turns it off): each",
                    "image's stored policy (cask retention), else the default: every automatic version of the last 2 hours, then",
                    "the newest of each of 48 hours, 30 days, 8 weeks and 12 months. User versions are kept. One log line per",
                    "image pruned; space comes back when garbage collection runs."})
    String pruneInterval;
    @Option(names = "--gc-interval", paramLabel = "DURATION", defaultValue = "1h",
            description = {"Run garbage collection (as cask gc: free what no version reaches, then compact packs) on the store",
                    "this often, in the background while clients keep working (default: ${DEFAULT-VALUE}; 0 turns it off; never with",
                    "--read-only). The first run comes an interval and a tenth of it (at most 5 minutes) after start, so that it",
                    "follows a prune. Paced: after each step it rests three times as long as the step took (busy at most a quarter",
                    "of the time), and 199 times while clients are busy (a request in the last second; for at most 30 minutes of a",
                    "run). One log line per run: chunks and bytes freed, packs compacted, seconds. A shutdown stops it at",
                    "its next step."})
    String gcInterval;
    @Option(names = "--journal-limit", paramLabel = "SIZE", defaultValue = "1G",
            description = {"Journal size of an image that starts a checkpoint in the background (default: ${DEFAULT-VALUE});",
                    "writers wait while a journal is over twice this. Writes cost one journal append until then."})
    String journalLimit;
    @Option(names = "--max-connections", paramLabel = "N", defaultValue = "1024",
            description = "NBD connections open at once; more are closed as they arrive, with a log line (default: ${DEFAULT-VALUE}).")
    int maxConnections;
    @Option(names = "--request-timeout", paramLabel = "DURATION", defaultValue = "60s",
            description = {"Close a client that stops sending a request it has begun (a WRITE's payload, the handshake)",
                    "or stops taking a reply for this long, freeing its buffers; idle clients are never closed (default: ${DEFAULT-VALUE})."})
    String requestTimeout;
    @Option(names = "--warmup", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = {"Before taking clients, serve a throwaway image on loopback for about two seconds and wait up to",
                    "two more for the JIT, so the first VM meets compiled code, not the JVM's interpreter; then",
                    "lower the JIT's threads to nice 10, so what it still compiles does not take the CPU from clients",
                    "(default: on; --no-warmup skips both)."})
    boolean warmup;
    @Option(names = "--read-only", description = "Serve every image read-only (its current content when a client connects); nothing is opened for writing.")
    boolean readOnly;
    @Option(names = "--export", paramLabel = "PREFIX", description = "Serve only the images named PREFIX or PREFIX/... (e.g. team/web); others are unknown to clients.")
    String exportPrefix;
    @Option(names = "--config", paramLabel = "FILE", description = {"Read option defaults from FILE (Java properties: listen = 0.0.0.0:10809, one option per line,",
            "names without the dashes; options on the command line win). Default: $CASK_CONFIG, else " + ServeConfig.DEFAULT_PATH + " when it exists."})
    java.nio.file.Path config; // read by ServeConfig before parsing; here for --help and validation
    @Option(names = "--lease-ttl", paramLabel = "DURATION",
            description = {"Shared store: time to live of this node's leases (one writer per image across the nodes;",
                    "1s to 1h, default 30s). Renewed every third of it; a node that stops renewing (frozen, cut off, dead)",
                    "loses its images to the next node that opens them after it, and its own writes fail from then on."})
    String leaseTtl;
    private Duration leaseTtlValue;
    @Option(names = "--log-level", paramLabel = "LEVEL", defaultValue = "info",
            description = "Least severe log lines to write to stderr: " + ServeLog.LEVELS + " (default: ${DEFAULT-VALUE}).")
    String logLevel;

    static Duration parseDuration(String text) {
        return dev.cask.common.Durations.parse(text);
    }

    @Override
    public Integer call() throws Exception {
        try {
            ServeLog.configure(logLevel);
        } catch (CaskException.InvalidInput e) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--log-level: " + e.getMessage());
        }
        main.cache(); // --cache and --cache-size (or the config's cache, cache-size) fit, before the warm-up
        Duration every = usage("--checkpoint-interval", () -> parseDuration(interval));
        long journalLimitBytes = usage("--journal-limit", () -> dev.cask.common.Sizes.parse(journalLimit));
        if (journalLimitBytes < (1 << 20) || journalLimitBytes > (64L << 30)) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--journal-limit " + journalLimit + ": expected 1M to 64G");
        }
        Duration timeout = usage("--request-timeout", () -> parseDuration(requestTimeout));
        Duration pruneEvery = usage("--prune-interval", () -> parseDuration(pruneInterval));
        Duration gcEvery = usage("--gc-interval", () -> parseDuration(gcInterval));
        if (timeout.isZero()) throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--request-timeout " + requestTimeout + ": expected more than 0");
        if (maxConnections < 1) throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--max-connections " + maxConnections + ": expected at least 1");
        if (leaseTtl != null) {
            Duration ttl = usage("--lease-ttl", () -> parseDuration(leaseTtl));
            if (ttl.compareTo(Duration.ofSeconds(1)) < 0 || ttl.compareTo(Duration.ofHours(1)) > 0) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--lease-ttl " + leaseTtl + ": expected 1s to 1h");
            }
            if (!(main.choice() instanceof StoreChoice.Shared)) {
                throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--lease-ttl: a local store's leases are file locks,"
                        + " which go with their process; --lease-ttl goes with --store s3://BUCKET[/PREFIX]");
            }
            leaseTtlValue = ttl;
        }
        // every server's requests stamp one activity; the gcs and the timer's checkpoints read it to keep out of busy clients' way
        dev.cask.common.ClientActivity clients = new dev.cask.common.ClientActivity();
        dev.cask.common.Pacer.checkpoint(clients, 0); // a bad cask.checkpoint.rest.busy fails here, as ServeGc's knobs do, not at the first checkpoint
        NbdServer.Options options = NbdServer.Options.defaults().withMaxConnections(maxConnections).withRequestTimeout(timeout).withActivity(clients);
        ImageExports.Policy policy;
        try {
            policy = new ImageExports.Policy(readOnly, exportPrefix);
        } catch (CaskException.InvalidInput e) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--export: " + e.getMessage());
        }
        List<SocketAddress> addresses = new ArrayList<>();
        addresses.add(NbdServer.parseAddress(listen));
        if (socket != null) addresses.add(UnixDomainSocketAddress.of(socket));
        // from here on SIGINT and SIGTERM ask for an orderly stop (see Stop), which the main
        // thread carries out while logging still works, instead of the JVM's shutdown hooks
        Stop stop = new Stop();
        stop.install();

        if (warmup) {
            long t0 = System.nanoTime();
            String failed = dev.cask.server.Warmup.run(journalLimitBytes);
            // what the JIT still compiles from here on (a client's own profile: the warm-up cannot
            // make every path hot) it compiles on the CPU the clients leave (Background.lowerCompilerThreads)
            int lowered = dev.cask.common.Background.lowerCompilerThreads();
            LOG.log(System.Logger.Level.INFO, (failed == null
                    ? "warm-up took " + (System.nanoTime() - t0) / 1_000_000 + " ms"
                    : "warm-up skipped: " + failed) + "; JIT compiler threads at nice " + dev.cask.common.Background.NICE + " from now on: " + lowered);
        }
        // the index through a memory map, as the bulk commands read it: a served disk's first read of a
        // block asks the index, and without the map that query cost about five pread calls (cold
        // random 4K reads of a restarted server: +14 % median, bench/cold-read-bench.sh, session 25)
        Images images = openImagesForBulk();
        if (main.choice() instanceof StoreChoice.Shared) LOG.log(System.Logger.Level.INFO, "leases: " + images.leases());
        logCache(images, false);
        ImageExports exports = new ImageExports(images, journalLimitBytes, policy);
        List<NbdServer> servers = new ArrayList<>();
        ControlServer control = null;
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("cask-checkpoint").unstarted(r));
        try {
            control = new ControlServer(controlDir(), exports, collections(images, readOnly), clients);
            if (main.choice() instanceof StoreChoice.Shared) {
                LOG.log(System.Logger.Level.INFO, "control: other nodes reach this one at " + SharedImages.advertise(images, control, listenHost()));
            }
            for (SocketAddress a : addresses) servers.add(NbdServer.start(a, exports, options));
        } catch (RuntimeException e) {
            for (NbdServer s : servers) s.close();
            if (control != null) control.close();
            exports.close();
            images.close();
            throw e;
        }
        ControlServer ctl = control;
        if (!every.isZero()) {
            // paced beside busy clients (see Pacer.checkpoint), all the images' checkpoints of one round for at
            // most an interval together, so that a round of many images still ends about when the next is due;
            // whoever needs one finished hurries it
            timer.scheduleWithFixedDelay(() -> {
                long until = System.nanoTime() + every.toNanos();
                exports.checkpointAll("automatic checkpoint", () -> dev.cask.common.Pacer.checkpoint(clients, Math.max(0, until - System.nanoTime())));
            }, every.toMillis(), every.toMillis(), TimeUnit.MILLISECONDS);
        }
        if (!pruneEvery.isZero() && !readOnly) {
            // on the checkpoint timer's thread: a prune never runs while that thread checkpoints
            dev.cask.image.Pruner pruner = LifecycleCommands.pruner(images);
            timer.scheduleWithFixedDelay(() -> pruneOpen(pruner, exports), pruneEvery.toMillis(), pruneEvery.toMillis(), TimeUnit.MILLISECONDS);
        }
        // on a thread of its own, paced; see ServeGc for what it may and may not wait for
        boolean collects = images.findCapability(dev.cask.image.StoreCapabilities.Collecting.class).isPresent();
        if (!gcEvery.isZero() && !readOnly && !collects) {
            LOG.log(System.Logger.Level.INFO, "background gc: off (garbage collection is not supported on store " + images.storeName() + " yet)");
        }
        ServeGc gc = !gcEvery.isZero() && !readOnly && collects ? new ServeGc(images, gcEvery, clients) : null;
        // any other way out of the JVM (System.exit elsewhere, SIGHUP) still checkpoints, unlogged
        Runnable shutdown = once(() -> shutDown(stop.reason(), timer, gc, servers, ctl, exports, images));
        Runtime.getRuntime().addShutdownHook(new Thread(shutdown, "cask-shutdown"));
        for (NbdServer s : servers) {
            SocketAddress a = s.address();
            String url = a instanceof UnixDomainSocketAddress u ? "nbd+unix:///NAME?socket=" + u.getPath()
                    : "nbd://" + listenHost() + ":" + s.port() + "/NAME";
            out().println("cask: serving " + images.storeName() + " on " + url);
        }
        out().flush();
        stop.await();
        shutdown.run();
        return 0;
    }

    private static final System.Logger LOG = System.getLogger("cask.serve");

    /**
     * One INFO line on this node's chunk cache (--cache), when there is one: what it holds, and
     * with {@code totals} (at the stop) how the reads since the start went.
     */
    private static void logCache(Images images, boolean totals) {
        if (!(images.store() instanceof dev.cask.store.cache.CachingChunkStore cached)) return;
        var c = cached.cache();
        var st = c.stats();
        String line = "cache " + c.dir() + ": " + st.chunks() + " chunks, " + dev.cask.common.Sizes.human(st.bytes())
                + " of " + dev.cask.common.Sizes.human(c.maxBytes());
        if (totals) {
            line += "; since the start " + st.hits() + " chunks read from the cache, " + st.misses() + " from the store, "
                    + st.corrupt() + " damaged copies deleted, " + st.writeFailures() + " copies not kept (disk full or unwritable)";
        }
        LOG.log(System.Logger.Level.INFO, line);
    }

    /**
     * The collections {@code cask gc} asks this server for (see GcCommand): on the requesting
     * thread, lowered like the background gc's, unpaced (someone waits), one INFO line each.
     * A read-only server changes nothing in the store, so it refuses (the command then collects
     * itself).
     */
    private static ControlServer.Collections collections(Images images, boolean readOnly) {
        return (dry, full, waiting, progress, pacer) -> {
            if (readOnly) throw new CaskException.Unsupported("this server is read-only");
            ServeGc.lowerThisThread();
            LOG.log(System.Logger.Level.INFO, "gc: " + (dry ? "dry run " : "") + "asked for by cask gc");
            GarbageCollector.Result r;
            try {
                r = images.collector().full(full).paced("cask gc (in cask serve, pid " + ProcessHandle.current().pid() + ")", pacer)
                        .run(dry, m -> {
                            LOG.log(System.Logger.Level.INFO, "gc: " + m);
                            waiting.accept(m);
                        }, progress);
            } catch (dev.cask.common.Pacer.Stopped s) {
                LOG.log(System.Logger.Level.INFO, "gc (asked for): stopped (" + s.getMessage() + "); what it freed stays freed, the next gc carries on");
                throw s;
            }
            LOG.log(System.Logger.Level.INFO, String.format(java.util.Locale.ROOT, "gc (asked for): %s %d chunks (%s); %d packs rewritten, %d deleted whole; %.1f s",
                    dry ? "would free" : "freed", r.chunksFreed(), dev.cask.common.Sizes.human(r.bytesFreed()),
                    r.compacted().packsRewritten(), r.compacted().packsDeleted(), r.seconds()));
            return r;
        };
    }

    /** Retention for the images open here: one INFO line per image that lost versions, one ERROR line on a failure. */
    private static void pruneOpen(dev.cask.image.Pruner pruner, ImageExports exports) {
        List<String> open = exports.openImages();
        if (open.isEmpty()) return;
        try {
            for (var r : pruner.prune(open, null, false, false).images()) {
                if (r.removed().isEmpty()) continue;
                LOG.log(System.Logger.Level.INFO, "image '" + r.image() + "': pruned " + r.removed().size() + " version"
                        + (r.removed().size() == 1 ? "" : "s") + " " + r.removed().stream().map(v -> Integer.toString(v.number())).toList()
                        + " by retention policy " + r.policySource() + " (" + r.policy() + ")");
            }
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "retention of " + open + " failed: " + e.getMessage());
        }
    }

    /** The value {@code parse} makes of an option; its InvalidInput is a usage error (exit 2) naming the option. */
    private <T> T usage(String option, java.util.function.Supplier<T> parse) {
        try {
            return parse.get();
        } catch (CaskException.InvalidInput e) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), option + ": " + e.getMessage());
        }
    }

    /**
     * The orderly stop, in the order a client can see: stop accepting and let every request in
     * flight finish (NbdServer.close: later requests get NBD_ESHUTDOWN, and each export is
     * released, which checkpoints an image when its last client goes), stop the control socket,
     * then close (so checkpoint) whatever is still open. A background gc that is running is asked
     * to stop first and waited for (at most {@link #GC_STOP_WAIT}) before the store closes; it
     * stops at its next step, which is as safe as a kill there. Each step is logged; a failure is
     * one line (its image and cause) and the next step still runs.
     */
    private static void shutDown(String reason, ScheduledExecutorService timer, ServeGc gc, List<NbdServer> servers, ControlServer ctl,
                                 ImageExports exports, Images images) {
        long t0 = System.nanoTime();
        List<String> open = exports.openImages();
        boolean collecting = gc != null && gc.running();
        LOG.log(System.Logger.Level.INFO, "stopping (" + reason + "): no new connections; " + open.size() + " image"
                + (open.size() == 1 ? "" : "s") + " open read-write" + (open.isEmpty() ? "" : " " + open) + "; requests in flight finish"
                + (collecting ? "; the running gc stops at its next step" : ""));
        if (gc != null) gc.stop(reason); // at once: it ends while the clients are let go
        // no interrupt (not shutdownNow): an interrupt in a FileChannel call closes the channel for every
        // thread (the store's packs), and a paced checkpoint under way is hurried by the close of its image below
        timer.shutdown();
        for (NbdServer s : servers) {
            try {
                s.close();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, "stopping the listener on " + s.address() + ": " + e.getMessage());
            }
        }
        LOG.log(System.Logger.Level.INFO, "every client is disconnected");
        try {
            ctl.close();
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "stopping the control socket: " + e.getMessage());
        }
        if (gc != null) {
            try {
                // a step is short (a pointer chunk, 4,096 deletes, 8 MiB of copies); past this, close
                // the store under it: it fails, as a kill there would, and the next gc carries on
                if (!gc.await(GC_STOP_WAIT)) LOG.log(System.Logger.Level.WARNING, "gc: still running after " + GC_STOP_WAIT.toSeconds() + " s; closing the store under it");
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        exports.close(); // checkpoints what is still open; logs each image
        logCache(images, true);
        try {
            images.close();
        } catch (CaskException e) { // one line, as for the checkpoints: the message names the store and the error
            LOG.log(System.Logger.Level.ERROR, "closing the store failed: " + e.getMessage());
        }
        LOG.log(System.Logger.Level.INFO, String.format(Locale.ROOT, "stopped in %.1f s", (System.nanoTime() - t0) / 1e9));
    }

    /** How long a shutdown waits for a running gc to reach its next step and stop. */
    private static final Duration GC_STOP_WAIT = Duration.ofSeconds(10);

    private static Runnable once(Runnable r) {
        java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
        return () -> {
            if (done.compareAndSet(false, true)) r.run();
        };
    }

    /**
     * SIGINT and SIGTERM handlers: the first asks the main thread for the orderly stop; a second
     * one while it runs (an impatient Ctrl-C, or systemd's kill after its timeout would be
     * SIGKILL anyway) stops at once with exit status 1. Nothing flushed is lost either way: a FLUSH
     * returned only after the journal was on disk, and the next serve replays it.
     */
    static final class Stop {
        private final CountDownLatch requested = new CountDownLatch(1);
        private volatile String reason = "shutdown";

        void install() {
            for (String name : new String[]{"TERM", "INT"}) {
                try {
                    sun.misc.Signal.handle(new sun.misc.Signal(name), s -> signalled("SIG" + s.getName()));
                } catch (IllegalArgumentException e) {
                    // the JVM reserves it (-Xrs): the shutdown hook then does the work, unlogged
                }
            }
        }

        private void signalled(String signal) {
            if (requested.getCount() == 0) {
                LOG.log(System.Logger.Level.WARNING, signal + " again: exiting now, without waiting for clients or checkpoints"
                        + " (flushed writes are in the journals; the next serve replays them)");
                Runtime.getRuntime().halt(1);
            }
            reason = signal;
            requested.countDown();
        }

        String reason() {
            return reason;
        }

        void await() throws InterruptedException {
            requested.await();
        }
    }

    /** The leases' time to live on a shared store ({@code --lease-ttl}, checked in {@link #call}); null: the default. */
    @Override
    Duration leaseTtl() {
        return leaseTtlValue;
    }

    private String listenHost() {
        String h = listen.contains(":") ? listen.substring(0, listen.lastIndexOf(':')) : listen;
        return h.isEmpty() ? "127.0.0.1" : h;
    }
}
