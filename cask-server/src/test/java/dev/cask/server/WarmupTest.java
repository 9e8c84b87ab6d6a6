package dev.cask.server;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** The serve warm-up does its whole workload (every request succeeds), in bounded time, and leaves nothing behind. */
class WarmupTest {
    @org.junit.jupiter.api.io.TempDir
    Path tmp;

    @Test
    void runsItsWorkloadAndCleansUp() throws IOException {
        assertNull(Warmup.run(1L << 30, tmp), "a warm-up request failed");
        try (Stream<Path> left = Files.list(tmp)) {
            assertEquals(java.util.List.of(), left.toList(), "the warm-up left its temporary store behind");
        }
    }
}
