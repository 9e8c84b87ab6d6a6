package dev.cask.catalog;

import dev.cask.common.CaskException;

import java.util.regex.Pattern;

/**
 * Image names: one or more segments joined by {@code /} ({@code team/web/vm-1}). A segment is
 * 1 to 64 characters of letters, digits, {@code . _ -}, and starts with a letter or digit.
 * At most 255 characters in all. {@code @} is reserved for versions ({@code NAME@VER}).
 */
public final class Names {
    private static final Pattern SEGMENT = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,63}");
    /** A label starts with a letter, so it never reads as a version number or a time (those start with a digit). */
    private static final Pattern LABEL = Pattern.compile("[A-Za-z][A-Za-z0-9._-]{0,63}");

    private Names() {}

    /** Returns the name when valid; otherwise an InvalidInput that says what is wrong. */
    public static String check(String name) {
        if (name == null || name.isEmpty()) throw new CaskException.Usage("image name is empty");
        if (name.length() > 255) {
            throw new CaskException.Usage("image name '" + name.substring(0, 40) + "...': " + name.length() + " characters, at most 255");
        }
        for (String seg : name.split("/", -1)) {
            if (!SEGMENT.matcher(seg).matches()) {
                throw new CaskException.Usage("image name '" + name + "': bad segment '" + seg
                        + "' (segments are 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit, joined by /)");
            }
        }
        return name;
    }

    /**
     * Returns the label when valid: 1 to 64 of letters, digits, {@code . _ -}, starting with a
     * letter (a number would be read as a version number, a time starts with a digit), and not
     * {@code latest} or {@code head} (they name the head). Otherwise an InvalidInput saying why.
     */
    public static String checkLabel(String label) {
        if (label == null || label.isEmpty()) throw new CaskException.Usage("label is empty");
        if (!LABEL.matcher(label).matches()) {
            throw new CaskException.Usage("label '" + label + "': must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter"
                    + " (a number or a time would name a version)");
        }
        if (label.equalsIgnoreCase("latest") || label.equalsIgnoreCase("head")) {
            throw new CaskException.Usage("label '" + label + "': reserved (NAME@" + label.toLowerCase(java.util.Locale.ROOT) + " is the head)");
        }
        return label;
    }
}
