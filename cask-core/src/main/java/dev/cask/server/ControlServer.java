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
 */
public final class ControlServer implements AutoCloseable {
    static final String PREFIX = "serve.";
    static final String SUFFIX = ".sock";
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
            case "snapshot", "checkpoint", "user-checkpoint":
                if (parts.length < 2) return "error invalid-input " + parts[0] + " needs an image name";
                Version v = exports.checkpoint(parts[1], parts.length > 2 ? parts[2] : null, parts[0].equals("snapshot"),
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
