package dev.cask.server.nbd;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The large-buffer budget of one server, shared fairly by its connections: the bytes of request
 * buffers over {@link NbdConnection#SMALL_BUFFER} that may be in use at once, across all
 * connections, and how they are handed out.
 *
 * <p><b>Rules.</b> A buffer of {@code n} bytes is taken by an owner (a connection) when
 * <ol>
 *   <li>it fits: the bytes in use plus {@code n} stay within the capacity;</li>
 *   <li>the owner stays within its share: it holds nothing yet, or what it holds plus {@code n}
 *       is at most {@link #shareBytes()} (the capacity divided by the owners holding or waiting
 *       for buffers) and at most the per-owner limit. An owner holding nothing may always take
 *       one buffer, so a connection that asks for one maximum payload is never refused for
 *       fairness, only made to wait for room;</li>
 *   <li>no earlier waiter that is within its share is still waiting for room: first come, first
 *       served, so a large buffer is not overtaken forever by a stream of small ones. Waiters
 *       held back by their own share (they hold enough already) do not hold up the others.</li>
 * </ol>
 * So a crowd of connections cannot keep a newcomer out: as soon as room frees, the newcomer
 * comes first among those within their share, and none of the crowd can grow past its share.
 * Buffers are held only while a request is being received, served or replied to; the server
 * closes a connection whose client stops sending or receiving for longer than its request
 * timeout, which gives back what that connection held.
 *
 * <p><b>No deadlock.</b> Callers take one buffer per request and never wait for a second one
 * while holding the first (see {@link NbdConnection}), so every holder can finish without
 * more from the budget.
 *
 * <p>Thread-safe: one lock, one condition; every change wakes all waiters, which each re-check
 * the rules (a few hundred waiters at most: one per connection and request in flight).
 */
final class BufferBudget {
    private final long capacityBytes;
    private final long ownerLimitBytes;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final Map<Object, Long> held = new HashMap<>(); // owner -> bytes; only owners holding something
    private final ArrayDeque<Waiter> waiters = new ArrayDeque<>();
    private long usedBytes;

    /** A class, not a record: two waiters of one owner asking the same size are still two. */
    private static final class Waiter {
        final Object owner;
        final long bytes;

        Waiter(Object owner, long bytes) {
            this.owner = owner;
            this.bytes = bytes;
        }

        Object owner() {
            return owner;
        }

        long bytes() {
            return bytes;
        }
    }

    BufferBudget(long capacityBytes, long ownerLimitBytes) {
        if (capacityBytes < ownerLimitBytes || ownerLimitBytes < NbdProtocol.MAX_PAYLOAD) {
            throw new IllegalArgumentException("buffer budget of " + capacityBytes + " bytes with a per-connection limit of "
                    + ownerLimitBytes + ": need capacity >= limit >= " + NbdProtocol.MAX_PAYLOAD);
        }
        this.capacityBytes = capacityBytes;
        this.ownerLimitBytes = ownerLimitBytes;
    }

    long capacityBytes() {
        return capacityBytes;
    }

    /** Bytes in use now, across all owners. */
    long usedBytes() {
        lock.lock();
        try {
            return usedBytes;
        } finally {
            lock.unlock();
        }
    }

    /** What one owner may hold now: the capacity divided among the owners holding or waiting, at most the per-owner limit. */
    long shareBytes() {
        lock.lock();
        try {
            return share();
        } finally {
            lock.unlock();
        }
    }

    /** Takes {@code bytes} for {@code owner}, waiting until the rules above allow it. */
    void take(Object owner, long bytes) {
        assert bytes > 0 && bytes <= NbdProtocol.MAX_PAYLOAD : bytes;
        lock.lock();
        try {
            Waiter me = new Waiter(owner, bytes);
            waiters.addLast(me);
            try {
                while (!mayTake(me)) changed.awaitUninterruptibly();
            } finally {
                waiters.removeFirstOccurrence(me);
            }
            usedBytes += bytes;
            held.merge(owner, bytes, Long::sum);
            changed.signalAll(); // the waiter list changed: someone behind may now be first
        } finally {
            lock.unlock();
        }
    }

    /** Gives back {@code bytes} that {@code owner} took. */
    void give(Object owner, long bytes) {
        if (bytes == 0) return;
        lock.lock();
        try {
            Long h = held.get(owner);
            assert h != null && h >= bytes : owner + " gives back " + bytes + " bytes but holds " + h;
            if (h == null || h <= bytes) held.remove(owner);
            else held.put(owner, h - bytes);
            usedBytes -= bytes;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private long share() {
        Set<Object> active = new HashSet<>(held.keySet());
        for (Waiter w : waiters) active.add(w.owner());
        return Math.min(ownerLimitBytes, capacityBytes / Math.max(1, active.size()));
    }

    private boolean withinShare(Waiter w, long share) {
        long h = held.getOrDefault(w.owner(), 0L);
        return h == 0 || h + w.bytes() <= share;
    }

    private boolean mayTake(Waiter me) {
        long share = share();
        if (!withinShare(me, share)) return false;
        for (Waiter w : waiters) {
            if (w == me) break;
            if (withinShare(w, share)) return false; // an earlier waiter within its share goes first
        }
        return usedBytes + me.bytes() <= capacityBytes;
    }
}
