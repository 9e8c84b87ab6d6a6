package dev.cask.server;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The serve warm-up does its whole workload (every request succeeds) and leaves nothing behind;
 * every read phase runs, and reads data, not holes: a warm-up whose reads met holes compiled
 * nothing of what reads a block from the store (session 25: its fill had written 1 MiB of a
 * 64 MiB image when its reads began, all over the image).
 */
class WarmupTest {
    @org.junit.jupiter.api.io.TempDir
    Path tmp;

    @Test
    void runsItsWorkloadAndCleansUp() throws IOException {
        Warmup.Done[] done = {null};
        assertNull(Warmup.run(1L << 30, tmp, done), "a warm-up request failed");
        Warmup.Done d = done[0];
        assertTrue(d.filled() >= 1 << 20, d.toString());
        assertTrue(d.bootReads() > 0 && d.readOnlyReads() > 0 && d.randomReads() >= 16 && d.sequentialReads() >= 8, "a read phase was left out: " + d);
        assertTrue(d.bootData() * 2 >= d.bootReads(), "the boot's reads met holes: " + d);
        assertTrue(d.randomData() * 2 >= d.randomReads(), "the random reads met holes: " + d);
        assertTrue(d.sequentialData() == d.sequentialReads(), "the sequential reads met holes: " + d);
        assertTrue(d.readOnlyData() * 2 >= d.readOnlyReads(), "the read-only export's reads met holes: " + d);
        try (Stream<Path> left = Files.list(tmp)) {
            assertEquals(java.util.List.of(), left.toList(), "the warm-up left its temporary store behind");
        }
    }
}
