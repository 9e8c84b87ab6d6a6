package dev.cask.image;

import dev.cask.local.LocalImages;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.catalog.VersionKind;
import dev.cask.catalog.sqlite.SqliteCatalog;
import dev.cask.common.CaskException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Removing versions: one, and by policy, through a real store; version times set with a fake catalog clock. */
class PrunerTest {
    private static final Instant NOW = Instant.parse("2030-01-10T12:00:00Z");
    @TempDir
    Path dir;
    private Images images;

    @BeforeEach
    void open() {
        images = LocalImages.open(dir);
        images.create("team/a", 1 << 20, 4096);
    }

    @AfterEach
    void close() {
        images.close();
    }

    /** Adds automatic versions of team/a committed at the given times (its head's content). */
    private void autoVersionsAt(String... times) {
        images.close();
        Instant[] at = new Instant[1];
        try (SqliteCatalog c = SqliteCatalog.open(dir.resolve(Images.CATALOG_FILE), new Clock() {
            @Override
            public java.time.ZoneId getZone() {
                return ZoneOffset.UTC;
            }

            @Override
            public Clock withZone(java.time.ZoneId zone) {
                return this;
            }

            @Override
            public Instant instant() {
                return at[0];
            }
        })) {
            for (String t : times) {
                at[0] = Instant.parse(t);
                int head = c.image("team/a").head();
                Version h = c.version("team/a", head);
                c.commit("team/a", head, new NewVersion("automatic checkpoint", h.size(), h.content(), VersionKind.AUTO), h.key());
            }
        }
        images = LocalImages.open(dir);
    }

    private Pruner pruner(Pruner.InUse servers) {
        return new Pruner(images, servers, Clock.fixed(NOW, ZoneOffset.UTC), ZoneOffset.UTC);
    }

    private List<Integer> numbers() {
        return images.log("team/a").stream().map(Version::number).toList();
    }

    @Test
    void neverPrunesTheHeadProtectedLabelledUserVersionsOrACloneOrigin() {
        autoVersionsAt("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z", "2030-01-03T00:00:00Z", "2030-01-04T00:00:00Z",
                "2030-01-05T00:00:00Z", "2030-01-06T00:00:00Z");
        images.catalog().setProtected("team/a", 3, true);
        images.catalog().tag("team/a", "gold", 4);
        images.catalog().createImage("team/b", new NewVersion("clone", 1 << 20, images.catalog().version("team/a", 5).content()),
                new VersionKey("team/a", 5));
        Pruner.Report r = pruner(Pruner.InUse.NONE).prune("team/a", RetentionPolicy.parse("keep-last=1"), false, false);
        Pruner.ImageResult a = r.images().getFirst();
        assertEquals(List.of(2, 6), a.removed().stream().map(Version::number).toList());
        assertEquals(Map.of(1, "user version", 3, "protected", 4, "labelled", 5, "origin of clone 'team/b'", 7, "last"), a.kept());
        assertEquals(List.of(1, 3, 4, 5, 7), numbers());
    }

    @Test
    void dryRunChangesNothingAndCountsTheBytesOnlyThePrunedVersionsHold() {
        Random rnd = new Random(5);
        byte[] block = new byte[4096];
        try (dev.cask.volume.Volume v = images.openVolume("team/a")) {
            for (int i = 0; i < 3; i++) {
                rnd.nextBytes(block);
                v.write(0, block, 0, block.length, false);
                assertEquals(VersionKind.AUTO, v.checkpoint("automatic checkpoint").kind());
            }
        }
        Pruner p = new Pruner(images, Pruner.InUse.NONE, Clock.systemUTC(), ZoneOffset.UTC);
        Pruner.Report dry = p.prune("team", RetentionPolicy.parse("keep-last=1"), true, true);
        assertEquals(List.of(2, 3), dry.images().getFirst().removed().stream().map(Version::number).toList());
        assertEquals(List.of(1, 2, 3, 4), numbers(), "a dry run changes nothing");
        Usage.Report perVersion = new Usage(images).versions("team/a");
        long v2 = perVersion.rows().get(1).exclusiveBytes();
        long v3 = perVersion.rows().get(2).exclusiveBytes();
        assertTrue(v2 >= 4096 && v3 >= 4096, perVersion.toString());
        assertEquals(v2 + v3, dry.freedBytes(), "the two random blocks (and their pointer chunks) only 2 and 3 hold");
        Pruner.Report real = p.prune("team", RetentionPolicy.parse("keep-last=1"), false, true);
        assertEquals(2, real.removedCount());
        assertEquals(List.of(1, 4), numbers());
        assertEquals(new VersionKey("team/a", 1), images.catalog().version("team/a", 4).parent());
    }

