package dev.cask.cli;

import dev.cask.common.CaskException;

import java.nio.file.Path;

/**
 * This node's chunk cache, as {@code --cache DIR} and {@code --cache-size SIZE} name it: a
 * {@link dev.cask.store.cache.CachingChunkStore} in front of a shared store's S3 packs (see
 * {@link SharedImages}). No cache unless {@code --cache} is given.
 *
 * <p>Rules (a violation is a usage error, exit 2, naming the option and the value): the options go
 * with a shared store only (a local store's packs are on this node's disk already);
 * {@code --cache-size} goes with {@code --cache}; the size is a size ({@code 20G}) of at least
 * one chunk (1M); without {@code --cache-size} the cache holds {@link #DEFAULT_SIZE}.
 */
record NodeCache(Path dir, long bytes) {
    static final String DEFAULT_SIZE = "10G";

    /** The cache {@code dir} and {@code size} (either may be null) name for {@code choice}; null for none. */
    static NodeCache of(Path dir, String size, StoreChoice choice) {
        if (dir == null && size == null) return null;
        if (dir == null) throw new CaskException.Usage("--cache-size " + size + ": goes with --cache DIR");
        if (!(choice instanceof StoreChoice.Shared)) {
            throw new CaskException.Usage("--cache " + dir + ": a local store's packs are on this disk already;"
                    + " --cache goes with --store s3://BUCKET[/PREFIX]");
        }
        String text = size != null ? size : DEFAULT_SIZE;
        long bytes;
        try {
            bytes = dev.cask.common.Sizes.parse(text);
        } catch (CaskException.InvalidInput e) {
            throw new CaskException.Usage("--cache-size: " + e.getMessage());
        }
        if (bytes < dev.cask.store.ChunkStore.MAX_CHUNK) {
            throw new CaskException.Usage("--cache-size " + text + ": expected at least 1M (one chunk)");
        }
        return new NodeCache(dir, bytes);
    }
}
