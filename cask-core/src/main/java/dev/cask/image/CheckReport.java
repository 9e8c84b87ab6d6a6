package dev.cask.image;

import java.util.List;

/** What {@code cask check} found: one line per problem (naming image, version and offset where one is affected). */
public record CheckReport(int packs, long records, long indexEntries, int versions, long chunksChecked,
                          long indexRebuiltTo, List<String> problems) {
    public boolean ok() {
        return problems.isEmpty();
    }
}
