package dev.cask.volume;

import dev.cask.store.ChunkId;

import java.util.SortedSet;
import java.util.function.Consumer;

/**
 * Journal storage: where the journals of open volumes live (glossary: journal), and what
 * commands need to know about them without opening an image. A journal holds flushed writes
 * that no version has yet, so it is as precious as the store: a journal store MUST keep what a
 * volume synced through a crash or power loss of this host.
 *
 * <p>Contract, for every implementation:
 * <ul>
 *   <li>{@link #files} names the journal of one image; {@link Volume} creates, appends to,
 *       syncs, replays and deletes its generations there ({@link Journal}, {@link JournalFiles}).
 *       It MUST NOT touch the journal of an image it was not asked for.
 *   <li>{@link #hasLeftover}: true when journal data of {@code image} is there; when nobody holds
 *       the image's lease, a crash left it and it MUST be replayed (or, on rm, discarded) before
 *       the head moves.
 *   <li>{@link #baseVersions}: every version a leftover journal of {@code image} may replay onto;
 *       retention MUST keep them. A header that cannot be read throws Corrupt, never guesses.
 *   <li>{@link #discard} deletes an image's journal durably (a new image of the same name never
 *       replays it); only when nobody holds the image's lease.
 *   <li>{@link #forEachFormatOneChunk}: the chunks that format 1 journals (an older cask's) name,
 *       which garbage collection MUST keep; throws when such a journal cannot be read.
 *   <li>I/O failures throw {@link dev.cask.common.CaskException.Io} naming the image and the
 *       place. Safe for many threads.
 *   <li>{@link #shared}: the shared copy of the image's journal for the holder of {@code lease}
 *       ({@link SharedJournal}), or {@link SharedJournal#NONE} when the journals need none.
 *       {@link #hasLeftover}, {@link #baseVersions} and {@link #discard} cover the shared copy too.
 * </ul>
 * A volume's journal files are node-local ({@link LocalJournals}: the store's {@code journals}
 * directory, or a node's state directory for a shared store); a shared store adds a
 * {@link SharedJournal} in its catalog's database, so a node that dies loses no flushed write.
 */
public interface JournalStore extends AutoCloseable {

    /** The journal of {@code image} (its files; nothing is created). */
    JournalFiles files(String image);

    boolean hasLeftover(String image);

    SortedSet<Integer> baseVersions(String image);

    void discard(String image);

    void forEachFormatOneChunk(Consumer<ChunkId> sink);

    /** The shared copy of {@code image}'s journal, written under {@code lease} (see {@link SharedJournal}); none by default. */
    default SharedJournal shared(String image, Leases.Lease lease) {
        return SharedJournal.NONE;
    }

    /** Where the journals live, for messages. */
    String where();

    /** Lets go of what reaches the shared copy (a connection pool); idempotent. Nothing by default. */
    @Override
    default void close() {}
}
