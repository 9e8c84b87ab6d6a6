package dev.cask.image;

import dev.cask.catalog.Names;
import dev.cask.common.CaskException;

import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneId;
import java.time.format.DateTimeParseException;

/**
 * What users type to name a version: {@code NAME} (the head), {@code NAME@7}, {@code NAME@latest},
 * {@code NAME@LABEL} (a label given with {@code cask tag}), or {@code NAME@2026-11-25T10:00} (the
 * version that was the head then; local time unless an offset or {@code Z} is given; a bare date
 * means its midnight).
 *
 * <p>How the forms stay apart: a number is all digits, a time starts with a digit, and a label
 * starts with a letter ({@link Names#checkLabel}), so no label can be read as either; {@code
 * latest} and {@code head} are reserved and never labels. Exactly one of number, time and label
 * is set, or none for the head.
 */
public record VersionRef(String image, Integer number, Instant time, String label) {

    public static VersionRef parse(String text) {
        int at = text.lastIndexOf('@');
        if (at < 0) return new VersionRef(Names.check(text), null, null, null);
        String name = Names.check(text.substring(0, at));
        String ver = text.substring(at + 1);
        if (ver.isEmpty() || ver.equals("latest") || ver.equals("head")) return new VersionRef(name, null, null, null);
        if (ver.chars().allMatch(Character::isDigit)) {
            try {
                int n = Integer.parseInt(ver);
                if (n < 1) throw new NumberFormatException();
                return new VersionRef(name, n, null, null);
            } catch (NumberFormatException e) {
                throw new CaskException.Usage("version '" + ver + "' of '" + name + "': not a version number (1, 2, ...)");
            }
        }
        if (Character.isLetter(ver.charAt(0))) {
            try {
                return new VersionRef(name, null, null, Names.checkLabel(ver));
            } catch (CaskException.InvalidInput e) {
                throw new CaskException.Usage("version '" + ver + "' of '" + name
                        + "': not a number, 'latest', a label (letters, digits, . _ -, starting with a letter) or a time like 2026-11-25T10:00");
            }
        }
        return new VersionRef(name, null, parseTime(ver, name), null);
    }

    static Instant parseTime(String ver, String name) {
        try {
            return OffsetDateTime.parse(ver).toInstant();
        } catch (DateTimeParseException ignored) {
            // try the next form
        }
        try {
            return LocalDateTime.parse(ver).atZone(ZoneId.systemDefault()).toInstant();
        } catch (DateTimeParseException ignored) {
            // try the next form
        }
        try {
            return LocalDate.parse(ver).atStartOfDay(ZoneId.systemDefault()).toInstant();
        } catch (DateTimeParseException ignored) {
            // fall through to the error
        }
        throw new CaskException.Usage("version '" + ver + "' of '" + name
                + "': not a number, 'latest', a label, or a time like 2026-11-25T10:00");
    }

    public boolean isHead() {
        return number == null && time == null && label == null;
    }
}
