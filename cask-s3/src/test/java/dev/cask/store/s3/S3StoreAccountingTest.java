package dev.cask.store.s3;

import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.image.StoreAccountingContract;
import org.junit.jupiter.api.BeforeAll;

import java.nio.file.Path;

/**
 * The accounting contract against a store on S3 ({@link S3StoreTools}, answering from the index in
 * PostgreSQL): the pack objects in the bucket (s3proxy) are what it holds. Small packs (256 KiB),
 * so that the chunks span several.
 */
class S3StoreAccountingTest extends StoreAccountingContract {
    private static SchemaPerDir stores;

    @BeforeAll
    static void servers() {
        stores = new SchemaPerDir("s3_accounting", "accounting", "a");
    }

    @Override
    protected Opened open(Path dir) {
        S3ChunkStore store = S3ChunkStore.open(stores.storeUrl(dir), stores.s3.settings(), stores.indexUrl(dir), PostgresCatalog.Options.defaults(),
                S3ChunkStore.Options.defaults().withPackLimit(256 << 10).withSegments(64 << 10, 3));
        S3StoreTools tools = new S3StoreTools(store);
        return new Opened(store, tools, tools);
    }

    @Override
    protected long[] physical(Path dir) {
        S3Server.Objects packs = stores.s3.objects(stores.bucket, stores.name(dir) + "/packs/");
        return new long[]{packs.bytes(), packs.count()};
    }
}
