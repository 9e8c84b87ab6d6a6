package dev.cask.image;

import java.util.List;

/**
 * What {@code cask check} found: one line per problem (damage something needs, naming image,
 * version and offset where one is affected), one line per note (damage nothing refers to), and
 * the pack bytes garbage collection could free ({@code reclaimableBytes}: see {@link Checker}).
 * Only problems make a check fail.
 */
public record CheckReport(int packs, long records, long indexEntries, int versions, long chunksChecked,
                          long indexRebuiltTo, List<String> problems, List<String> notes, long reclaimableBytes) {
    public boolean ok() {
        return problems.isEmpty();
    }
}
