package dev.cask.server;

import dev.cask.common.ClientActivity;
import dev.cask.common.Pacer;
import dev.cask.common.Progress;
import dev.cask.image.GarbageCollector;
import dev.cask.image.Images;
import dev.cask.local.LocalImages;
import dev.cask.store.ChunkDeleter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The control socket's {@code gc} request: {@link ControlClient#gc} hands the server what
 * {@code cask gc} was asked for ({@code --dry-run}, {@code --full}, {@code --paced}, together
 * too), a paced one runs at the pace of the server's background gc (the busy rest while the
 * server's NBD clients are busy, the normal one when they are idle), and a request with words
 * it does not know, or with one twice, is refused with a line naming it and runs nothing.
 */
class ControlGcRequestTest {
    @TempDir
    Path dir;

    /** {@code rest}: the pace's rest now, with the server's clients busy (one request just now). */
    private record Asked(boolean dry, boolean full, double rest) {}

    private static GarbageCollector.Result result(boolean dry) {
        return new GarbageCollector.Result(dry, 1, false, false, 0, 0, 0, 0, 0, ChunkDeleter.Compacted.NONE, 0,
                new GarbageCollector.Phases(0, 0, 0, 0, 0));
    }

    @Test
    void theRequestCarriesWhatGcWasAskedForAndRefusesWhatItDoesNotKnow() throws Exception {
        Path store = dir.resolve("store");
        List<Asked> asked = new ArrayList<>();
        java.util.concurrent.atomic.AtomicLong clock = new java.util.concurrent.atomic.AtomicLong(5_000_000_000L);
        ClientActivity clients = new ClientActivity(clock::get);
        clients.request(); // the NBD servers' clients are busy: a paced gc takes the busy rest
        try (Images images = LocalImages.open(store); ImageExports exports = new ImageExports(images);
             ControlServer control = new ControlServer(store, exports, (dry, full, waiting, progress, pacer) -> {
                 synchronized (asked) {
                     asked.add(new Asked(dry, full, pacer.restNow()));
                 }
                 return result(dry);
             }, clients)) {
            assertTrue(ControlClient.gc(store, false, false, false, m -> {}, Progress.NONE).isPresent());
            assertTrue(ControlClient.gc(store, true, true, false, m -> {}, Progress.NONE).isPresent());
            assertTrue(ControlClient.gc(store, false, true, true, m -> {}, Progress.NONE).isPresent());
            assertEquals(List.of(new Asked(false, false, 0), new Asked(true, true, 0), new Asked(false, true, Pacer.BACKGROUND_BUSY_REST)), asked);
            clock.addAndGet(Pacer.ACTIVE_WINDOW_NANOS + 1); // no request since: the clients are idle
            assertTrue(ControlClient.gc(store, false, false, true, m -> {}, Progress.NONE).isPresent());
            assertEquals(new Asked(false, false, Pacer.BACKGROUND_REST), asked.getLast());

            Path socket;
            try (var files = Files.list(store)) {
                socket = files.filter(p -> p.getFileName().toString().endsWith(".sock")).findFirst().orElseThrow();
            }
            for (String bad : List.of("gc paced paced", "gc quick", "gc full dry-run full")) {
                String reply = ask(socket, bad);
                assertTrue(reply.startsWith("error invalid-input gc takes any of 'dry-run', 'full' and 'paced', once each, not '" + bad + "'"), reply);
            }
            assertEquals(4, asked.size(), "a refused request runs no collection");
        }
    }

    private static String ask(Path socket, String line) throws Exception {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(socket));
            ch.write(java.nio.ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
            ch.shutdownOutput();
            return new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8)).readLine();
        }
    }
}
