package dev.cask.server.nbd;

import dev.cask.common.CaskException;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An NBD server: listens on one TCP or Unix socket address and serves the exports an
 * {@link ExportResolver} names, speaking the fixed newstyle handshake only (see
 * {@link NbdConnection} for the protocol and what it refuses).
 *
 * <p><b>Memory.</b> A connection costs about 300 KiB of its own at most (wire buffers, small
 * request buffers, its threads; see {@link NbdConnection}). Buffers over
 * {@link NbdConnection#SMALL_BUFFER} come from one {@link BufferBudget} of
 * {@link Options#bufferBudgetBytes()} (default: a quarter of the heap, 64 MiB to 1 GiB), handed
 * out fairly: no connection, and no crowd of connections, can hold more than its share, and a
 * connection asking for room is served first come, first served. Large requests are cut into
 * pieces of {@link NbdConnection#PIECE} bytes where the protocol allows (WRITE payloads, READ
 * replies with structured replies), so a request holds one piece at a time, and a WRITE takes
 * its piece only once its payload has started to arrive. So the heap needed is about
 * {@code maxConnections x 300 KiB + bufferBudgetBytes}: 1,024 connections and a 256 MiB budget
 * fit in a 1 GiB heap, whatever the clients send.
 *
 * <p><b>Stalled clients.</b> A client that stops sending in the middle of a request (or of the
 * handshake), or stops taking its replies, for longer than {@link Options#requestTimeout()} is
 * closed by a watchdog (one line at WARNING with the client's address), which gives back every
 * buffer it held; waiting between requests is never timed out. TCP connections use keepalive
 * (probes after {@link #KEEPALIVE_IDLE_SECONDS} s idle), so a peer that vanished is found too.
 * At most {@link Options#maxConnections()} connections are open at once; the next ones are
 * closed as they are accepted, with a log line.
 *
 * <p><b>Threads.</b> One virtual thread accepts, one watches for stalls; each connection gets a
 * virtual thread of its own and shares nothing with the others but the resolver and the buffer
 * budget, so a slow, hostile or vanished client affects only its own connection. Connections to
 * one export share its device, which must then be thread-safe.
 *
 * <p><b>Life cycle.</b> {@link #start} binds (port 0 picks a free port; {@link #address()}
 * tells which) and returns at once. {@link #close()} stops accepting; requests being served
 * finish and get their replies; requests that arrive meanwhile are answered
 * {@code NBD_ESHUTDOWN} (the spec's "the server is shutting down; disconnect"); once nothing is
 * in flight (or after {@link #CLOSE_GRACE_MILLIS}) the connections are closed, and it returns when
 * every connection has released its export. Each step is one line at INFO. A Unix socket file the
 * server created is removed.
 *
 * <p>Only the CLI prints; this class logs through {@link System.Logger} (java.util.logging by
 * default), one line per refused option or request and per connection error.
 */
public final class NbdServer implements AutoCloseable {
    private static final System.Logger LOG = NbdConnection.LOG;

    /** Where {@code cask serve} listens unless told otherwise. */
    public static final InetSocketAddress DEFAULT_ADDRESS = new InetSocketAddress("127.0.0.1", NbdProtocol.NBD_DEFAULT_PORT);

    static final long CLOSE_GRACE_MILLIS = 5_000;
    /** TCP keepalive: first probe after this long idle, then every {@link #KEEPALIVE_INTERVAL_SECONDS}, {@link #KEEPALIVE_PROBES} probes. */
    static final int KEEPALIVE_IDLE_SECONDS = 60;
    static final int KEEPALIVE_INTERVAL_SECONDS = 10;
    static final int KEEPALIVE_PROBES = 6;

    /**
     * Bytes of request buffers larger than a connection's own that may be in use at once, across
     * all connections: a quarter of the heap, at least 64 MiB (two maximum payloads), at most 1 GiB.
     */
    private static final long BUFFER_BUDGET = Math.clamp(Runtime.getRuntime().maxMemory() / 4, 2L * NbdProtocol.MAX_PAYLOAD, 1L << 30);

    /**
     * How a server treats its clients.
     *
     * @param maxConnections    connections open at once; more are closed as they are accepted
     * @param requestTimeout    how long a client may stop sending a request it has begun (or the
     *                          handshake), or stop taking a reply, before it is closed
     * @param bufferBudgetBytes bytes of large request buffers in use at once, across connections
     * @param activity          stamped at every request the server takes off the wire (background
     *                          work reads it to keep out of busy clients' way; see {@code Pacer})
     */
    public record Options(int maxConnections, java.time.Duration requestTimeout, long bufferBudgetBytes,
                          dev.cask.common.ClientActivity activity) {
        public static final int DEFAULT_MAX_CONNECTIONS = 1024;
        public static final java.time.Duration DEFAULT_REQUEST_TIMEOUT = java.time.Duration.ofSeconds(60);

        public Options {
            if (maxConnections < 1) throw new CaskException.InvalidInput("nbd: max connections " + maxConnections + ": expected at least 1");
            Objects.requireNonNull(requestTimeout, "requestTimeout");
            Objects.requireNonNull(activity, "activity");
            if (requestTimeout.isNegative() || requestTimeout.isZero()) {
                throw new CaskException.InvalidInput("nbd: request timeout " + requestTimeout + ": expected more than zero");
            }
            if (bufferBudgetBytes < 2L * NbdProtocol.MAX_PAYLOAD) {
                throw new CaskException.InvalidInput("nbd: buffer budget of " + bufferBudgetBytes + " bytes: expected at least " + 2L * NbdProtocol.MAX_PAYLOAD);
            }
        }

        /** 1,024 connections, a 60 s request timeout, a quarter of the heap (64 MiB to 1 GiB) for large buffers, an activity of its own. */
        public static Options defaults() {
            return new Options(DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT, BUFFER_BUDGET, new dev.cask.common.ClientActivity());
        }

        public Options withMaxConnections(int n) {
            return new Options(n, requestTimeout, bufferBudgetBytes, activity);
        }

        public Options withRequestTimeout(java.time.Duration d) {
            return new Options(maxConnections, d, bufferBudgetBytes, activity);
        }

        public Options withBufferBudgetBytes(long bytes) {
            return new Options(maxConnections, requestTimeout, bytes, activity);
        }

        /** Stamps {@code a} (shared by a process's servers and read by its background work) at every request. */
        public Options withActivity(dev.cask.common.ClientActivity a) {
            return new Options(maxConnections, requestTimeout, bufferBudgetBytes, a);
        }
    }

    private final ExportResolver resolver;
    private final Options options;
    private final ServerSocketChannel listener;
    private final SocketAddress address;
    private final Path socketFile;
    private final Map<NbdConnection, Thread> connections = new ConcurrentHashMap<>();
    private final AtomicBoolean closing = new AtomicBoolean();
    private final CountDownLatch closed = new CountDownLatch(1);
    private final AtomicLong ids = new AtomicLong();
    private final BufferBudget budget;
    private final Thread acceptor;
    private final Thread watchdog;
    private final AtomicLong refusedConnections = new AtomicLong();
    private volatile long lastRefusalLogNanos;
    private final AtomicLong finishedWhileClosing = new AtomicLong();
    private final AtomicLong refusedWhileClosing = new AtomicLong();

    private NbdServer(ExportResolver resolver, Options options, ServerSocketChannel listener, SocketAddress address, Path socketFile) {
        this.resolver = resolver;
        this.options = options;
        this.listener = listener;
        this.address = address;
        this.socketFile = socketFile;
        this.budget = new BufferBudget(options.bufferBudgetBytes(), NbdConnection.CONNECTION_BUDGET);
        this.acceptor = Thread.ofVirtual().name("nbd-accept " + describe(address)).unstarted(this::acceptLoop);
        this.watchdog = Thread.ofVirtual().name("nbd-watchdog " + describe(address)).unstarted(this::watchLoop);
    }

    /**
     * Listens on {@code address} (an {@link InetSocketAddress} or a
     * {@link UnixDomainSocketAddress}) and starts serving. Throws {@link CaskException.Io}
     * naming the address when it cannot listen there.
     */
    public static NbdServer start(SocketAddress address, ExportResolver resolver) {
        return start(address, resolver, Options.defaults());
    }

    /** Like {@link #start(SocketAddress, ExportResolver)}, with limits other than the defaults. */
    public static NbdServer start(SocketAddress address, ExportResolver resolver, Options options) {
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(resolver, "resolver");
        Objects.requireNonNull(options, "options");
        ServerSocketChannel listener = null;
        try {
            Path socketFile = null;
            if (address instanceof UnixDomainSocketAddress unix) {
                socketFile = unix.getPath();
                if (Files.exists(socketFile, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                    throw new CaskException.Io("nbd: cannot listen on unix socket " + socketFile + ": the file exists (remove it if no server uses it)", null);
                }
                listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            } else if (address instanceof InetSocketAddress inet) {
                if (inet.isUnresolved()) throw new CaskException.InvalidInput("nbd: cannot resolve host '" + inet.getHostString() + "'");
                listener = ServerSocketChannel.open();
                listener.setOption(StandardSocketOptions.SO_REUSEADDR, true);
            } else {
                throw new IllegalArgumentException("unsupported socket address " + address.getClass().getName());
            }
            listener.bind(address, 128);
            NbdServer server = new NbdServer(resolver, options, listener, listener.getLocalAddress(), socketFile);
            server.acceptor.start();
            server.watchdog.start();
            LOG.log(Level.DEBUG, () -> "nbd: at most " + options.maxConnections() + " connections, request timeout "
                    + options.requestTimeout().toMillis() + " ms, " + (options.bufferBudgetBytes() >> 20) + " MiB for large buffers");
            LOG.log(Level.INFO, () -> "nbd: listening on " + describe(server.address));
            return server;
        } catch (IOException e) {
            closeQuietly(listener);
            throw new CaskException.Io("nbd: cannot listen on " + describe(address) + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            closeQuietly(listener);
            throw e;
        }
    }

    /**
     * Parses a listen address given by a user: {@code HOST:PORT}, {@code [IPV6]:PORT},
     * {@code HOST} (port 10809), {@code :PORT} (127.0.0.1), {@code unix:PATH}, or a path
     * containing a slash (a Unix socket). Throws {@link CaskException.InvalidInput} naming
     * the text when it is none of these.
     */
    public static SocketAddress parseAddress(String text) {
        Objects.requireNonNull(text, "text");
        String t = text.trim();
        if (t.isEmpty()) throw new CaskException.InvalidInput("listen address is empty");
        if (t.startsWith("unix:")) {
            String path = t.substring(5);
            if (path.isEmpty()) throw new CaskException.InvalidInput("listen address '" + text + "': no socket path after 'unix:'");
            return UnixDomainSocketAddress.of(path);
        }
        if (t.contains("/")) return UnixDomainSocketAddress.of(t);
        String host;
        String port;
        if (t.startsWith("[")) {
            int close = t.indexOf(']');
            if (close < 0) throw new CaskException.InvalidInput("listen address '" + text + "': missing ']' after the IPv6 address");
            host = t.substring(1, close);
            String rest = t.substring(close + 1);
            if (!rest.isEmpty() && !rest.startsWith(":")) throw new CaskException.InvalidInput("listen address '" + text + "': expected ':PORT' after ']'");
            port = rest.isEmpty() ? null : rest.substring(1);
        } else {
            int colon = t.lastIndexOf(':');
            if (colon >= 0 && t.indexOf(':') != colon) {
                throw new CaskException.InvalidInput("listen address '" + text + "': write IPv6 addresses as [ADDRESS]:PORT");
            }
            host = colon < 0 ? t : t.substring(0, colon);
            port = colon < 0 ? null : t.substring(colon + 1);
        }
        if (host.isEmpty()) host = DEFAULT_ADDRESS.getHostString();
        int p = NbdProtocol.NBD_DEFAULT_PORT;
        if (port != null) {
            try {
                p = Integer.parseInt(port);
            } catch (NumberFormatException e) {
                throw new CaskException.InvalidInput("listen address '" + text + "': port '" + port + "' is not a number");
            }
            if (p < 0 || p > 65535) throw new CaskException.InvalidInput("listen address '" + text + "': port " + p + " is not in 0..65535");
        }
        InetSocketAddress a = new InetSocketAddress(host, p);
        if (a.isUnresolved()) throw new CaskException.InvalidInput("listen address '" + text + "': cannot resolve host '" + host + "'");
        return a;
    }

    /** The address actually bound (with the real port when 0 was asked for). */
    public SocketAddress address() {
        return address;
    }

    /** The TCP port bound; throws IllegalStateException for a Unix socket. */
    public int port() {
        if (address instanceof InetSocketAddress inet) return inet.getPort();
        throw new IllegalStateException("nbd server on " + describe(address) + " has no TCP port");
    }

    /** Connections open right now. */
    public int connectionCount() {
        return connections.size();
    }

    /** Blocks until {@link #close()} has finished. */
    public void awaitClose() throws InterruptedException {
        closed.await();
    }

    /** The default budget for large request buffers, in bytes (see {@link Options#bufferBudgetBytes()}). */
    public static long bufferBudgetBytes() {
        return BUFFER_BUDGET;
    }

    /** The limits this server was started with. */
    public Options options() {
        return options;
    }

    /** Bytes of large request buffers in use right now, across connections (at most the budget). */
    public long bufferBytesInUse() {
        return budget.usedBytes();
    }

    BufferBudget budget() {
        return budget;
    }

    boolean isClosing() {
        return closing.get();
    }

    /** A request that was accepted before {@link #close()} began was answered after it began. */
    void finishedWhileClosing() {
        finishedWhileClosing.incrementAndGet();
    }

    /** A request arrived after {@link #close()} began and was answered {@code NBD_ESHUTDOWN}. */
    void refusedWhileClosing() {
        refusedWhileClosing.incrementAndGet();
    }

    void ended(NbdConnection connection) {
        connections.remove(connection);
    }

    private void acceptLoop() {
        while (!closing.get()) {
            SocketChannel channel;
            try {
                channel = listener.accept();
            } catch (ClosedChannelException e) {
                break;
            } catch (IOException e) {
                if (closing.get()) break;
                LOG.log(Level.WARNING, () -> "nbd: accept on " + describe(address) + " failed: " + e);
                try {
                    Thread.sleep(100); // e.g. out of file descriptors: do not spin
                } catch (InterruptedException ie) {
                    break;
                }
                continue;
            }
            long id = ids.incrementAndGet();
            String client;
            try {
                if (connections.size() >= options.maxConnections()) {
                    refuse(channel, id);
                    continue;
                }
                if (channel.getRemoteAddress() instanceof InetSocketAddress remote) {
                    channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
                    keepalive(channel);
                    client = "nbd client " + id + " (" + remote.getAddress().getHostAddress() + ":" + remote.getPort() + ")";
                } else {
                    client = "nbd client " + id + " (" + describe(address) + ")";
                }
            } catch (IOException e) {
                LOG.log(Level.WARNING, () -> "nbd: client " + id + " vanished at accept: " + e);
                closeQuietly(channel);
                continue;
            }
            NbdConnection connection = new NbdConnection(this, resolver, channel, client);
            Thread thread = Thread.ofVirtual().name(client).unstarted(connection);
            connections.put(connection, thread);
            if (closing.get()) {
                connections.remove(connection);
                closeQuietly(channel);
                break;
            }
            LOG.log(Level.DEBUG, () -> client + ": connected");
            thread.start();
        }
    }

    /** Closes a connection past {@link Options#maxConnections()}: a log line for the first, then at most one a second. */
    private void refuse(SocketChannel channel, long id) throws IOException {
        String who = channel.getRemoteAddress() instanceof InetSocketAddress remote
                ? remote.getAddress().getHostAddress() + ":" + remote.getPort() : describe(address);
        closeQuietly(channel);
        long n = refusedConnections.incrementAndGet();
        long now = System.nanoTime();
        if (n == 1 || now - lastRefusalLogNanos > 1_000_000_000L) {
            lastRefusalLogNanos = now;
            LOG.log(Level.WARNING, () -> "nbd: refused nbd client " + id + " (" + who + "): " + connections.size()
                    + " connections open, the limit is " + options.maxConnections() + " (" + n + " refused so far)");
        }
    }

    private static void keepalive(SocketChannel channel) throws IOException {
        channel.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
        var supported = channel.supportedOptions();
        if (supported.contains(jdk.net.ExtendedSocketOptions.TCP_KEEPIDLE)) {
            channel.setOption(jdk.net.ExtendedSocketOptions.TCP_KEEPIDLE, KEEPALIVE_IDLE_SECONDS);
        }
        if (supported.contains(jdk.net.ExtendedSocketOptions.TCP_KEEPINTERVAL)) {
            channel.setOption(jdk.net.ExtendedSocketOptions.TCP_KEEPINTERVAL, KEEPALIVE_INTERVAL_SECONDS);
        }
        if (supported.contains(jdk.net.ExtendedSocketOptions.TCP_KEEPCOUNT)) {
            channel.setOption(jdk.net.ExtendedSocketOptions.TCP_KEEPCOUNT, KEEPALIVE_PROBES);
        }
    }

    /** Closes connections whose client has stalled in a request or a reply for longer than the request timeout. */
    private void watchLoop() {
        long timeout = options.requestTimeout().toNanos();
        long period = Math.clamp(options.requestTimeout().toMillis() / 4, 10, 1_000);
        while (closed.getCount() > 0) {
            try {
                Thread.sleep(period);
            } catch (InterruptedException e) {
                return;
            }
            long now = System.nanoTime();
            for (NbdConnection c : connections.keySet()) {
                long stalled = c.stalledNanos(now);
                if (stalled > timeout) c.timedOut(stalled);
            }
        }
    }

    /**
     * Stops accepting; lets the requests being served finish and get their replies while new
     * ones are answered {@code NBD_ESHUTDOWN}; then closes the connections and waits until each
     * has released its export. Idempotent.
     */
    @Override
    public void close() {
        if (!closing.compareAndSet(false, true)) {
            try {
                closed.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return;
        }
        try {
            long t0 = System.nanoTime();
            closeQuietly(listener);
            join(acceptor, 1_000);
            int open = connections.size();
            int inFlight = inFlight();
            LOG.log(Level.INFO, () -> "nbd: shutting down " + describe(address) + ": no longer accepting; " + open
                    + " connections open, " + inFlight + " requests in flight");
            long deadline = t0 + TimeUnit.MILLISECONDS.toNanos(CLOSE_GRACE_MILLIS);
            // requests in flight finish and are answered; new ones get NBD_ESHUTDOWN from their reader
            while (inFlight() > 0 && System.nanoTime() < deadline) {
                try {
                    Thread.sleep(5);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            int left = inFlight();
            LOG.log(Level.INFO, () -> "nbd: shutting down " + describe(address) + ": " + finishedWhileClosing.get()
                    + " requests finished and answered, " + refusedWhileClosing.get() + " answered NBD_ESHUTDOWN"
                    + (left > 0 ? ", " + left + " still in flight after " + CLOSE_GRACE_MILLIS + " ms" : "")
                    + "; closing " + connections.size() + " connections");
            for (NbdConnection c : connections.keySet()) {
                try {
                    c.channel().shutdownInput(); // the reader sees the end of the stream and ends the connection
                } catch (IOException e) {
                    closeQuietly(c.channel());
                }
            }
            for (Thread t : connections.values()) {
                join(t, Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
            }
            int forced = connections.size();
            for (Map.Entry<NbdConnection, Thread> e : connections.entrySet()) {
                LOG.log(Level.WARNING, () -> e.getKey().client() + ": still busy after " + CLOSE_GRACE_MILLIS + " ms; closing it");
                closeQuietly(e.getKey().channel());
            }
            for (Thread t : connections.values()) join(t, 2_000);
            watchdog.interrupt();
            if (socketFile != null) {
                try {
                    Files.deleteIfExists(socketFile);
                } catch (IOException e) {
                    LOG.log(Level.WARNING, () -> "nbd: cannot remove socket file " + socketFile + ": " + e);
                }
            }
            long ms = (System.nanoTime() - t0) / 1_000_000;
            LOG.log(Level.INFO, () -> "nbd: stopped " + describe(address) + " in " + ms + " ms: " + open + " connections closed"
                    + (forced > 0 ? " (" + forced + " of them forcibly)" : "") + ", " + finishedWhileClosing.get()
                    + " requests finished during shutdown, " + refusedWhileClosing.get() + " answered NBD_ESHUTDOWN");
        } finally {
            closed.countDown();
        }
    }

    private int inFlight() {
        int n = 0;
        for (NbdConnection c : connections.keySet()) n += c.serving();
        return n;
    }

    private static void join(Thread t, long millis) {
        try {
            t.join(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void closeQuietly(java.io.Closeable c) {
        if (c == null) return;
        try {
            c.close();
        } catch (IOException e) {
            // nothing useful to do: the socket is going away either way
        }
    }

    static String describe(SocketAddress a) {
        if (a instanceof UnixDomainSocketAddress u) return "unix:" + u.getPath();
        if (a instanceof InetSocketAddress i) {
            String host = i.getAddress() != null ? i.getAddress().getHostAddress() : i.getHostString();
            return (host.contains(":") ? "[" + host + "]" : host) + ":" + i.getPort();
        }
        return String.valueOf(a);
    }

    @Override
    public String toString() {
        return "NbdServer[" + describe(address) + "]";
    }
}
