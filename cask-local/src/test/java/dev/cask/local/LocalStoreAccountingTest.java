package dev.cask.local;

import dev.cask.image.StoreAccountingContract;
import dev.cask.store.local.LocalChunkStore;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** The accounting contract against a local store ({@link LocalStoreTools}): its pack files on disk are what it holds. */
class LocalStoreAccountingTest extends StoreAccountingContract {
    @Override
    protected Opened open(Path dir) {
        LocalChunkStore store = LocalChunkStore.open(dir.resolve("store"), new LocalChunkStore.Options(1, 1 << 20, false, 64 << 10, 3, 0));
        LocalStoreTools tools = new LocalStoreTools(store);
        return new Opened(store, tools, tools);
    }

    @Override
    protected long[] physical(Path dir) {
        try (var files = Files.list(dir.resolve("store").resolve("packs"))) {
            List<Path> packs = files.filter(p -> p.getFileName().toString().endsWith(".pack")).toList();
            long bytes = 0;
            for (Path p : packs) bytes += Files.size(p);
            return new long[]{bytes, packs.size()};
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
