package dev.cask.store.s3;

import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkStore;
import dev.cask.store.ChunkStoreContract;
import dev.cask.store.ChunkLocation;
import dev.cask.store.local.PackFormat;
import dev.cask.store.postgres.PostgresChunkIndex;
import org.junit.jupiter.api.BeforeAll;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/**
 * The chunk store contract against {@link S3ChunkStore} on real servers: s3proxy ({@link S3Server})
 * for the packs, PostgreSQL ({@link PostgresServer}) for the index. Each test's store is its own
 * prefix in one bucket and its own schema in one database; a small pack limit (256 KiB) makes the
 * tests seal and upload packs in the middle of their puts, not only at sync; segments are cut at
 * 64 KiB, as in LocalChunkStoreTest, so that a batch spans several. A chunk is damaged by
 * flipping a byte of its payload in the file s3proxy keeps the pack object in.
 */
class S3ChunkStoreTest extends ChunkStoreContract {
    private static SchemaPerDir stores;

    @BeforeAll
    static void servers() {
        stores = new SchemaPerDir("s3_contract", "contract", "c");
    }

    private CatalogUrl indexUrl(Path dir) {
        return stores.indexUrl(dir);
    }

    private S3StoreUrl storeUrl(Path dir) {
        return stores.storeUrl(dir);
    }

    @Override
    protected ChunkStore open(Path dir) {
        return S3ChunkStore.open(storeUrl(dir), stores.s3.settings(), indexUrl(dir), PostgresCatalog.Options.defaults(),
                S3ChunkStore.Options.defaults().withPackLimit(256 << 10).withSegments(64 << 10, 3));
    }

    @Override
    protected void corruptPayload(Path dir, ChunkId id) {
        ChunkLocation loc;
        try (PostgresChunkIndex index = PostgresChunkIndex.open(indexUrl(dir), PostgresCatalog.Options.defaults(), storeUrl(dir).toString())) {
            loc = index.find(id);
        }
        assertNotNull(loc, "chunk " + id + " to corrupt is not in the index");
        Path file = stores.s3.objectFile(stores.bucket, storeUrl(dir).packKey(loc.pack()));
        if (loc.inSegment()) flipByte(file, loc.offset() + loc.length() - 2); // in the segment's zstd frame
        else flipByte(file, loc.offset() + PackFormat.RECORD_HEADER + (loc.length() - PackFormat.RECORD_HEADER) / 2);
    }

    static void flipByte(Path file, long at) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(1);
            assertEquals(1, ch.read(b, at), "no byte at " + at + " in " + file);
            b.put(0, (byte) (b.get(0) ^ 0x5a));
            ch.write(b.rewind(), at);
        } catch (IOException e) {
            throw new IllegalStateException("cannot damage " + file + ": " + e, e);
        }
    }
}
