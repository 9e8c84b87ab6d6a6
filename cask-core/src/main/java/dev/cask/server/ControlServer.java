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
 * The running server's control socket ({@code STORE/serve.sock}), through which CLI commands
 * reach images the server holds open. One request line, one reply line, UTF-8:
 * <pre>
 * snapshot NAME [MESSAGE]   ->  ok VERSION | not-open | error MESSAGE
 * ping                      ->  ok
 * </pre>
 * Only local processes that can open the socket file (owner-only permissions) can talk to it.
 */
public final class ControlServer implements AutoCloseable {
    public static final String SOCKET = "serve.sock";
    private final Path path;
    private final ServerSocketChannel server;
    private final ImageExports exports;
    private final Thread acceptor;

    public ControlServer(Path storeDir, ImageExports exports) {
        this.path = storeDir.resolve(SOCKET);
        this.exports = exports;
        try {
            if (Files.exists(path) && !answers(path)) Files.delete(path); // left by a server that died
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(path));
            Files.setPosixFilePermissions(path, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            throw new CaskException.Io("control socket " + path + ": cannot listen: " + e.getMessage()
                    + " (is another cask serve running on this store?)", e);
        }
        acceptor = Thread.ofVirtual().name("cask-control").start(this::acceptLoop);
    }

    private static boolean answers(Path p) {
        try (SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(p))) {
            return true;
        } catch (IOException e) {
            return false;
        }
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
     * Sends one request to the server running on {@code storeDir}; returns its reply, or null when
     * no server answers there.
     */
    public static String request(Path storeDir, String line) {
        Path p = storeDir.resolve(SOCKET);
        if (!Files.exists(p)) return null;
        try (SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(p))) {
            ch.write(java.nio.ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
            ch.shutdownOutput();
            return new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8)).readLine();
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
