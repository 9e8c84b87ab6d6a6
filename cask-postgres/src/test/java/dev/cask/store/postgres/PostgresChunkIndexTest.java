package dev.cask.store.postgres;

import dev.cask.catalog.NewVersion;
import dev.cask.catalog.postgres.CatalogUrl;
import dev.cask.catalog.postgres.PostgresCatalog;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The chunk index of a shared store on a real PostgreSQL: packs are begun unsealed and sealed with
 * their entries in one commit (a retried commit of the same pack is recognised); the GC stamp rule
 * (a dedup hit of an entry stamped before the epoch stamps it, a delete spares what is stamped, a
 * deleted entry is no hit); heals move an entry by compare-and-swap; the index may share a schema
 * with the catalog in either order, and refuses a foreign one. The S3 store's own tests (cask-s3)
 * run the chunk store contract on top of it.
 */
class PostgresChunkIndexTest {
    private static final String LOCATION = "s3://bucket/prefix";
    private static final AtomicInteger SCHEMAS = new AtomicInteger();
    private static PostgresServer server;
    private static String database;
    private PostgresChunkIndex index;
    private CatalogUrl url;

    @BeforeAll
    static void database() {
        server = PostgresServer.shared();
        database = server.createDatabase("chunk_index");
    }

    @BeforeEach
    void open() {
        url = newSchema();
        index = PostgresChunkIndex.open(url, PostgresCatalog.Options.defaults(), LOCATION);
    }

    @AfterEach
    void close() {
        index.close();
    }

    private static CatalogUrl newSchema() {
        String schema = "i" + SCHEMAS.incrementAndGet();
        server.execute(database, "CREATE SCHEMA " + schema);
        return CatalogUrl.parse(server.url(database)).with("currentSchema", schema);
    }

    private static ChunkId id(int n) {
        return ChunkId.of(("chunk " + n).getBytes());
    }

    private static String key(int pack) {
        return "prefix/packs/" + pack + ".pack";
    }

    /** Begins a pack and commits {@code ids} into it as records at offsets 16, 116, 216...; returns its id. */
    private int pack(List<ChunkId> ids) {
        int p = index.beginPack(PostgresChunkIndexTest::key);
        List<Map.Entry<ChunkId, ChunkLocation>> entries = new ArrayList<>();
        for (int i = 0; i < ids.size(); i++) entries.add(Map.entry(ids.get(i), new ChunkLocation(p, 16 + 100L * i, 100)));
        index.commitPack(p, 16 + 100L * ids.size(), entries, Map.of());
        return p;
    }

    @Test
    void aPackIsBegunUnsealedAndSealedWithItsEntriesInOneCommit() {
        int p = index.beginPack(PostgresChunkIndexTest::key);
        assertEquals(List.of(new PostgresChunkIndex.Pack(p, key(p), false, -1)), index.packs());
        assertNull(index.find(id(1)));
        ChunkLocation loc = new ChunkLocation(p, 16, 100);
        assertEquals(Set.of(id(1)), index.commitPack(p, 116, List.of(Map.entry(id(1), loc)), Map.of()));
        assertEquals(List.of(new PostgresChunkIndex.Pack(p, key(p), true, 116)), index.packs());
        assertEquals(loc, index.find(id(1)));
        // the same commit again (its first outcome was unknown) changes nothing; another length is refused
        assertEquals(Set.of(id(1)), index.commitPack(p, 116, List.of(Map.entry(id(1), loc)), Map.of()));
        CaskException.Conflict e = assertThrows(CaskException.Conflict.class, () -> index.commitPack(p, 999, List.of(), Map.of()));
        assertTrue(e.getMessage().contains("pack " + p + " is not an unsealed pack of this index (sealed already with 116 bytes, not 999)"), e.getMessage());
        e = assertThrows(CaskException.Conflict.class, () -> index.commitPack(p + 7, 16, List.of(), Map.of()));
        assertTrue(e.getMessage().contains("never begun"), e.getMessage());
        // an id another pack indexed first keeps its place, and is not counted as this pack's
        int q = index.beginPack(PostgresChunkIndexTest::key);
        assertTrue(q > p, "pack ids rise");
        assertEquals(Set.of(id(2)), index.commitPack(q, 216,
                List.of(Map.entry(id(1), new ChunkLocation(q, 16, 100)), Map.entry(id(2), new ChunkLocation(q, 116, 100))), Map.of()));
        assertEquals(loc, index.find(id(1)));
        assertEquals(2, index.count());
    }

    @Test
    void aPackIsAbandonedOnlyOnceTheIndexThatBeganItIsGoneAndASchemaTwoIndexIsMigrated() {
        int mine = index.beginPack(PostgresChunkIndexTest::key);
        PostgresChunkIndex other = PostgresChunkIndex.open(url, PostgresCatalog.Options.defaults(), LOCATION);
        int theirs = other.beginPack(PostgresChunkIndexTest::key);
        assertEquals(List.of(), index.abandonedPacks(), "both writers run");
        other.close(); // its process ended: its connections closed with it
        assertEquals(List.of(new PostgresChunkIndex.Pack(theirs, key(theirs), false, -1)), index.abandonedPacks());
        assertTrue(index.dropAbandonedPack(theirs));
        assertFalse(index.dropAbandonedPack(theirs), "gone already");
        index.commitPack(mine, 16, List.of(), Map.of());
        assertFalse(index.dropAbandonedPack(mine), "a sealed pack is never abandoned");
        // an index of schema 2 (no writer column): migrated on open; its unsealed rows have no writer and are left alone
        int old = index.beginPack(PostgresChunkIndexTest::key);
        index.close();
        String schema = "i" + SCHEMAS.get(); // this test's, made by open()
        server.execute(database, "ALTER TABLE " + schema + ".packs DROP COLUMN writer");
        server.execute(database, "DROP SEQUENCE " + schema + ".pack_writer_ids");
        server.execute(database, "UPDATE " + schema + ".cask_store_schema SET version = 2");
        index = PostgresChunkIndex.open(url, PostgresCatalog.Options.defaults(), LOCATION);
        int next = index.beginPack(PostgresChunkIndexTest::key);
        assertTrue(next > old);
        assertEquals(List.of(), index.abandonedPacks(), "rows without a writer are not known to be abandoned");
    }

