package dev.cask.cli;

import dev.cask.common.CaskException;

import java.io.PrintStream;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.Locale;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogManager;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * The log of {@code cask serve}: one line per event on stderr, nothing anywhere else, in the
 * shape log collectors and people expect:
 * {@code 2026-12-02T07:45:01.123+00:00 INFO cask.serve: message}. The time is ISO-8601 with
 * milliseconds and the local zone's offset; the level is one of ERROR, WARN, INFO, DEBUG, TRACE
 * (java.util.logging's SEVERE/WARNING/FINE... spelled as System.Logger and syslog users know
 * them). A record's exception adds its one-line summary; its stack trace is printed only at
 * DEBUG and TRACE, so an operator sees a message, not a stack trace.
 *
 * <p>Each line is flushed as it is written: under systemd, stderr is the journal, and a line
 * must not wait in a buffer for the next one. The server logs through {@link System.Logger}
 * (backed by java.util.logging), which this class configures once, before anything logs.
 */
final class ServeLog {
    private ServeLog() {}

    /** The levels {@code --log-level} takes, from the quietest. */
    static final String LEVELS = "error, warn, info, debug, trace";

    /** Sends every log record at {@code level} or above to stderr, one line each; throws InvalidInput for an unknown level. */
    static void configure(String level) {
        Level threshold = parseLevel(level);
        LogManager.getLogManager().reset();
        Logger root = Logger.getLogger("");
        root.setLevel(threshold);
        root.addHandler(new LineHandler(System.err, threshold.intValue() <= Level.FINE.intValue()));
    }

    static Level parseLevel(String text) {
        return switch (text.toLowerCase(Locale.ROOT)) {
            case "error" -> Level.SEVERE;
            case "warn", "warning" -> Level.WARNING;
            case "info" -> Level.INFO;
            case "debug" -> Level.FINE;
            case "trace" -> Level.FINEST;
            default -> throw new CaskException.InvalidInput("log level '" + text + "': expected one of " + LEVELS);
        };
    }

    static String levelName(Level l) {
        int v = l.intValue();
        if (v >= Level.SEVERE.intValue()) return "ERROR";
        if (v >= Level.WARNING.intValue()) return "WARN";
        if (v >= Level.INFO.intValue()) return "INFO";
        if (v >= Level.FINE.intValue()) return "DEBUG";
        return "TRACE";
    }

    /** One line per record, flushed at once. */
    static final class LineFormatter extends Formatter {
        private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSSXXX", Locale.ROOT);
        private final ZoneId zone = ZoneId.systemDefault();
        private final boolean stackTraces;

        LineFormatter(boolean stackTraces) {
            this.stackTraces = stackTraces;
        }

        @Override
        public String format(LogRecord r) {
            StringBuilder sb = new StringBuilder(128);
            sb.append(TIME.format(Instant.ofEpochMilli(r.getMillis()).atZone(zone))).append(' ')
                    .append(levelName(r.getLevel())).append(' ')
                    .append(r.getLoggerName()).append(": ")
                    .append(formatMessage(r).replace('\n', ' '));
            Throwable t = r.getThrown();
            if (t != null) {
                sb.append(": ").append(t.getMessage() != null ? t.getMessage() : t.toString());
                if (stackTraces) {
                    java.io.StringWriter w = new java.io.StringWriter();
                    t.printStackTrace(new java.io.PrintWriter(w));
                    sb.append(System.lineSeparator()).append(w.toString().stripTrailing());
                }
            }
            return sb.append(System.lineSeparator()).toString();
        }
    }

    private static final class LineHandler extends Handler {
        private final PrintStream out;
        private final Formatter formatter;

        LineHandler(PrintStream out, boolean stackTraces) {
            this.out = out;
            this.formatter = new LineFormatter(stackTraces);
            setLevel(Level.ALL);
        }

        @Override
        public void publish(LogRecord r) {
            if (!isLoggable(r)) return;
            String line = formatter.format(r);
            synchronized (this) {
                out.print(line);
                out.flush();
            }
        }

        @Override
        public void flush() {
            out.flush();
        }

        @Override
        public void close() {
            out.flush(); // stderr stays open: the CLI still prints its last words there
        }
    }
}
