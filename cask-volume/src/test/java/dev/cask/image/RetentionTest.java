package dev.cask.image;

import dev.cask.common.CaskException;
import dev.cask.common.Durations;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Retention against expectations worked out by hand (PBS's rules, restic's keep-within counted from now). */
class RetentionTest {
    private static final Instant NOW = Instant.parse("2026-11-30T12:00:00Z");

    /** Candidates numbered 1.. in the order of the times given (oldest first). */
    private static List<Retention.Candidate> versions(String... times) {
        List<Retention.Candidate> out = new ArrayList<>();
        for (int i = 0; i < times.length; i++) out.add(new Retention.Candidate(i + 1, Instant.parse(times[i])));
        return out;
    }

    private static RetentionPolicy policy(String text) {
        return RetentionPolicy.parse(text);
    }

    private static void assertDecision(Set<Integer> keep, List<Integer> remove, Retention.Decision d) {
        assertEquals(keep, d.keep().keySet(), "kept");
        assertEquals(remove, d.remove(), "removed, newest first");
    }

    @Test
    void keepDailyCountsOnlyDaysThatHaveVersions() {
        var vs = versions("2026-11-20T08:00:00Z", "2026-11-20T12:00:00Z", "2026-11-27T12:00:00Z",
                "2026-11-29T12:00:00Z", "2026-11-30T09:00:00Z", "2026-11-30T18:00:00Z");
        Retention.Decision d = Retention.decide(policy("keep-daily=3"), NOW, ZoneOffset.UTC, vs);
        // days with versions, newest first: 30th (newest: 6), 29th (4), 27th (3); the 28th is empty and not counted
        assertDecision(Set.of(6, 4, 3), List.of(5, 2, 1), d);
        assertEquals("daily", d.keep().get(3));
    }

    @Test
    void overlappingRulesDoNotCountAPeriodTwice() {
        var vs = versions("2026-11-28T10:00:00Z", "2026-11-29T10:00:00Z", "2026-11-29T20:00:00Z",
                "2026-11-30T10:00:00Z", "2026-11-30T20:00:00Z");
        // keep-last 2 keeps 5 and 4 (both on the 30th); the 30th is covered, so keep-daily 2 keeps the 29th (3) and 28th (1)
        Retention.Decision d = Retention.decide(policy("keep-last=2 keep-daily=2"), NOW, ZoneOffset.UTC, vs);
        assertDecision(Set.of(5, 4, 3, 1), List.of(2), d);
        assertEquals("last", d.keep().get(4));
        assertEquals("daily", d.keep().get(1));
    }

    @Test
    void keepWithinCountsFromNowAndHourlyContinuesBeyondIt() {
        var vs = versions("2026-11-30T06:00:00Z", "2026-11-30T07:40:00Z", "2026-11-30T08:10:00Z", "2026-11-30T08:50:00Z",
                "2026-11-30T09:30:00Z", "2026-11-30T10:05:00Z", "2026-11-30T10:30:00Z", "2026-11-30T11:45:00Z");
        // within 2h of 12:00: 6, 7, 8; hours 10 and 11 are covered; hourly 3: 9h (5), 8h (4; 3 goes), 7h (2); then stop
        Retention.Decision d = Retention.decide(policy("keep-within=2h keep-hourly=3"), NOW, ZoneOffset.UTC, vs);
        assertDecision(Set.of(8, 7, 6, 5, 4, 2), List.of(3, 1), d);
        assertEquals("within", d.keep().get(6));
        // counted from now, not from the newest version: a day later nothing is within 2h, and hourly keeps the 3 newest hours
        Retention.Decision later = Retention.decide(policy("keep-within=2h keep-hourly=3"), NOW.plus(Duration.ofDays(1)), ZoneOffset.UTC, vs);
        assertDecision(Set.of(8, 7, 5), List.of(6, 4, 3, 2, 1), later);
    }

    @Test
    void monthlyAndYearlyKeepTheNewestOfEachPeriod() {
        var vs = versions("2024-06-01T00:00:00Z", "2025-01-15T00:00:00Z", "2025-12-31T00:00:00Z", "2026-01-15T00:00:00Z",
                "2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-10T00:00:00Z");
        assertDecision(Set.of(7, 6), List.of(5, 4, 3, 2, 1), Retention.decide(policy("keep-monthly=2"), NOW, ZoneOffset.UTC, vs));
        // monthly 2 covers 2026; yearly 2 then keeps 2025's newest (3) and 2024's (1)
        assertDecision(Set.of(7, 6, 3, 1), List.of(5, 4, 2),
                Retention.decide(policy("keep-monthly=2 keep-yearly=2"), NOW, ZoneOffset.UTC, vs));
    }

    @Test
    void weeksAreIsoWeeks() {
        // Sunday 2026-11-29 and Monday 2026-11-30 are in different ISO weeks; 2026-11-23 (Monday) shares the 29th's week
        var vs = versions("2026-11-23T10:00:00Z", "2026-11-29T10:00:00Z", "2026-11-30T10:00:00Z");
        assertDecision(Set.of(3, 2), List.of(1), Retention.decide(policy("keep-weekly=5"), NOW, ZoneOffset.UTC, vs));
    }

    @Test
    void periodsAreCutInTheGivenTimeZone() {
        // 22:30Z and 23:30Z on the 29th: one UTC day, but 23:30 on the 29th and 00:30 on the 30th in Berlin
        var vs = versions("2026-11-29T22:30:00Z", "2026-11-29T23:30:00Z");
        assertDecision(Set.of(2), List.of(1), Retention.decide(policy("keep-daily=2"), NOW, ZoneOffset.UTC, vs));
        assertDecision(Set.of(2, 1), List.of(), Retention.decide(policy("keep-daily=2"), NOW, ZoneId.of("Europe/Berlin"), vs));
    }

    @Test
    void anEmptyPolicyKeepsEverything() {
        var vs = versions("2026-11-29T22:30:00Z", "2026-11-29T23:30:00Z");
        assertDecision(Set.of(1, 2), List.of(), Retention.decide(policy(""), NOW, ZoneOffset.UTC, vs));
    }

    @Test
    void policiesPrintAsTypedAndBadInputIsAUsageError() {
        String text = "keep-last=3 keep-within=1d12h keep-hourly=48 keep-daily=30 keep-weekly=8 keep-monthly=12 keep-yearly=2 include-user";
        assertEquals(text, policy(text).format());
        assertEquals("keep-within=2h keep-hourly=48 keep-daily=30 keep-weekly=8 keep-monthly=12", RetentionPolicy.DEFAULT.format());
        assertEquals(Duration.ofDays(7), Durations.parse("7d"));
        assertEquals(Duration.ofHours(36), Durations.parse("1d12h"));
        assertEquals(Duration.ofDays(14), Durations.parse("2w"));
        assertEquals(Duration.ofMinutes(5), Durations.parse("5m"));
        for (String bad : new String[] {"", "7", "d", "7x", "-1h", "1.5h", "99999999999999y"}) {
            assertThrows(CaskException.Usage.class, () -> Durations.parse(bad), bad);
        }
        for (String bad : new String[] {"-1", "x", "1.5", ""}) {
            assertThrows(CaskException.Usage.class, () -> RetentionPolicy.count("--keep-last", bad), bad);
        }
        assertThrows(CaskException.Usage.class, () -> policy("keep-fortnightly=2"));
    }
}
