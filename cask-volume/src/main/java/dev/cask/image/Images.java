package dev.cask.image;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Image;
import dev.cask.catalog.Names;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.common.Background;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.device.BlockDevice;
import dev.cask.device.ByteRanges;
import dev.cask.device.HoleMaskDevice;
import dev.cask.format.Formats;
import dev.cask.format.RawExport;
import dev.cask.format.nbd.NbdDevice;
import dev.cask.format.nbd.NbdUri;
import dev.cask.format.nbd.QemuFormats;
import dev.cask.format.qcow2.Qcow2Writer;
import dev.cask.layout.ExtFreeBlocks;
import dev.cask.layout.LayoutPlanner;
import dev.cask.store.ChunkStore;
import dev.cask.tree.Layout;
import dev.cask.tree.LayoutDevice;
import dev.cask.tree.PointerCache;
import dev.cask.tree.Root;
import dev.cask.tree.TreeReader;
import dev.cask.volume.JournalStore;
import dev.cask.volume.Leases;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Consumer;

/**
 * The operations users run on images (import, export, create, clone, snapshot, rollback, list,
 * log, info, remove, stats, check), over a store and its catalog.
 *
 * <p><b>Parts.</b> It receives its parts as interfaces ({@link ImageParts}): the {@link ChunkStore},
 * the {@link Catalog}, the journal storage ({@link JournalStore}) and the leases ({@link Leases}),
 * plus whatever {@link StoreCapabilities} the store offers (stats, du, check, gc need them; a
 * store without one makes those commands fail with Unsupported). It never names a store or catalog
 * implementation: {@link LocalImages} composes the embedded default, the CLI composes a shared
 * store.
 *
 * <p>Order of durability for anything that creates a version: write chunks, {@code sync} the
 * store, then commit to the catalog. A crash or error before the commit leaves no visible image
 * or version; the chunks already written are unreferenced garbage.
 *
 * <p><b>The head is the image's current content.</b> Every operation that reads or moves a head
 * (snapshot, rollback, export and clone of a head, and import as a new version when it comes)
 * first makes a version hold what the image's writers last wrote ({@link #settle}): when another
 * process has the image open read-write (a running server), it is asked for a checkpoint
 * ({@link LiveWriters}); when nobody has it open but a crash left a journal, the journal is folded
 * into a version directly (the volume opened, checkpointed and closed); else the head already is
 * the content. A reference to an explicit version ({@code NAME@3}, a time) needs none of that.
 * rollback and rm of an image that is open read-write are refused (its clients are writing it);
 * rm discards a crash's journal with the image, never replaying it.
 *
 * <p>Owns the store, the catalog, a worker pool of one thread per core (imports, exports, volumes
 * a command opens), and for a server's volumes a second one whose threads run at a lower
 * priority ({@link Background}): checkpoints there yield the CPU to clients' reads. Thread-safe as far as
 * its parts are; the CLI uses one instance per command.
 */
public final class Images implements AutoCloseable {
    public static final String CATALOG_FILE = "catalog.db";

    private final ChunkStore store;
    private final Catalog catalog;
    private final JournalStore journals;
    private final Leases leases;
    private final String storeName;
    private final List<Object> capabilities;
    private final ExecutorService pool;
    private final int threads;
    private final PointerCache pointers = new PointerCache();
    private final LocationWarmer warmer;
    private volatile LiveWriters writers = LiveWriters.NONE;

