package dev.cask.volume;

/**
 * The one-writer rule: an image has at most one writer at a time, the holder of its lease. A
 * {@link Volume} holds its image's lease while it is open; a command that moves a head without
 * opening the image (import as a new version, resize, rename) holds it for the while; commands
 * that must not run beside a writer (rollback, rm) ask {@link #isHeld} first.
 *
 * <p>Contract, for every implementation:
 * <ul>
 *   <li>{@link #tryTake} MUST be exclusive: while a lease on an image is held (by this process or
 *       any other that shares the leases), every other {@link #tryTake} of it returns empty. It
 *       MUST NOT wait for the holder: callers decide what to do (refuse with Conflict).
 *   <li>{@link #isHeld} MUST be true for an image whose lease this process holds, too.
 *   <li>{@link Lease#close} releases the lease; closing twice is harmless. A holder that dies
 *       MUST NOT keep the lease for ever (a file lock goes with its process; a lease in a shared
 *       catalog expires after its time to live).
 *   <li>{@link Lease#epoch} never goes down for one image: a take-over by another holder gets a
 *       higher epoch than the lease it replaced. An implementation whose leases cannot be taken
 *       over while held (the local file lock) MAY always answer 0.
 *   <li>{@link Lease#check} throws {@link dev.cask.common.CaskException.Fenced} once the lease
 *       was lost (taken over after it expired); a writer checks before anything it makes
 *       durable, and every commit it makes will carry the epoch (fencing, issue 14 item 4).
 *   <li>Every head change a holder makes carries the epoch ({@code Catalog.commit(..., epoch)}),
 *       and a catalog that keeps the leases refuses it with Fenced when the epoch is no longer
 *       the image's: fencing does not depend on {@link Lease#check} being called in time.
 *   <li>Failures to reach where leases live throw {@link dev.cask.common.CaskException.Io}
 *       naming the image and the place. Safe for many threads.
 *   <li>{@link #close} lets go of every lease still held through this object (as {@link
 *       Lease#close} would) and stops whatever keeps them alive; idempotent.
 * </ul>
 * The local implementation is {@link FileLeases} (a lock on a file per image, for the processes
 * of one host); {@code dev.cask.catalog.postgres.PostgresLeases} keeps a lease row with an epoch
 * in the shared PostgreSQL catalog, renewed while held and taken over after its time to live.
 */
public interface Leases extends AutoCloseable {

    /** A held lease on one image. */
    interface Lease extends AutoCloseable {
        String image();

        /** The lease's epoch (see {@link Leases}); 0 where take-overs cannot happen. */
        long epoch();

        /** Throws Fenced when this lease was lost; returns at once while it is held. */
        void check();

        @Override
        void close();
    }

    /** Takes {@code image}'s lease, or empty when another holder (this process included) has it. */
    java.util.Optional<Lease> tryTake(String image);

    /** True when some holder (this process included) has {@code image}'s lease: it is open read-write. */
    boolean isHeld(String image);

    /** Where the leases live, for messages ({@code /var/lib/cask/journals}). */
    String where();

    /** Releases the leases still held through this object and stops renewing; idempotent. */
    @Override
    default void close() {}
}
