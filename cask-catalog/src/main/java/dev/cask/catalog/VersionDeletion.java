package dev.cask.catalog;

import java.util.List;
import java.util.SortedMap;

/**
 * What {@link Catalog#deleteVersions} did: the version numbers it removed, and for each one it
 * kept, why (e.g. {@code "the head"}, {@code "protected"}, {@code "origin of clone 'team/b'"},
 * {@code "in use"}, {@code "no such version"}).
 */
public record VersionDeletion(List<Integer> deleted, SortedMap<Integer, String> kept) {
    public VersionDeletion {
        deleted = List.copyOf(deleted);
        kept = java.util.Collections.unmodifiableSortedMap(new java.util.TreeMap<>(kept));
    }
}
