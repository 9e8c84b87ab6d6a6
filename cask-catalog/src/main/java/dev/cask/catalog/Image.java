package dev.cask.catalog;

import java.time.Instant;

/** A named disk: its head version number, when it was made, and what it was cloned from (or null). */
public record Image(String name, int head, Instant created, VersionKey origin) {}
