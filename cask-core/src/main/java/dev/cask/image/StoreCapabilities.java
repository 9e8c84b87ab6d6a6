package dev.cask.image;

import dev.cask.catalog.Catalog;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.tree.PointerCache;
import dev.cask.volume.JournalStore;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * What some stores can do beyond {@link dev.cask.store.ChunkStore}: the small interfaces that
 * {@code stats}, {@code du}, {@code check} and {@code gc} need. A store offers one by
 * implementing it, or through the object its composition hands {@link Images} beside it ({@link
 * ImageParts#capabilities}); {@link Images#capability} finds it, and throws
 * {@link dev.cask.common.CaskException.Unsupported} naming the store and the command when it is
 * not there, so a command on a store that lacks it says so instead of failing obscurely. Each
 * method keeps the contract of the local store's method it stands for; none changes a chunk's
 * bytes. Safe for many threads unless a method says otherwise.
 */
public final class StoreCapabilities {
    private StoreCapabilities() {}

    /** Store-wide counts ({@code cask stats}). */
    public interface Counts {
        /** Bytes the store occupies (packs with their headers). */
        long storedBytes();

        /** Distinct chunks stored. */
        long chunkCount();

        int packCount();

        /** Bytes of {@link #storedBytes} that hold no chunk whatever is collected (pack headers). */
        long fixedOverheadBytes();
    }

    /** What each chunk costs where it is stored ({@code cask du}, the bytes prune frees). */
    public interface StoredSizes {
        /**
         * Stored bytes of each of {@code ids} that the store holds (a record's length; a chunk in a
         * segment: the segment's length divided by its chunks); ids it does not hold are absent.
         */
        Map<ChunkId, Long> storedBytes(Collection<ChunkId> ids);
    }

    /** Checking and repairing the store's own structures ({@code cask check}). */
    public interface Checks {
        /** Checks packs, index and every version's trees ({@link Checker}); marks what it found damaged. */
        CheckReport check(Catalog catalog, PointerCache pointers, boolean deep, Progress progress);

        /**
         * Rebuilds the index from the packs; {@code problems} gets one line per damage found.
         * Returns the chunks indexed. MUST have the store to itself (the composition opened it so).
         */
        long rebuildIndex(Consumer<String> problems, Progress progress);

        /** What opening the store cut off (torn tails a writer that died left), one line each. */
        List<String> cutOnOpen();
    }

    /** Garbage collection ({@code cask gc}; deletion is only here). */
    public interface Collecting {
        /** A collector (one run each) of this store against {@code catalog}, keeping what {@code journals} name. */
        GarbageCollector collector(Catalog catalog, JournalStore journals);
    }
}
