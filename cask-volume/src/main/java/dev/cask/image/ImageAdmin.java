package dev.cask.image;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Names;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.common.Sizes;
import dev.cask.tree.Layout;
import dev.cask.tree.TreeUpdater;
import dev.cask.volume.Leases;

import java.nio.file.Path;
import java.util.function.Consumer;

/**
 * The operations that change an image's head or name without serving it: a backup imported as a
 * new version ({@code import --as-version}), resize, rename ({@code mv}) and labels ({@code tag}).
 *
 * <p><b>Refused while served.</b> Each of them (labels apart: they name versions, which never
 * change) is refused with Conflict while a process has the image open read-write, and otherwise
 * runs in three steps: {@link Images#settle} (a crash's journal becomes a version of its own, so
 * no flushed write is lost and nothing is replayed onto the new head later); then it takes the
 * image's lease itself ({@link JournalFiles#hold}), so no server can open the image until the
 * catalog commit is done (one that tries is refused as a second writer); then it commits with
 * the head it read under the lease as the expected head (compare-and-swap), so a head that moved
 * anyway fails the command, never a writer.
 *
 * <p><b>Space.</b> An import as a version stores only the blocks the store does not have yet:
 * unchanged blocks hash to chunks already stored, and their puts are dedup hits. A resize writes
 * at most the pointer chunks of one path (grow) or of the cut (shrink), and one data chunk when
 * the new end cuts a block (its tail is zeroed, so a later grow reads zeros there).
 *
 * <p>Not thread-safe beyond what {@link Images} is; one instance per command.
 */
public final class ImageAdmin {
    private static final String DISCONNECT = "disconnect its clients first (the server checkpoints and closes it when the last one goes)";
    private final Images images;
    private final Catalog catalog;

    public ImageAdmin(Images images) {
        this.images = images;
        this.catalog = images.catalog();
    }

    /** What an import as a new version made ({@code storedBytesAdded} is -1 when the store cannot count its bytes). */
    public record Imported(Version version, long freeBytes, long allocatedBytes, long storedBytesAdded) {}

    /**
     * Imports a file as a new version of the existing image {@code name} (a backup of the same
     * disk): the new head is the file's content, the old head its parent. NotFound when the image
     * does not exist; Conflict while it is open read-write.
     */
    public Imported importAsVersion(Path src, String name, String format, int blockSize, boolean wholeDisk, boolean fsAware,
                                    String message, Progress progress, Consumer<String> warnings) {
        Names.check(name);
        catalog.image(name);
        requireNotServed(name, "cannot import a new version of it; " + DISCONNECT);
        images.settle(name, "checkpoint before import of " + src.getFileName(),
                "checkpoint of the journal a crash left (before import of " + src.getFileName() + ")", false);
        var counts = images.findCapability(StoreCapabilities.Counts.class);
        long storedBefore = counts.map(StoreCapabilities.Counts::storedBytes).orElse(0L);
        try (Leases.Lease lease = hold(name, "cannot import a new version of it");
             dev.cask.store.ChunkStore.Session session = images.store().session("import " + src.getFileName() + " as a version of " + name)) {
            int head = catalog.image(name).head();
            Images.ImportedLayout l = images.importLayout(src, format, blockSize, wholeDisk, fsAware, progress, warnings);
            String msg = message == null || message.isBlank() ? "import " + src.getFileName() + (fsAware ? " (fs-aware)" : "") : message;
            session.check();
            Version v = catalog.commit(name, head, new NewVersion(msg, l.layout().size(), l.layout().encode()),
                    new dev.cask.catalog.VersionKey(name, head), lease.epoch());
            return new Imported(v, l.freeBytes(), l.allocatedBytes(), counts.map(c -> c.storedBytes() - storedBefore).orElse(-1L));
        }
    }

    /** What a resize did: the new version, or the head when the size was already {@code size} ({@code changed} false). */
    public record Resized(Version version, long oldSize, boolean changed) {}

