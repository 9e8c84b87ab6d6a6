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
import java.util.List;
import java.util.stream.Stream;

/**
 * A running server's control socket ({@code STORE/serve.PID.sock}; several servers may share a
 * store), through which CLI commands reach images a server holds open. One request line, one reply line, UTF-8:
 * <pre>
 * snapshot NAME [MESSAGE]   ->  ok VERSION | not-open | error MESSAGE
 * ping                      ->  ok
 * </pre>
 * Only local processes that can open the socket file (owner-only permissions) can talk to it.
 */
public final class ControlServer implements AutoCloseable {
    private static final String PREFIX = "serve.";
    private static final String SUFFIX = ".sock";
    private final Path path;
    private final ServerSocketChannel server;
    private final ImageExports exports;
    private final Thread acceptor;

    public ControlServer(Path storeDir, ImageExports exports) {
        this.path = storeDir.resolve(PREFIX + ProcessHandle.current().pid() + SUFFIX);
        this.exports = exports;
        try {
            Files.deleteIfExists(path); // left by a dead server whose pid this process now has
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(path));
            Files.setPosixFilePermissions(path, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            throw new CaskException.Io("control socket " + path + ": cannot listen: " + e.getMessage(), e);
        }
        acceptor = Thread.ofVirtual().name("cask-control").start(this::acceptLoop);
    }

    private void acceptLoop() {
        while (server.isOpen()) {
            try {
                SocketChannel ch = server.accept();
                Thread.ofVirtual().start(() -> handle(ch));
            } catch (IOException e) {
                return; // closed
            }
        }
    }

    private void handle(SocketChannel ch) {
        try (ch; BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
             OutputStream out = Channels.newOutputStream(ch)) {
            String line = in.readLine();
            String reply;
            try {
                reply = answer(line == null ? "" : line);
            } catch (CaskException e) {
                reply = "error " + e.getMessage();
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
            case "snapshot":
                if (parts.length < 2) return "error snapshot needs an image name";
                Version v = exports.snapshot(parts[1], parts.length > 2 ? parts[2] : null);
                return v == null ? "not-open" : "ok " + v.number();
            default:
                return "error unknown request '" + parts[0] + "'";
        }
    }

    /**
     * Sends a request to every server running on {@code storeDir} and returns the first reply
     * other than {@code not-open} (or {@code not-open}); null when no server answers. Sockets
     * of servers that died are removed.
     */
    public static String request(Path storeDir, String line) {
        List<Path> sockets;
        try (Stream<Path> s = Files.list(storeDir)) {
            sockets = s.filter(p -> p.getFileName().toString().startsWith(PREFIX) && p.getFileName().toString().endsWith(SUFFIX)).toList();
        } catch (IOException e) {
            return null;
        }
        String answer = null;
        for (Path p : sockets) {
            String reply = ask(p, line);
            if (reply == null) continue;
            if (!reply.equals("not-open")) return reply;
            answer = reply;
        }
        return answer;
    }

    private static String ask(Path p, String line) {
        try (SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(p))) {
            ch.write(java.nio.ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
            ch.shutdownOutput();
            return new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8)).readLine();
        } catch (java.net.ConnectException e) {
            try {
                Files.deleteIfExists(p); // nobody listens: its server died
            } catch (IOException ignored) {
                // another process removed it
            }
            return null;
        } catch (IOException e) {
            return null;
        }
    }

    @Override
    public void close() {
        try {
            server.close();
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // shutting down
        }
        acceptor.interrupt();
    }
}
