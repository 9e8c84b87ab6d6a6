package dev.cask.volume;

import dev.cask.common.CaskException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The {@link Leases} contract, for every implementation: an implementation's test says how to
 * make a node's leases on shared ground ({@link #newLeases}: two calls with the same directory are
 * two nodes, or two processes, sharing the leases) and how to make a node stop keeping its leases
 * alive as a frozen or cut-off node would ({@link #freeze}). Exclusive takes, isHeld, release,
 * epochs that never go down, and, where leases can be taken over from a living holder, the
 * take-over after expiry with a higher epoch and the old holder's {@link Leases.Lease#check}
 * failing from then on. No timing assertion: a take-over is waited for by polling, with a
 * generous bound that only a broken implementation reaches.
 */
public abstract class LeasesContract {
    /** Leases of one node on the shared ground in {@code dir}. */
    protected abstract Leases newLeases(Path dir);

    /**
     * Makes {@code node} stop renewing its leases without releasing them (a frozen node); false
     * when the implementation's leases cannot lapse while their holder lives (a file lock).
     */
    protected abstract boolean freeze(Leases node);

    /** True when every take-over (and every take after a release) gets a higher epoch. */
    protected abstract boolean epochsRise();

    @TempDir
    protected Path dir;
    private final List<AutoCloseable> opened = new ArrayList<>();

    protected Leases node() {
        Leases l = newLeases(dir);
        opened.add(l);
        return l;
    }

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : opened.reversed()) c.close();
    }

    private Leases.Lease take(Leases node, String image) {
        Leases.Lease l = node.tryTake(image).orElseThrow(() -> new AssertionError("expected to take the lease of " + image));
        opened.add(l);
        return l;
    }

    /** Polls until {@code node} takes the image's lease (a take-over after expiry); fails after a bound no working ttl comes near. */
    private Leases.Lease takeOver(Leases node, String image) throws InterruptedException {
        long end = System.nanoTime() + 60_000_000_000L;
        while (System.nanoTime() < end) {
            Optional<Leases.Lease> l = node.tryTake(image);
            if (l.isPresent()) {
                opened.add(l.get());
                return l.get();
            }
            Thread.sleep(50);
        }
        return fail("the lease of " + image + " was never taken over");
    }

    @Test
    void aTakeIsExclusiveAcrossNodesAndWithinOne() {
        Leases a = node();
        Leases b = node();
        Leases.Lease held = take(a, "team/vm-1");
        assertEquals("team/vm-1", held.image());
        assertTrue(a.tryTake("team/vm-1").isEmpty(), "the holder's own second take");
        assertTrue(b.tryTake("team/vm-1").isEmpty(), "another node's take");
        assertDoesNotThrow(held::check);
        Leases.Lease other = take(b, "team/vm-2"); // another image is independent
        assertDoesNotThrow(other::check);
        assertTrue(a.where() != null && !a.where().isEmpty());
    }

    @Test
    void isHeldSeesEveryHolderUntilRelease() {
        Leases a = node();
        Leases b = node();
        assertFalse(a.isHeld("vm"));
        assertFalse(b.isHeld("vm"));
        Leases.Lease held = take(a, "vm");
        assertTrue(a.isHeld("vm"), "the holder itself");
        assertTrue(b.isHeld("vm"), "another node");
        assertFalse(b.isHeld("vm2"));
        held.close();
        assertFalse(a.isHeld("vm"));
        assertFalse(b.isHeld("vm"));
        held.close(); // twice is harmless
    }

    @Test
    void aReleasedLeaseIsTakenAtOnceAndEpochsNeverGoDown() {
        Leases a = node();
        Leases b = node();
        long last = -1;
        for (int round = 0; round < 6; round++) {
            Leases node = round % 2 == 0 ? a : b;
            Leases.Lease l = take(node, "vm"); // at once: no waiting for an expiry after a release
            assertTrue(l.epoch() >= 0);
            if (epochsRise()) assertTrue(l.epoch() > last, "round " + round + ": epoch " + l.epoch() + " after " + last);
            else assertTrue(l.epoch() >= last, "round " + round + ": epoch " + l.epoch() + " after " + last);
            last = l.epoch();
            l.close();
        }
    }

    @Test
    void closingTheLeasesReleasesWhatTheyHold() {
        Leases a = newLeases(dir);
        Leases b = node();
        take(a, "vm");
        a.close();
        a.close();
        assertFalse(b.isHeld("vm"));
        take(b, "vm");
    }

    @Test
    void aLeaseThatLapsesIsTakenOverWithAHigherEpochAndItsHolderIsFenced() throws Exception {
        Leases a = node();
        Leases b = node();
        Leases.Lease old = take(a, "team/vm-1");
        if (!freeze(a)) {
            // leases that go only with their holder's process: a living holder keeps its image
            assertTrue(b.tryTake("team/vm-1").isEmpty());
            assertDoesNotThrow(old::check);
            return;
        }
        Leases.Lease taken = takeOver(b, "team/vm-1");
        assertTrue(taken.epoch() > old.epoch(), "take-over epoch " + taken.epoch() + " after " + old.epoch());
        CaskException.Fenced e = assertThrows(CaskException.Fenced.class, old::check);
        assertTrue(e.getMessage().contains("team/vm-1") && e.getMessage().contains("epoch " + old.epoch()), e.getMessage());
        assertThrows(CaskException.Fenced.class, old::check, "once lost, always lost");
        assertDoesNotThrow(taken::check);
        assertTrue(a.isHeld("team/vm-1"), "held, by the other node");
        assertTrue(a.tryTake("team/vm-1").isEmpty(), "the old holder cannot take it back while the new one holds it");
        // the old holder letting go of its lost lease must not release the new holder's
        old.close();
        assertTrue(b.isHeld("team/vm-1"));
        assertDoesNotThrow(taken::check);
        assertThrows(CaskException.Fenced.class, old::check);
    }
}