    /**
     * Gives image {@code name} the disk size {@code size} as a new version: growing adds zeros at
     * the end; shrinking (only with {@code shrink}, else InvalidInput) drops every block past the
     * new end. Conflict while the image is open read-write.
     */
    public Resized resize(String name, long size, boolean shrink) {
        Names.check(name);
        catalog.image(name);
        if (size <= 0 || size > dev.cask.tree.Root.MAX_SIZE) {
            throw new CaskException.InvalidInput("image '" + name + "': size " + size + " out of range (1 byte to 2^60)");
        }
        requireNotServed(name, "cannot resize it; " + DISCONNECT);
        images.settle(name, "checkpoint before resize", "checkpoint of the journal a crash left (before resize)", false);
        try (Leases.Lease lease = hold(name, "cannot resize it");
             dev.cask.store.ChunkStore.Session session = images.store().session("resize of " + name)) {
            Version head = catalog.version(name, catalog.image(name).head());
            if (size == head.size()) return new Resized(head, head.size(), false);
            if (size < head.size() && !shrink) {
                throw new CaskException.InvalidInput("image '" + name + "': new size " + size + " (" + Sizes.human(size) + ") is smaller than its size "
                        + head.size() + " (" + Sizes.human(head.size()) + "); give --shrink to drop the data past the new end");
            }
            Layout layout = new TreeUpdater(images.store(), images.pointers()).resize(Layout.decode(head.content()), size);
            images.store().sync();
            String what = (size > head.size() ? "grow" : "shrink") + " from " + Sizes.human(head.size()) + " to " + Sizes.human(size);
            session.check();
            Version v = catalog.commit(name, head.number(), new NewVersion(what, size, layout.encode()), head.key(), lease.epoch());
            return new Resized(v, head.size(), true);
        }
    }

    /**
     * Renames image {@code from} to {@code to}: its versions, labels and clones' links follow.
     * Conflict when {@code to} exists or {@code from} is open read-write; a crash's journal of
     * {@code from} is folded into a version first (journals are kept under the image's name).
     */
    public void rename(String from, String to) {
        Names.check(from);
        Names.check(to);
        catalog.image(from);
        if (catalog.findImage(to).isPresent()) {
            throw new CaskException.Conflict("cannot rename image '" + from + "' to '" + to + "': '" + to + "' already exists");
        }
        requireNotServed(from, "cannot rename it; " + DISCONNECT);
        images.settle(from, "checkpoint before rename to " + to, "checkpoint of the journal a crash left (before rename to " + to + ")", false);
        try (Leases.Lease a = hold(from, "cannot rename it"); Leases.Lease b = hold(to, "cannot rename '" + from + "' to it")) {
            if (images.journals().hasLeftover(to)) {
                throw new CaskException.Conflict("cannot rename image '" + from + "' to '" + to + "': journal files of an earlier '" + to
                        + "' are left in " + images.journals().where() + "; move them away first");
            }
            catalog.renameImage(from, to);
        }
    }

    /**
     * Gives the version {@code ref} names the label {@code label} (unique in its image); {@code
     * NAME} alone labels the image's current content (a checkpoint first, as export does).
     */
    public Version tag(String ref, String label) {
        Names.checkLabel(label);
        Version v = images.current(ref, "label " + label).version();
        catalog.tag(v.image(), label, v.number());
        return v;
    }

    /** Removes a label. */
    public void untag(String name, String label) {
        Names.check(name);
        catalog.untag(name, label);
    }

    private void requireNotServed(String name, String what) {
        if (images.leases().isHeld(name)) throw new CaskException.Conflict("image '" + name + "' is open read-write (served); " + what);
    }

    /** Takes the lease, then makes sure no journal appeared between {@link Images#settle} and now. */
    private Leases.Lease hold(String name, String what) {
        Leases.Lease h = images.leases().tryTake(name).orElseThrow(() ->
                new CaskException.Conflict("image '" + name + "' is open read-write (served); " + what + "; " + DISCONNECT));
        if (catalog.findImage(name).isPresent() && images.journals().hasLeftover(name)) {
            h.close();
            throw new CaskException.Conflict("image '" + name + "': a server wrote it and stopped while this command ran; run it again");
        }
        return h;
    }
}
