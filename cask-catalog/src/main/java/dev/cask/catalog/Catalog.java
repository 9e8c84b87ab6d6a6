package dev.cask.catalog;

import java.time.Instant;
import java.util.List;
import java.util.Optional;

/**
 * The catalog: images, their versions, and the head of each image. A version's content (its
 * layout and tree roots) is an opaque byte string here; the tree layer encodes it.
 *
 * <p>Contract, for every implementation (the contract suite {@code CatalogContract} checks it):
 * <ul>
 *   <li>Image names are unique among live images. {@link #createImage} with a taken name MUST
 *       throw {@link dev.cask.common.CaskException.Conflict} and change nothing.
 *   <li>{@link #createImage} is atomic: afterwards the image exists with version 1 as its head,
 *       or nothing at all is visible.
 *   <li>Versions are immutable and numbered 1, 2, 3... per image, in commit order.
 *   <li>A head moves only through {@link #commit}, a compare-and-swap: when the image's head is
 *       not {@code expectedHead}, it MUST throw {@link dev.cask.common.CaskException.Conflict}
 *       and change nothing. Two concurrent commits against the same head: exactly one wins.
 *   <li>{@link #deleteImage} removes the image and its versions; clones made from it keep all
 *       their versions and content (their {@code parent} links to the deleted image become absent).
 *   <li>Safe for many threads, and for several processes on the same catalog.
 *   <li>Unknown image names MUST throw {@link dev.cask.common.CaskException.NotFound}.
 *   <li>{@link #renameImage} keeps the image's versions, head, labels and every link to it
 *       (clones' origins and parents now name the new name); a taken new name MUST throw
 *       Conflict and change nothing.
 *   <li>A label ({@link #tag}) names one version of one image; labels are per image, unique
 *       within it ({@link Names#checkLabel}), and go when their image goes.
 *   <li>A version records its {@link VersionKind} as committed; {@link #setProtected} and
 *       {@link #makeUserVersion} (automatic to user, never back) are the only changes a version
 *       ever sees after its commit.
 *   <li>{@link #deleteVersions} never removes the head, a protected version, the origin of a
 *       live clone, or a version {@code inUse} names; a removed version's number is never used
 *       again (the head, the newest, always stays), and a version whose parent it was names the
 *       removed one's parent instead. No other version's content changes.
 *   <li>Retention policies ({@link #setRetention}) are opaque text per name prefix.
 * </ul>
 */
public interface Catalog extends AutoCloseable {

    /**
     * Creates an image whose version 1 has the given content and becomes the head.
     * {@code parent} is the version it was cloned from, or null.
     */
    Version createImage(String name, NewVersion first, VersionKey parent);

    /** The image, or empty. */
    Optional<Image> findImage(String name);

    /** The image, or NotFound naming it. */
    default Image image(String name) {
        return findImage(name).orElseThrow(() -> new dev.cask.common.CaskException.NotFound("image '" + name + "': not found"));
    }

    /** Live images whose name equals {@code prefix} or starts with {@code prefix + "/"}; all when prefix is empty. Sorted by name. */
    List<Image> listImages(String prefix);

    /**
     * The {@code leaseEpoch} of a commit by no lease holder (a rollback, a command that checked
     * that nobody has the image open): compare-and-swap on the head only, no fence.
     */
    long NO_LEASE = -1;

    /**
     * Commits a new version on top of {@code expectedHead} (a version number) and makes it the
     * head; by no lease holder ({@link #NO_LEASE}).
     */
    default Version commit(String name, int expectedHead, NewVersion version, VersionKey parent) {
        return commit(name, expectedHead, version, parent, NO_LEASE);
    }

    /**
     * As {@link #commit(String, int, NewVersion, VersionKey)}, by the holder of the image's lease
     * ({@code dev.cask.volume.Leases}) whose epoch is {@code leaseEpoch} (or {@link #NO_LEASE}):
     * fencing. Inside the transaction that moves the head, the catalog compares {@code leaseEpoch}
     * with the image's current lease epoch where the catalog keeps the leases (PostgreSQL: the
     * {@code leases} row, share-locked, so a take-over waits for this commit or this commit sees
     * it), and when they differ it MUST throw {@link dev.cask.common.CaskException.Fenced} naming
     * both epochs and change nothing: a writer whose lease was taken over can never move a head.
     * An image whose lease was never taken there has epoch 0, so the local leases' epoch 0 is
     * accepted; a catalog that keeps no leases (SQLite, beside the local file locks) accepts
     * only 0 and {@link #NO_LEASE}.
     */
    Version commit(String name, int expectedHead, NewVersion version, VersionKey parent, long leaseEpoch);

