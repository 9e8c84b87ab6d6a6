package dev.cask.store;

import dev.cask.common.CaskException;

/**
 * The bytes an index entry points at are a whole, valid record or segment, but not the chunk the
 * entry names (another chunk, a slot the segment does not have), or the entry itself is out of
 * range: the index is wrong, not (necessarily) the pack. A kind of {@link CaskException.Corrupt},
 * so every read treats it the same way; {@code cask check} reports it as {@code index-mismatch}.
 */
public final class IndexMismatch extends CaskException.Corrupt {
    public IndexMismatch(String message) {
        super(message);
    }
}
