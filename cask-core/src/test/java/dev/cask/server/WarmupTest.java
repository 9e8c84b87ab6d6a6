package dev.cask.server;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The serve warm-up does its whole workload (every request succeeds), in bounded time, and leaves nothing behind. */
class WarmupTest {
    private static Set<Path> warmupDirs() throws IOException {
        try (Stream<Path> s = Files.list(Path.of(System.getProperty("java.io.tmpdir")))) {
            return s.filter(p -> p.getFileName().toString().startsWith("cask-warmup-")).collect(Collectors.toSet());
        }
    }

    @Test
    void runsItsWorkloadAndCleansUp() throws IOException {
        Set<Path> before = warmupDirs();
        long t0 = System.nanoTime();
        assertNull(Warmup.run(1L << 30), "a warm-up request failed");
        long millis = (System.nanoTime() - t0) / 1_000_000;
        // the work is bounded by its budget, the JIT wait by its own, the checkpoints by twice the budget
        assertTrue(millis < (3 * Warmup.BUDGET_NANOS + Warmup.SETTLE_NANOS) / 1_000_000 + 2_000, "warm-up took " + millis + " ms");
        assertEquals(before, warmupDirs(), "the warm-up left its temporary store behind");
    }
}
