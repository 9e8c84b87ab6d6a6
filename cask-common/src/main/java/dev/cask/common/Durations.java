package dev.cask.common;

import java.time.Duration;
import java.util.Locale;

/**
 * Durations as users type them: one or more {@code NUMBER UNIT} pairs, like {@code 30s},
 * {@code 5m}, {@code 2h}, {@code 7d}, {@code 1d12h}, {@code 2w}, {@code 1y}; or {@code 0}.
 * Units: {@code s} seconds, {@code m} minutes (not months, unlike restic: {@code 5m} is what
 * {@code --checkpoint-interval} has always meant), {@code h} hours, {@code d} days of 24 hours,
 * {@code w} weeks, {@code y} years of 365 days. Anything else, a negative number, or a total past
 * a thousand years is a {@link CaskException.Usage} error (exit 2) naming the text.
 */
public final class Durations {
    private static final long MAX_SECONDS = 1000L * 365 * 86_400;

    private Durations() {}

    public static Duration parse(String text) {
        String t = text == null ? "" : text.trim().toLowerCase(Locale.ROOT);
        if (t.equals("0")) return Duration.ZERO;
        long seconds = 0;
        int i = 0;
        boolean any = false;
        while (i < t.length()) {
            int start = i;
            while (i < t.length() && Character.isDigit(t.charAt(i)) && i - start < 12) i++;
            if (i == start || i >= t.length()) throw bad(text);
            long n = Long.parseLong(t.substring(start, i));
            long unit = switch (t.charAt(i)) {
                case 's' -> 1;
                case 'm' -> 60;
                case 'h' -> 3600;
                case 'd' -> 86_400;
                case 'w' -> 7 * 86_400;
                case 'y' -> 365 * 86_400;
                default -> throw bad(text);
            };
            i++;
            if (n > MAX_SECONDS / unit) throw bad(text);
            seconds += n * unit;
            if (seconds > MAX_SECONDS) throw bad(text);
            any = true;
        }
        if (!any) throw bad(text);
        return Duration.ofSeconds(seconds);
    }

    private static CaskException.Usage bad(String text) {
        return new CaskException.Usage("duration '" + text + "': expected a number with s, m, h, d, w or y (e.g. 30s, 5m, 7d, 1d12h), or 0");
    }

    /** The shortest text {@link #parse} reads back as {@code d} (whole seconds): {@code 2h}, {@code 1d12h}, {@code 0}. */
    public static String format(Duration d) {
        long s = d.getSeconds();
        if (s == 0) return "0";
        StringBuilder out = new StringBuilder();
        long[] units = {7 * 86_400, 86_400, 3600, 60, 1};
        String[] names = {"w", "d", "h", "m", "s"};
        for (int k = 0; k < units.length; k++) {
            if (s >= units[k]) {
                out.append(s / units[k]).append(names[k]);
                s %= units[k];
            }
        }
        return out.toString();
    }
}
