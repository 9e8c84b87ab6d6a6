package dev.cask.store.s3;

import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.common.Progress;
import dev.cask.image.StoreChecksContract;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The checks contract against a store on S3 ({@link S3StoreTools}: pack objects GET whole, the
 * index and its damage marks in PostgreSQL); a pack's bytes are the file s3proxy keeps its object
 * in. Small packs (128 KiB), so that the chunks span several.
 */
class S3StoreChecksTest extends StoreChecksContract {
    private static SchemaPerDir stores;

    @BeforeAll
    static void servers() {
        stores = new SchemaPerDir("s3_checks", "checks", "c");
    }

    @Override
    protected Opened open(Path dir) {
        S3ChunkStore store = S3ChunkStore.open(stores.storeUrl(dir), stores.s3.settings(), stores.indexUrl(dir), PostgresCatalog.Options.defaults(),
                S3ChunkStore.Options.defaults().withPackLimit(128 << 10).withSegments(64 << 10, 3));
        return new Opened(store, new S3StoreTools(store));
    }

    @Override
    protected Path packFile(Path dir, int pack) {
        return stores.s3.objectFile(stores.bucket, stores.storeUrl(dir).packKey(pack));
    }

    @Test
    void aPackObjectGoneIsOneUnreadablePackLineNamingTheObject(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        try (Opened o = open(dir)) {
            o.store().put(new byte[]{1, 2, 3});
            o.store().sync();
            int pack = o.checks().packIds().getFirst();
            Files.delete(packFile(dir, pack));
            List<String> unreadable = new ArrayList<>();
            o.checks().scanPack(pack, new dev.cask.store.ScanSink() {
                @Override
                public void chunk(dev.cask.store.ChunkId id, dev.cask.store.ChunkLocation location, java.util.function.Supplier<byte[]> plain) {
                    throw new AssertionError("no chunk in a pack that is gone");
                }

                @Override
                public void problem(String line) {
                    throw new AssertionError(line);
                }

                @Override
                public void packProblem(dev.cask.store.ScanSink.PackProblem kind, String line) {
                    assertEquals(dev.cask.store.ScanSink.PackProblem.UNREADABLE, kind);
                    unreadable.add(line);
                }
            }, Progress.NONE);
            assertEquals(1, unreadable.size());
            String key = stores.storeUrl(dir).packKey(pack);
            assertTrue(unreadable.getFirst().startsWith("pack " + pack + ": cannot read s3://" + stores.bucket + "/" + key), unreadable.getFirst());
            assertTrue(unreadable.getFirst().contains("missing"), unreadable.getFirst());
        }
    }
}
