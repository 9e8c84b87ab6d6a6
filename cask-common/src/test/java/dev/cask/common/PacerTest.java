package dev.cask.common;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The background pace's knobs (cask.gc.rest, cask.gc.quantum.ms, cask.gc.rest.busy,
 * cask.gc.busy.limit) and its busy rest while clients are busy: honoured, and a bad value is
 * one message naming the property and the value (a server fails at start with it). How a pacer
 * rests is GarbageCollectorTest's.
 */
class PacerTest {
    @AfterEach
    void clear() {
        System.clearProperty("cask.gc.rest");
        System.clearProperty("cask.gc.quantum.ms");
        System.clearProperty("cask.gc.rest.busy");
        System.clearProperty("cask.gc.busy.limit");
        System.clearProperty("cask.checkpoint.rest.busy");
    }

    /**
     * A timer checkpoint's pacer: no rest while the clients are idle, the checkpoint's busy rest
     * (or cask.checkpoint.rest.busy) while they are busy, within its busy limit; hurried, no
     * rest at all, busy or not.
     */
    @Test
    void aCheckpointRestsOnlyBesideBusyClientsAndNotOnceHurried() {
        AtomicLong clock = new AtomicLong(3_000_000_000L);
        ClientActivity clients = new ClientActivity(clock::get);
        Pacer p = Pacer.checkpoint(clients, 60_000_000_000L);
        assertEquals(0.0, p.restNow(), "idle clients: full speed");
        clients.request();
        assertEquals(Pacer.CHECKPOINT_BUSY_REST, p.restNow(), "busy clients: the checkpoint's busy rest");
        clock.addAndGet(60_000_000_000L);
        clients.request();
        assertEquals(0.0, p.restNow(), "past the busy limit (the timer's interval): full speed");
        System.setProperty("cask.checkpoint.rest.busy", "49");
        Pacer q = Pacer.checkpoint(clients, 60_000_000_000L);
        assertEquals(49.0, q.restNow(), "cask.checkpoint.rest.busy");
        q.hurry();
        assertTrue(q.isHurried());
        assertEquals(0.0, q.restNow(), "hurried: no rest, busy or not");
        System.setProperty("cask.checkpoint.rest.busy", "lots");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Pacer.checkpoint(clients, 0));
        assertEquals("system property cask.checkpoint.rest.busy: 'lots' is not a number from 0 to 1000", e.getMessage());
    }

    /** A rest under way ends when the pacer is hurried, and no later step rests (a real rest of up to 1000 s, ended by another thread). */
    @Test
    void hurryEndsARestUnderWay() throws Exception {
        Pacer p = new Pacer(1000, 1_000_000L);
        Thread t = Thread.ofPlatform().start(() -> {
            long until = System.nanoTime() + 2_000_000L;
            while (System.nanoTime() < until) Thread.onSpinWait();
            p.step(); // rests at least 2 s until hurried
            long again = System.nanoTime() + 2_000_000L;
            while (System.nanoTime() < again) Thread.onSpinWait();
            p.step(); // hurried: returns at once
        });
        while (p.restedSeconds() == 0 && t.isAlive()) {
            Thread.sleep(10);
            if (t.getState() == Thread.State.TIMED_WAITING) break;
        }
        p.hurry();
        t.join(60_000);
        assertTrue(!t.isAlive(), "the hurried rest ended");
        assertTrue(p.restedSeconds() < 60, "rested " + p.restedSeconds() + " s of the 2,000 s or more asked for");
    }

    @Test
    void theDefaultsAndTheKnobs() {
        assertEquals(Pacer.BACKGROUND_REST, Pacer.background().rest());
        System.setProperty("cask.gc.rest", "1.5");
        System.setProperty("cask.gc.quantum.ms", "200");
        assertEquals(1.5, Pacer.background().rest());
        // a 10 s quantum: 0.1 s of work is no reason to rest yet
        System.setProperty("cask.gc.quantum.ms", "10000");
        Pacer p = Pacer.background();
        long until = System.nanoTime() + 100_000_000L;
        while (System.nanoTime() < until) Thread.onSpinWait();
        p.step();
        assertEquals(0.0, p.restedSeconds());
    }

    /**
     * A server's gc rests the busy multiple while its clients asked for something in the last
     * second, the normal one otherwise, and the normal one whatever the clients do once the
     * pacer is past its busy limit (a clock of the test's own: no timing).
     */
    @Test
    void busyClientsMakeTheRestLongerUntilTheBusyLimit() {
        AtomicLong clock = new AtomicLong(7_000_000_000L);
        ClientActivity clients = new ClientActivity(clock::get);
        Pacer p = Pacer.background(clients);
        assertEquals(Pacer.BACKGROUND_REST, p.restNow(), "no request yet: idle");
        clients.request();
        assertEquals(Pacer.BACKGROUND_BUSY_REST, p.restNow(), "a request just now: busy");
        clock.addAndGet(Pacer.ACTIVE_WINDOW_NANOS);
        assertEquals(Pacer.BACKGROUND_BUSY_REST, p.restNow(), "the last request a second ago: still busy");
        clock.addAndGet(1_000_000L);
        assertEquals(Pacer.BACKGROUND_REST, p.restNow(), "nothing for over a second: idle again");
        clients.request();
        assertEquals(Pacer.BACKGROUND_BUSY_REST, p.restNow());
        clock.set(7_000_000_000L + Pacer.BUSY_LIMIT_NANOS);
        clients.request();
        assertEquals(Pacer.BACKGROUND_REST, p.restNow(), "past the busy limit the normal pace holds, busy or not");
        assertEquals(Pacer.BACKGROUND_BUSY_REST, Pacer.background(clients).restNow(), "a new pacer's limit counts from its start");
        assertEquals(Pacer.BACKGROUND_REST, Pacer.background().restNow(), "without clients (cask gc --paced): the normal pace");
        assertEquals(0.0, Pacer.unpaced().restNow());

        System.setProperty("cask.gc.rest.busy", "19");
        System.setProperty("cask.gc.busy.limit", "1h");
        clock.addAndGet(Pacer.BUSY_LIMIT_NANOS);
        Pacer q = Pacer.background(clients);
        clock.addAndGet(Pacer.BUSY_LIMIT_NANOS + 1);
        clients.request();
        assertEquals(19.0, q.restNow(), "cask.gc.rest.busy, and a limit of an hour is not past at the default limit");
        System.setProperty("cask.gc.busy.limit", "0");
        assertEquals(Pacer.BACKGROUND_REST, Pacer.background(clients).restNow(), "a busy limit of 0: never the busy rest");
    }

    @Test
    void aBadValueNamesThePropertyAndTheValue() {
        for (String[] bad : new String[][] {{"cask.gc.quantum.ms", "abc"}, {"cask.gc.quantum.ms", "0"}, {"cask.gc.quantum.ms", "20000"},
                {"cask.gc.quantum.ms", "1.5"}, {"cask.gc.rest", "x"}, {"cask.gc.rest", "-1"}, {"cask.gc.rest", "NaN"},
                {"cask.gc.rest.busy", "lots"}, {"cask.gc.rest.busy", "1001"}, {"cask.gc.busy.limit", "15"}, {"cask.gc.busy.limit", "-5m"}}) {
            clear();
            System.setProperty(bad[0], bad[1]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, Pacer::background, bad[0] + "=" + bad[1]);
            assertTrue(e.getMessage().startsWith("system property " + bad[0] + ": '" + bad[1] + "'"), e.getMessage());
        }
    }
}
