package dev.cask.volume;

import dev.cask.store.ChunkId;

import java.nio.file.Path;
import java.util.SortedSet;
import java.util.function.Consumer;

/**
 * {@link JournalStore} in a local directory: the {@code journals} directory of a local store, or
 * a node's state directory for a shared store. One image's files are {@link JournalFiles}.
 * Stateless apart from the directory; safe from any thread.
 */
public final class LocalJournals implements JournalStore {
    private final Path dir;

    public LocalJournals(Path dir) {
        this.dir = dir;
    }

    public Path dir() {
        return dir;
    }

    @Override
    public JournalFiles files(String image) {
        return new JournalFiles(dir, image);
    }

    @Override
    public boolean hasLeftover(String image) {
        return files(image).hasLeftover();
    }

    @Override
    public SortedSet<Integer> baseVersions(String image) {
        return files(image).baseVersions();
    }

    @Override
    public void discard(String image) {
        files(image).discard();
    }

    @Override
    public void forEachFormatOneChunk(Consumer<ChunkId> sink) {
        JournalFiles.forEachFormatOneChunk(dir, sink);
    }

    @Override
    public String where() {
        return dir.toString();
    }
}
