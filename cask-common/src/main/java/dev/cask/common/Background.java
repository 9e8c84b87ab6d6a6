package dev.cask.common;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.ThreadFactory;

/**
 * Threads for work nobody waits on as it happens (a live volume's checkpoint, warming the location
 * cache), at a lower scheduling priority than the threads that serve clients: Linux's nice value
 * {@link #NICE} for each such thread, set by the thread itself when it starts
 * ({@code setpriority(PRIO_PROCESS, gettid(), NICE)}, through the foreign function API; raising
 * one's own nice value needs no privilege). A nice-10 thread gets about a tenth of a core that a
 * nice-0 thread also wants (the kernel weighs them 110 : 1024), and everything when nothing else
 * runs: on a server with two cores, a checkpoint that hashes and compresses half a gibibyte no
 * longer halves the speed of the reads of a booting VM, yet runs at full speed when the disk is
 * idle. Java's own thread priorities are ignored on Linux (they need root and a JVM flag).
 *
 * <p>Where the call is missing (not Linux, no glibc) the threads run at normal priority: only the
 * sharing of the CPU changes, never what the work does. Thread-safe and stateless.
 */
public final class Background {
    /** The nice value of background threads (0 is normal, 19 the lowest priority). */
    public static final int NICE = 10;
    private static final int PRIO_PROCESS = 0;
    private static final MethodHandle SETPRIORITY;
    private static final MethodHandle GETTID;
    /** {@code syscall(SYS_ioprio_set, ...)}, or null where unknown (not Linux, an architecture without its number here). */
    private static final MethodHandle IOPRIO_SET;
    private static final long SYS_IOPRIO_SET = syscallNumber(251, 30);
    /** {@code syscall(SYS_sched_setattr, ...)}, and {@code getpriority} (bound with {@code setpriority}), or null where unknown. */
    private static final MethodHandle SCHED_SETATTR;
    private static final MethodHandle GETPRIORITY;
    private static final long SYS_SCHED_SETATTR = syscallNumber(314, 274);

    /** A system call's number on this architecture, given its x86-64 and arm64 numbers; -1 on others. */
    private static long syscallNumber(long x86_64, long aarch64) {
        return switch (System.getProperty("os.arch", "")) {
            case "amd64", "x86_64" -> x86_64;
            case "aarch64" -> aarch64;
            default -> -1;
        };
    }
    /** {@code sched_setscheduler}, or null where unknown. */
    private static final MethodHandle SETSCHEDULER;
    private static final int SCHED_IDLE = 5;
    private static final int IOPRIO_WHO_PROCESS = 1;
    private static final int IOPRIO_CLASS_IDLE = 3;
    private static final int IOPRIO_CLASS_SHIFT = 13;

