package dev.cask.server;

import dev.cask.catalog.Image;
import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Pacer;
import dev.cask.common.Sizes;
import dev.cask.image.Images;
import dev.cask.server.nbd.Export;
import dev.cask.server.nbd.ExportResolver;
import dev.cask.tree.LayoutDevice;
import dev.cask.volume.Volume;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What {@code cask serve} exports: every image by name, read-write, and {@code NAME@VER} read-only
 * (or, by {@link Policy}, only the images under a name prefix, and all of them read-only).
 * {@code NBD_OPT_INFO} is answered by {@link #describe}, which opens nothing for writing.
 *
 * <p>All connections to one image share one {@link Volume} (one dirty map, one journal), which is
 * what makes NBD's CAN_MULTI_CONN honest. The volume opens with the first connection and closes
 * with the last, and closing checkpoints it: "a version when the last client disconnects".
 * {@link #checkpointAll} is the timer's work (paced beside busy clients: {@link Volume#checkpoint(String, Pacer)}); {@link #checkpoint} serves {@code cask snapshot}
 * (always a new version) and export and clone of an image's head (a version of what its clients
 * see now) for an image that is open here.
 *
 * <p>Thread-safe: the map of open volumes is guarded by this object's lock. A volume whose last
 * client left is closed (checkpointed) outside it: while that runs, only a new connection to the
 * same image, and a checkpoint request for it, wait for it.
 */
public final class ImageExports implements ExportResolver, AutoCloseable {
    private final Images images;
    private final long journalLimit;
    private final Map<String, Shared> open = new HashMap<>();
    /**
     * Images whose last client left, while their volume closes (a checkpoint: seconds, or minutes
     * for a full journal), with what completes when it is closed. The close runs outside this
     * object's lock: connecting to any other image, or asking what is open, never waits for it;
     * only a new connection to the same image does (it must take the lease the closing volume holds).
     */
    private final Map<String, java.util.concurrent.CompletableFuture<Void>> closing = new HashMap<>();
    /*
     * What inUse reads, without this object's lock: a server's release() holds the lock while its
     * volume's close commits, and that commit may wait for the catalog write lock of a prune
     * that is asking this server what is in use. So these two are concurrent maps of their own.
     */
    /** Volumes open read-write, by image (kept with {@link #open}). */
    private final Map<String, Volume> volumes = new java.util.concurrent.ConcurrentHashMap<>();
    /** Versions served read-only, with how many exports serve each. */
    private final Map<dev.cask.catalog.VersionKey, Integer> pinned = new java.util.concurrent.ConcurrentHashMap<>();
    private final System.Logger log = System.getLogger("cask.serve");

    private static final class Shared {
        final Volume volume;
        int connections;

        Shared(Volume volume) {
            this.volume = volume;
        }
    }

    /**
     * Which images a server exports and how: {@code readOnly} serves every image read-only (its
     * current content when the client connects; nothing is opened for writing); {@code prefix}
     * (empty for all) limits the exports to the images named {@code prefix} or {@code prefix/...}.
     */
    public record Policy(boolean readOnly, String prefix) {
        public static final Policy ALL = new Policy(false, "");

        public Policy {
            prefix = prefix == null ? "" : prefix;
            if (!prefix.isEmpty()) dev.cask.catalog.Names.check(prefix);
        }

        boolean covers(String image) {
            return prefix.isEmpty() || image.equals(prefix) || image.startsWith(prefix + "/");
        }
    }

    private final Policy policy;

    public ImageExports(Images images) {
        this(images, dev.cask.volume.Volume.DEFAULT_JOURNAL_LIMIT);
    }

    /** {@code journalLimit}: journal bytes of an image that start a checkpoint (see {@link Volume}). */
    public ImageExports(Images images, long journalLimit) {
        this(images, journalLimit, Policy.ALL);
    }

    /** As {@link #ImageExports(Images, long)}, exporting what {@code policy} allows. */
    public ImageExports(Images images, long journalLimit, Policy policy) {
        this.images = images;
        this.journalLimit = journalLimit;
        this.policy = policy;
    }

    /** The image a client's export name names; NotFound (the message reaches the client) when this server does not export it. */
    private String imageOf(String name) {
        if (name.isEmpty()) {
            throw new CaskException.NotFound("no default export: ask for an image by name, e.g. nbd://127.0.0.1:10809/team/vm-1");
        }
        String image = name.contains("@") ? name.substring(0, name.indexOf('@')) : name;
        if (!policy.covers(image)) {
            throw new CaskException.NotFound("no export '" + name + "' here (this server exports only " + policy.prefix() + " and " + policy.prefix() + "/...)");
        }
        return image;
    }

    /**
     * A read-only export of a version. The version is pinned for as long as the export is open
     * ({@link #inUse}: retention, rm of the version and rm of the image keep it), then looked up
     * again under the catalog's write lock ({@code Catalog.confirmVersion}), so a version removed
     * between its lookup and the pin is refused (NotFound) rather than served, and any removal
     * that commits after the pin sees it: the version stays in the catalog while it is served,
     * and garbage collection, which marks what the catalog's versions reach, keeps its chunks.
     */
    private Export readOnly(Version v, String what) {
        dev.cask.catalog.VersionKey key = v.key();
        pin(key, +1);
        boolean ok = false;
        try {
            images.catalog().confirmVersion(key.image(), key.number());
            LayoutDevice dev = images.open(v);
            images.warmLocations(v);
            Export e = Export.of(dev, true, "cask image " + v.image() + " version " + v.number() + " (read-only" + what + ")", () -> {
                try {
                    dev.close();
                } finally {
                    pin(key, -1);
                }
            });
            ok = true;
            return e;
        } finally {
            if (!ok) pin(key, -1);
        }
    }

    private void pin(dev.cask.catalog.VersionKey key, int delta) {
        pinned.merge(key, delta, (a, b) -> a + b == 0 ? null : a + b);
    }

    /**
     * The versions of image {@code name} this server needs kept: its open volume's base, and
     * every version served read-only. (A volume's journal names its base too: see
     * {@code Pruner}, which reads the journals as well.)
     */
    public java.util.SortedSet<Integer> inUse(String name) {
        java.util.SortedSet<Integer> out = new java.util.TreeSet<>();
        Volume v = volumes.get(name);
        if (v != null) out.add(v.baseVersion().number());
        for (dev.cask.catalog.VersionKey k : pinned.keySet()) if (k.image().equals(name)) out.add(k.number());
        return out;
    }

    @Override
    public Export open(String name) {
        imageOf(name);
        if (name.contains("@")) return readOnly(images.resolve(name), "");
        if (policy.readOnly()) return readOnly(images.current(name, "a read-only export").version(), ", current content");
        Shared s;
        synchronized (this) {
            while (closing.containsKey(name)) awaitClosed(name);
            s = open.get(name);
            if (s == null) {
                s = new Shared(images.openVolume(name, journalLimit));
                open.put(name, s);
                volumes.put(name, s.volume);
                images.warmLocations(s.volume.baseVersion());
                Version r = s.volume.recovered();
                if (r != null) log.log(System.Logger.Level.WARNING, "image '" + name + "': version " + r.number() + " " + r.message());
                log.log(System.Logger.Level.INFO, "opened image '" + name + "' read-write at version " + s.volume.baseVersion().number());
            }
            s.connections++;
        }
        Shared shared = s;
        return Export.of(shared.volume, false, "cask image " + name + " (" + Sizes.human(shared.volume.size()) + ", read-write)",
                () -> release(name, shared));
    }

    /**
     * Waits (giving up this object's lock meanwhile) until the close of {@code name} under way is
     * done. Caller holds the lock.
     */
    private void awaitClosed(String name) {
        java.util.concurrent.CompletableFuture<Void> done = closing.get(name);
        if (done == null) return;
        boolean interrupted = false;
        while (!done.isDone()) {
            try {
                wait();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }

    /**
     * A connection ended: when it was the image's last, the volume is closed (which checkpoints
     * it) outside this object's lock, so that clients of other images connect meanwhile (see
     * {@link #closing}). Its base version stays {@link #inUse} until the close is done.
     */
    private void release(String name, Shared s) {
        java.util.concurrent.CompletableFuture<Void> done = new java.util.concurrent.CompletableFuture<>();
        synchronized (this) {
            if (--s.connections > 0) return;
            open.remove(name);
            closing.put(name, done);
        }
        try {
            s.volume.close();
            log.log(System.Logger.Level.INFO, "closed image '" + name + "' at version " + s.volume.baseVersion().number());
        } catch (RuntimeException e) {
            log.log(System.Logger.Level.ERROR, "image '" + name + "': checkpoint on close failed: " + e.getMessage());
        } finally {
            synchronized (this) {
                volumes.remove(name, s.volume);
                closing.remove(name, done);
                done.complete(null);
                notifyAll();
            }
        }
    }

    /**
     * For NBD_OPT_INFO (nbdinfo --list): what {@link #open} would serve, without opening a volume
     * (no lease, no journal): an image open here answers from its volume, any other from its head
     * version with the capabilities a volume of that layout has.
     */
    @Override
    public Export describe(String name) {
        imageOf(name);
        if (name.contains("@") || policy.readOnly()) return readOnly(images.resolve(name), "");
        synchronized (this) {
            Shared s = open.get(name);
            if (s != null) return Export.of(s.volume, false, "cask image " + name + " (" + Sizes.human(s.volume.size()) + ", read-write)", () -> {});
        }
        Version head = images.resolve(name);
        dev.cask.tree.Layout layout = dev.cask.tree.Layout.decode(head.content());
        dev.cask.device.Capabilities caps = Volume.capabilities(layout);
        dev.cask.device.BlockDevice described = new dev.cask.device.BlockDevice() {
            @Override
            public long size() {
                return layout.size();
            }

            @Override
            public dev.cask.device.Capabilities capabilities() {
                return caps;
            }

            @Override
            public void read(long offset, byte[] buffer, int bufferOffset, int length) {
                throw new IllegalStateException("export '" + name + "' was only described (NBD_OPT_INFO), not opened");
            }

            @Override
            public List<dev.cask.device.BlockStatus> blockStatus(long offset, long length) {
                throw new IllegalStateException("export '" + name + "' was only described (NBD_OPT_INFO), not opened");
            }

            @Override
            public void close() {}
        };
        return Export.of(described, false, "cask image " + name + " (" + Sizes.human(layout.size()) + ", read-write)", () -> {});
    }

    @Override
    public List<String> list() {
        return images.list(policy.prefix()).stream().map(Image::name).toList();
    }

    @Override
    public String description(String name) {
        return "cask image " + name;
    }

    /** Hurries the paced checkpoints under way (someone waits for them: an unpaced gc waits for every writer). */
    public void hurryCheckpoints() {
        List<Shared> all;
        synchronized (this) {
            all = new ArrayList<>(open.values());
        }
        for (Shared s : all) s.volume.hurryCheckpoint();
    }

    /** Checkpoints every open, dirty volume; returns how many versions were made. */
    public int checkpointAll(String message) {
        return checkpointAll(message, () -> null);
    }

    /**
     * Checkpoints every open, dirty volume, each at the pace of a new pacer from {@code pace}
     * (null: at full speed; see {@link Volume#checkpoint(String, Pacer)}); returns how many
     * versions were made.
     */
    public int checkpointAll(String message, java.util.function.Supplier<Pacer> pace) {
        List<Shared> all;
        synchronized (this) {
            all = new ArrayList<>(open.values());
        }
        int n = 0;
        for (Shared s : all) {
            try {
                Pacer p = pace.get();
                if ((p == null ? s.volume.checkpoint(message) : s.volume.checkpoint(message, p)) != null) n++;
            } catch (IllegalStateException closed) {
                // closed meanwhile: its close made the version
            } catch (RuntimeException e) {
                log.log(System.Logger.Level.ERROR, "image '" + s.volume.image() + "': checkpoint failed: " + e.getMessage());
            }
        }
        return n;
    }

    /**
     * The version that holds the current content of an image open here: a checkpoint with
     * {@code message}, or (unless {@code always}) the last one when nothing changed since; null
     * when the image is not open here (or closed meanwhile: its close made the version).
     */
    public Version checkpoint(String name, String message, boolean always) {
        return checkpoint(name, message, always, dev.cask.catalog.VersionKind.AUTO);
    }

    /** As {@link #checkpoint(String, String, boolean)}, a version made being of {@code kind}. */
    public Version checkpoint(String name, String message, boolean always, dev.cask.catalog.VersionKind kind) {
        return checkpoint(name, message, always, kind, null);
    }

    /**
     * As {@link #checkpoint(String, String, boolean)} without {@code always}, an automatic version, at the
     * pace of {@code pacer} as the timer's checkpoints ({@code paced-checkpoint} on the control socket).
     */
    public Version checkpoint(String name, String message, Pacer pacer) {
        return checkpoint(name, message, false, dev.cask.catalog.VersionKind.AUTO, pacer);
    }

    private Version checkpoint(String name, String message, boolean always, dev.cask.catalog.VersionKind kind, Pacer pacer) {
        Shared s;
        synchronized (this) {
            awaitClosed(name); // an image whose last client just left: its close makes the version
            s = open.get(name);
        }
        if (s == null) return null;
        String msg = message == null || message.isBlank() ? (always ? "snapshot" : "checkpoint") : message;
        try {
            Version v = pacer == null ? s.volume.checkpoint(msg, always, kind) : s.volume.checkpoint(msg, pacer);
            return v != null ? v : s.volume.baseVersion();
        } catch (IllegalStateException e) {
            synchronized (this) {
                if (open.get(name) != s) return null; // closed meanwhile
            }
            throw e;
        }
    }

    /** Names of the images open read-write here, those being closed too. */
    public synchronized List<String> openImages() {
        java.util.TreeSet<String> all = new java.util.TreeSet<>(open.keySet());
        all.addAll(closing.keySet());
        return List.copyOf(all);
    }

    /** Closes (and so checkpoints) every open volume, after the closes under way. */
    @Override
    public synchronized void close() {
        for (String name : new ArrayList<>(closing.keySet())) awaitClosed(name);
        for (var e : open.entrySet()) {
            try {
                e.getValue().volume.close();
                log.log(System.Logger.Level.INFO, "closed image '" + e.getKey() + "' at version " + e.getValue().volume.baseVersion().number());
            } catch (RuntimeException ex) {
                log.log(System.Logger.Level.ERROR, "image '" + e.getKey() + "': checkpoint on shutdown failed: " + ex.getMessage());
            }
        }
        open.clear();
        volumes.clear();
    }
}
