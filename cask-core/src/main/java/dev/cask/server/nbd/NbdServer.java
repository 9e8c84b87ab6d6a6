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
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An NBD server: listens on one TCP or Unix socket address and serves the exports an
 * {@link ExportResolver} names, speaking the fixed newstyle handshake only (see
 * {@link NbdConnection} for the protocol and what it refuses).
 *
 * <p><b>Memory.</b> Per connection about 300 KiB at most (see {@link NbdConnection}); requests
 * larger than that share one budget of {@link #bufferBudgetBytes()}, so a crowd of clients
 * sending maximum-size requests waits for memory instead of exhausting the heap.
 *
 * <p><b>Threads.</b> One virtual thread accepts; each connection gets a virtual thread of its
 * own and shares nothing with the others but the resolver, so a slow, hostile or vanished
 * client affects only its own connection. Connections to one export share its device, which
 * must then be thread-safe.
 *
 * <p><b>Life cycle.</b> {@link #start} binds (port 0 picks a free port; {@link #address()}
 * tells which) and returns at once. {@link #close()} stops accepting, lets each connection
 * finish the request it is serving (its input is shut, so it sees the end of the stream next),
 * closes whatever is still open after {@link #CLOSE_GRACE_MILLIS}, and returns when every
 * connection has released its export. A Unix socket file the server created is removed.
 *
 * <p>Only the CLI prints; this class logs through {@link System.Logger} (java.util.logging by
 * default), one line per refused option or request and per connection error.
 */
public final class NbdServer implements AutoCloseable {
    private static final System.Logger LOG = NbdConnection.LOG;

    /** Where {@code cask serve} listens unless told otherwise. */
    public static final InetSocketAddress DEFAULT_ADDRESS = new InetSocketAddress("127.0.0.1", NbdProtocol.NBD_DEFAULT_PORT);

    static final long CLOSE_GRACE_MILLIS = 5_000;

    /**
     * Bytes of request buffers larger than a connection's own that may be in use at once, across
     * all connections: a quarter of the heap, at least 64 MiB (two maximum payloads), at most 1 GiB.
     */
    private static final long BUFFER_BUDGET = Math.clamp(Runtime.getRuntime().maxMemory() / 4, 2L * NbdProtocol.MAX_PAYLOAD, 1L << 30);

    private final ExportResolver resolver;
    private final ServerSocketChannel listener;
    private final SocketAddress address;
    private final Path socketFile;
    private final Map<NbdConnection, Thread> connections = new ConcurrentHashMap<>();
    private final AtomicBoolean closing = new AtomicBoolean();
    private final CountDownLatch closed = new CountDownLatch(1);
    private final AtomicLong ids = new AtomicLong();
    private final Semaphore bufferBudget = new Semaphore((int) (BUFFER_BUDGET >> 10), true); // in KiB
    private final Thread acceptor;

    private NbdServer(ExportResolver resolver, ServerSocketChannel listener, SocketAddress address, Path socketFile) {
        this.resolver = resolver;
        this.listener = listener;
        this.address = address;
        this.socketFile = socketFile;
        this.acceptor = Thread.ofVirtual().name("nbd-accept " + describe(address)).unstarted(this::acceptLoop);
    }

    /**
     * Listens on {@code address} (an {@link InetSocketAddress} or a
     * {@link UnixDomainSocketAddress}) and starts serving. Throws {@link CaskException.Io}
     * naming the address when it cannot listen there.
     */
    public static NbdServer start(SocketAddress address, ExportResolver resolver) {
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(resolver, "resolver");
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
            NbdServer server = new NbdServer(resolver, listener, listener.getLocalAddress(), socketFile);
            server.acceptor.start();
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

    /** The shared budget for large request buffers, in bytes (see {@link NbdConnection}). */
    public static long bufferBudgetBytes() {
        return BUFFER_BUDGET;
    }

    /** Takes {@code bytes} from the shared buffer budget, waiting until they are free. */
    void borrow(int bytes) {
        bufferBudget.acquireUninterruptibly(kib(bytes));
    }

    void giveBack(int bytes) {
        bufferBudget.release(kib(bytes));
    }

    static int kib(int bytes) {
        return (bytes + 1023) >>> 10;
    }

    boolean isClosing() {
        return closing.get();
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
                if (channel.getRemoteAddress() instanceof InetSocketAddress remote) {
                    channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
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

    /**
     * Stops accepting, lets connections finish their current request, closes them, and waits
     * until each has released its export. Idempotent.
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
            closeQuietly(listener);
            join(acceptor, 1_000);
            for (NbdConnection c : connections.keySet()) {
                try {
                    c.channel().shutdownInput();
                } catch (IOException e) {
                    closeQuietly(c.channel());
                }
            }
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_GRACE_MILLIS);
            for (Thread t : connections.values()) {
                join(t, Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())));
            }
            for (Map.Entry<NbdConnection, Thread> e : connections.entrySet()) {
                LOG.log(Level.WARNING, () -> e.getKey().client() + ": still busy after " + CLOSE_GRACE_MILLIS + " ms; closing it");
                closeQuietly(e.getKey().channel());
            }
            for (Thread t : connections.values()) join(t, 2_000);
            if (socketFile != null) {
                try {
                    Files.deleteIfExists(socketFile);
                } catch (IOException e) {
                    LOG.log(Level.WARNING, () -> "nbd: cannot remove socket file " + socketFile + ": " + e);
                }
            }
            LOG.log(Level.INFO, () -> "nbd: stopped listening on " + describe(address));
        } finally {
            closed.countDown();
        }
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