    static {
        MethodHandle set = null, tid = null, getprio = null;
        try {
            if (System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")) {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                set = linker.downcallHandle(libc.find("setpriority").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
                tid = linker.downcallHandle(libc.find("gettid").orElseThrow(), FunctionDescriptor.of(ValueLayout.JAVA_INT));
                getprio = linker.downcallHandle(libc.find("getpriority").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            }
        } catch (Throwable t) {
            set = tid = getprio = null;
        }
        SETPRIORITY = set;
        GETTID = tid;
        GETPRIORITY = getprio;
        MethodHandle io = null;
        try {
            if (set != null && SYS_IOPRIO_SET > 0) {
                Linker linker = Linker.nativeLinker();
                io = linker.downcallHandle(linker.defaultLookup().find("syscall").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
                        Linker.Option.firstVariadicArg(1));
            }
        } catch (Throwable t) {
            io = null;
        }
        IOPRIO_SET = io;
        MethodHandle sched = null;
        try {
            if (set != null) {
                Linker linker = Linker.nativeLinker();
                sched = linker.downcallHandle(linker.defaultLookup().find("sched_setscheduler").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.ADDRESS));
            }
        } catch (Throwable t) {
            sched = null;
        }
        SETSCHEDULER = sched;
        MethodHandle attr = null;
        try {
            if (set != null && SYS_SCHED_SETATTR > 0) {
                Linker linker = Linker.nativeLinker();
                attr = linker.downcallHandle(linker.defaultLookup().find("syscall").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT),
                        Linker.Option.firstVariadicArg(1));
            }
        } catch (Throwable t) {
            attr = null;
        }
        SCHED_SETATTR = attr;
    }

    private Background() {}

    /**
     * Lowers the calling (platform) thread's priority to nice {@link #NICE}; true when it runs
     * there or lower now. A thread that runs lower already (a {@code nice -n 15 cask serve}) keeps
     * its value: as root, setting 10 would raise it. Never call it on a virtual thread: it would
     * lower the carrier, which runs other work.
     */
    public static boolean lowerPriority() {
        if (SETPRIORITY == null || Thread.currentThread().isVirtual()) return false;
        try {
            return lower((int) GETTID.invokeExact()) >= 0;
        } catch (Throwable t) {
            return false;
        }
    }

    /**
     * Sets thread {@code tid} to nice {@link #NICE} unless it runs there or lower already (as root,
     * setting 10 would raise a thread at 15): 1 when it lowered it, 0 when it was there already, -1
     * when the kernel refused.
     */
    private static int lower(int tid) throws Throwable {
        if ((int) GETPRIORITY.invokeExact(PRIO_PROCESS, tid) >= NICE) return 0;
        return (int) SETPRIORITY.invokeExact(PRIO_PROCESS, tid, NICE) == 0 ? 1 : -1;
    }

    /**
     * Puts the calling (platform) thread's disk I/O in the idle class ({@code ioprio_set}, as
     * {@code ionice -c 3}): the block layer's schedulers that honour priorities (mq-deadline since
     * Linux 5.14, bfq) dispatch it after everyone else's, and mq-deadline still dispatches a
     * request that waited {@code prio_aging_expire} (10 s), so it is never starved for good. An
     * fsync in the idle class can hold up the filesystem journal's commit that other processes'
     * writes wait for, so garbage collection uses it only when asked ({@code cask.gc.idle.io}).
     * True when it did; writeback the kernel starts on its own is not covered.
     */
    public static boolean idleIo() {
        if (IOPRIO_SET == null || Thread.currentThread().isVirtual()) return false;
        try {
            int tid = (int) GETTID.invokeExact();
            return (long) IOPRIO_SET.invokeExact(SYS_IOPRIO_SET, IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT) == 0;
        } catch (Throwable t) {
            return false;
        }
    }

    /**
     * Puts the calling (platform) thread in Linux's {@code SCHED_IDLE} policy (as {@code chrt -i 0}):
     * it runs only on a core nothing else wants, and a waking normal thread takes the core from it
     * at once, where a nice-10 thread could still hold it for a scheduler slice. The cost: on a
     * busy machine such a thread waits, and whatever it holds meanwhile (a lock, the filesystem
     * journal an fsync of its commits) waits with it; for garbage collection that cost more than it
     * gave in the lifecycle benchmark, so gc uses it only when asked ({@code cask.gc.idle.cpu}).
     * Never for a checkpoint (a full journal stops the writes). No privilege needed. True when it did.
     */
    public static boolean idleCpu() {
        if (SETSCHEDULER == null || Thread.currentThread().isVirtual()) return false;
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment param = arena.allocate(ValueLayout.JAVA_INT); // struct sched_param { int sched_priority = 0; }
            int tid = (int) GETTID.invokeExact();
            return (int) SETSCHEDULER.invokeExact(tid, SCHED_IDLE, param) == 0;
        } catch (Throwable t) {
            return false;
        }
    }

    /** The shortest scheduler slice Linux grants a normal thread (0.1 ms; {@link #shortSlice}). */
    public static final long SHORT_SLICE_NANOS = 100_000;

    /**
     * Gives thread {@code tid} (of this process) the shortest scheduler slice, {@link #SHORT_SLICE_NANOS},
     * keeping its nice value ({@code sched_setattr} with {@code SCHED_OTHER} and a {@code sched_runtime},
     * Linux 6.12 and later; older kernels refuse and nothing changes). Linux's scheduler (EEVDF) lets
     * a running thread finish its slice before a thread that wakes up takes the core, unless the one
     * waking has a shorter slice: a busy background thread with the default slice (0.7 ms times
     * 1 + log2 of the number of cores: 1.4 ms on two) makes a client's request that wakes behind it wait that long; with the
     * shortest one it waits a tenth of a millisecond. Threads it creates afterwards inherit the
     * slice. True when it did.
     */
    public static boolean shortSlice(int tid) {
        if (SCHED_SETATTR == null || tid <= 0) return false;
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            int nice = (int) GETPRIORITY.invokeExact(PRIO_PROCESS, tid);
            // struct sched_attr (SCHED_ATTR_SIZE_VER1, 56 bytes): size, policy, flags, nice, priority, runtime, deadline, period, util min/max
            java.lang.foreign.MemorySegment a = arena.allocate(56, 8);
            a.set(ValueLayout.JAVA_INT, 0, 56);
            a.set(ValueLayout.JAVA_INT, 4, 0); // SCHED_OTHER
            a.set(ValueLayout.JAVA_INT, 16, nice);
            a.set(ValueLayout.JAVA_LONG, 24, SHORT_SLICE_NANOS);
            return (long) SCHED_SETATTR.invokeExact(SYS_SCHED_SETATTR, tid, a, 0) == 0;
        } catch (Throwable t) {
            return false;
        }
    }

    /**
     * {@link #shortSlice} for every thread of this process (the JVM's compiler and collector threads
     * too, which started before any code of ours ran); true when it did for all of them.
     */
    public static boolean shortSliceAll() {
        if (SCHED_SETATTR == null) return false;
        boolean all = true;
        try (var tasks = java.nio.file.Files.list(java.nio.file.Path.of("/proc/self/task"))) {
            for (var t : (Iterable<java.nio.file.Path>) tasks::iterator) {
                all &= shortSlice(Integer.parseInt(t.getFileName().toString())) || !java.nio.file.Files.exists(t);
            }
        } catch (java.io.IOException | RuntimeException e) {
            return false;
        }
        return all;
    }

    /**
     * Lowers the JVM's JIT compiler threads ({@code C1 CompilerThread0}, {@code C2 CompilerThread0}...)
     * to nice {@link #NICE} (never raising one that runs lower already); returns how many it
     * lowered. Compiler threads the JVM adds later are started by a compiler thread, and so
     * inherit its nice value.
     *
     * <p>Why: a server seconds old still compiles much of its read path while the first clients
     * read (the warm-up cannot make every method hot with a client's profile). On two cores, C2
     * took 0.8-1.2 s of CPU in the first 1 GiB sequential read after a restart, beside the request
     * threads that needed it: 690-890 MiB/s. With C2 at nice 10 (it compiles the same code, on the
     * CPU nobody else wants) the same read ran at 840-1,090 MiB/s (session 34). On an idle host the
     * compilers get all they ask for; on a busy one a tenth of a core at least, so they finish.
     * (Session 22 tried the same for served disks' p99 during a background gc: no change there,
     * within that bench's noise.)
     */
    public static int lowerCompilerThreads() {
        if (SETPRIORITY == null) return 0;
        int lowered = 0;
        try (var tasks = java.nio.file.Files.list(java.nio.file.Path.of("/proc/self/task"))) {
            for (var t : (Iterable<java.nio.file.Path>) tasks::iterator) {
                String comm;
                try {
                    comm = java.nio.file.Files.readString(t.resolve("comm")).strip();
                } catch (java.io.IOException e) {
                    continue; // the thread ended meanwhile
                }
                if (!comm.startsWith("C1 CompilerThre") && !comm.startsWith("C2 CompilerThre")) continue;
                if (lower(Integer.parseInt(t.getFileName().toString())) > 0) lowered++;
            }
        } catch (Throwable e) {
            return lowered;
        }
        return lowered;
    }

    /** The calling thread's kernel thread id, or -1 where unknown (tests read its nice value from /proc). */
    public static int threadId() {
        if (GETTID == null) return -1;
        try {
            return (int) GETTID.invokeExact();
        } catch (Throwable t) {
            return -1;
        }
    }

    /** Daemon platform threads named {@code name} that run at nice {@link #NICE}. */
    public static ThreadFactory threads(String name) {
        return r -> {
            Thread t = new Thread(() -> {
                lowerPriority();
                r.run();
            }, name);
            t.setDaemon(true);
            return t;
        };
    }
}
