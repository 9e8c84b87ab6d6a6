package dev.cask.common;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Background threads run at nice 10 (as the kernel reports it), and nothing else is lowered with them. */
class BackgroundTest {
    /** The nice value the kernel has for thread {@code tid} of this process (field 19 of its stat line). */
    private static int nice(int tid) throws Exception {
        String stat = Files.readString(Path.of("/proc/self/task/" + tid + "/stat"));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Integer.parseInt(f[16]); // fields after "(comm)" start at field 3
    }

    @Test
    void backgroundThreadsRunAtNiceTenAndOthersDoNot() throws Exception {
        assertTrue(System.getProperty("os.name").toLowerCase().contains("linux"), "the test (and the servers) run on Linux");
        int base = nice(Background.threadId()); // 0, unless the whole test run was started with nice
        int expected = Math.max(base, Background.NICE);
        ExecutorService pool = Executors.newFixedThreadPool(2, Background.threads("test-background"));
        try {
            int[] seen = pool.submit(() -> new int[]{Background.threadId(), nice(Background.threadId())}).get();
            assertEquals(expected, seen[1], "a background thread's nice value");
            assertEquals(expected, nice(seen[0]), "as read from outside it");
        } finally {
            pool.shutdownNow();
        }
        assertEquals(base, nice(Background.threadId()), "the test's own thread is untouched");
        int[] virtual = CompletableFuture.supplyAsync(() -> new int[]{Background.lowerPriority() ? 1 : 0}, r -> Thread.startVirtualThread(r)).get();
        assertEquals(0, virtual[0], "a virtual thread never lowers its carrier");
        assertFalse(Thread.currentThread().isVirtual());
    }
}
