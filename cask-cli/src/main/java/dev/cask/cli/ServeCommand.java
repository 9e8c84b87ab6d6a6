package dev.cask.cli;

import dev.cask.common.CaskException;
import dev.cask.image.Images;
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
 * checkpointing dirty volumes on a timer and when their last client disconnects, and closing
 * (so checkpointing) every volume on the way out.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve every image over NBD: nbd://HOST:PORT/NAME read-write, nbd://HOST:PORT/NAME@VER read-only.",
                "Runs until interrupted; other cask commands keep working on the store meanwhile."})
final class ServeCommand extends Common implements Callable<Integer> {
    @Option(names = "--listen", paramLabel = "HOST:PORT", defaultValue = "127.0.0.1:10809",
            description = "TCP address to listen on (default: ${DEFAULT-VALUE}).")
    String listen;
    @Option(names = "--socket", paramLabel = "PATH", description = "Also listen on this Unix socket.")
    String socket;
    @Option(names = "--checkpoint-interval", paramLabel = "DURATION", defaultValue = "5m",
            description = "Commit a version of every written image this often (30s, 5m, 1h; 0 turns it off; default: ${DEFAULT-VALUE}).")
    String interval;
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
                    "two more for the JIT, so the first VM meets compiled code, not the JVM's interpreter",
                    "(default: on; --no-warmup skips it)."})
    boolean warmup;

    static Duration parseDuration(String text) {
        String t = text.trim().toLowerCase(Locale.ROOT);
        try {
            if (t.equals("0")) return Duration.ZERO;
            long n = Long.parseLong(t.substring(0, t.length() - 1));
            Duration d = switch (t.charAt(t.length() - 1)) {
                case 's' -> Duration.ofSeconds(n);
                case 'm' -> Duration.ofMinutes(n);
                case 'h' -> Duration.ofHours(n);
                default -> null;
            };
            if (d != null && !d.isNegative()) return d;
        } catch (NumberFormatException | StringIndexOutOfBoundsException e) {
            // fall through to the error
        }
        throw new CaskException.InvalidInput("duration '" + text + "': expected a number with s, m or h (e.g. 30s, 5m), or 0");
    }

    @Override
    public Integer call() throws Exception {
        System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tF %1$tT %4$s %5$s%6$s%n");
        Duration every = parseDuration(interval);
        long journalLimitBytes = dev.cask.common.Sizes.parse(journalLimit);
        if (journalLimitBytes < (1 << 20) || journalLimitBytes > (64L << 30)) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--journal-limit " + journalLimit + ": expected 1M to 64G");
        }
        Duration timeout = parseDuration(requestTimeout);
        if (timeout.isZero()) throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--request-timeout " + requestTimeout + ": expected more than 0");
        if (maxConnections < 1) throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--max-connections " + maxConnections + ": expected at least 1");
        NbdServer.Options options = NbdServer.Options.defaults().withMaxConnections(maxConnections).withRequestTimeout(timeout);
        List<SocketAddress> addresses = new ArrayList<>();
        addresses.add(NbdServer.parseAddress(listen));
        if (socket != null) addresses.add(UnixDomainSocketAddress.of(socket));

        if (warmup) {
            long t0 = System.nanoTime();
            String failed = dev.cask.server.Warmup.run(journalLimitBytes);
            System.getLogger("cask.serve").log(System.Logger.Level.INFO, failed == null
                    ? "warm-up took " + (System.nanoTime() - t0) / 1_000_000 + " ms"
                    : "warm-up skipped: " + failed);
        }
        Images images = openImages();
        ImageExports exports = new ImageExports(images, journalLimitBytes);
        List<NbdServer> servers = new ArrayList<>();
        ControlServer control = null;
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("cask-checkpoint").unstarted(r));
        CountDownLatch stopped = new CountDownLatch(1);
        try {
            control = new ControlServer(main.storeDir(), exports);
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
            timer.scheduleWithFixedDelay(() -> exports.checkpointAll("automatic checkpoint"), every.toMillis(), every.toMillis(), TimeUnit.MILLISECONDS);
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            timer.shutdownNow();
            for (NbdServer s : servers) s.close();
            ctl.close();
            exports.close(); // checkpoints every open volume
            images.close();
            stopped.countDown();
        }, "cask-shutdown"));
        for (NbdServer s : servers) {
            SocketAddress a = s.address();
            String url = a instanceof UnixDomainSocketAddress u ? "nbd+unix:///NAME?socket=" + u.getPath()
                    : "nbd://" + listenHost() + ":" + s.port() + "/NAME";
            out().println("cask: serving " + main.storeDir() + " on " + url);
        }
        out().flush();
        stopped.await();
        return 0;
    }

    private String listenHost() {
        String h = listen.contains(":") ? listen.substring(0, listen.lastIndexOf(':')) : listen;
        return h.isEmpty() ? "127.0.0.1" : h;
    }
}
