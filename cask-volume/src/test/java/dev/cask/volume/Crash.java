package dev.cask.volume;

/** For tests in other packages: {@link Volume#abandon}, a crash of the process that has a volume open (no checkpoint, journal kept). */
public final class Crash {
    private Crash() {}

    public static void abandon(Volume v) {
        v.abandon();
    }
}
