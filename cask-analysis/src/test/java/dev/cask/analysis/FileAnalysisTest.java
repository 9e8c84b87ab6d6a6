package dev.cask.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * File-level analysis over generated trees whose numbers are worked out by hand below.
 *
 * <pre>
 * contents: X 1000 bytes, X' 1000 bytes (X with its last byte changed), Y 3000, W 7000,
 *           Z 3 MiB + 5 (larger than the 1 MiB hashing buffer), V 500
 * tree a:   a1 X, a2 X, sub/deeper/a6 X, a7 X', sub/a3 Y, sub/a4 = hard link to sub/a3, a5 Z,
 *           empty1 and sub/empty2 (0 bytes), link (symlink to a1), fifo
 *   files 6 (a1 a2 a6 a7 a3 a5), bytes 4X + Y + Z = 3152733, unique X + X' + Y + Z = 3150733,
 *   duplicate 2000, hard links 1, empty 2, skipped 2
 * tree b:   b1 Y, b2 W, sub/b3 W, b4 Z
 *   files 4, bytes Y + 2W + Z = 3162733, unique Y + W + Z = 3155733, duplicate 7000
 * a and b:  in both Y + Z = 3148733; in either X + X' + Y + Z + W = 3157733
 *   collection bytes 6315466, unique 3157733, duplicate 3157733, share exactly 0.5
 * </pre>
 */
class FileAnalysisTest {
    static final int X = 1000, Y = 3000, W = 7000, Z = 3 * (1 << 20) + 5, V = 500;

    @TempDir
    Path dir;
    Path a, b;
    final List<String> warnings = new ArrayList<>();

    static byte[] content(long seed, int size) {
        byte[] data = new byte[size];
        new Random(seed).nextBytes(data);
        return data;
    }

    static void write(Path p, byte[] data) throws IOException {
        Files.createDirectories(p.getParent());
        Files.write(p, data);
    }

