package dev.cask.volume;

/**
 * A copy of one image's journal on storage every node reaches (issue 14 item 5): what makes a
 * FLUSH durable beyond this host, so that when the node dies another node that opens the image
 * replays every flushed write. The volume keeps writing and reading its journal in local files
 * ({@link Journal}, {@link JournalFiles}: appends, reads of dirty blocks and replay stay local and
 * fast); the shared copy holds the same bytes, range by range, as each {@link Journal#sync} makes
 * them durable, and is where the journal comes from when the image is opened.
 *
 * <p>Contract, for every implementation (one per open volume, made by
 * {@link JournalStore#shared} for the holder of the image's lease):
 * <ul>
 *   <li>{@link #synced} MUST make bytes {@code [from, to)} of generation {@code generation}
 *       durable in the shared copy before it returns (a FLUSH is acknowledged after it), and MUST
 *       refuse with {@link dev.cask.common.CaskException.Fenced} once the lease it was made for is
 *       no longer the image's (a node whose lease was taken over can add nothing). Ranges of one
 *       generation come in file order and never overlap except when a failed call is retried
 *       with a range starting at the same offset (the same bytes, perhaps more): the longer wins.
 *       With {@code obsoletesOlder} (the range holds a base record: its generation replays from a
 *       version that holds every older generation's writes), every older generation of the image
 *       MUST leave the shared copy in the same durable step.
 *   <li>{@link #read} hands over every range the shared copy holds, by generation, then offset.
 *   <li>{@link #deleted}: the generation's writes are in a committed version; its ranges may go.
 *       A failure MAY be ignored by the caller: a later {@code obsoletesOlder} removes them.
 *   <li>Failures to reach the shared storage throw {@link dev.cask.common.CaskException.Io}
 *       naming the image and the place. Safe for many threads.
 * </ul>
 * {@link #NONE} keeps nothing: a local store's journals are on the store's own disk.
 */
public interface SharedJournal {
    /** Reads bytes of a local generation file: {@code length} bytes from {@code offset}. */
    interface Bytes {
        byte[] read(long offset, int length);
    }

    /** One range of the shared copy. */
    interface RangeSink {
        void range(long generation, long offset, byte[] data);
    }

    /** Bytes {@code [from, to)} of generation {@code generation} are synced in the local file; {@code bytes} reads them. */
    void synced(long generation, long from, long to, Bytes bytes, boolean obsoletesOlder);

    /** Every range of the image's shared copy, by generation, then offset. */
    void read(RangeSink sink);

    /** Generation {@code generation} was deleted locally (its writes are in a committed version). */
    void deleted(long generation);

    /** True for an implementation that keeps a copy (not {@link #NONE}). */
    default boolean keeps() {
        return true;
    }

    /** No shared copy: a local store's journals. */
    SharedJournal NONE = new SharedJournal() {
        @Override
        public void synced(long generation, long from, long to, Bytes bytes, boolean obsoletesOlder) {}

        @Override
        public void read(RangeSink sink) {}

        @Override
        public void deleted(long generation) {}

        @Override
        public boolean keeps() {
            return false;
        }
    };
}
