package dev.cask.common;

import java.util.Locale;

/** Parses and prints byte sizes the way storage people write them: {@code 20G}, {@code 512M}, {@code 4KiB}, {@code 1048576}. */
public final class Sizes {
    private Sizes() {}

    /** Parses a size with an optional binary suffix (K, M, G, T, P; optional "iB" or "B"). */
    public static long parse(String text) {
        String s = text.trim().toUpperCase(Locale.ROOT);
        if (s.endsWith("IB")) s = s.substring(0, s.length() - 2);
        else if (s.endsWith("B")) s = s.substring(0, s.length() - 1);
        int shift = 0;
        if (!s.isEmpty()) {
            switch (s.charAt(s.length() - 1)) {
                case 'K' -> shift = 10;
                case 'M' -> shift = 20;
                case 'G' -> shift = 30;
                case 'T' -> shift = 40;
                case 'P' -> shift = 50;
                default -> shift = -1;
            }
            if (shift >= 0) s = s.substring(0, s.length() - 1);
            else shift = 0;
        }
        long n;
        try {
            n = Long.parseLong(s);
        } catch (NumberFormatException e) {
            throw new CaskException.Usage("size '" + text + "': not a number with an optional K/M/G/T/P suffix");
        }
        if (n < 0) throw new CaskException.Usage("size '" + text + "': must not be negative");
        if (shift > 0 && n > (Long.MAX_VALUE >> shift)) {
            throw new CaskException.Usage("size '" + text + "': too large");
        }
        return n << shift;
    }

    /** Human-readable binary size: {@code 1.5 GiB}. */
    public static String human(long bytes) {
        if (bytes < 1024) return bytes + " B";
        String[] units = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double v = bytes;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return String.format(Locale.ROOT, v >= 100 ? "%.0f %s" : v >= 10 ? "%.1f %s" : "%.2f %s", v, units[u]);
    }
}
