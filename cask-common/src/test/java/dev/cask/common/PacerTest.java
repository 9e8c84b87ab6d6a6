package dev.cask.common;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The background pace's knobs (cask.gc.rest, cask.gc.quantum.ms): honoured, and a bad value is
 * one message naming the property and the value (a server fails at start with it). How a pacer
 * rests is GarbageCollectorTest's.
 */
class PacerTest {
    @AfterEach
    void clear() {
        System.clearProperty("cask.gc.rest");
        System.clearProperty("cask.gc.quantum.ms");
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

    @Test
    void aBadValueNamesThePropertyAndTheValue() {
        for (String[] bad : new String[][] {{"cask.gc.quantum.ms", "abc"}, {"cask.gc.quantum.ms", "0"}, {"cask.gc.quantum.ms", "20000"},
                {"cask.gc.quantum.ms", "1.5"}, {"cask.gc.rest", "x"}, {"cask.gc.rest", "-1"}, {"cask.gc.rest", "NaN"}}) {
            clear();
            System.setProperty(bad[0], bad[1]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, Pacer::background, bad[0] + "=" + bad[1]);
            assertTrue(e.getMessage().startsWith("system property " + bad[0] + ": '" + bad[1] + "'"), e.getMessage());
        }
    }
}
