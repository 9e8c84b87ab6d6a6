package dev.cask.server.nbd;

import dev.cask.device.BlockDevice;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * What one connection serves: a {@link BlockDevice}, whether the client may write to it, and
 * how to give it back. The server calls {@link #release()} exactly once, when the connection
 * that opened the export closes (or at once, for an export opened only to answer
 * {@code NBD_OPT_INFO}); it never closes the device itself, which belongs to whoever made the
 * export (a volume shared by several connections, say).
 *
 * <p>The export is read-only for the client when {@link #readOnly()} says so or when the
 * device's capabilities do not include writes. The device must be safe to use from the
 * connection's thread; it must be thread-safe if the resolver hands it to several connections.
 */
public interface Export {
    BlockDevice device();

    boolean readOnly();

    /** A line for humans ({@code NBD_INFO_DESCRIPTION}); empty when there is nothing to say. */
    default String description() {
        return "";
    }

    /** The export's canonical name ({@code NBD_INFO_NAME}), or null to echo the name the client asked for. */
    default String canonicalName() {
        return null;
    }

    /** Called once when the connection is done with the export. Must not throw for ordinary reasons. */
    void release();

    /** An export whose release runs {@code onRelease} (at most once, however often it is called). */
    static Export of(BlockDevice device, boolean readOnly, String description, Runnable onRelease) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(onRelease, "onRelease");
        String text = description == null ? "" : description;
        AtomicBoolean released = new AtomicBoolean();
        return new Export() {
            @Override
            public BlockDevice device() {
                return device;
            }

            @Override
            public boolean readOnly() {
                return readOnly;
            }

            @Override
            public String description() {
                return text;
            }

            @Override
            public void release() {
                if (released.compareAndSet(false, true)) onRelease.run();
            }
        };
    }
}