    @Test
    void aDedupHitStampsItsEntryAndASweepSparesWhatIsStamped() {
        pack(List.of(id(1), id(2), id(3)));
        assertEquals(0, index.epoch());
        assertEquals(0, index.stampOf(id(1)));
        long g = index.bumpEpoch(); // a gc begins
        assertEquals(1, g);
        // a writer registered after the bump dedups chunk 1: its lookup stamps it with the new epoch
        Map<ChunkId, PostgresChunkIndex.PutLookup> hits = index.lookupForPut(List.of(id(1), id(9)));
        assertEquals(Set.of(id(1)), hits.keySet());
        assertFalse(hits.get(id(1)).damaged());
        assertEquals(g, index.stampOf(id(1)));
        assertEquals(0, index.stampOf(id(2)), "a lookup for a read stamps nothing");
        index.find(id(2));
        assertEquals(0, index.stampOf(id(2)));
        // the sweep (none of them reachable) deletes only what is stamped before its epoch
        assertEquals(Set.of(id(2), id(3)), index.deleteStampedBefore(List.of(id(1), id(2), id(3)), g));
        assertEquals(Set.of(id(1)), Set.copyOf(ids()));
        // a deleted entry is no dedup hit: the put stores the chunk again
        assertTrue(index.lookupForPut(List.of(id(2))).isEmpty());
        // a new entry is stamped with the epoch of its commit
        pack(List.of(id(2)));
        assertEquals(g, index.stampOf(id(2)));
    }

    @Test
    void aDamagedCopyIsNoHitAndAHealMovesTheEntryOnlyFromTheBadCopy() {
        int p = pack(List.of(id(1), id(2)));
        ChunkLocation bad = index.find(id(1));
        index.markDamaged(List.of(Map.entry(id(1), bad)));
        index.markDamaged(List.of(Map.entry(id(1), bad))); // idempotent
        assertTrue(index.lookupForPut(List.of(id(1))).get(id(1)).damaged());
        int q = index.beginPack(PostgresChunkIndexTest::key);
        ChunkLocation good = new ChunkLocation(q, 16, 100);
        assertEquals(Set.of(id(1)), index.commitPack(q, 116, List.of(), Map.of(id(1), new ChunkLocation[] {bad, good})));
        assertEquals(good, index.find(id(1)));
        assertFalse(index.lookupForPut(List.of(id(1))).get(id(1)).damaged(), "the mark went with the heal");
        // a heal racing another node's, which moved the entry first: that copy stays
        int r = index.beginPack(PostgresChunkIndexTest::key);
        assertEquals(Set.of(), index.commitPack(r, 116, List.of(), Map.of(id(1), new ChunkLocation[] {bad, new ChunkLocation(r, 16, 100)})));
        assertEquals(good, index.find(id(1)));
        assertTrue(p < q && q < r);
    }

    @Test
    void theIndexSharesASchemaWithTheCatalogInEitherOrderAndRefusesAForeignOne() {
        // index first (this test's), then the catalog in the same schema
        try (PostgresCatalog catalog = PostgresCatalog.open(url, PostgresCatalog.Options.defaults(), Clock.systemUTC())) {
            catalog.createImage("vm", new NewVersion("v1", 0, new byte[0]), null);
            pack(List.of(id(1)));
            assertEquals(1, catalog.listImages("").size());
            assertEquals(1, index.count());
        }
        // catalog first, then the index
        CatalogUrl other = newSchema();
        try (PostgresCatalog catalog = PostgresCatalog.open(other, PostgresCatalog.Options.defaults(), Clock.systemUTC());
             PostgresChunkIndex second = PostgresChunkIndex.open(other, PostgresCatalog.Options.defaults(), LOCATION)) {
            assertEquals(0, second.count());
            assertEquals(0, catalog.listImages("").size());
        }
        // a schema with someone else's tables
        CatalogUrl foreign = newSchema();
        server.execute(database, "CREATE TABLE " + foreign.parameters().get("currentSchema") + ".accounts (id int)");
        CaskException.InvalidInput e = assertThrows(CaskException.InvalidInput.class,
                () -> PostgresChunkIndex.open(foreign, PostgresCatalog.Options.defaults(), LOCATION));
        assertTrue(e.getMessage().contains("is not cask's (no cask_store_schema or cask_schema, but it has tables accounts)"), e.getMessage());
        assertFalse(e.getMessage().contains(server.password()));
        // and an index belongs to the store it was made for
        CaskException.Conflict c = assertThrows(CaskException.Conflict.class,
                () -> PostgresChunkIndex.open(url, PostgresCatalog.Options.defaults(), "s3://other/prefix"));
        assertTrue(c.getMessage().contains("indexes the packs of store " + LOCATION + ", not s3://other/prefix"), c.getMessage());
    }

    private List<ChunkId> ids() {
        List<ChunkId> out = new ArrayList<>();
        index.forEachId(out::add);
        return out;
    }
}
