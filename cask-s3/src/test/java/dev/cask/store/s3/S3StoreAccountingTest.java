package dev.cask.store.s3;

import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.image.StoreAccountingContract;
import org.junit.jupiter.api.BeforeAll;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The accounting contract against a store on S3 ({@link S3StoreTools}, answering from the index in
 * PostgreSQL): the pack objects in the bucket (s3proxy) are what it holds. Small packs (256 KiB),
 * so that the chunks span several.
 */
class S3StoreAccountingTest extends StoreAccountingContract {
    private static final String BUCKET = "accounting";
    private static final AtomicInteger STORES = new AtomicInteger();
    private static PostgresServer pg;
    private static String database;
    private static S3Server s3;
    private final Map<Path, String> names = new ConcurrentHashMap<>();

    @BeforeAll
    static void servers() {
        pg = PostgresServer.shared();
        database = pg.createDatabase("s3_accounting");
        s3 = S3Server.shared();
        s3.createBucket(BUCKET);
    }

    private String name(Path dir) {
        return names.computeIfAbsent(dir, d -> {
            String name = "a" + STORES.incrementAndGet();
            pg.execute(database, "CREATE SCHEMA " + name);
            return name;
        });
    }

    @Override
    protected Opened open(Path dir) {
        S3ChunkStore store = S3ChunkStore.open(S3StoreUrl.parse("s3://" + BUCKET + "/" + name(dir)), s3.settings(),
                CatalogUrl.parse(pg.url(database)).with("currentSchema", name(dir)), PostgresCatalog.Options.defaults(),
                S3ChunkStore.Options.defaults().withPackLimit(256 << 10).withSegments(64 << 10, 3));
        S3StoreTools tools = new S3StoreTools(store);
        return new Opened(store, tools, tools);
    }

    @Override
    protected long[] physical(Path dir) {
        long bytes = 0;
        long count = 0;
        try (var client = s3.client()) {
            for (var o : client.listObjectsV2(b -> b.bucket(BUCKET).prefix(name(dir) + "/packs/")).contents()) {
                bytes += o.size();
                count++;
            }
        }
        return new long[]{bytes, count};
    }
}
