package dev.cask.server.nbd;

import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.cask.server.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link NbdServer#close()} as SIGTERM/SIGINT uses it (issue 10, item 5): requests being served
 * finish and get their replies; requests that arrive after shutdown began are answered
 * NBD_ESHUTDOWN and change nothing; then the connections close; each step is logged at INFO.
 */
class NbdShutdownTest {
    private static final int MiB = 1 << 20;

    @Test
    void requestsInFlightFinishAndNewOnesGetEshutdown() throws Exception {
        MemoryDevice disk = new MemoryDevice(16L * MiB);
        byte[] data = new byte[MiB];
        new Random(5).nextBytes(data);
        disk.write(0, data, 0, data.length, false);
        MemoryResolver resolver = new MemoryResolver().add("disk", disk, false, "");
        NbdServer server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), resolver);
        try (LogCapture log = new LogCapture();
             RawClient busy = new RawClient(server.port());
             RawClient idle = new RawClient(server.port());
             RawClient simple = new RawClient(server.port())) {
            busy.go("disk", true, false);
            idle.go("disk", true, false);
            simple.go("disk", false, false);
            MemoryDevice.Gate gate = disk.holdReads(0, MiB);
            busy.request(0, NBD_CMD_READ, 1, 0, MiB, null); // held in the device: in flight
            gate.awaitEntered();

            CompletableFuture<Void> closing = CompletableFuture.runAsync(server::close);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!server.isClosing() && System.nanoTime() < deadline) Thread.sleep(1);
            assertTrue(server.isClosing(), "close() began");

            // new requests, on the busy connection and on the others: NBD_ESHUTDOWN, and nothing written
            byte[] other = new byte[64 << 10];
            Arrays.fill(other, (byte) 0x77);
            RawClient.Reply refused = busy.write(2, 2L * MiB, other, 0);
            assertEquals(NBD_ESHUTDOWN, refused.error(), "a WRITE after shutdown began: " + refused.message());
            assertTrue(refused.message().contains("shutting down"), refused.message());
            assertEquals(NBD_ESHUTDOWN, idle.read(3, 0, 4096).error(), "a READ on an idle connection");
            assertEquals(NBD_ESHUTDOWN, simple.write(4, 4L * MiB, other, 0).error(), "a WRITE with simple replies");
            assertFalse(closing.isDone(), "close() waits for the request in flight");

            gate.open(); // the request in flight finishes and is answered in full
            RawClient.Reply r = busy.reply(0, MiB);
            assertEquals(1, r.cookie());
            assertEquals(0, r.error(), r.message());
            assertArrayEquals(data, r.data(), "the READ in flight got its data");

            closing.get(60, TimeUnit.SECONDS);
            assertTrue(busy.closedByServer(30_000) && idle.closedByServer(30_000) && simple.closedByServer(30_000), "connections closed");
            assertEquals(0, resolver.held(), "every export released");
            byte[] after = new byte[other.length];
            disk.read(2L * MiB, after, 0, after.length);
            assertArrayEquals(new byte[other.length], after, "the refused WRITE changed nothing");

            assertEquals(1, log.matching("INFO", "shutting down", "3 connections open, 1 requests in flight").size(), String.join("\n", log.lines()));
            assertEquals(1, log.matching("INFO", "1 requests finished and answered, 3 answered NBD_ESHUTDOWN").size(), String.join("\n", log.lines()));
            assertEquals(1, log.matching("INFO", "stopped", "3 connections closed").size(), String.join("\n", log.lines()));
        }
    }
}