    /** All versions of the image, oldest first. */
    List<Version> versions(String name);

    /** One version, or NotFound naming image and number. */
    Version version(String name, int number);

    /** The version that was the head at {@code time}: the newest committed at or before it. */
    Version versionAt(String name, Instant time);

    /** Removes the image and its versions; clones are untouched. */
    default void deleteImage(String name) {
        deleteImage(name, java.util.Set::of);
    }

    /**
     * As {@link #deleteImage(String)}, in one transaction inside which (no version can be added or
     * removed meanwhile) {@code inUse} is asked once for the versions of the image something
     * outside the catalog still needs (a running server's read-only export of it, an open
     * volume's base): when it names any, nothing changes and Conflict says which. {@code inUse}
     * may throw (Conflict) to refuse for a reason of its own.
     */
    void deleteImage(String name, java.util.function.Supplier<java.util.Set<Integer>> inUse);

    /**
     * As {@link #version}, read under the catalog's write lock, so that the read is ordered with
     * every {@link #deleteVersions} and {@link #deleteImage}: a caller that announced the version
     * as in use (to the {@code inUse} those ask) before this call either finds it here and is then
     * seen by every removal that commits later, or gets NotFound because a removal committed
     * first. (A plain read could see the version in a snapshot from before a removal whose
     * {@code inUse} was asked before the announcement.)
     */
    Version confirmVersion(String name, int number);

    /**
     * Renames image {@code from} to {@code to}: versions, head, labels and the links of clones
     * and versions to it follow. NotFound when {@code from} does not exist; Conflict (nothing
     * changes) when {@code to} does; InvalidInput for a bad name.
     */
    void renameImage(String from, String to);

    /**
     * Gives version {@code number} of image {@code name} the label {@code label}. NotFound for a
     * missing image or version; Conflict (nothing changes) when the image has the label already,
     * on any version; InvalidInput for a bad label ({@link Names#checkLabel}).
     */
    void tag(String name, String label, int number);

    /** Removes a label of an image. NotFound when the image or the label does not exist. */
    void untag(String name, String label);

    /** The image's labels, sorted by label: label to version number. NotFound for a missing image. */
    java.util.SortedMap<String, Integer> tags(String name);

    /**
     * Makes an automatic version a user version (what {@code cask snapshot} of an unchanged image
     * does to the version that holds its content, so retention keeps it). NotFound for a missing
     * image or version. A user version stays one.
     */
    void makeUserVersion(String name, int number);

    /** Marks a version protected (or not). NotFound for a missing image or version. */
    void setProtected(String name, int number, boolean on);

    /**
     * Removes versions of image {@code name} in one transaction (NotFound for a missing image).
     * Inside it, with the head fixed (no commit can run meanwhile), {@code inUse} is asked once
     * for the version numbers something outside the catalog still needs (a journal's base, a
     * served read-only export): those are kept, as are the head, protected versions, the origins
     * of live clones and numbers that do not exist; the result says why for each. The parent
     * links of versions made from a removed one move to its own parent; its labels go with it.
     */
    VersionDeletion deleteVersions(String name, java.util.Collection<Integer> numbers,
                                   java.util.function.Supplier<java.util.Set<Integer>> inUse);

    /**
     * As {@link #deleteVersions}, for the choice of a retention policy, made before this
     * transaction: a version that has been labelled since, or (unless {@code includeUser}) has
     * become a user version since (a snapshot of unchanged content makes the automatic version
     * that holds it a user version), is kept too ("labelled", "user version").
     */
    VersionDeletion deleteVersionsByPolicy(String name, java.util.Collection<Integer> numbers,
                                           java.util.function.Supplier<java.util.Set<Integer>> inUse, boolean includeUser);

    /**
     * Stores {@code policy} (opaque text) for the images named {@code prefix} or {@code
     * prefix/...}, replacing any; null removes it (NotFound when there was none).
     * InvalidInput for a bad prefix.
     */
    void setRetention(String prefix, String policy);

    /** Every stored retention policy: prefix to policy text, sorted by prefix. */
    java.util.SortedMap<String, String> retentionPolicies();

    /** Every version of every live image (for check and garbage collection). */
    List<Version> allVersions();

    @Override
    void close();
}
