package dev.cask.common;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** cask.now: the system clock, a fixed time, or a time read from a file on every call. */
class ClocksTest {
    @TempDir
    Path dir;

    @AfterEach
    void clear() {
        System.clearProperty(Clocks.PROPERTY);
    }

    @Test
    void withoutThePropertyItIsTheSystemClock() {
        Instant t = Clocks.system().instant();
        assertTrue(Duration.between(t, Instant.now()).abs().toSeconds() < 60, t.toString());
    }

    @Test
    void aFixedTimeIsAnInstantOrEpochSeconds() {
        System.setProperty(Clocks.PROPERTY, "2026-01-05T10:00:00Z");
        assertEquals(Instant.parse("2026-01-05T10:00:00Z"), Clocks.system().instant());
        System.setProperty(Clocks.PROPERTY, "1767607200.25");
        assertEquals(Instant.parse("2026-01-05T10:00:00.250Z"), Clocks.system().instant());
        System.setProperty(Clocks.PROPERTY, "-1.5");
        assertEquals(Instant.ofEpochMilli(-1500), Clocks.system().instant());
    }

    @Test
    void aFileClockReadsTheFileEachTime() throws Exception {
        Path f = dir.resolve("now");
        Files.writeString(f, "2026-01-05T10:00:00Z\n");
        System.setProperty(Clocks.PROPERTY, "@" + f);
        var clock = Clocks.system();
        assertEquals(Instant.parse("2026-01-05T10:00:00Z"), clock.instant());
        Files.writeString(f, "1767610800");
        assertEquals(Instant.parse("2026-01-05T11:00:00Z"), clock.instant(), "a running process sees the time move");
    }

    @Test
    void aMalformedTimeOrAMissingFileFailsInsteadOfFallingBack() {
        System.setProperty(Clocks.PROPERTY, "yesterday");
        var bad = assertThrows(CaskException.Usage.class, Clocks::system);
        assertTrue(bad.getMessage().contains("cask.now") && bad.getMessage().contains("yesterday"), bad.getMessage());
        System.setProperty(Clocks.PROPERTY, "@" + dir.resolve("missing"));
        var clock = Clocks.system();
        var io = assertThrows(CaskException.Io.class, clock::instant);
        assertTrue(io.getMessage().contains("missing"), io.getMessage());
    }
}
