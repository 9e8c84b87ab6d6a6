package dev.cask.server;

import dev.cask.local.LocalImages;
import dev.cask.common.CaskException;
import dev.cask.image.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A server's control endpoint for other hosts ({@link ControlServer#listenTcp}) and the client that
 * asks remote nodes ({@link ControlClient.Remote}): only a connection that sends the token first is
 * answered; a client with a wrong token gets an error naming the node, never an answer taken for
 * "nothing in use"; a node whose port is closed (its server stopped) needs nothing and is reported gone.
 */
class ControlTcpTest {
    @TempDir
    Path dir;

    private static String ask(InetSocketAddress at, String lines) throws Exception {
        try (Socket s = new Socket()) {
            s.connect(at, 10_000);
            s.getOutputStream().write(lines.getBytes(StandardCharsets.UTF_8));
            s.shutdownOutput();
            return new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8)).readLine();
        }
    }

    @Test
    void onlyAConnectionWithTheTokenIsAnswered() throws Exception {
        Path local = Files.createDirectories(dir.resolve("elsewhere")); // the client's host: no server of its own
        try (Images images = LocalImages.open(dir.resolve("store")); ImageExports exports = new ImageExports(images);
             ControlServer server = new ControlServer(Files.createDirectories(dir.resolve("state")), exports)) {
            images.create("vm", 1 << 20, 4096);
            InetSocketAddress at = server.listenTcp(InetAddress.getLoopbackAddress(), "s3cret");
            assertEquals("ok", ask(at, "auth s3cret\nping\n"));
            assertEquals("error invalid-input not authorized", ask(at, "auth guess\nping\n"));
            assertEquals("error invalid-input not authorized", ask(at, "ping\n"), "no token, no answer");

            ControlClient.Remote good = new ControlClient.Remote("node-a", "127.0.0.1", at.getPort(), "s3cret");
            List<ControlClient.Remote> gone = new ArrayList<>();
            assertEquals(Set.of(), new ControlClient(local, () -> List.of(good), gone::add).inUse("vm"));
            assertTrue(new ControlClient(local, () -> List.of(good), gone::add).checkpoint("vm", "m", false).isEmpty(), "not open there");

            ControlClient.Remote wrong = new ControlClient.Remote("node-a", "127.0.0.1", at.getPort(), "guess");
            CaskException.Io e = assertThrows(CaskException.Io.class, () -> new ControlClient(local, () -> List.of(wrong), gone::add).inUse("vm"));
            assertTrue(e.getMessage().contains("node node-a (127.0.0.1:" + at.getPort() + ") refused this node's token"), e.getMessage());
            assertEquals(List.of(), gone);
        }
        int closed;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closed = s.getLocalPort();
        }
        ControlClient.Remote stopped = new ControlClient.Remote("node-b", "127.0.0.1", closed, "x");
        List<ControlClient.Remote> gone = new ArrayList<>();
        assertEquals(Set.of(), new ControlClient(local(), () -> List.of(stopped), gone::add).inUse("vm"), "a stopped node needs nothing");
        assertEquals(List.of(stopped), gone, "and its entry can go");
    }

    private Path local() throws Exception {
        return Files.createDirectories(dir.resolve("elsewhere"));
    }
}