    @Test
    void versionsAnOpenVolumeOrARunningServerNeedAreKept() {
        autoVersionsAt("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z", "2030-01-03T00:00:00Z");
        try (dev.cask.volume.Volume v = images.openVolume("team/a")) {
            assertEquals(4, v.baseVersion().number());
            byte[] block = new byte[4096];
            block[0] = 1;
            v.write(0, block, 0, block.length, true); // the journal on disk names version 4 as its base
            // another writer moves the head under the open volume (as only an old cask could)
            Version h = images.catalog().version("team/a", 4);
            images.catalog().commit("team/a", 4, new NewVersion("x", h.size(), h.content(), VersionKind.AUTO), h.key());
            Pruner.Report r = pruner(image -> Set.of(2)).prune("team/a", RetentionPolicy.parse("keep-last=1"), false, false);
            Pruner.ImageResult a = r.images().getFirst();
            assertEquals(List.of(3), a.removed().stream().map(Version::number).toList());
            assertTrue(a.kept().get(4).startsWith("in use"), a.kept().toString());
            assertTrue(a.kept().get(2).startsWith("in use"), a.kept().toString());
            assertEquals(List.of(1, 2, 4, 5), numbers());
            CaskException.Conflict e = assertThrows(CaskException.Conflict.class, () -> pruner(Pruner.InUse.NONE).remove("team/a", 4));
            assertTrue(e.getMessage().contains("team/a@4") && e.getMessage().contains("in use"), e.getMessage());
        } catch (CaskException.Conflict expected) {
            // closing checkpoints onto version 4, whose head moved: refused, as it should be
        }
    }

    /**
     * The plan is made before the removal's transaction: a version that becomes a user version (a
     * snapshot of unchanged content) or gets a label in between must stay. The servers' in-use
     * question, asked while planning, is where the race is made.
     */
    @Test
    void aVersionMadeAUserVersionOrLabelledWhilePruningPlansIsKept() {
        autoVersionsAt("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z", "2030-01-03T00:00:00Z", "2030-01-04T00:00:00Z");
        boolean[] raced = {false};
        Pruner.InUse racing = image -> {
            if (!raced[0]) { // the first question comes from the plan, outside the delete's transaction
                raced[0] = true;
                images.catalog().makeUserVersion("team/a", 2);
                images.catalog().tag("team/a", "gold", 3);
            }
            return Set.of();
        };
        Pruner.Report r = pruner(racing).prune("team/a", RetentionPolicy.parse("keep-last=1"), false, false);
        Pruner.ImageResult a = r.images().getFirst();
        assertTrue(raced[0]);
        assertEquals(List.of(4), a.removed().stream().map(Version::number).toList());
        assertEquals("user version", a.kept().get(2));
        assertEquals("labelled", a.kept().get(3));
        assertEquals(List.of(1, 2, 3, 5), numbers());
    }

    @Test
    void removingOneVersionRefusesTheHeadAndProtectedOnes() {
        autoVersionsAt("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z");
        Pruner p = pruner(Pruner.InUse.NONE);
        CaskException.Conflict head = assertThrows(CaskException.Conflict.class, () -> p.remove("team/a", 3));
        assertTrue(head.getMessage().contains("team/a@3") && head.getMessage().contains("the head"), head.getMessage());
        images.catalog().setProtected("team/a", 2, true);
        CaskException.Conflict prot = assertThrows(CaskException.Conflict.class, () -> p.remove("team/a", 2));
        assertTrue(prot.getMessage().contains("unprotect"), prot.getMessage());
        assertThrows(CaskException.NotFound.class, () -> p.remove("team/a", 9));
        assertEquals(1, p.remove("team/a", 1).number());
        assertEquals(List.of(2, 3), numbers());
    }

    @Test
    void theLongestStoredPrefixWinsElseTheDefault() {
        var stored = new TreeMap<String, String>(Map.of("team", "keep-last=1", "team/web", "keep-daily=3"));
        assertEquals("team/web", Pruner.policyFor("team/web/vm-1", stored).getKey());
        assertEquals(3, Pruner.policyFor("team/web/vm-1", stored).getValue().daily());
        assertEquals("team", Pruner.policyFor("team/webby", stored).getKey());
        assertEquals("default", Pruner.policyFor("teamx", stored).getKey());
        assertEquals(RetentionPolicy.DEFAULT, Pruner.policyFor("other/a", stored).getValue());
    }

    @Test
    void theDefaultPolicyThinsOnlyAutomaticVersions() {
        // hourly versions for 3 days before NOW; the default keeps the last 2 hours and then 48 hourly ones
        String[] times = new String[72];
        for (int h = 0; h < 72; h++) times[h] = NOW.minusSeconds(3600L * (72 - h) - 60).toString();
        autoVersionsAt(times);
        Pruner.Report r = pruner(Pruner.InUse.NONE).prune("team", null, false, false);
        Pruner.ImageResult a = r.images().getFirst();
        assertEquals("default", a.policySource());
        // versions 2..73 at NOW-71h59m .. NOW-59m (Jan 7 12:01 .. Jan 10 11:01): within 2h: the last 2 (72, 73); hourly:
        // the 48 before them (24..71, from Jan 8 10:01); daily: Jan 7 is not covered yet, its newest (13, at 23:01) stays
        assertEquals(21, a.removed().size());
        assertEquals("daily", a.kept().get(13));
        assertEquals("hourly", a.kept().get(24));
        assertEquals("within", a.kept().get(72));
        assertEquals(2, a.removed().getFirst().number());
        assertEquals(23, a.removed().getLast().number());
        assertEquals("user version", a.kept().get(1));
    }
}
