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
        assertNull(Warmup.run(1L << 30), "a warm-up request failed");
        // other cask processes on this machine may warm up meanwhile: only a directory that is new
        // and still there is this warm-up's leftover
        Set<Path> left = new java.util.HashSet<>(warmupDirs());
        left.removeAll(before);
        assertEquals(Set.of(), left, "the warm-up left its temporary store behind");
    }
}
