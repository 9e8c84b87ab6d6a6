package dev.cask.common;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.time.format.DateTimeParseException;

/**
 * The clock that stamps versions (the catalog) and that retention counts periods back from
 * (prune, a server's prune timer): the system's, unless the system property {@code cask.now}
 * sets it, for benchmarks and tests that simulate time (e.g. a month of hourly checkpoints in
 * minutes: {@code bench/lifecycle-bench.sh}). It is read here and nowhere else:
 * <ul>
 *   <li>{@code -Dcask.now=2026-01-01T00:00:00Z} (or epoch seconds, {@code 1767225600}): time stands still there;
 *   <li>{@code -Dcask.now=@FILE}: the time is read from FILE (an instant as above) each time it
 *       is asked, so a script steps the time of running servers and commands by rewriting FILE.
 * </ul>
 * Pass it with {@code CASK_JAVA_OPTS}. A malformed value, or an unreadable FILE, fails whatever
 * asked for the time (nothing falls back to the real clock silently).
 */
public final class Clocks {
    public static final String PROPERTY = "cask.now";

    private Clocks() {}

    /** The system clock (UTC), or the one {@code cask.now} sets. */
    public static Clock system() {
        String v = System.getProperty(PROPERTY);
        if (v == null || v.isBlank()) return Clock.systemUTC();
        if (v.startsWith("@")) return new FileClock(Path.of(v.substring(1)));
        return Clock.fixed(parse(v, PROPERTY), ZoneOffset.UTC);
    }

    /** An ISO-8601 instant ({@code 2026-01-01T00:00:00Z}) or epoch seconds, possibly with a fraction. */
    static Instant parse(String text, String where) {
        String t = text.trim();
        try {
            if (t.matches("-?\\d+(\\.\\d{1,9})?")) {
                int dot = t.indexOf('.');
                long s = Long.parseLong(dot < 0 ? t : t.substring(0, dot));
                long nanos = dot < 0 ? 0 : Long.parseLong((t.substring(dot + 1) + "00000000").substring(0, 9));
                return Instant.ofEpochSecond(s, t.startsWith("-") ? -nanos : nanos);
            }
            return Instant.parse(t);
        } catch (DateTimeParseException | NumberFormatException e) {
            throw new CaskException.Usage(where + ": '" + text + "' is not a time (expected e.g. 2026-01-01T00:00:00Z or epoch seconds)");
        }
    }

    /** A clock whose time is the content of a file, read on every call. */
    private static final class FileClock extends Clock {
        private final Path file;

        FileClock(Path file) {
            this.file = file;
        }

        @Override
        public Instant instant() {
            String text;
            try {
                text = Files.readString(file);
            } catch (IOException e) {
                throw new CaskException.Io(PROPERTY + "=@" + file + ": cannot read the time: " + e.getMessage(), e);
            }
            return parse(text, PROPERTY + "=@" + file);
        }

        @Override
        public ZoneId getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(ZoneId zone) {
            throw new UnsupportedOperationException("a file clock is UTC");
        }
    }
}
