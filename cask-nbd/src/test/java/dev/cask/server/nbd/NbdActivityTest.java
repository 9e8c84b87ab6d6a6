package dev.cask.server.nbd;

import dev.cask.common.ClientActivity;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The server stamps the activity of its options at every request a client sends (what a
 * server's background gc reads to rest longer while clients are busy), also a refused one, and
 * not for a handshake alone. The activity's clock is the test's own: no timing.
 */
class NbdActivityTest {
    @Test
    void everyRequestStampsTheActivity() throws Exception {
        MemoryResolver resolver = new MemoryResolver().add("disk", new MemoryDevice(1 << 20), false, "");
        AtomicLong clock = new AtomicLong(1_000_000_000L);
        ClientActivity clients = new ClientActivity(clock::get);
        try (NbdServer server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), resolver,
                NbdServer.Options.defaults().withActivity(clients));
             RawClient c = new RawClient(server.port())) {
            c.go("disk", true, false);
            assertFalse(clients.within(Long.MAX_VALUE), "a handshake is no request");
            assertEquals(0, c.read(1, 0, 4096).error());
            clock.addAndGet(1_000_000_000L);
            assertTrue(clients.within(1_000_000_000L), "the READ a second ago was stamped");
            assertFalse(clients.within(999_999_999L));
            clock.addAndGet(5_000_000_000L);
            assertTrue(c.read(2, 1 << 20, 4096).error() != 0, "a READ past the end is refused");
            assertTrue(clients.within(0), "and stamped all the same: a client asked");
        }
    }
}
