package dev.cask.cli;

import dev.cask.common.CaskException;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Which store the global options name, and the rules checked before anything opens. */
class StoreChoiceTest {
    private static final Path DEFAULT = Path.of("/home/u/.local/share/cask");
    private static final String PG = "postgresql://cask:pw@db.example:5432/cask";

    @Test
    void noStoreIsTheLocalDefaultAndAPathIsALocalStore() {
        assertEquals(new StoreChoice.Local(DEFAULT), StoreChoice.of(null, null, null, Map.of(), DEFAULT));
        StoreChoice c = StoreChoice.of("/srv/cask", null, null, Map.of(), DEFAULT);
        assertEquals(new StoreChoice.Local(Path.of("/srv/cask")), c);
        assertEquals(Path.of("/srv/cask"), c.controlDir());
    }

    @Test
    void aStoreOnS3NeedsAPostgresCatalogAndHasAStateDirectory() {
        CaskException.Usage e = assertThrows(CaskException.Usage.class, () -> StoreChoice.of("s3://bucket/p", null, null, Map.of(), DEFAULT));
        assertTrue(e.getMessage().startsWith("--store s3://bucket/p: a store on S3 needs --catalog postgresql://"), e.getMessage());
        StoreChoice.Shared s = assertInstanceOf(StoreChoice.Shared.class,
                StoreChoice.of("s3://bucket/team/a/", PG, Path.of("/var/tmp/st"), Map.of(), DEFAULT));
        assertEquals("s3://bucket/team/a", s.store()); // normalised: the trailing slash goes
        assertEquals(Path.of("/var/tmp/st"), s.state());
        assertEquals(s.state(), s.controlDir());
        assertFalse(s.toString().contains(":pw@"), s.toString());
        // a bad catalog URL or bucket is a usage error before anything connects
        assertThrows(CaskException.Usage.class, () -> StoreChoice.of("s3://bucket/p", "mysql://h/db", null, Map.of(), DEFAULT));
        assertThrows(CaskException.Usage.class, () -> StoreChoice.of("s3://B_A_D/p", PG, null, Map.of(), DEFAULT));
    }

    @Test
    void theStateDirectoryDefaultsToCaskStateElseOnePerStore() {
        assertEquals(Path.of("/srv/state"),
                ((StoreChoice.Shared) StoreChoice.of("s3://bucket/p", PG, null, Map.of("CASK_STATE", "/srv/state"), DEFAULT)).state());
        Path state = ((StoreChoice.Shared) StoreChoice.of("s3://bucket/team/a", PG, null, Map.of("XDG_STATE_HOME", "/x/state"), DEFAULT)).state();
        Path expected = "root".equals(System.getProperty("user.name")) ? Path.of("/var/lib/cask/bucket+team+a") : Path.of("/x/state/cask/bucket+team+a");
        assertEquals(expected, state);
    }

    @Test
    void aCatalogOrStateWithALocalStoreAndUnknownSchemesAreRefused() {
        CaskException.Usage c = assertThrows(CaskException.Usage.class, () -> StoreChoice.of("/srv/cask", PG, null, Map.of(), DEFAULT));
        assertTrue(c.getMessage().startsWith("--catalog: a local store keeps its catalog in its directory"), c.getMessage());
        assertThrows(CaskException.Usage.class, () -> StoreChoice.of(null, null, Path.of("/s"), Map.of(), DEFAULT));
        CaskException.Usage u = assertThrows(CaskException.Usage.class, () -> StoreChoice.of("gs://bucket", PG, null, Map.of(), DEFAULT));
        assertTrue(u.getMessage().contains("unknown kind of store"), u.getMessage());
    }
}
