package dev.cask.store.s3;

import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresServer;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Stores on S3 for a test class whose tests each get a fresh store on their own temporary
 * directory: one database on the shared PostgreSQL and one bucket on the shared s3proxy for the
 * class, and per directory a schema of that database (the index) and a prefix of that bucket
 * (the packs), both named {@code LETTER<n>}.
 */
final class SchemaPerDir {
    final PostgresServer pg = PostgresServer.shared();
    final S3Server s3 = S3Server.shared();
    final String database;
    final String bucket;
    private final String letter;
    private final AtomicInteger count = new AtomicInteger();
    private final Map<Path, String> names = new ConcurrentHashMap<>();

    SchemaPerDir(String database, String bucket, String letter) {
        this.database = pg.createDatabase(database);
        this.bucket = bucket;
        this.letter = letter;
        s3.createBucket(bucket);
    }

    /** The schema and prefix of {@code dir}'s store, created on first use. */
    String name(Path dir) {
        return names.computeIfAbsent(dir, d -> {
            String name = letter + count.incrementAndGet();
            pg.execute(database, "CREATE SCHEMA " + name);
            return name;
        });
    }

    CatalogUrl indexUrl(Path dir) {
        return CatalogUrl.parse(pg.url(database)).with("currentSchema", name(dir));
    }

    S3StoreUrl storeUrl(Path dir) {
        return S3StoreUrl.parse("s3://" + bucket + "/" + name(dir));
    }
}
