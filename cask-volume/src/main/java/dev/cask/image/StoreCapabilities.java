package dev.cask.image;

import dev.cask.store.ScanSink;
import dev.cask.catalog.Catalog;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import dev.cask.volume.JournalStore;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.BiConsumer;
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

    /**
     * What {@code cask check} reads of a store whose chunks live in packs of the local pack format
     * (docs/format.md), wherever the packs are: the packs, the index and
     * its damage marks. {@link Checker} runs the same passes over every store that offers it.
     */
    public interface Checks {
        /** Ids of the packs the index can name (written whole), ascending. */
        List<Integer> packIds();

        /** Bytes the packs occupy, as {@link Counts#storedBytes}. */
        long storedBytes();

        /** Distinct chunks the index knows. */
        long chunkCount();

        /**
         * Every record and segment of pack {@code id}, as the local store's {@code PackScan}
         * reports them; a pack that cannot be read is one
         * {@link ScanSink.PackProblem#UNREADABLE} line naming it.
         */
        void scanPack(int id, ScanSink sink, Progress progress);

        /** Every index entry (in any order; a store whose reads cost a request each gives them by pack and offset). */
        void forEachIndexEntry(BiConsumer<ChunkId, ChunkLocation> sink);

        /** Where the index places {@code id}, or null. */
        ChunkLocation locate(ChunkId id);

        /** Null when the copy entry {@code loc} points at holds {@code id}, else the fault a read would throw (the local store's {@code PackReader.entryFault}). */
        CaskException entryFault(ChunkId id, ChunkLocation loc, boolean deep);

        /**
         * Records that the copy of {@code id} at {@code loc} is corrupt ({@code fault} a
         * {@link CaskException.Corrupt}), or with {@code fault} null that it was read and found good
         * (clearing a stale mark); any other fault marks nothing. The next put of a marked chunk
         * stores it again (healing).
         */
        void checked(ChunkId id, ChunkLocation loc, CaskException fault);

        /** Copies marked damaged: (chunk id, location of the bad copy). */
        List<Map.Entry<ChunkId, ChunkLocation>> damageMarks();
    }

    /** Rebuilding the index from the packs ({@code cask check --repair}) and what opening cut off. */
    public interface Repairs {
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
