package dev.cask.catalog;

import dev.cask.common.CaskException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The contract every {@link Catalog} must keep, one test (or a few) per clause of its Javadoc.
 * An implementation's test extends this class and says how to make a catalog; everything else
 * is shared, so SQLite and PostgreSQL are held to exactly the same rules.
 *
 * <p>Each test gets a fresh, empty catalog from {@link #newCatalog} on its own temporary
 * directory. {@link #reopen} must give another handle on the same catalog: it stands in for a
 * restart (after the first handle is closed) and for a second process (while it is open).
 *
 * <p>Beyond the Javadoc the suite also requires what callers rely on: version times strictly
 * increase within an image (so {@code versionAt(v.time())} is {@code v}, even for commits in the
 * same millisecond), names are validated with {@link Names#check}, and listings sort by
 * {@link String#compareTo}.
 */
public abstract class CatalogContract {

    /** A new, empty catalog keeping whatever files it has in {@code dir}. */
    protected abstract Catalog newCatalog(Path dir);

    /** Another handle on the catalog that {@link #newCatalog} made for {@code dir}; by default {@code newCatalog(dir)}. */
    protected Catalog reopen(Path dir) {
        return newCatalog(dir);
    }

    @TempDir
    protected Path dir;

    /** The catalog under test. */
    protected Catalog catalog;

    private final List<Catalog> opened = new ArrayList<>();

    @BeforeEach
    void openCatalog() {
        catalog = track(newCatalog(dir));
    }

    @AfterEach
    void closeCatalogs() {
        for (Catalog c : opened) c.close();
    }

    /** Closes {@code c} at the end of the test (closing twice is allowed by the contract). */
    protected Catalog track(Catalog c) {
        opened.add(c);
        return c;
    }

    // ---- helpers ----

    protected static NewVersion nv(String message) {
        return new NewVersion(message, 1L << 30, message.getBytes(StandardCharsets.UTF_8));
    }

    protected static void assertVersion(Version expected, Version actual) {
        assertEquals(expected.image(), actual.image(), "image");
        assertEquals(expected.number(), actual.number(), "number of " + expected.key());
        assertEquals(expected.parent(), actual.parent(), "parent of " + expected.key());
        assertEquals(expected.time(), actual.time(), "time of " + expected.key());
        assertEquals(expected.message(), actual.message(), "message of " + expected.key());
        assertEquals(expected.size(), actual.size(), "size of " + expected.key());
        assertArrayEquals(expected.content(), actual.content(), "content of " + expected.key());
        assertEquals(expected.kind(), actual.kind(), "kind of " + expected.key());
        assertEquals(expected.isProtected(), actual.isProtected(), "protection of " + expected.key());
    }

    protected static void assertVersions(List<Version> expected, List<Version> actual) {
        assertEquals(expected.size(), actual.size(), "number of versions");
        for (int i = 0; i < expected.size(); i++) assertVersion(expected.get(i), actual.get(i));
    }

    private static List<String> names(List<Image> images) {
        return images.stream().map(Image::name).toList();
    }

    /** Makes image {@code name} with {@code count} versions (1 created + count-1 commits); returns them oldest first. */
    protected List<Version> imageWithVersions(String name, int count) {
        List<Version> vs = new ArrayList<>();
        vs.add(catalog.createImage(name, nv(name + " v1"), null));
        for (int n = 2; n <= count; n++) {
            vs.add(catalog.commit(name, n - 1, nv(name + " v" + n), new VersionKey(name, n - 1)));
        }
        return vs;
    }

    // ---- create and find ----

    @Test
    public void createMakesVersionOneTheHead() {
        Instant before = Instant.now();
        byte[] content = {1, 2, 3};
        Version v1 = catalog.createImage("team/web/vm-1", new NewVersion("import", 10L << 30, content), null);
        assertEquals("team/web/vm-1", v1.image());
        assertEquals(1, v1.number());
        assertNull(v1.parent());
        assertEquals("import", v1.message());
        assertEquals(10L << 30, v1.size());
        assertArrayEquals(content, v1.content());
        assertEquals(new VersionKey("team/web/vm-1", 1), v1.key());
        assertFalse(v1.time().isBefore(before.minusSeconds(1)), "version time " + v1.time() + " is before the call " + before);

        Image image = catalog.findImage("team/web/vm-1").orElseThrow();
        assertEquals("team/web/vm-1", image.name());
        assertEquals(1, image.head());
        assertNull(image.origin());
        assertNotNull(image.created());
        assertEquals(image, catalog.image("team/web/vm-1"));
        assertVersions(List.of(v1), catalog.versions("team/web/vm-1"));
        assertVersion(v1, catalog.version("team/web/vm-1", 1));
    }

    @Test
    public void createKeepsItsOwnCopyOfTheContent() {
        byte[] content = {7, 7, 7};
        catalog.createImage("a", new NewVersion("m", 3, content), null);
        content[0] = 0;
        assertArrayEquals(new byte[] {7, 7, 7}, catalog.version("a", 1).content());
    }

    @Test
    public void createWithTakenNameIsConflictAndChangesNothing() {
        Version v1 = catalog.createImage("a/b", nv("first"), null);
        Image before = catalog.image("a/b");
        CaskException.Conflict e = assertThrows(CaskException.Conflict.class,
                () -> catalog.createImage("a/b", nv("second"), null));
        assertTrue(e.getMessage().contains("'a/b'"), e.getMessage());
        assertEquals(before, catalog.image("a/b"));
        assertVersions(List.of(v1), catalog.versions("a/b"));
        assertEquals(List.of("a/b"), names(catalog.listImages("")));
    }

    @Test
    public void concurrentCreatesOfOneNameExactlyOneWins() throws Exception {
        int threads = 8;
        CyclicBarrier start = new CyclicBarrier(threads);
        AtomicInteger wins = new AtomicInteger();
        AtomicInteger conflicts = new AtomicInteger();
        runAll(threads, t -> {
            start.await();
            try {
                catalog.createImage("race", nv("by " + t), null);
                wins.incrementAndGet();
            } catch (CaskException.Conflict e) {
                conflicts.incrementAndGet();
            }
        });
        assertEquals(1, wins.get(), "winners");
        assertEquals(threads - 1, conflicts.get(), "conflicts");
        assertEquals(1, catalog.versions("race").size());
        assertEquals(1, catalog.image("race").head());
    }

    @Test
    public void invalidNamesAreRefused() {
        List<String> bad = new ArrayList<>(List.of("", "/a", "a/", "a//b", "a b", "-a", ".a", "a/.b", "a/../b", "a@1",
                "a\\b", "ä", "a\nb", "x".repeat(65), "a/" + "x".repeat(65)));
        bad.add(("abcdefgh/").repeat(28) + "abcd"); // 256 characters
        for (String name : bad) {
            assertThrows(CaskException.InvalidInput.class, () -> catalog.createImage(name, nv("m"), null), "'" + name + "'");
        }
        assertThrows(CaskException.InvalidInput.class, () -> catalog.createImage(null, nv("m"), null));
        assertEquals(List.of(), catalog.listImages(""));
        catalog.createImage("ok", nv("m"), null);
        assertThrows(CaskException.InvalidInput.class, () -> catalog.createImage("c", nv("m"), new VersionKey("o k", 1)));
        assertThrows(CaskException.InvalidInput.class, () -> catalog.commit("ok", 1, nv("m"), new VersionKey("ok/", 1)));
        assertEquals(List.of("ok"), names(catalog.listImages("")));
        assertEquals(1, catalog.image("ok").head());
    }

    @Test
    public void longestValidNamesAreAccepted() {
        String segment = "A".repeat(64);
        String longest = (("abcdefgh/").repeat(28) + "abc"); // 255 characters
        assertEquals(255, longest.length());
        for (String name : List.of(segment, longest, "a", "0", "Team_1/web.2/vm-3")) {
            catalog.createImage(name, nv("m"), null);
            assertEquals(name, catalog.image(name).name());
        }
    }

    // ---- commit: compare-and-swap ----

    @Test
    public void commitOnTheHeadMovesIt() {
        Version v1 = catalog.createImage("a", nv("v1"), null);
        Version v2 = catalog.commit("a", 1, new NewVersion("v2", 42, new byte[] {9}), v1.key());
        assertEquals(new VersionKey("a", 2), v2.key());
        assertEquals(v1.key(), v2.parent());
        assertEquals("v2", v2.message());
        assertEquals(42, v2.size());
        assertArrayEquals(new byte[] {9}, v2.content());
        assertTrue(v2.time().isAfter(v1.time()), v2.time() + " after " + v1.time());
        assertEquals(2, catalog.image("a").head());
        assertVersions(List.of(v1, v2), catalog.versions("a"));
    }

    @Test
    public void commitOnAStaleHeadIsConflictAndChangesNothing() {
        List<Version> vs = imageWithVersions("a/b", 3);
        Image before = catalog.image("a/b");
        for (int stale : new int[] {1, 2, 4, 100}) {
            CaskException.Conflict e = assertThrows(CaskException.Conflict.class,
                    () -> catalog.commit("a/b", stale, nv("lost"), new VersionKey("a/b", 3)), "expected head " + stale);
            assertTrue(e.getMessage().contains("'a/b'"), e.getMessage());
        }
        assertEquals(before, catalog.image("a/b"));
        assertVersions(vs, catalog.versions("a/b"));
        assertEquals(3, catalog.allVersions().size());
        // and the right head still works
        assertEquals(4, catalog.commit("a/b", 3, nv("v4"), new VersionKey("a/b", 3)).number());
    }

    @Test
    public void commitWithAnUnknownParentIsNotFoundAndChangesNothing() {
        List<Version> vs = imageWithVersions("a", 2);
        assertThrows(CaskException.NotFound.class, () -> catalog.commit("a", 2, nv("x"), new VersionKey("a", 3)));
        assertThrows(CaskException.NotFound.class, () -> catalog.commit("a", 2, nv("x"), new VersionKey("nope", 1)));
        assertEquals(2, catalog.image("a").head());
        assertVersions(vs, catalog.versions("a"));
    }

    @Test
    public void commitMayNameAParentInAnotherImage() {
        Version other = catalog.createImage("other", nv("o"), null);
        catalog.createImage("a", nv("a1"), null);
        Version v2 = catalog.commit("a", 1, nv("rollback to other"), other.key());
        assertEquals(other.key(), v2.parent());
        assertEquals(other.key(), catalog.version("a", 2).parent());
    }

    @Test
    public void concurrentCommitsOnOneHeadExactlyOneWins() throws Exception {
        catalog.createImage("race", nv("v1"), null);
        int threads = 8;
        int rounds = 10;
        for (int round = 0; round < rounds; round++) {
            int head = catalog.image("race").head();
            assertEquals(round + 1, head);
            CyclicBarrier start = new CyclicBarrier(threads);
            List<Integer> winners = new CopyOnWriteArrayList<>();
            AtomicInteger conflicts = new AtomicInteger();
            runAll(threads, t -> {
                start.await();
                try {
                    catalog.commit("race", head, nv("thread " + t), new VersionKey("race", head));
                    winners.add(t);
                } catch (CaskException.Conflict e) {
                    conflicts.incrementAndGet();
                }
            });
            assertEquals(1, winners.size(), "round " + round + " winners " + winners);
            assertEquals(threads - 1, conflicts.get(), "round " + round + " conflicts");
            assertEquals(head + 1, catalog.image("race").head());
            assertEquals("thread " + winners.getFirst(), catalog.version("race", head + 1).message());
        }
        assertEquals(rounds + 1, catalog.versions("race").size());
    }

    @Test
    public void concurrentCommitsThroughTwoHandlesExactlyOneWins() throws Exception {
        Catalog other = track(reopen(dir));
        catalog.createImage("race", nv("v1"), null);
        assertEquals(1, other.image("race").head());
        int threads = 6;
        for (int round = 0; round < 8; round++) {
            int head = other.image("race").head();
            CyclicBarrier start = new CyclicBarrier(threads);
            AtomicInteger wins = new AtomicInteger();
            AtomicInteger conflicts = new AtomicInteger();
            runAll(threads, t -> {
                Catalog mine = t % 2 == 0 ? catalog : other;
                start.await();
                try {
                    mine.commit("race", head, nv("thread " + t), new VersionKey("race", head));
                    wins.incrementAndGet();
                } catch (CaskException.Conflict e) {
                    conflicts.incrementAndGet();
                }
            });
            assertEquals(1, wins.get(), "round " + round + " winners");
            assertEquals(threads - 1, conflicts.get(), "round " + round + " conflicts");
            assertEquals(head + 1, catalog.image("race").head());
            assertEquals(head + 1, other.image("race").head());
        }
        assertVersions(catalog.versions("race"), other.versions("race"));
    }

    @Test
    public void commitsWithRetryFromManyThreadsLoseNothing() throws Exception {
        catalog.createImage("busy", nv("v1"), null);
        int threads = 4;
        int perThread = 15;
        runAll(threads, t -> {
            for (int done = 0; done < perThread; ) {
                int head = catalog.image("busy").head();
                try {
                    catalog.commit("busy", head, nv("t" + t + " #" + done), new VersionKey("busy", head));
                    done++;
                } catch (CaskException.Conflict retry) {
                    // someone else moved the head: read it again
                }
            }
        });
        List<Version> vs = catalog.versions("busy");
        assertEquals(1 + threads * perThread, vs.size());
        Set<String> messages = new HashSet<>();
        for (int i = 0; i < vs.size(); i++) {
            assertEquals(i + 1, vs.get(i).number());
            if (i > 0) assertEquals(new VersionKey("busy", i), vs.get(i).parent(), "parent of version " + (i + 1));
            assertTrue(messages.add(vs.get(i).message()), "duplicate " + vs.get(i).message());
        }
    }

    // ---- versions and time ----

    @Test
    public void versionsAreNumberedOneToNOldestFirstWithIncreasingTimes() {
        List<Version> made = imageWithVersions("a", 12);
        List<Version> vs = catalog.versions("a");
        assertVersions(made, vs);
        for (int i = 0; i < vs.size(); i++) {
            assertEquals(i + 1, vs.get(i).number());
            assertEquals("a v" + (i + 1), vs.get(i).message());
            if (i > 0) assertTrue(vs.get(i).time().isAfter(vs.get(i - 1).time()),
                    "version " + (i + 1) + " at " + vs.get(i).time() + " not after " + vs.get(i - 1).time());
        }
        assertEquals(12, catalog.image("a").head());
    }

    @Test
    public void versionOfAnUnknownNumberIsNotFoundNamingImageAndNumber() {
        imageWithVersions("a/b", 3);
        for (int n : new int[] {0, 4, 7, -1}) {
            CaskException.NotFound e = assertThrows(CaskException.NotFound.class, () -> catalog.version("a/b", n));
            assertTrue(e.getMessage().contains("'a/b'") && e.getMessage().contains(String.valueOf(n)), e.getMessage());
        }
    }

    @Test
    public void versionAtPicksTheNewestAtOrBefore() throws Exception {
        Version v1 = catalog.createImage("a", nv("v1"), null);
        Thread.sleep(5);
        Version v2 = catalog.commit("a", 1, nv("v2"), v1.key());
        Thread.sleep(5);
        Version v3 = catalog.commit("a", 2, nv("v3"), v2.key());

        assertVersion(v1, catalog.versionAt("a", v1.time()));                 // equal
        assertVersion(v1, catalog.versionAt("a", v1.time().plusNanos(1)));    // just after
        assertVersion(v1, catalog.versionAt("a", v2.time().minusNanos(1)));   // just before the next
        assertVersion(v2, catalog.versionAt("a", v2.time()));
        assertVersion(v2, catalog.versionAt("a", midpoint(v2.time(), v3.time())));
        assertVersion(v3, catalog.versionAt("a", v3.time()));
        assertVersion(v3, catalog.versionAt("a", v3.time().plusSeconds(3600)));
        assertVersion(v3, catalog.versionAt("a", Instant.now().plusSeconds(86_400L * 365 * 100)));

        Instant early = v1.time().minusNanos(1);
        CaskException.NotFound e = assertThrows(CaskException.NotFound.class, () -> catalog.versionAt("a", early));
        assertTrue(e.getMessage().contains("'a'") && e.getMessage().contains(early.toString()), e.getMessage());
        assertThrows(CaskException.NotFound.class, () -> catalog.versionAt("a", Instant.EPOCH));
    }

    @Test
    public void versionAtFindsEachOfManyQuickCommits() {
        List<Version> vs = imageWithVersions("quick", 40); // many land in the same millisecond
        for (Version v : vs) {
            assertVersion(v, catalog.versionAt("quick", v.time()));
        }
        for (int i = 1; i < vs.size(); i++) {
            assertTrue(vs.get(i).time().isAfter(vs.get(i - 1).time()), "time of version " + (i + 1));
            assertVersion(vs.get(i - 1), catalog.versionAt("quick", vs.get(i).time().minusNanos(1)));
        }
    }

    private static Instant midpoint(Instant a, Instant b) {
        long nanos = java.time.Duration.between(a, b).toNanos();
        return a.plusNanos(nanos / 2);
    }

    // ---- clones and delete ----

    @Test
    public void cloneRecordsItsOrigin() {
        List<Version> base = imageWithVersions("base", 3);
        Version c1 = catalog.createImage("clone", new NewVersion("clone of base@2", base.get(1).size(), base.get(1).content()),
                base.get(1).key());
        assertEquals(base.get(1).key(), c1.parent());
        assertEquals(base.get(1).key(), catalog.image("clone").origin());
        assertEquals(1, catalog.image("clone").head());
        assertEquals(base.get(1).key(), catalog.version("clone", 1).parent());
    }

    @Test
    public void cloneOfAnUnknownVersionIsNotFoundAndCreatesNothing() {
        imageWithVersions("base", 2);
        assertThrows(CaskException.NotFound.class, () -> catalog.createImage("clone", nv("c"), new VersionKey("base", 3)));
        assertThrows(CaskException.NotFound.class, () -> catalog.createImage("clone", nv("c"), new VersionKey("nope", 1)));
        assertEquals(Optional.empty(), catalog.findImage("clone"));
        assertEquals(List.of("base"), names(catalog.listImages("")));
    }

    @Test
    public void deleteImageKeepsClonesWithParentsGone() {
        List<Version> base = imageWithVersions("base", 3);
        byte[] cloneContent = "clone content".getBytes(StandardCharsets.UTF_8);
        Version c1 = catalog.createImage("clone", new NewVersion("clone", 77, cloneContent), base.get(1).key());
        Version c2 = catalog.commit("clone", 1, nv("clone v2"), c1.key());
        Version other = catalog.createImage("other", nv("other"), null);
        Version o2 = catalog.commit("other", 1, nv("other v2 from base"), base.get(2).key());

        catalog.deleteImage("base");

        assertEquals(Optional.empty(), catalog.findImage("base"));
        assertThrows(CaskException.NotFound.class, () -> catalog.versions("base"));
        assertThrows(CaskException.NotFound.class, () -> catalog.version("base", 1));
        List<Version> clone = catalog.versions("clone");
        assertEquals(2, clone.size());
        assertNull(clone.get(0).parent(), "clone@1's parent was deleted");
        assertArrayEquals(cloneContent, clone.get(0).content());
        assertEquals(77, clone.get(0).size());
        assertEquals(c1.time(), clone.get(0).time());
        assertVersion(c2, clone.get(1));
        assertNull(catalog.image("clone").origin());
        assertEquals(2, catalog.image("clone").head());
        assertNull(catalog.version("other", 2).parent());
        assertVersion(other, catalog.version("other", 1));
        assertEquals(o2.content().length, catalog.version("other", 2).content().length);
        for (Version v : catalog.allVersions()) assertTrue(!v.image().equals("base"), "allVersions still has " + v.key());

        // The name is free again, and the new image does not inherit the dead links.
        Version fresh = catalog.createImage("base", nv("new base"), null);
        assertEquals(1, fresh.number());
        assertEquals(1, catalog.versions("base").size());
        assertNull(catalog.version("clone", 1).parent());
        assertNull(catalog.image("clone").origin());
        assertNull(catalog.version("other", 2).parent());
    }

    @Test
    public void deleteImageRemovesOnlyThatImage() {
        imageWithVersions("team", 2);
        List<Version> x = imageWithVersions("team/x", 2);
        catalog.deleteImage("team");
        assertEquals(List.of("team/x"), names(catalog.listImages("")));
        assertVersions(x, catalog.versions("team/x"));
        assertVersions(x, catalog.allVersions());
    }

    @Test
    public void deleteImageRefusesWhatInUseNamesAndAsksInsideItsTransaction() throws Exception {
        List<Version> a = imageWithVersions("a", 2);
        CaskException.Conflict c = assertThrows(CaskException.Conflict.class, () -> catalog.deleteImage("a", () -> Set.of(1)));
        assertTrue(c.getMessage().contains("'a'") && c.getMessage().contains("in use"), c.getMessage());
        assertVersions(a, catalog.versions("a"));
        // a second handle (another process) that confirms a version while the delete runs (inUse
        // still being asked) waits for it, and finds the version gone; a plain read sees its snapshot
        Catalog other = track(reopen(dir));
        java.util.concurrent.CountDownLatch asked = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch answer = new java.util.concurrent.CountDownLatch(1);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<?> delete = pool.submit(() -> {
                catalog.deleteImage("a", () -> {
                    asked.countDown();
                    try {
                        answer.await();
                    } catch (InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                    return Set.of();
                });
                return null;
            });
            assertTrue(asked.await(30, TimeUnit.SECONDS));
            assertVersion(a.get(0), other.version("a", 1));
            Future<Version> confirm = pool.submit(() -> other.confirmVersion("a", 1));
            Thread.sleep(200);
            assertFalse(confirm.isDone(), "confirmVersion waits for the delete's transaction");
            answer.countDown();
            delete.get(30, TimeUnit.SECONDS);
            java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
                    () -> confirm.get(30, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof CaskException.NotFound, e.toString());
        } finally {
            pool.shutdownNow();
        }
        imageWithVersions("b", 2);
        assertVersion(catalog.version("b", 2), catalog.confirmVersion("b", 2));
        assertThrows(CaskException.NotFound.class, () -> catalog.confirmVersion("b", 3));
    }

    // ---- listing ----

    @Test
    public void listImagesMatchesWholeSegmentsAndSortsByName() {
        List<String> all = new ArrayList<>(List.of("team/x/y", "teamster", "team", "team-a", "tea", "team/x", "team.b",
                "Team", "other/team", "team/a", "team0", "team/x-1", "team/X"));
        Collections.shuffle(all, new Random(1));
        for (String n : all) catalog.createImage(n, nv(n), null);

        List<String> sorted = new ArrayList<>(all);
        Collections.sort(sorted);
        assertEquals(sorted, names(catalog.listImages("")));
        assertEquals(sorted, names(catalog.listImages(null)));
        assertEquals(List.of("team", "team/X", "team/a", "team/x", "team/x-1", "team/x/y"), names(catalog.listImages("team")));
        assertEquals(List.of("team/x", "team/x/y"), names(catalog.listImages("team/x")));
        assertEquals(List.of("team/x/y"), names(catalog.listImages("team/x/y")));
        assertEquals(List.of("teamster"), names(catalog.listImages("teamster")));
        assertEquals(List.of("tea"), names(catalog.listImages("tea")));
        assertEquals(List.of(), names(catalog.listImages("te")));
        assertEquals(List.of(), names(catalog.listImages("nothing")));
        assertEquals(List.of("other/team"), names(catalog.listImages("other")));

        Image x = catalog.listImages("team/x").getFirst();
        assertEquals(catalog.image("team/x"), x);
    }

    @Test
    public void listingAnEmptyCatalogIsEmpty() {
        assertEquals(List.of(), catalog.listImages(""));
        assertEquals(List.of(), catalog.allVersions());
    }

    @Test
    public void allVersionsHasEveryVersionOfEveryLiveImage() {
        List<Version> a = imageWithVersions("a", 3);
        List<Version> b = imageWithVersions("b", 2);
        List<Version> gone = imageWithVersions("gone", 2);
        catalog.deleteImage("gone");
        List<Version> expected = new ArrayList<>(a);
        expected.addAll(b);
        List<Version> actual = new ArrayList<>(catalog.allVersions());
        actual.sort((p, q) -> p.image().equals(q.image()) ? Integer.compare(p.number(), q.number()) : p.image().compareTo(q.image()));
        assertVersions(expected, actual);
        assertEquals(2, gone.size());
    }

    // ---- content ----

    @Test
    public void contentAndFieldsRoundTripExactly() {
        byte[] every = new byte[256];
        for (int i = 0; i < 256; i++) every[i] = (byte) i;
        byte[] big = new byte[1 << 20];
        new Random(42).nextBytes(big);
        List<NewVersion> versions = List.of(
                new NewVersion("every byte", 256, every),
                new NewVersion("empty", 0, new byte[0]),
                new NewVersion("zeros", 4096, new byte[4096]),
                new NewVersion("1 MiB random", Long.MAX_VALUE, big),
                new NewVersion("unicode ✓ é 日本 and\nnewlines\tand 'quotes\" ; DROP TABLE images; --", 1, new byte[] {0}),
                new NewVersion("", 512, new byte[] {(byte) 0xff, 0, (byte) 0x80}));
        List<Version> made = new ArrayList<>();
        made.add(catalog.createImage("rt", versions.getFirst(), null));
        for (int i = 1; i < versions.size(); i++) {
            made.add(catalog.commit("rt", i, versions.get(i), made.getLast().key()));
        }
        List<Version> read = catalog.versions("rt");
        assertVersions(made, read);
        for (int i = 0; i < versions.size(); i++) {
            assertArrayEquals(versions.get(i).content(), read.get(i).content(), versions.get(i).message());
            assertEquals(versions.get(i).message(), read.get(i).message());
            assertEquals(versions.get(i).size(), read.get(i).size());
            assertArrayEquals(versions.get(i).content(), catalog.version("rt", i + 1).content());
        }
    }

    @Test
    public void badNewVersionsAreRefused() {
        assertThrows(CaskException.InvalidInput.class, () -> catalog.createImage("a", new NewVersion("m", -1, new byte[0]), null));
        assertThrows(CaskException.InvalidInput.class, () -> catalog.createImage("a", new NewVersion("m", 1, null), null));
        assertThrows(CaskException.InvalidInput.class, () -> catalog.createImage("a", null, null));
        assertEquals(Optional.empty(), catalog.findImage("a"));
        catalog.createImage("a", nv("m"), null);
        assertThrows(CaskException.InvalidInput.class, () -> catalog.commit("a", 1, new NewVersion("m", -5, new byte[0]), null));
        assertEquals(1, catalog.image("a").head());
    }

    // ---- persistence ----

    @Test
    public void everythingSurvivesCloseAndReopen() {
        List<Version> base = imageWithVersions("p/base", 4);
        Version c1 = catalog.createImage("p/clone", nv("clone"), base.get(2).key());
        imageWithVersions("q", 1);
        List<Image> images = catalog.listImages("");
        List<Version> all = catalog.allVersions();
        catalog.close();

        Catalog again = track(reopen(dir));
        assertEquals(images, again.listImages(""));
        assertVersions(all, again.allVersions());
        assertVersions(base, again.versions("p/base"));
        assertVersion(c1, again.version("p/clone", 1));
        assertEquals(base.get(2).key(), again.image("p/clone").origin());
        assertVersion(base.get(1), again.versionAt("p/base", base.get(1).time()));
        // and it keeps working: the head, the CAS, the times
        assertThrows(CaskException.Conflict.class, () -> again.commit("p/base", 3, nv("stale"), null));
        Version v5 = again.commit("p/base", 4, nv("v5"), base.get(3).key());
        assertEquals(5, v5.number());
        assertTrue(v5.time().isAfter(base.get(3).time()));
        assertThrows(CaskException.Conflict.class, () -> again.createImage("q", nv("q"), null));
    }

    @Test
    public void closeIsIdempotent() {
        catalog.createImage("a", nv("a"), null);
        catalog.close();
        catalog.close();
    }

    // ---- unknown names ----

    @Test
    public void unknownImagesAreNotFound() {
        catalog.createImage("known", nv("k"), null);
        assertEquals(Optional.empty(), catalog.findImage("a/b"));
        List<Runnable> calls = List.of(
                () -> catalog.image("a/b"),
                () -> catalog.commit("a/b", 1, nv("m"), null),
                () -> catalog.versions("a/b"),
                () -> catalog.version("a/b", 1),
                () -> catalog.versionAt("a/b", Instant.now()),
                () -> catalog.deleteImage("a/b"),
                () -> catalog.createImage("c", nv("m"), new VersionKey("a/b", 1)),
                () -> catalog.renameImage("a/b", "x"),
                () -> catalog.tag("a/b", "gold", 1),
                () -> catalog.untag("a/b", "gold"),
                () -> catalog.tags("a/b"));
        for (Runnable call : calls) {
            CaskException.NotFound e = assertThrows(CaskException.NotFound.class, call::run);
            assertTrue(e.getMessage().contains("'a/b'"), e.getMessage());
        }
        assertEquals(List.of("known"), names(catalog.listImages("")));
    }

    // ---- rename ----

    @Test
    public void renameKeepsVersionsHeadLabelsAndLinks() {
        List<Version> vs = imageWithVersions("team/base", 3);
        catalog.tag("team/base", "gold", 2);
        catalog.createImage("team/clone", nv("c"), new VersionKey("team/base", 2));
        catalog.createImage("team/other", nv("o1"), null);
        catalog.commit("team/other", 1, nv("o2"), new VersionKey("team/base", 3));
        catalog.renameImage("team/base", "archive/base");
        assertEquals(Optional.empty(), catalog.findImage("team/base"));
        Image img = catalog.image("archive/base");
        assertEquals(3, img.head());
        List<Version> after = catalog.versions("archive/base");
        assertEquals(3, after.size());
        for (int i = 0; i < 3; i++) {
            assertEquals("archive/base", after.get(i).image());
            assertEquals(vs.get(i).message(), after.get(i).message());
            assertArrayEquals(vs.get(i).content(), after.get(i).content());
            assertEquals(vs.get(i).time(), after.get(i).time());
        }
        assertEquals(new VersionKey("archive/base", 1), after.get(1).parent(), "a version's parent in its own image follows");
        assertEquals(java.util.Map.of("gold", 2), catalog.tags("archive/base"));
        assertEquals(new VersionKey("archive/base", 2), catalog.image("team/clone").origin());
        assertEquals(new VersionKey("archive/base", 2), catalog.version("team/clone", 1).parent());
        assertEquals(new VersionKey("archive/base", 3), catalog.version("team/other", 2).parent());
        assertEquals(List.of("archive/base", "team/clone", "team/other"), names(catalog.listImages("")));
        // the old name is free again, for a new image that inherits nothing
        catalog.createImage("team/base", nv("new"), null);
        assertTrue(catalog.tags("team/base").isEmpty());
        assertEquals(1, catalog.versions("team/base").size());
    }

    @Test
    public void renameOntoATakenNameIsConflictAndChangesNothing() {
        imageWithVersions("a", 2);
        imageWithVersions("b", 1);
        CaskException.Conflict e = assertThrows(CaskException.Conflict.class, () -> catalog.renameImage("a", "b"));
        assertTrue(e.getMessage().contains("'b'"), e.getMessage());
        assertEquals(2, catalog.image("a").head());
        assertEquals(1, catalog.image("b").head());
        assertEquals("b v1", catalog.version("b", 1).message());
        assertThrows(CaskException.InvalidInput.class, () -> catalog.renameImage("a", "bad name"));
        assertThrows(CaskException.InvalidInput.class, () -> catalog.renameImage("a", "x@1"));
        assertEquals(List.of("a", "b"), names(catalog.listImages("")));
    }

    @Test
    public void renameSurvivesReopen() {
        imageWithVersions("a", 2);
        catalog.renameImage("a", "z/a");
        catalog.close();
        Catalog again = track(reopen(dir));
        assertEquals(2, again.image("z/a").head());
        assertEquals(Optional.empty(), again.findImage("a"));
    }

    // ---- labels ----

    @Test
    public void labelsNameVersionsPerImage() {
        imageWithVersions("a", 3);
        imageWithVersions("b", 2);
        assertTrue(catalog.tags("a").isEmpty());
        catalog.tag("a", "release-1.0", 1);
        catalog.tag("a", "Gold", 3);
        catalog.tag("a", "gold", 2);
        catalog.tag("b", "gold", 1); // labels are per image
        assertEquals(List.of("Gold", "gold", "release-1.0"), List.copyOf(catalog.tags("a").keySet()), "sorted by label, case matters");
        assertEquals(java.util.Map.of("Gold", 3, "gold", 2, "release-1.0", 1), catalog.tags("a"));
        assertEquals(java.util.Map.of("gold", 1), catalog.tags("b"));
        catalog.untag("a", "gold");
        assertEquals(java.util.Map.of("Gold", 3, "release-1.0", 1), catalog.tags("a"));
        catalog.close();
        Catalog again = track(reopen(dir));
        assertEquals(java.util.Map.of("Gold", 3, "release-1.0", 1), again.tags("a"));
    }

    @Test
    public void aTakenLabelIsConflictAndChangesNothing() {
        imageWithVersions("a", 2);
        catalog.tag("a", "gold", 1);
        CaskException.Conflict e = assertThrows(CaskException.Conflict.class, () -> catalog.tag("a", "gold", 2));
        assertTrue(e.getMessage().contains("gold") && e.getMessage().contains("'a'"), e.getMessage());
        assertEquals(java.util.Map.of("gold", 1), catalog.tags("a"));
    }

    @Test
    public void labelsOfMissingVersionsOrBadLabelsAreRefused() {
        imageWithVersions("a", 2);
        CaskException.NotFound nf = assertThrows(CaskException.NotFound.class, () -> catalog.tag("a", "gold", 3));
        assertTrue(nf.getMessage().contains("'a'") && nf.getMessage().contains("3"), nf.getMessage());
        for (String bad : List.of("", "7", "2026-01-01", "latest", "head", "LATEST", "a b", "a@b", "a/b", "-x", "x".repeat(65))) {
            assertThrows(CaskException.InvalidInput.class, () -> catalog.tag("a", bad, 1), "label '" + bad + "'");
        }
        assertThrows(CaskException.NotFound.class, () -> catalog.untag("a", "gold"));
        assertTrue(catalog.tags("a").isEmpty());
    }

    @Test
    public void labelsGoWithTheirImage() {
        imageWithVersions("a", 2);
        catalog.tag("a", "gold", 2);
        catalog.deleteImage("a");
        imageWithVersions("a", 2);
        assertTrue(catalog.tags("a").isEmpty(), "a new image of the same name inherits no label");
    }

    // ---- kinds, protection, removal of versions, retention policies ----

    private static NewVersion auto(String message) {
        return new NewVersion(message, 1L << 30, message.getBytes(StandardCharsets.UTF_8), VersionKind.AUTO);
    }

    @Test
    public void kindIsRecordedAsCommittedAndUserByDefault() {
        Version v1 = catalog.createImage("a", nv("import"), null);
        Version v2 = catalog.commit("a", 1, auto("automatic checkpoint"), v1.key());
        assertEquals(VersionKind.USER, v1.kind());
        assertEquals(VersionKind.AUTO, v2.kind());
        assertEquals(List.of(VersionKind.USER, VersionKind.AUTO), catalog.versions("a").stream().map(Version::kind).toList());
        assertEquals(VersionKind.AUTO, catalog.version("a", 2).kind());
    }

    @Test
    public void anAutomaticVersionCanBecomeAUserVersion() {
        Version v1 = catalog.createImage("a", nv("import"), null);
        Version v2 = catalog.commit("a", 1, auto("automatic checkpoint"), v1.key());
        catalog.makeUserVersion("a", 2);
        catalog.makeUserVersion("a", 1);
        assertEquals(VersionKind.USER, catalog.version("a", 2).kind());
        assertEquals(VersionKind.USER, catalog.version("a", 1).kind());
        assertArrayEquals(v2.content(), catalog.version("a", 2).content());
        assertThrows(CaskException.NotFound.class, () -> catalog.makeUserVersion("a", 3));
    }

    @Test
    public void protectionIsSetAndClearedAndNothingElseChanges() {
        List<Version> vs = imageWithVersions("a", 2);
        catalog.setProtected("a", 1, true);
        Version p = catalog.version("a", 1);
        assertTrue(p.isProtected());
        assertArrayEquals(vs.get(0).content(), p.content());
        assertEquals(vs.get(0).time(), p.time());
        assertFalse(catalog.version("a", 2).isProtected());
        catalog.setProtected("a", 1, false);
        assertFalse(catalog.version("a", 1).isProtected());
        assertThrows(CaskException.NotFound.class, () -> catalog.setProtected("a", 7, true));
        assertThrows(CaskException.NotFound.class, () -> catalog.setProtected("nope", 1, true));
    }

    @Test
    public void deletingVersionsKeepsTheHeadProtectedInUseAndRelinksTheChain() {
        List<Version> vs = imageWithVersions("a", 6);
        catalog.setProtected("a", 2, true);
        int[] asked = {0};
        VersionDeletion d = catalog.deleteVersions("a", List.of(1, 2, 3, 4, 6, 9), () -> {
            asked[0]++;
            return Set.of(4);
        });
        assertEquals(List.of(1, 3), d.deleted());
        assertEquals("protected", d.kept().get(2));
        assertTrue(d.kept().get(4).startsWith("in use"), d.kept().toString());
        assertEquals("the head", d.kept().get(6));
        assertEquals("no such version", d.kept().get(9));
        assertEquals(1, asked[0], "inUse is asked once");
        List<Version> left = catalog.versions("a");
        assertEquals(List.of(2, 4, 5, 6), left.stream().map(Version::number).toList());
        assertEquals(new VersionKey("a", 2), catalog.version("a", 4).parent(), "4's parent 3 is gone: its parent 2 instead");
        assertNull(catalog.version("a", 2).parent(), "2's parent 1 is gone, and 1 had none");
        assertVersion(vs.get(4), catalog.version("a", 5));
        assertThrows(CaskException.NotFound.class, () -> catalog.version("a", 3));
        Version next = catalog.commit("a", 6, nv("a v7"), new VersionKey("a", 6));
        assertEquals(7, next.number(), "numbers are never reused");
        assertEquals(vs.get(1).time(), catalog.versionAt("a", vs.get(2).time()).time(), "at 3's time, 2 was the head");
    }

    @Test
    public void aCloneOriginIsKeptAndLabelsGoWithTheirVersion() {
        imageWithVersions("a", 3);
        catalog.createImage("b", nv("clone"), new VersionKey("a", 1));
        catalog.tag("a", "gold", 2);
        VersionDeletion d = catalog.deleteVersions("a", List.of(1, 2), Set::of);
        assertEquals(List.of(2), d.deleted());
        assertEquals("origin of clone 'b'", d.kept().get(1));
        assertTrue(catalog.tags("a").isEmpty());
        assertEquals(new VersionKey("a", 1), catalog.image("b").origin());
        assertThrows(CaskException.NotFound.class, () -> catalog.deleteVersions("nope", List.of(1), Set::of));
    }

    @Test
    public void retentionPoliciesAreStoredReplacedAndRemoved() {
        assertTrue(catalog.retentionPolicies().isEmpty());
        catalog.setRetention("team", "keep-daily=7");
        catalog.setRetention("team/web", "keep-last=3");
        catalog.setRetention("team", "keep-daily=8");
        assertEquals(new java.util.TreeMap<>(java.util.Map.of("team", "keep-daily=8", "team/web", "keep-last=3")),
                catalog.retentionPolicies());
        catalog.setRetention("team", null);
        assertEquals(java.util.Map.of("team/web", "keep-last=3"), catalog.retentionPolicies());
        assertThrows(CaskException.NotFound.class, () -> catalog.setRetention("team", null));
        assertThrows(CaskException.InvalidInput.class, () -> catalog.setRetention("bad//name", "keep-last=1"));
    }

    // ---- threads ----

    @FunctionalInterface
    protected interface Task {
        void run(int thread) throws Exception;
    }

    /** Runs {@code task} on {@code threads} threads at once and rethrows the first failure. */
    protected static void runAll(int threads, Task task) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                futures.add(pool.submit(() -> {
                    task.run(id);
                    return null;
                }));
            }
            for (Future<?> f : futures) f.get(120, TimeUnit.SECONDS);
        } finally {
            pool.shutdownNow();
            if (!pool.awaitTermination(30, TimeUnit.SECONDS)) fail("threads did not stop");
        }
    }
}
