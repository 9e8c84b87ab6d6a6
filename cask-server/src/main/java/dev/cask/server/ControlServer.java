package dev.cask.server;

import dev.cask.catalog.Version;
import dev.cask.common.CaskException;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A running server's control socket ({@code STORE/serve.PID.sock}; several servers may share a
 * store), through which CLI commands reach images a server holds open. One request line, one reply line, UTF-8:
 * <pre>
 * snapshot NAME [MESSAGE]     ->  ok VERSION | not-open | error KIND MESSAGE
 * checkpoint NAME [MESSAGE]   ->  ok VERSION | not-open | error KIND MESSAGE
 * user-checkpoint NAME [MSG]  ->  ok VERSION | not-open | error KIND MESSAGE
 * in-use NAME                 ->  ok [VERSION ...] | error KIND MESSAGE
 * gc [dry-run] [full] [paced] ->  EVENT ... then ok KEY=VALUE ... | error KIND MESSAGE
 * ping                        ->  ok
 * </pre>
 * {@code snapshot} always makes a version; {@code checkpoint} makes one only when the image changed
 * since its last one, and answers the version that holds its current content either way (export
 * and clone of a served image's head use it). Versions made by {@code snapshot} and
 * {@code user-checkpoint} ({@code cask snapshot}) are user versions, by {@code checkpoint}
 * automatic ones. {@code in-use} lists the versions of NAME this server needs kept (its open
 * volume's base, read-only exports of NAME@VER): retention and {@code rm NAME@VER} never remove
 * them, and {@code rm NAME} is refused while the list is not empty (all three ask inside their
 * catalog transaction; the answer is read without any lock a catalog write could be waiting on). KIND is the error's kind ({@link ControlClient}
 * turns it back into the same exception). The client side is {@link ControlClient}. Only local
 * processes that can open the socket file (owner-only permissions) can talk to it.
 *
 * <p><b>gc.</b> {@code cask gc} runs its collection in a running server of the store when there
 * is one ({@link Collections}): the server's JVM is warm (its JIT has compiled the store's code,
 * its caches hold the index pages), and no second JVM starts up on the cores the server's
 * clients use; a JVM's start alone (class loading, JIT threads) is enough to raise a served
 * disk's p99 latency several times on a two-core host. The collection runs on a platform thread
 * of its own ({@code cask-gc-request}), at full pace (someone waits for it), or with {@code paced}
 * at the pace of the server's background gc ({@link dev.cask.common.Pacer#background(dev.cask.common.ClientActivity)}:
 * it rests three times as long as each step took, 199 times while the server's clients are busy,
 * so their latency stays closer to normal), and at
 * the priority {@link Collections#run} gives it. Until the last line, the reply is a stream of event lines
 * the client's progress bar and stderr show: {@code wait MESSAGE} (it waits for another gc or a
 * writer), {@code start ITEMS|BYTES TOTAL LABEL}, {@code advance N} (at most ten a second),
 * {@code done}, and {@code .} once a second while nothing else was sent. A client that goes
 * away (its {@code cask gc} killed) is noticed at the next line that cannot be written, and the
 * collection stops at its next step, which is as safe as a kill there. The last line is
 * {@code ok} with the result's fields ({@code GarbageCollector.Result#fields}) as
 * {@code KEY=VALUE} words, or an error. {@link #close} stops a collection still running and
 * waits for it (at most {@link #GC_STOP_WAIT}), so the store is not closed under it.
 */
public final class ControlServer implements AutoCloseable {
    static final String PREFIX = "serve.";
    /** A {@code paced-checkpoint}'s busy limit: the default checkpoint interval, as the timer's. */
    static final java.time.Duration PACED_CHECKPOINT_BUSY_LIMIT = java.time.Duration.ofMinutes(5);
    static final String SUFFIX = ".sock";
    private final Path path;
    private final ServerSocketChannel server;
    /** The TCP listener for other hosts ({@link #listenTcp}), or null. */
    private volatile ServerSocketChannel tcp;
    /** What a TCP connection's first line must be: {@code auth TOKEN}. */
    private volatile byte[] auth;
    private final ImageExports exports;
    private final Thread acceptor;
    private final Collections collections;
    /** Whose requests slow a {@code paced} collection down (see {@code Pacer#background(ClientActivity)}), or null. */
    private final dev.cask.common.ClientActivity clients;
    /** The collections clients asked for that are running: stopped (and waited for) by {@link #close}. */
    private final java.util.Set<Running> running = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /** How long {@link #close} waits for a requested collection to stop at its next step. */
    static final java.time.Duration GC_STOP_WAIT = java.time.Duration.ofSeconds(30);

    /**
     * What a {@code gc} request runs: one collection of the server's store, stoppable through
     * {@code pacer}, calling {@code waiting} and {@code progress} as {@code cask gc} would. It
     * runs on a platform thread of its own, which it may lower in priority. Throws
     * {@link CaskException.Unsupported} where the store cannot be collected.
     */
    public interface Collections {
        /** {@code full}: sweep the whole index (see {@code GarbageCollector#full}). */
        dev.cask.image.GarbageCollector.Result run(boolean dryRun, boolean full, java.util.function.Consumer<String> waiting,
                                                   dev.cask.common.Progress progress, dev.cask.common.Pacer pacer);
    }

    private record Running(dev.cask.common.Pacer pacer, Thread thread) {}

    /** A control socket without gc requests (they are answered as unsupported). */
    public ControlServer(Path storeDir, ImageExports exports) {
        this(storeDir, exports, (dry, full, waiting, progress, pacer) -> {
            throw new CaskException.Unsupported("this server does not run garbage collection");
        });
    }

    public ControlServer(Path storeDir, ImageExports exports, Collections collections) {
        this(storeDir, exports, collections, null);
    }

    /**
     * As above; a {@code paced} collection rests longer while {@code clients} (the NBD servers'
     * requests, or null) are busy, as the server's background gc does.
     */
    public ControlServer(Path storeDir, ImageExports exports, Collections collections, dev.cask.common.ClientActivity clients) {
        this.clients = clients;
        this.path = storeDir.resolve(PREFIX + ProcessHandle.current().pid() + SUFFIX);
        this.exports = exports;
        this.collections = collections;
        try {
            Files.deleteIfExists(path); // left by a dead server whose pid this process now has
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(path));
            Files.setPosixFilePermissions(path, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            throw new CaskException.Io("control socket " + path + ": cannot listen: " + e.getMessage(), e);
        }
        acceptor = Thread.ofVirtual().name("cask-control").start(() -> acceptLoop(server, false));
    }

    /**
     * Also takes requests from other hosts (a shared store's nodes: {@code cask snapshot} of an
     * image another node serves, retention asking every node what it needs kept): a TCP listener
     * on {@code host}, an ephemeral port, whose connections must first send {@code auth TOKEN}
     * (the token this server published where the clients find it, the shared catalog; anything
     * else is answered {@code error invalid-input not authorized} and closed). Returns the address
     * it listens on.
     */
    public java.net.InetSocketAddress listenTcp(java.net.InetAddress host, String token) {
        try {
            ServerSocketChannel ch = ServerSocketChannel.open();
            ch.bind(new java.net.InetSocketAddress(host, 0));
            auth = ("auth " + token).getBytes(StandardCharsets.UTF_8);
            tcp = ch;
            Thread.ofVirtual().name("cask-control-tcp").start(() -> acceptLoop(ch, true));
            return (java.net.InetSocketAddress) ch.getLocalAddress();
        } catch (IOException e) {
            throw new CaskException.Io("control listener on " + host.getHostAddress() + ": cannot listen: " + e.getMessage(), e);
        }
    }

    private void acceptLoop(ServerSocketChannel on, boolean authenticate) {
        while (on.isOpen()) {
            try {
                SocketChannel ch = on.accept();
                Thread.ofVirtual().start(() -> handle(ch, authenticate));
            } catch (IOException e) {
                return; // closed
            }
        }
    }

    private void handle(SocketChannel ch, boolean authenticate) {
        try (ch; BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
             OutputStream out = Channels.newOutputStream(ch)) {
            if (authenticate) {
                String first = in.readLine();
                if (first == null || !java.security.MessageDigest.isEqual(auth, first.getBytes(StandardCharsets.UTF_8))) {
                    out.write("error invalid-input not authorized\n".getBytes(StandardCharsets.UTF_8));
                    return;
                }
            }
            String line = in.readLine();
            if (line != null && (line.equals("gc") || line.startsWith("gc "))) {
                collect(line, out);
                return;
            }
            String reply;
            try {
                reply = answer(line == null ? "" : line);
            } catch (CaskException e) {
                reply = "error " + ControlClient.kindOf(e) + " " + e.getMessage().replace('\n', ' ');
            }
            out.write((reply + "\n").getBytes(StandardCharsets.UTF_8));
        } catch (IOException ignored) {
            // the client went away
        }
    }

    private String answer(String line) {
        String[] parts = line.split(" ", 3);
        switch (parts[0]) {
            case "ping":
                return "ok";
            case "snapshot", "checkpoint", "user-checkpoint", "paced-checkpoint":
                if (parts.length < 2) return "error invalid-input " + parts[0] + " needs an image name";
                String message = parts.length > 2 ? parts[2] : null;
                // paced-checkpoint: as the server's timer checkpoints (paced beside busy clients); a bench's way to start one when it wants
                Version v = parts[0].equals("paced-checkpoint")
                        ? exports.checkpoint(parts[1], message, dev.cask.common.Pacer.checkpoint(clients, PACED_CHECKPOINT_BUSY_LIMIT.toNanos()))
                        : exports.checkpoint(parts[1], message, parts[0].equals("snapshot"),
                                parts[0].equals("checkpoint") ? dev.cask.catalog.VersionKind.AUTO : dev.cask.catalog.VersionKind.USER);
                return v == null ? "not-open" : "ok " + v.number();
            case "in-use":
                if (parts.length < 2) return "error invalid-input in-use needs an image name";
                StringBuilder sb = new StringBuilder("ok");
                for (int n : exports.inUse(parts[1])) sb.append(' ').append(n);
                return sb.toString();
            default:
                return "error invalid-input unknown request '" + parts[0] + "'";
        }
    }

    /**
     * Runs a {@code gc} request on a thread of its own while this (virtual) thread sends its
     * events to the client, one line each, and the result last (see the class comment).
     */
    private void collect(String line, OutputStream out) throws IOException {
        String[] all = line.split(" ");
        java.util.List<String> words = java.util.Arrays.asList(all).subList(1, all.length);
        boolean dry = words.contains("dry-run");
        boolean full = words.contains("full");
        boolean paced = words.contains("paced");
        if (words.size() != new java.util.HashSet<>(words).size() || words.size() != (dry ? 1 : 0) + (full ? 1 : 0) + (paced ? 1 : 0)) {
            out.write(("error invalid-input gc takes any of 'dry-run', 'full' and 'paced', once each, not '" + line + "'\n").getBytes(StandardCharsets.UTF_8));
            return;
        }
        java.util.concurrent.LinkedBlockingQueue<String> events = new java.util.concurrent.LinkedBlockingQueue<>();
        dev.cask.common.Pacer pacer = paced ? dev.cask.common.Pacer.background(clients) : dev.cask.common.Pacer.unpaced();
        // a collection waits for the checkpoints under way when it starts: someone waits for an unpaced one
        if (!paced) exports.hurryCheckpoints();
        Thread t = Thread.ofPlatform().name("cask-gc-request").unstarted(() -> {
            String result;
            try {
                var r = collections.run(dry, full, m -> events.add("wait " + oneLine(m)), new Events(events), pacer);
                StringBuilder sb = new StringBuilder("ok");
                r.fields().forEach((k, v) -> sb.append(' ').append(k).append('=').append(v));
                result = sb.toString();
            } catch (CaskException e) {
                result = "error " + ControlClient.kindOf(e) + " " + oneLine(e.getMessage());
            } catch (RuntimeException | Error e) {
                result = "error error gc failed in the server: " + oneLine(String.valueOf(e));
            }
            events.add(result); // the last line: "ok ..." or "error ..."
        });
        Running me = new Running(pacer, t);
        running.add(me);
        try {
            t.start();
            boolean gone = false;
            while (true) {
                String ev;
                try {
                    ev = events.poll(1, java.util.concurrent.TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    pacer.stop("control socket closing");
                    continue;
                }
                if (ev == null && !t.isAlive() && events.isEmpty()) break; // cannot happen: the thread always ends with a line
                boolean last = ev != null && (ev.equals("ok") || ev.startsWith("ok ") || ev.startsWith("error "));
                if (!gone) {
                    try {
                        out.write(((ev == null ? "." : ev) + "\n").getBytes(StandardCharsets.UTF_8));
                    } catch (IOException e) {
                        gone = true; // its cask gc went away: stop at the next step, as safe as a kill there
                        pacer.stop("the cask gc that asked for it went away");
                    }
                }
                if (last) break;
            }
            joinQuietly(t);
        } finally {
            running.remove(me);
        }
    }

    private static void joinQuietly(Thread t) {
        boolean interrupted = false;
        while (true) {
            try {
                t.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }

    private static String oneLine(String s) {
        return s == null ? "" : s.replace('\n', ' ').replace('\r', ' ');
    }

    /** Progress as event lines; advances are summed and sent at most ten times a second. */
    private static final class Events implements dev.cask.common.Progress {
        private final java.util.concurrent.BlockingQueue<String> out;
        private long pending;
        private long lastSent;

        Events(java.util.concurrent.BlockingQueue<String> out) {
            this.out = out;
        }

        @Override
        public void start(String label, long total) {
            flush();
            out.add("start BYTES " + total + " " + oneLine(label));
        }

        @Override
        public void startItems(String label, long total) {
            flush();
            out.add("start ITEMS " + total + " " + oneLine(label));
        }

        @Override
        public void advance(long delta) {
            pending += delta;
            long now = System.nanoTime();
            if (now - lastSent >= 100_000_000L) {
                flush();
                lastSent = now;
            }
        }

        @Override
        public void done() {
            flush();
            out.add("done");
        }

        private void flush() {
            if (pending != 0) out.add("advance " + pending);
            pending = 0;
        }
    }

    @Override
    public void close() {
        try {
            ServerSocketChannel t = tcp;
            if (t != null) t.close();
            server.close();
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // shutting down
        }
        acceptor.interrupt();
        for (Running r : running) r.pacer().stop("the server is stopping");
        long deadline = System.nanoTime() + GC_STOP_WAIT.toNanos();
        for (Running r : running) {
            try {
                r.thread().join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
