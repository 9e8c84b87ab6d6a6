package dev.cask.server;

import dev.cask.catalog.Image;
import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
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
 * What {@code cask serve} exports: every image by name, read-write, and {@code NAME@VER} read-only.
 *
 * <p>All connections to one image share one {@link Volume} (one dirty map, one journal), which is
 * what makes NBD's CAN_MULTI_CONN honest. The volume opens with the first connection and closes
 * with the last, and closing checkpoints it: "a version when the last client disconnects".
 * {@link #checkpointAll} is the timer's work; {@link #checkpoint} serves {@code cask snapshot}
 * (always a new version) and export and clone of an image's head (a version of what its clients
 * see now) for an image that is open here.
 *
 * <p>Thread-safe: the map of open volumes is guarded by this object's lock.
 */
public final class ImageExports implements ExportResolver, AutoCloseable {
    private final Images images;
    private final long journalLimit;
    private final Map<String, Shared> open = new HashMap<>();
    private final System.Logger log = System.getLogger("cask.serve");

    private static final class Shared {
        final Volume volume;
        int connections;

        Shared(Volume volume) {
            this.volume = volume;
        }
    }

    public ImageExports(Images images) {
        this(images, dev.cask.volume.Volume.DEFAULT_JOURNAL_LIMIT);
    }

    /** {@code journalLimit}: journal bytes of an image that start a checkpoint (see {@link Volume}). */
    public ImageExports(Images images, long journalLimit) {
        this.images = images;
        this.journalLimit = journalLimit;
    }

    @Override
    public Export open(String name) {
        if (name.isEmpty()) {
            throw new CaskException.NotFound("no default export: ask for an image by name, e.g. nbd://127.0.0.1:10809/team/vm-1");
        }
        if (name.contains("@")) {
            Version v = images.resolve(name);
            LayoutDevice dev = images.open(v);
            images.warmLocations(v);
            return Export.of(dev, true, "cask image " + v.image() + " version " + v.number() + " (read-only)", dev::close);
        }
        Shared s;
        synchronized (this) {
            s = open.get(name);
            if (s == null) {
                s = new Shared(images.openVolume(name, journalLimit));
                open.put(name, s);
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

    private void release(String name, Shared s) {
        synchronized (this) {
            if (--s.connections > 0) return;
            open.remove(name);
            try {
                s.volume.close();
                log.log(System.Logger.Level.INFO, "closed image '" + name + "' at version " + s.volume.baseVersion().number());
            } catch (RuntimeException e) {
                log.log(System.Logger.Level.ERROR, "image '" + name + "': checkpoint on close failed: " + e.getMessage());
            }
        }
    }

    @Override
    public List<String> list() {
        return images.list("").stream().map(Image::name).toList();
    }

    @Override
    public String description(String name) {
        return "cask image " + name;
    }

    /** Checkpoints every open, dirty volume; returns how many versions were made. */
    public int checkpointAll(String message) {
        List<Shared> all;
        synchronized (this) {
            all = new ArrayList<>(open.values());
        }
        int n = 0;
        for (Shared s : all) {
            try {
                if (s.volume.checkpoint(message) != null) n++;
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
        Shared s;
        synchronized (this) {
            s = open.get(name);
        }
        if (s == null) return null;
        String msg = message == null || message.isBlank() ? (always ? "snapshot" : "checkpoint") : message;
        try {
            Version v = s.volume.checkpoint(msg, always);
            return v != null ? v : s.volume.baseVersion();
        } catch (IllegalStateException e) {
            synchronized (this) {
                if (open.get(name) != s) return null; // closed meanwhile
            }
            throw e;
        }
    }

    /** Names of the images open read-write here. */
    public synchronized List<String> openImages() {
        return List.copyOf(open.keySet());
    }

    /** Closes (and so checkpoints) every open volume. */
    @Override
    public synchronized void close() {
        for (var e : open.entrySet()) {
            try {
                e.getValue().volume.close();
                log.log(System.Logger.Level.INFO, "closed image '" + e.getKey() + "' at version " + e.getValue().volume.baseVersion().number());
            } catch (RuntimeException ex) {
                log.log(System.Logger.Level.ERROR, "image '" + e.getKey() + "': checkpoint on shutdown failed: " + ex.getMessage());
            }
        }
        open.clear();
    }
}