    public Images(ImageParts parts) {
        this.store = parts.store();
        this.catalog = parts.catalog();
        this.journals = parts.journals();
        this.leases = parts.leases();
        this.storeName = parts.storeName();
        this.capabilities = parts.capabilities();
        this.warmer = new LocationWarmer(store, pointers);
        this.threads = Math.max(1, Runtime.getRuntime().availableProcessors());
        this.pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "cask-worker");
            t.setDaemon(true);
            return t;
        });
    }


    /** Who {@link #withLiveWriters} named: the processes to ask about images they hold. */
    public LiveWriters liveWriters() {
        return writers;
    }

    /** Who to ask for a checkpoint of an image another process has open read-write (default: nobody). */
    public Images withLiveWriters(LiveWriters writers) {
        this.writers = writers;
        return this;
    }

    public ChunkStore store() {
        return store;
    }

    /** The store's name for messages: its directory, or its URL. */
    public String storeName() {
        return storeName;
    }

    public JournalStore journals() {
        return journals;
    }

    public Leases leases() {
        return leases;
    }

    /**
     * The store's capability {@code type} ({@link StoreCapabilities}): the store itself when it
     * implements it, else an object its composition gave; Unsupported, naming the store and
     * {@code what} needed it, when there is none.
     */
    public <T> T capability(Class<T> type, String what) {
        return findCapability(type).orElseThrow(() -> new CaskException.Unsupported(what + ": not supported on store " + storeName + " yet"));
    }

    /** As {@link #capability}, or empty. */
    public <T> java.util.Optional<T> findCapability(Class<T> type) {
        if (type.isInstance(store)) return java.util.Optional.of(type.cast(store));
        for (Object c : capabilities) if (type.isInstance(c)) return java.util.Optional.of(type.cast(c));
        return java.util.Optional.empty();
    }

    /** What opening the store cut off (torn tails a writer that died left), one line each; none when the store cannot say. */
    public List<String> openNotices() {
        return findCapability(StoreCapabilities.Repairs.class).map(StoreCapabilities.Repairs::cutOnOpen).orElse(List.of());
    }

    /** A garbage collector for this store (one run each); Unsupported when the store has none. */
    public GarbageCollector collector() {
        return capability(StoreCapabilities.Collecting.class, "garbage collection").collector(catalog, journals);
    }

    public Catalog catalog() {
        return catalog;
    }

    PointerCache pointers() {
        return pointers;
    }

    ExecutorService pool() {
        return pool;
    }

    int threads() {
        return threads;
    }

    // ------------------------------------------------------------------ creating images

    /** Fails (InvalidInput, Conflict) unless {@code name} is a valid name that no image has yet. */
    public void checkNewName(String name) {
        requireFree(name);
    }

    private void requireFree(String name) {
        Names.check(name);
        if (catalog.findImage(name).isPresent()) throw new CaskException.Conflict("image '" + name + "' already exists");
    }

    /**
     * Imports an image file (raw or qcow2) as a new image. Unless {@code wholeDisk}, the disk is
     * cut at its partition boundaries ({@link LayoutPlanner}); {@code blockSize} 0 means automatic
     * (4 KiB, or a partition's file system block size), anything else is used for every extent.
     */
    public Version importFile(Path src, String name, String format, int blockSize, boolean wholeDisk,
                              Progress progress, Consumer<String> warnings) {
        return importFile(src, name, format, blockSize, wholeDisk, false, progress, warnings).version();
    }

    /**
     * What an import made: the version, the bytes of free file system blocks stored as holes
     * (fs-aware), and the version's non-zero bytes ({@link #allocatedBytes}, counted during the import).
     */
    public record Imported(Version version, long freeBytes, long allocatedBytes) {}

    /**
     * As {@link #importFile(Path, String, String, int, boolean, Progress, Consumer)}; with
     * {@code fsAware} the blocks that ext2/3/4 bitmaps mark free ({@link ExtFreeBlocks}) are stored
     * as holes, so the image exports with zeros there instead of bit for bit.
     */
    public Imported importFile(Path src, String name, String format, int blockSize, boolean wholeDisk, boolean fsAware,
                               Progress progress, Consumer<String> warnings) {
        requireFree(name);
        try (ChunkStore.Session session = store.session("import " + src.getFileName() + " as " + name)) { // see GcEpochs
            ImportedLayout l = importLayout(src, format, blockSize, wholeDisk, fsAware, progress, warnings);
            session.check();
            Version v = catalog.createImage(name, new NewVersion("import " + src.getFileName() + (fsAware ? " (fs-aware)" : ""),
                    l.layout().size(), l.layout().encode()), null);
            return new Imported(v, l.freeBytes(), l.allocatedBytes());
        }
    }

    /** The trees an import stored (synced), before any catalog row names them. */
    record ImportedLayout(Layout layout, long freeBytes, long allocatedBytes) {}

    /** Imports a file's blocks into the store as a layout and syncs the store; touches no catalog row. */
    ImportedLayout importLayout(Path src, String format, int blockSize, boolean wholeDisk, boolean fsAware,
                                Progress progress, Consumer<String> warnings) {
        if (blockSize != 0) Root.checkBlockSize(blockSize);
        return importDevice(() -> Formats.open(src, format, warnings), src.getFileName().toString(), blockSize, wholeDisk,
                fsAware, progress, warnings);
    }

    /** As {@link #importFile}, from an NBD server's export ({@code nbd://HOST[:PORT]/EXPORT}, {@code nbd+unix:///EXPORT?socket=PATH}). */
    public Imported importNbd(String uri, String name, int blockSize, boolean wholeDisk, boolean fsAware,
                              Progress progress, Consumer<String> warnings) {
        requireFree(name);
        if (blockSize != 0) Root.checkBlockSize(blockSize);
        NbdUri parsed = NbdUri.parse(uri);
        try (ChunkStore.Session session = store.session("import " + uri + " as " + name)) { // see GcEpochs
            ImportedLayout l = importDevice(() -> NbdDevice.connect(parsed, false), uri, blockSize, wholeDisk, fsAware, progress, warnings);
            session.check();
            Version v = catalog.createImage(name, new NewVersion("import " + uri + (fsAware ? " (fs-aware)" : ""),
                    l.layout().size(), l.layout().encode()), null);
            return new Imported(v, l.freeBytes(), l.allocatedBytes());
        }
    }

    /** Imports the device {@code source} opens into the store as a layout and syncs the store; touches no catalog row. */
    private ImportedLayout importDevice(java.util.function.Supplier<BlockDevice> source, String what, int blockSize,
                                        boolean wholeDisk, boolean fsAware, Progress progress, Consumer<String> warnings) {
        Layout layout;
        Importer importer;
        long freeBytes;
        try (BlockDevice dev = source.get()) {
            var plan = wholeDisk ? LayoutPlanner.whole(dev, blockSize == 0 ? LayoutPlanner.DEFAULT_BLOCK : blockSize)
                    : LayoutPlanner.plan(dev, blockSize, what, warnings);
            ByteRanges free = fsAware ? ExtFreeBlocks.ofDisk(dev, what, warnings) : ByteRanges.EMPTY;
            freeBytes = free.totalBytes();
            BlockDevice in = free.isEmpty() ? dev : new HoleMaskDevice(dev, free); // a filter: closing dev is enough
            importer = new Importer(store, pool, threads);
            layout = importer.importDevice(in, plan, progress);
        }
        store.sync();
        return new ImportedLayout(layout, freeBytes, importer.allocatedBytes());
    }

    /** Imports a raw stream (stdin) as a new image. */
    public Version importStream(InputStream in, String name, int blockSize, Progress progress) {
        requireFree(name);
        if (blockSize == 0) blockSize = LayoutPlanner.DEFAULT_BLOCK;
        try (ChunkStore.Session session = store.session("import from stdin as " + name)) { // see GcEpochs
            Layout layout = new Importer(store, pool, threads).importStream(in, "stdin", blockSize, progress);
            store.sync();
            session.check();
            return catalog.createImage(name, new NewVersion("import from stdin", layout.size(), layout.encode()), null);
        }
    }

    /** A new all-zero image of {@code size} bytes. */
    public Version create(String name, long size, int blockSize) {
        requireFree(name);
        if (size <= 0) throw new CaskException.InvalidInput("image '" + name + "': size " + size + " must be positive");
        Layout layout = Layout.single(Root.empty(size, blockSize));
        return catalog.createImage(name, new NewVersion("create", size, layout.encode()), null);
    }

    /**
     * A new image sharing all data with {@code srcRef}; costs one catalog row whatever the size. A
     * head reference clones the image's current content ({@link #current}).
     */
    public Current cloneImage(String srcRef, String name) {
        VersionRef.parse(srcRef);
        requireFree(name);
        Current src = current(srcRef, "clone to " + name);
        requireFree(name);
        Version v = catalog.createImage(name, new NewVersion("clone of " + src.version().key(), src.version().size(), src.version().content()),
                src.version().key());
        return new Current(v, src.source());
    }

    /** Where a version handed out for an image's current content came from. */
    public enum Source {
        /** The version was in the catalog already (the head, or a version named explicitly). */
        STORED,
        /** A checkpoint the process that has the image open made on request ({@link LiveWriters}). */
        SERVER_CHECKPOINT,
        /** A journal a crash left, folded into a version first. */
        JOURNAL_FOLDED
    }

    /** A version, and how it came to hold the content asked for. */
    public record Current(Version version, Source source) {}

    private void requireNotServed(String name, String what) {
        if (leases.isHeld(name)) {
            throw new CaskException.Conflict("image '" + name + "' is open read-write (served); " + what);
        }
    }

    /**
     * The version holding the content of what {@code ref} names: for a head reference ({@code
     * NAME}, {@code NAME@latest}) the image's current content ({@link #settle}, a checkpoint
     * "checkpoint for WHAT" through its server, or a crash's journal folded first); for an explicit
     * version, that version.
     */
    public Current current(String ref, String what) {
        VersionRef r = VersionRef.parse(ref);
        if (!r.isHead()) return new Current(resolve(ref), Source.STORED);
        catalog.image(r.image());
        return settle(r.image(), "checkpoint for " + what, "checkpoint of the journal a crash left (for " + what + ")", false);
    }

    /**
     * Makes a version hold {@code name}'s current content and returns it: the hook every operation
     * that reads or moves a head goes through first (import as a new version, when it is added,
     * must too). When another process has the image open read-write, it is asked for a checkpoint
     * ({@code served} as its message; Conflict when it cannot be asked). Else, when a crash left a
     * journal, the volume is opened (which replays it onto the version it was written on),
     * checkpointed ({@code folded}) and closed. Else the head. {@code always}: make a version
     * even when nothing changed (a snapshot). A writer that comes or goes meanwhile is met on the
     * next of a few attempts.
     */
    Current settle(String name, String served, String folded, boolean always) {
        return settle(name, served, folded, always, dev.cask.catalog.VersionKind.AUTO);
    }

    /** As {@link #settle(String, String, String, boolean)}, a version it makes being of {@code kind}. */
    Current settle(String name, String served, String folded, boolean always, dev.cask.catalog.VersionKind kind) {
        for (int attempt = 0; ; attempt++) {
            boolean last = attempt == 2;
            if (leases.isHeld(name)) {
                var n = writers.checkpoint(name, served, always, kind);
                if (n.isPresent()) return new Current(catalog.version(name, n.getAsInt()), Source.SERVER_CHECKPOINT);
                if (leases.isHeld(name) && (last || writers == LiveWriters.NONE)) {
                    throw new CaskException.Conflict("image '" + name + "' is open read-write by a process that does not answer checkpoint"
                            + " requests; name a version (" + name + "@" + catalog.image(name).head() + ") or stop that process");
                }
                continue; // it closed the image meanwhile (its close made a version), or an answer was lost
            }
            if (!journals.hasLeftover(name)) {
                if (!always) return new Current(catalog.version(name, catalog.image(name).head()), Source.STORED);
                Image img = catalog.image(name);
                Version head = catalog.version(name, img.head());
                return new Current(catalog.commit(name, img.head(), new NewVersion(served, head.size(), head.content(), kind), head.key()), Source.STORED);
            }
            try (dev.cask.volume.Volume v = openVolume(name)) {
                Version made = v.checkpoint(folded, always, kind);
                if (made == null && v.recovered() == null) return new Current(v.baseVersion(), Source.STORED); // the journal held no write
                return new Current(made != null ? made : v.baseVersion(), Source.JOURNAL_FOLDED);
            } catch (CaskException.Conflict e) {
                if (last) throw e; // a server opened it after the lease check: ask it next time
            }
        }
    }

    /**
     * Records the image's current content as a new version with {@code message}: through the
     * process that has it open read-write (a running server's checkpoint), or with a crash's
     * journal folded in. An image whose content is its head's already (nothing written since)
     * gets no new version: the result says so.
     */
    public Snapshot snapshot(String name, String message) {
        int before = catalog.image(name).head();
        String msg = message == null || message.isBlank() ? "snapshot" : message;
        Current c = settle(name, msg, msg, false, dev.cask.catalog.VersionKind.USER);
        boolean added = c.version().number() > before;
        if (!added && c.version().kind() == dev.cask.catalog.VersionKind.AUTO) {
            // the user asked for this content to be kept: the automatic version holding it becomes theirs
            catalog.makeUserVersion(name, c.version().number());
            c = new Current(catalog.version(name, c.version().number()), c.source());
        }
        return new Snapshot(c, added);
    }

    /**
     * What {@link #snapshot} did: {@code added} when the version is new (the image had writes no
     * version held); otherwise the image was unchanged, and the version is the one that already
     * held its content (no version was added).
     */
    public record Snapshot(Current current, boolean added) {
        public Version version() {
            return current.version();
        }
    }

    /**
     * Makes {@code ver}'s content the head again, as a new version: history is kept. Refused
     * (Conflict) while the image is open read-write; a journal a crash left is first folded into
     * a version of its own, so its flushed writes stay in the history and are never replayed onto
     * the rolled-back content.
     *
     * <p>The new version names {@code ver} as its parent: it is made of {@code ver}'s chunks and
     * puts none, so garbage collection keeps them only because the commit, in the transaction that
     * checks that its parent exists, fails when {@code ver} was removed meanwhile (NotFound; see
     * {@code GcEpochs}). Naming the old head instead let a {@code rm NAME@VER} and a gc between the
     * lookup of {@code ver} and the commit sweep chunks the new head needs.
     */
    public Version rollback(String name, String ver) {
        catalog.image(name);
        requireNotServed(name, "disconnect its clients first (the server checkpoints and closes it when the last one goes)");
        Version target = resolve(name + "@" + ver);
        settle(name, "checkpoint before rollback to version " + target.number(),
                "checkpoint of the journal a crash left (before rollback to version " + target.number() + ")", false);
        Image img = catalog.image(name);
        beforeRollbackCommit.run();
        return catalog.commit(name, img.head(), new NewVersion("rollback to version " + target.number(), target.size(), target.content()),
                target.key());
    }

    /** Test hook: runs in {@link #rollback} after the target was resolved, before the commit (a race with rm and gc is made there). */
    private Runnable beforeRollbackCommit = () -> {};

    Images beforeRollbackCommit(Runnable r) {
        this.beforeRollbackCommit = r;
        return this;
    }

    /**
     * Deletes an image and its versions (clones keep their data). Refused (Conflict) while it is
     * open read-write, and while a running server serves any version of it ({@link
     * LiveWriters#inUse}: a read-only export of NAME@VER, a {@code --read-only} server's export of
     * its head): asked inside the catalog's delete transaction, as a version removal asks, since
     * such a server reads the version's chunks, which garbage collection would free once the
     * version is gone from the catalog. A journal a crash left is discarded with it, not folded:
     * removing the image is removing its writes, and a new image of the same name must never
     * replay them.
     */
    public void remove(String name) {
        Names.check(name);
        catalog.image(name);
        String disconnect = "disconnect its clients first (the server checkpoints and closes it when the last one goes)";
        requireNotServed(name, disconnect);
        catalog.deleteImage(name, () -> {
            requireNotServed(name, disconnect); // opened since
            return writers.inUse(name);
        });
        journals.discard(name);
    }

    // ------------------------------------------------------------------ reading

    public List<Image> list(String prefix) {
        return catalog.listImages(prefix == null ? "" : prefix);
    }

    public List<Version> log(String name) {
        catalog.image(name);
        return catalog.versions(name);
    }

    public Image image(String name) {
        return catalog.image(name);
    }

    /** The version a user's reference names. */
    public Version resolve(String ref) {
        VersionRef r = VersionRef.parse(ref);
        Image img = catalog.image(r.image());
        if (r.number() != null) return catalog.version(r.image(), r.number());
        if (r.time() != null) return catalog.versionAt(r.image(), r.time());
        if (r.label() != null) {
            var tags = catalog.tags(r.image());
            Integer n = tags.get(r.label());
            if (n == null) {
                throw new CaskException.NotFound("image '" + r.image() + "' has no label '" + r.label() + "'"
                        + (tags.isEmpty() ? " (it has no labels)" : " (labels: " + String.join(", ", tags.keySet()) + ")"));
            }
            return catalog.version(r.image(), n);
        }
        return catalog.version(r.image(), img.head());
    }

    /** Opens an image for live reads and writes (takes its lease; replays a journal left by a crash). */
    public dev.cask.volume.Volume openVolume(String name) {
        Names.check(name);
        return dev.cask.volume.Volume.open(name, store, catalog, pointers, pool, journals, leases, dev.cask.volume.Volume.DEFAULT_JOURNAL_LIMIT);
    }

    /**
     * Like {@link #openVolume(String)}, for a server: with the journal size that starts a
     * checkpoint, and the checkpoints' hashing and compression on {@linkplain Background
     * background threads}, so that they take the CPU the clients' reads leave (a checkpoint of
     * 512 MiB on two cores otherwise halved the speed of the reads running beside it).
     */
    public dev.cask.volume.Volume openVolume(String name, long journalLimit) {
        Names.check(name);
        return dev.cask.volume.Volume.open(name, store, catalog, pointers, background(), journals, leases, journalLimit);
    }

    /** Workers for a server's checkpoints (see {@link #openVolume(String, long)}): one per core, made on first use. */
    private ExecutorService background;

    private synchronized ExecutorService background() {
        if (background == null) background = Executors.newFixedThreadPool(threads, Background.threads("cask-background"));
        return background;
    }

    /**
     * Looks up, in the background, where every data chunk of {@code v} is stored, and loads its
     * pointer chunks ({@link LocationWarmer}), so the first reads of a freshly opened image (a VM's
     * boot) do not each wait for an index query. It never changes what a read returns.
     */
    public void warmLocations(Version v) {
        warmer.warm(v);
    }

    /** A read-only device over a version. */
    public LayoutDevice open(Version v) {
        return new LayoutDevice(store, Layout.decode(v.content()), pointers);
    }

    /** A read-only device over a version for one pass over it (export): see {@link LayoutDevice#streaming}. */
    public LayoutDevice openStreaming(Version v) {
        return LayoutDevice.streaming(store, Layout.decode(v.content()), pointers, pool);
    }

    /** Non-hole bytes of a version (pointer chunks are read; data chunks are not). */
    public long allocatedBytes(Version v) {
        long sum = 0;
        for (Layout.Extent e : Layout.decode(v.content()).extents()) {
            long[] n = {0};
            new TreeReader(store, e.root(), pointers).walk(0, Long.MAX_VALUE, (b, id) -> n[0]++);
            sum += Math.min(e.length(), n[0] * e.root().blockSize());
        }
        return sum;
    }

    /**
     * Writes a version to a file ({@code raw} sparse, or {@code qcow2}), atomically; {@code fsync}
     * flushes it to disk first. A head reference exports the image's current content ({@link #current}).
     */
    public void export(String ref, Path dest, String format, boolean fsync, Progress progress) {
        export(current(ref, "export").version(), dest, format, fsync, progress);
    }

    /** As {@link #export(String, Path, String, boolean, Progress)}, for a version already resolved. */
    public void export(Version v, Path dest, String format, boolean fsync, Progress progress) {
        String f = format == null ? "raw" : format.toLowerCase(Locale.ROOT);
        // raw: RawExport reads windows on a thread per core itself; qcow2 is written in order, so
        // its device spreads each read over the pool
        try (LayoutDevice dev = f.equals("raw") ? LayoutDevice.streamingInCaller(store, Layout.decode(v.content()), pointers)
                : openStreaming(v)) {
            switch (f) {
                case "raw" -> RawExport.toFile(dev, dest, progress, fsync);
                case "qcow2" -> Qcow2Writer.write(dev, dest, progress, fsync);
                default -> QemuFormats.export(dev, dest, f, progress, fsync); // vmdk, vhdx, vpc, vdi...: written by qemu-nbd
            }
        }
    }

    /** Writes a version into an NBD server's export, in place (holes zeroed); an export smaller than the image is refused. */
    public void exportNbd(Version v, String uri, Progress progress) {
        NbdUri parsed = NbdUri.parse(uri);
        try (LayoutDevice dev = openStreaming(v)) {
            QemuFormats.exportTo(dev, parsed, progress);
        }
    }

    /** Writes a version as raw bytes (holes as zeros) to a stream, e.g. stdout; a head reference: its current content. */
    public void export(String ref, OutputStream out, Progress progress) {
        export(current(ref, "export").version(), out, progress);
    }

    /** As {@link #export(String, OutputStream, Progress)}, for a version already resolved. */
    public void export(Version v, OutputStream out, Progress progress) {
        try (LayoutDevice dev = openStreaming(v)) {
            RawExport.toStream(dev, out, progress);
        }
    }

    // ------------------------------------------------------------------ accounting and checking

    /** Store-wide numbers; Unsupported when the store cannot count its bytes. */
    public Stats stats() {
        StoreCapabilities.Counts counts = capability(StoreCapabilities.Counts.class, "stats");
        List<Image> images = catalog.listImages("");
        long logical = 0;
        long allocated = 0;
        int versions = 0;
        for (Image img : images) {
            Version head = catalog.version(img.name(), img.head());
            logical += head.size();
            allocated += allocatedBytes(head);
        }
        versions = catalog.allVersions().size();
        long stored = counts.storedBytes();
        double ratio = stored == 0 ? 0 : (double) allocated / stored;
        return new Stats(images.size(), versions, logical, allocated, stored, counts.chunkCount(), counts.packCount(), ratio);
    }

    /** Checks the store's packs and index and every version's trees; Unsupported when the store cannot be checked. */
    public CheckReport check(boolean deep, Progress progress) {
        return new Checker(store, capability(StoreCapabilities.Checks.class, "check"), catalog, pointers).check(deep, progress);
    }

    @Override
    public void close() {
        warmer.close();
        pool.shutdownNow();
        synchronized (this) {
            if (background != null) background.shutdownNow();
        }
        try {
            leases.close(); // before the catalog: a shared lease is released in its database
        } catch (RuntimeException e) {
            // a lease not released expires after its time to live
        }
        try {
            journals.close();
        } catch (RuntimeException e) {
            // nothing is pending there: every FLUSH waited for its copy
        }
        try {
            catalog.close();
        } finally {
            store.close();
        }
    }
}
