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

    /** The names ({@code comm}) and nice values of this process's threads, by thread id. */
    private static java.util.Map<Integer, String> threadNames() throws Exception {
        java.util.Map<Integer, String> names = new java.util.TreeMap<>();
        try (var tasks = Files.list(Path.of("/proc/self/task"))) {
            for (Path t : (Iterable<Path>) tasks::iterator) {
                try {
                    names.put(Integer.parseInt(t.getFileName().toString()), Files.readString(t.resolve("comm")).strip());
                } catch (java.io.IOException gone) {
                    // ended meanwhile
                }
            }
        }
        return names;
    }

    @Test
    void lowerCompilerThreadsLowersTheJitAndNothingElse() throws Exception {
        int base = nice(Background.threadId());
        java.util.Map<Integer, Integer> before = new java.util.HashMap<>();
        for (var e : threadNames().entrySet()) {
            try {
                before.put(e.getKey(), nice(e.getKey()));
            } catch (java.io.IOException gone) {
                // ended meanwhile
            }
        }
        int lowered = Background.lowerCompilerThreads();
        if (base < Background.NICE) assertTrue(lowered >= 1, "this JVM compiles (C1 and C2 threads): lowered " + lowered);
        else assertEquals(0, lowered, "a JVM started at nice " + base + " is never raised");
        int compilers = 0;
        for (var e : threadNames().entrySet()) {
            int tid = e.getKey();
            int now;
            try {
                now = nice(tid);
            } catch (java.io.IOException gone) {
                continue;
            }
            if (e.getValue().startsWith("C1 CompilerThre") || e.getValue().startsWith("C2 CompilerThre")) {
                compilers++;
                assertEquals(Math.max(base, Background.NICE), now, "compiler thread " + e.getValue() + " (" + tid + ")");
            } else if (before.containsKey(tid)) {
                assertEquals(before.get(tid), now, "thread " + e.getValue() + " (" + tid + ") is not a compiler: untouched");
            }
        }
        assertTrue(compilers >= 1, "compiler threads seen: " + compilers);
        assertEquals(base, nice(Background.threadId()), "the caller is untouched");
    }

    @Test
    void aThreadThatRunsLowerAlreadyIsNeverRaised() throws Exception {
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            int[] seen = pool.submit(() -> {
                int tid = Background.threadId();
                // lower this thread below NICE first, as `nice -n 15 cask serve` starts every thread
                Process renice = new ProcessBuilder("renice", "-n", Integer.toString(Background.NICE + 5), "-p", Integer.toString(tid))
                        .redirectErrorStream(true).start();
                String out = new String(renice.getInputStream().readAllBytes()).strip();
                assertEquals(0, renice.waitFor(), out);
                boolean lowered = Background.lowerPriority();
                return new int[] {lowered ? 1 : 0, nice(tid)};
            }).get();
            assertEquals(1, seen[0], "at nice " + (Background.NICE + 5) + " the thread runs lower than NICE: done");
            assertEquals(Background.NICE + 5, seen[1], "its nice value is kept, not raised to " + Background.NICE);
        } finally {
            pool.shutdownNow();
        }
    }

    /** What {@code ionice -p TID} says of a thread of this process (util-linux, as admins would ask). */
    private static String ionice(int tid) throws Exception {
        Process p = new ProcessBuilder("ionice", "-p", Integer.toString(tid)).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes()).strip();
        assertEquals(0, p.waitFor(), out);
        return out;
    }

    @Test
    void idleIoPutsOnlyTheCallingThreadInTheIdleClass() throws Exception {
        String before = ionice(Background.threadId());
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            int tid = pool.submit(() -> {
                assertTrue(Background.idleIo(), "ioprio_set on this Linux");
                return Background.threadId();
            }).get();
            assertEquals("idle", ionice(tid), "the gc thread's I/O class, as ionice shows it");
        } finally {
            pool.shutdownNow();
        }
        assertEquals(before, ionice(Background.threadId()), "the test's own thread is untouched");
    }

    /** The scheduling policy of thread {@code tid} of this process (field 41 of its stat line; 5 is SCHED_IDLE). */
    private static int policy(int tid) throws Exception {
        String stat = Files.readString(Path.of("/proc/self/task/" + tid + "/stat"));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Integer.parseInt(f[38]);
    }

    @Test
    void idleCpuPutsOnlyTheCallingThreadInSchedIdle() throws Exception {
        int before = policy(Background.threadId());
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            int tid = pool.submit(() -> {
                assertTrue(Background.idleCpu(), "sched_setscheduler(SCHED_IDLE) on this Linux");
                return Background.threadId();
            }).get();
            assertEquals(5, policy(tid), "the gc thread's policy: SCHED_IDLE");
        } finally {
            pool.shutdownNow();
        }
        assertEquals(before, policy(Background.threadId()), "the test's own thread is untouched");
    }

    /** Thread {@code tid}'s scheduler slice in nanoseconds, as the kernel shows it ({@code se.slice} in its sched file). */
    private static long slice(int tid) throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/task/" + tid + "/sched"))) {
            if (line.startsWith("se.slice")) return Long.parseLong(line.substring(line.indexOf(':') + 1).strip());
        }
        throw new AssertionError("no se.slice in /proc/self/task/" + tid + "/sched: a kernel older than the one cask is tested on");
    }

    @Test
    void shortSliceGivesOnlyThatThreadTheShortestSliceAndKeepsItsNiceValue() throws Exception {
        long before = slice(Background.threadId());
        ExecutorService pool = Executors.newSingleThreadExecutor(Background.threads("test-gc"));
        try {
            int[] seen = pool.submit(() -> {
                int tid = Background.threadId();
                assertTrue(Background.shortSlice(tid), "sched_setattr with a runtime on this Linux (6.12 or later)");
                return new int[]{tid, nice(tid)};
            }).get();
            assertEquals(Background.SHORT_SLICE_NANOS, slice(seen[0]), "the gc thread's slice, as the kernel shows it");
            assertEquals(Math.max(Background.NICE, nice(Background.threadId())), seen[1], "still nice 10");
        } finally {
            pool.shutdownNow();
        }
        assertEquals(before, slice(Background.threadId()), "the test's own thread is untouched");
        assertFalse(Background.shortSlice(-1), "no such thread");
    }
}
