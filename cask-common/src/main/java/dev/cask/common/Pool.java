package dev.cask.common;

import java.util.ArrayDeque;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * A small pool of reusable objects that are costly to make and not thread-safe (zstd contexts,
 * message digests, direct buffers, large byte arrays). Thread-locals would do for platform
 * threads, but the NBD server runs every request on its own virtual thread, and a thread-local
 * there makes a new object per request. Objects are borrowed ({@link #take}, or for one call
 * {@link #with}) and given back; the pool keeps at most {@code maxIdle} idle ones (more than that
 * were made for a burst: closed when they are {@link AutoCloseable}, else left to the GC).
 *
 * <p>A plain lock around an array deque, held for a push or a pop only: a profile of a write
 * load showed a third of the CPU in {@code ConcurrentLinkedQueue.poll} when this was lock-free.
 */
public final class Pool<T> {
    /** Idle objects kept by default: enough for every thread of a busy server on a few cores. */
    public static final int MAX_IDLE = 64;
    private final ArrayDeque<T> idle = new ArrayDeque<>();
    private final Supplier<T> factory;
    private final int maxIdle;

    public Pool(Supplier<T> factory) {
        this(factory, MAX_IDLE);
    }

    public Pool(Supplier<T> factory, int maxIdle) {
        this.factory = factory;
        this.maxIdle = maxIdle;
    }

    /** Runs {@code work} with a pooled object. */
    public <R> R with(Function<T, R> work) {
        T t = take();
        try {
            return work.apply(t);
        } finally {
            give(t);
        }
    }

    /** An idle object, or a new one. The caller gives it back with {@link #give} (or drops it). */
    public T take() {
        T t;
        synchronized (idle) {
            t = idle.pollLast();
        }
        return t != null ? t : factory.get();
    }

    /** Returns an object {@link #take} gave out; the caller must not use it afterwards. */
    public void give(T t) {
        boolean kept;
        synchronized (idle) {
            kept = idle.size() < maxIdle;
            if (kept) idle.addLast(t);
        }
        if (!kept && t instanceof AutoCloseable c) closeQuietly(c); // zstd contexts hold native memory
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // an extra object we are dropping anyway
        }
    }
}
