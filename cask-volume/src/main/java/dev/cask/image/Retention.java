package dev.cask.image;

import java.time.Instant;
import java.time.ZoneId;
import java.time.ZonedDateTime;
import java.time.temporal.IsoFields;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * Which versions a {@link RetentionPolicy} keeps: a pure function of the candidates' numbers
 * and times, the policy, the time now and the time zone the calendar periods are cut in.
 *
 * <p><b>The algorithm</b> is Proxmox Backup Server's ({@code pbs-datastore/src/prune.rs}), with
 * restic's {@code --keep-within} in front. Candidates are taken newest first. The rules run in
 * the order within, last, hourly, daily, weekly, monthly, yearly; each rule marks versions:
 * <ul>
 *   <li>within D: every version newer than {@code now - D} is kept (counted from now, not from
 *       the newest version as restic does: a server that stopped writing does not make its
 *       old versions look young).
 *   <li>a periodic rule with count N walks the versions not marked yet, newest first. A period
 *       (the hour, day, ISO week, month or year of the version's local time) that holds a version
 *       an earlier rule kept is already covered: its versions are skipped and the period is not
 *       counted. Otherwise the newest version of each period is kept and the period counted; the
 *       others in a period already counted are marked to go (so a later rule does not pick them
 *       up); after N periods the rule stops. Periods with no version are never counted: a
 *       keep-daily of 7 over a month with versions on 3 days keeps 3 versions, and with
 *       versions every day, the newest of the 7 newest days.
 *   <li>keep-last N is the periodic rule whose period is the version itself.
 * </ul>
 * Everything left unmarked goes. A policy with every rule off keeps everything (as PBS does:
 * an empty policy is no reason to delete). The head, protected versions and versions in use are
 * not decided here: the caller never offers them (protected, like PBS's) or overrides the
 * result (the head, in-use versions), so they neither count for a period nor go.
 *
 * <p>Stateless and thread-safe; the cost is one sort and a pass per rule.
 */
public final class Retention {
    private Retention() {}

    /** A version offered for retention. */
    public record Candidate(int number, Instant time) {}

    /** The decision: numbers kept (with the rule that kept each, e.g. {@code daily}) and numbers to go, newest first. */
    public record Decision(Map<Integer, String> keep, List<Integer> remove) {}

    public static Decision decide(RetentionPolicy policy, Instant now, ZoneId zone, List<Candidate> candidates) {
        List<Candidate> list = new ArrayList<>(candidates);
        list.sort(Comparator.comparing(Candidate::time).thenComparingInt(Candidate::number).reversed());
        Map<Integer, String> keep = new LinkedHashMap<>();
        Set<Integer> remove = new HashSet<>();
        if (!policy.keepsSomething()) {
            for (Candidate c : list) keep.put(c.number(), "no rule set");
            return new Decision(keep, List.of());
        }
        if (policy.within() != null) {
            Instant since = now.minus(policy.within());
            for (Candidate c : list) if (c.time().isAfter(since)) keep.put(c.number(), "within");
        }
        mark(list, keep, remove, policy.last(), "last", c -> "#" + c.number());
        mark(list, keep, remove, policy.hourly(), "hourly", c -> local(c, zone).withMinute(0).withSecond(0).withNano(0).toLocalDateTime().toString());
        mark(list, keep, remove, policy.daily(), "daily", c -> local(c, zone).toLocalDate().toString());
        mark(list, keep, remove, policy.weekly(), "weekly", c -> {
            ZonedDateTime t = local(c, zone);
            return t.get(IsoFields.WEEK_BASED_YEAR) + "-W" + t.get(IsoFields.WEEK_OF_WEEK_BASED_YEAR);
        });
        mark(list, keep, remove, policy.monthly(), "monthly", c -> local(c, zone).getYear() + "-" + local(c, zone).getMonthValue());
        mark(list, keep, remove, policy.yearly(), "yearly", c -> Integer.toString(local(c, zone).getYear()));
        List<Integer> go = new ArrayList<>();
        for (Candidate c : list) if (!keep.containsKey(c.number())) go.add(c.number());
        return new Decision(keep, go);
    }

    private static ZonedDateTime local(Candidate c, ZoneId zone) {
        return c.time().atZone(zone);
    }

    /** One periodic rule: see the class comment. */
    private static void mark(List<Candidate> list, Map<Integer, String> keep, Set<Integer> remove, int count, String rule,
                             Function<Candidate, String> period) {
        if (count <= 0) return;
        Set<String> covered = new HashSet<>();
        for (Candidate c : list) if (keep.containsKey(c.number())) covered.add(period.apply(c));
        Set<String> counted = new HashSet<>();
        for (Candidate c : list) {
            if (keep.containsKey(c.number()) || remove.contains(c.number())) continue;
            String p = period.apply(c);
            if (covered.contains(p)) continue;
            if (counted.contains(p)) {
                remove.add(c.number());
            } else {
                if (counted.size() >= count) break;
                counted.add(p);
                keep.put(c.number(), rule);
            }
        }
    }
}