    static void run(Path cwd, String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).directory(cwd.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), String.join(" ", command) + ": " + out);
    }

    @BeforeEach
    void trees() throws Exception {
        byte[] x = content(1, X), y = content(2, Y), w = content(3, W), z = content(4, Z);
        byte[] x2 = x.clone();
        x2[X - 1] ^= 1;
        a = dir.resolve("a");
        write(a.resolve("a1"), x);
        write(a.resolve("a2"), x);
        write(a.resolve("sub/deeper/a6"), x);
        write(a.resolve("a7"), x2);
        write(a.resolve("sub/a3"), y);
        Files.createLink(a.resolve("sub/a4"), a.resolve("sub/a3"));
        write(a.resolve("a5"), z);
        write(a.resolve("empty1"), new byte[0]);
        write(a.resolve("sub/empty2"), new byte[0]);
        Files.createSymbolicLink(a.resolve("link"), Path.of("a1"));
        run(a, "mkfifo", "fifo");
        b = dir.resolve("b");
        write(b.resolve("b1"), y);
        write(b.resolve("b2"), w);
        write(b.resolve("sub/b3"), w);
        write(b.resolve("b4"), z);
    }

    FileReport analyze(Path... roots) {
        return FileAnalysis.analyze(List.of(roots), Progress.NONE, warnings::add);
    }

    static void assertTree(FileReport.Tree t, long files, long bytes, long unique, long hardLinks, long empty,
                           long skipped, long unreadable) {
        assertEquals(files, t.files(), t.name() + " files");
        assertEquals(bytes, t.bytes(), t.name() + " bytes");
        assertEquals(unique, t.uniqueBytes(), t.name() + " unique bytes");
        assertEquals(bytes - unique, t.duplicateBytes(), t.name() + " duplicate bytes");
        assertEquals((double) (bytes - unique) / bytes, t.duplicateShare(), 1e-12, t.name() + " duplicate share");
        assertEquals(hardLinks, t.hardLinks(), t.name() + " hard links");
        assertEquals(empty, t.emptyFiles(), t.name() + " empty files");
        assertEquals(skipped, t.skipped(), t.name() + " skipped");
        assertEquals(unreadable, t.unreadable(), t.name() + " unreadable");
    }

    static void assertTreeA(FileReport.Tree t) {
        assertTree(t, 6, 4L * X + Y + Z, 2L * X + Y + Z, 1, 2, 2, 0);
        assertEquals(3152733, t.bytes());
        assertEquals(3150733, t.uniqueBytes());
        assertEquals(2000, t.duplicateBytes());
    }

    @Test
    void duplicatesInsideOneTreeIgnoringHardLinksEmptyFilesAndSymlinks() {
        FileReport r = analyze(a);
        assertEquals(1, r.trees().size());
        FileReport.Tree t = r.trees().getFirst();
        assertEquals("a", t.name());
        assertEquals(a.toAbsolutePath().toString(), t.source());
        assertTreeA(t);
        assertEquals(2000.0 / 3152733, t.duplicateShare(), 1e-15);
        FileReport.Totals c = r.collection();
        assertEquals(6, c.files());
        assertEquals(3152733, c.bytes());
        assertEquals(3150733, c.uniqueBytes());
        assertEquals(1, c.hardLinks());
        assertEquals(1.0, r.overlap(0, 0));
        assertEquals(List.of(new FileReport.Growth("a", 3150733)), r.growth());
        assertEquals(List.of(), warnings);
    }

    @Test
    void twoTreesSharingFiles() {
        FileReport r = analyze(a, b);
        assertTreeA(r.trees().get(0));
        assertTree(r.trees().get(1), 4, Y + 2L * W + Z, (long) Y + W + Z, 0, 0, 0, 0);
        assertEquals(3162733, r.trees().get(1).bytes());
        assertEquals(3155733, r.trees().get(1).uniqueBytes());

        double overlap = 3148733.0 / 3157733; // (Y + Z) / (X + X' + Y + Z + W)
        assertEquals(overlap, r.overlap(0, 1), 1e-15);
        assertEquals(overlap, r.overlap(1, 0), 1e-15);
        assertEquals(1.0, r.overlap(0, 0));
        assertEquals(1.0, r.overlap(1, 1));

        FileReport.Totals c = r.collection();
        assertEquals(10, c.files());
        assertEquals(6315466, c.bytes());
        assertEquals(3157733, c.uniqueBytes());
        assertEquals(3157733, c.duplicateBytes());
        assertEquals(0.5, c.duplicateShare());
        assertEquals(1, c.hardLinks());

        assertEquals(List.of(new FileReport.Growth("a", 3150733), new FileReport.Growth("b", 3157733)), r.growth());
    }

    @Test
    void orderOfTreesChangesOnlyTheGrowthCurve() {
        FileReport r = analyze(b, a);
        assertEquals(List.of(new FileReport.Growth("b", 3155733), new FileReport.Growth("a", 3157733)), r.growth());
        assertEquals(3148733.0 / 3157733, r.overlap(0, 1), 1e-15);
        assertEquals(0.5, r.collection().duplicateShare());
    }

    @Test
    void aFileHardLinkedFromTwoTreesCountsInBothTreesButOnceInTheCollection() throws IOException {
        Path c = dir.resolve("c");
        Files.createDirectories(c);
        Files.createLink(c.resolve("c1"), a.resolve("a1"));
        write(c.resolve("c2"), content(5, V));
        FileReport r = analyze(a, c);
        assertTreeA(r.trees().get(0));
        assertTree(r.trees().get(1), 2, X + V, X + V, 0, 0, 0, 0);
        FileReport.Totals t = r.collection();
        assertEquals(7, t.files()); // a's 6 files and c2; c1 is a's a1
        assertEquals(3152733 + V, t.bytes());
        assertEquals(3150733 + V, t.uniqueBytes());
        assertEquals(2, t.hardLinks()); // a's sub/a4 and c's c1
        assertEquals((double) X / (3150733 + V), r.overlap(0, 1), 1e-15); // X in both
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "--gzip", "--bzip2", "--xz", "--zstd"})
    void aTarOfTheTreeGivesTheSameNumbersAsTheDirectory(String compression) throws Exception {
        Path tar = dir.resolve("a.tar" + switch (compression) {
            case "--gzip" -> ".gz";
            case "--bzip2" -> ".bz2";
            case "--xz" -> ".xz";
            case "--zstd" -> ".zst";
            default -> "";
        });
        List<String> cmd = new ArrayList<>(List.of("tar", "-C", a.toString(), "-cf", tar.toString()));
        if (!compression.isEmpty()) cmd.add(compression);
        cmd.add(".");
        run(dir, cmd.toArray(String[]::new));

        FileReport r = analyze(a, tar);
        assertTreeA(r.trees().get(0));
        FileReport.Tree t = r.trees().get(1);
        assertEquals(tar.getFileName().toString(), t.name());
        assertTreeA(t);
        assertEquals(1.0, r.overlap(0, 1));
        // The tar's files are other files than the directory's: they count again in the collection.
        assertEquals(2 * 3152733L, r.collection().bytes());
        assertEquals(3150733, r.collection().uniqueBytes());
        assertEquals(12, r.collection().files());
        assertEquals(2, r.collection().hardLinks());
        assertEquals(List.of(), warnings);
    }

    @Test
    void aFileThatCannotBeReadIsAWarningNotAFailure() {
        AtomicLong advanced = new AtomicLong();
        Progress deleteA5 = new Progress() {
            @Override
            public void start(String label, long total) {
                assertEquals("hashing a", label);
                assertEquals(3152733, total);
                try {
                    Files.delete(a.resolve("a5")); // walked, not yet read
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }

            @Override
            public void advance(long delta) {
                advanced.addAndGet(delta);
            }

            @Override
            public void done() {}
        };
        FileReport r = FileAnalysis.analyze(List.of(a), deleteA5, warnings::add);
        assertTree(r.trees().getFirst(), 5, 4L * X + Y, 2L * X + Y, 1, 2, 2, 1);
        assertEquals(4L * X + Y, advanced.get());
        assertEquals(1, warnings.size(), warnings.toString());
        String w = warnings.getFirst();
        assertTrue(w.startsWith("tree a: ") && w.contains("a5") && w.contains("unreadable (no such file)"), w);
    }

    @Test
    void progressCountsEveryHashedByte() {
        AtomicLong total = new AtomicLong(), advanced = new AtomicLong();
        Progress p = new Progress() {
            @Override public void start(String label, long t) { total.addAndGet(t); }
            @Override public void advance(long delta) { advanced.addAndGet(delta); }
            @Override public void done() {}
        };
        FileAnalysis.analyze(List.of(a, b), p, warnings::add);
        assertEquals(6315466, total.get());
        assertEquals(6315466, advanced.get());
    }

    @Test
    void badRootsAreRefusedBeforeAnyWork() throws IOException {
        var none = assertThrows(CaskException.InvalidInput.class, () -> analyze());
        assertTrue(none.getMessage().contains("no directory or tar file"), none.getMessage());

        Path missing = dir.resolve("missing");
        var nf = assertThrows(CaskException.NotFound.class, () -> analyze(a, missing));
        assertTrue(nf.getMessage().contains(missing.toString()), nf.getMessage());

        Path raw = dir.resolve("disk.raw");
        Files.write(raw, content(9, 4096));
        var bad = assertThrows(CaskException.InvalidInput.class, () -> analyze(a, raw));
        assertTrue(bad.getMessage().contains(raw + ": not a directory or a tar archive"), bad.getMessage());

        Path fakeGzip = dir.resolve("fake.tar.gz");
        Files.write(fakeGzip, new byte[] {0x1f, (byte) 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
        assertThrows(CaskException.class, () -> analyze(fakeGzip));

        var fifo = assertThrows(CaskException.InvalidInput.class, () -> analyze(a.resolve("fifo")));
        assertTrue(fifo.getMessage().contains("not a directory or a regular file"), fifo.getMessage());
    }

    @Test
    void aTruncatedTarFailsNamingTheTar() throws Exception {
        Path tar = dir.resolve("a.tar");
        run(dir, "tar", "-C", a.toString(), "-cf", tar.toString(), ".");
        byte[] whole = Files.readAllBytes(tar);
        Path cut = dir.resolve("cut.tar");
        Files.write(cut, java.util.Arrays.copyOf(whole, whole.length / 2));
        var e = assertThrows(CaskException.Io.class, () -> analyze(cut));
        assertTrue(e.getMessage().contains("tar " + cut), e.getMessage());
    }

    @Test
    void treesWithTheSameLastNameAreNamedByTheirPath() {
        assertEquals(List.of("x/etc", "y/etc", "tmp"),
                FileAnalysis.treeNames(List.of(Path.of("x/etc"), Path.of("y/etc"), Path.of("/tmp"))));
        assertEquals(List.of("etc", "etc (2)"), FileAnalysis.treeNames(List.of(Path.of("etc"), Path.of("etc"))));
    }

    @Test
    void jsonDocument() {
        JsonNode j = analyze(a, b).toJson(new ObjectMapper());
        assertEquals("files", j.get("kind").asText());
        JsonNode ta = j.get("trees").get(0);
        assertEquals("a", ta.get("name").asText());
        assertEquals(a.toAbsolutePath().toString(), ta.get("source").asText());
        assertEquals(6, ta.get("files").asLong());
        assertEquals(3152733, ta.get("bytes").asLong());
        assertEquals(3150733, ta.get("unique_bytes").asLong());
        assertEquals(2000, ta.get("duplicate_bytes").asLong());
        assertEquals(2000.0 / 3152733, ta.get("duplicate_share").asDouble(), 1e-15);
        assertEquals(1, ta.get("hard_links").asLong());
        assertEquals(2, ta.get("empty_files").asLong());
        assertEquals(2, ta.get("skipped").asLong());
        assertEquals(0, ta.get("unreadable").asLong());
        JsonNode c = j.get("collection");
        assertEquals(10, c.get("files").asLong());
        assertEquals(6315466, c.get("bytes").asLong());
        assertEquals(3157733, c.get("unique_bytes").asLong());
        assertEquals(3157733, c.get("duplicate_bytes").asLong());
        assertEquals(0.5, c.get("duplicate_share").asDouble());
        assertEquals(1.0, j.get("overlap").get(0).get(0).asDouble());
        assertEquals(3148733.0 / 3157733, j.get("overlap").get(0).get(1).asDouble(), 1e-15);
        assertEquals(2, j.get("overlap").size());
        assertEquals("b", j.get("growth").get(1).get("tree").asText());
        assertEquals(3157733, j.get("growth").get(1).get("unique_bytes").asLong());
    }
}
