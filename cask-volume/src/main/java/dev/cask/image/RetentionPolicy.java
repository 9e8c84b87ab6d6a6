package dev.cask.image;

import dev.cask.common.CaskException;
import dev.cask.common.Durations;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Which versions of an image retention keeps ({@link Retention} applies it). Counts of 0 (and a
 * null {@code within}) are rules that are off; a policy with every rule off keeps everything.
 * {@code includeUser}: the policy thins user versions too; by default only automatic versions
 * (a server's checkpoints) are candidates, and user versions are kept until a user removes them.
 *
 * <p>Stored in the catalog as text, the options' names without dashes' leading pair:
 * {@code keep-within=2h keep-hourly=48 keep-daily=30 include-user}, in this fixed order, so a
 * policy prints the same way it is typed.
 */
public record RetentionPolicy(int last, Duration within, int hourly, int daily, int weekly, int monthly, int yearly,
                              boolean includeUser) {
    /**
     * What {@code cask serve} applies to the images it has open when no stored policy covers
     * them: every automatic version of the last 2 hours, then the newest of each of 48 hours,
     * 30 days, 8 weeks and 12 months (about a year of history in some 100 versions). User
     * versions are never touched by it.
     */
    public static final RetentionPolicy DEFAULT = new RetentionPolicy(0, Duration.ofHours(2), 48, 30, 8, 12, 0, false);

    public RetentionPolicy {
        for (int n : new int[] {last, hourly, daily, weekly, monthly, yearly}) {
            if (n < 0) throw new CaskException.Usage("retention: a count must not be negative (got " + n + ")");
        }
        if (within != null && (within.isNegative() || within.isZero())) within = null;
    }

    /** True when some rule is on (a policy with none keeps every version). */
    public boolean keepsSomething() {
        return last + hourly + daily + weekly + monthly + yearly > 0 || within != null;
    }

    /** Checks a count typed on the command line: a whole number from 0 (Usage error otherwise). */
    public static int count(String option, String text) {
        try {
            int n = Integer.parseInt(text.trim());
            if (n >= 0) return n;
        } catch (NumberFormatException e) {
            // below
        }
        throw new CaskException.Usage(option + " '" + text + "': expected a count (a whole number, 0 or more)");
    }

    public String format() {
        List<String> parts = new ArrayList<>();
        if (last > 0) parts.add("keep-last=" + last);
        if (within != null) parts.add("keep-within=" + Durations.format(within));
        if (hourly > 0) parts.add("keep-hourly=" + hourly);
        if (daily > 0) parts.add("keep-daily=" + daily);
        if (weekly > 0) parts.add("keep-weekly=" + weekly);
        if (monthly > 0) parts.add("keep-monthly=" + monthly);
        if (yearly > 0) parts.add("keep-yearly=" + yearly);
        if (includeUser) parts.add("include-user");
        return parts.isEmpty() ? "keep-all" : String.join(" ", parts);
    }

    /** Reads {@link #format}'s text; a Usage error names the part it cannot read. */
    public static RetentionPolicy parse(String text) {
        int last = 0, hourly = 0, daily = 0, weekly = 0, monthly = 0, yearly = 0;
        Duration within = null;
        boolean user = false;
        for (String part : text.trim().split("\\s+")) {
            if (part.isEmpty() || part.equals("keep-all")) continue;
            if (part.equals("include-user")) {
                user = true;
                continue;
            }
            int eq = part.indexOf('=');
            if (eq < 0) throw new CaskException.Usage("retention policy '" + text + "': cannot read '" + part + "'");
            String key = part.substring(0, eq);
            String value = part.substring(eq + 1);
            switch (key) {
                case "keep-last" -> last = count("--" + key, value);
                case "keep-within" -> within = Durations.parse(value);
                case "keep-hourly" -> hourly = count("--" + key, value);
                case "keep-daily" -> daily = count("--" + key, value);
                case "keep-weekly" -> weekly = count("--" + key, value);
                case "keep-monthly" -> monthly = count("--" + key, value);
                case "keep-yearly" -> yearly = count("--" + key, value);
                default -> throw new CaskException.Usage("retention policy '" + text + "': unknown rule '" + key + "'");
            }
        }
        return new RetentionPolicy(last, within, hourly, daily, weekly, monthly, yearly, user);
    }

    @Override
    public String toString() {
        return format();
    }
}
