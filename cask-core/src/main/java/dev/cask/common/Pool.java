package dev.cask.common;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * A small pool of reusable objects that are costly to make and not thread-safe (zstd contexts,
 * message digests). Thread-locals would do for platform threads, but the NBD server runs every
 * request on its own virtual thread, and a thread-local there makes a new object per request.
 * Objects are borrowed for one call and returned; the pool keeps at most {@code max} idle ones.
 */
public final class Pool<T> {
    private final ConcurrentLinkedQueue<T> idle = new ConcurrentLinkedQueue<>();
    private final Supplier<T> factory;

    public Pool(Supplier<T> factory) {
        this.factory = factory;
    }

    /** Runs {@code work} with a pooled object. */
    public <R> R with(Function<T, R> work) {
        T t = idle.poll();
        if (t == null) t = factory.get();
        try {
            return work.apply(t);
        } finally {
            idle.offer(t);
        }
    }
}
