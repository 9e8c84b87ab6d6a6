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

    /** Commits a new version on top of {@code expectedHead} (a version number) and makes it the head. */
    Version commit(String name, int expectedHead, NewVersion version, VersionKey parent);

    /** All versions of the image, oldest first. */
    List<Version> versions(String name);

    /** One version, or NotFound naming image and number. */
    Version version(String name, int number);

    /** The version that was the head at {@code time}: the newest committed at or before it. */
    Version versionAt(String name, Instant time);

    /** Removes the image and its versions; clones are untouched. */
    void deleteImage(String name);

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

    /** Every version of every live image (for check and garbage collection). */
    List<Version> allVersions();

    @Override
    void close();
}
