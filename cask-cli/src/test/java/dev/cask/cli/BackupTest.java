package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Backups into an existing image (import --as-version), diff, du, resize, mv, labels, and what each refuses. */
class BackupTest {
    @TempDir
    Path dir;
    private final ObjectMapper json = new ObjectMapper();

    private static final int MIB = 1 << 20;

    private Path write(String name, byte[] b) throws Exception {
        Path p = dir.resolve(name);
        Files.write(p, b);
        return p;
    }

    private byte[] export(Cli cli, String ref) throws Exception {
        Path out = dir.resolve("export-" + System.nanoTime() + ".raw");
        Cli.Result r = cli.run("export", ref, out.toString());
        assertEquals(0, r.code(), r.toString());
        return Files.readAllBytes(out);
    }

    private long stored(Cli cli) throws Exception {
        return json.readTree(cli.run("stats", "--json").out()).get("stored_bytes").asLong();
    }

    private static Cli.Result ok(Cli.Result r) {
        assertEquals(0, r.code(), r.toString());
        return r;
    }

    private static void failsWith(Cli.Result r, int code, String... words) {
        assertEquals(code, r.code(), r.toString());
        for (String w : words) assertTrue(r.err().contains(w), "'" + w + "' in: " + r.err());
        assertEquals(1, r.err().strip().lines().filter(l -> l.startsWith("cask:")).count(), r.err());
    }

    @Test
    void aBackupAsVersionStoresOnlyTheChangedBlocksAndDiffListsThem() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] one = new byte[32 * MIB];
        new Random(1).nextBytes(one);
        Path a = write("a.raw", one);
        ok(cli.run("import", a.toString(), "vm"));
        long before = stored(cli);
        byte[] two = one.clone();
        byte[] change = new byte[MIB];
        new Random(2).nextBytes(change);
        System.arraycopy(change, 0, two, 5 * MIB + 8192, MIB);
        Path b = write("b.raw", two);
        Cli.Result imp = ok(cli.run("import", "--as-version", b.toString(), "vm", "-m", "nightly"));
        assertTrue(imp.out().contains("imported vm version 2"), imp.out());
        long grew = stored(cli) - before;
        assertTrue(grew >= MIB && grew < MIB + 64 * 1024, "stored bytes grew by " + grew + ", about the changed MiB");
        JsonNode log = json.readTree(cli.run("log", "vm", "--json").out());
        assertEquals(2, log.size());
        assertEquals("nightly", log.get(1).get("message").asText());
        assertEquals("vm@1", log.get(1).get("parent").asText());
        assertArrayEquals(two, export(cli, "vm"));
        assertArrayEquals(one, export(cli, "vm@1"));

        // diff: exactly the blocks a byte comparison finds changed
        JsonNode d = json.readTree(ok(cli.run("diff", "vm@1", "vm@2", "--json")).out());
        StringBuilder expected = new StringBuilder();
        long runStart = -1;
        for (int blk = 0; blk <= one.length / 4096; blk++) {
            boolean changed = blk < one.length / 4096
                    && !Arrays.equals(one, blk * 4096, blk * 4096 + 4096, two, blk * 4096, blk * 4096 + 4096);
            if (changed && runStart < 0) runStart = blk * 4096L;
            if (!changed && runStart >= 0) {
                expected.append(runStart).append('+').append(blk * 4096L - runStart).append(' ');
                runStart = -1;
            }
        }
        StringBuilder got = new StringBuilder();
        for (JsonNode r : d) {
            assertEquals(2, r.size(), "only offset and length: " + r);
            got.append(r.get("offset").asLong()).append('+').append(r.get("length").asLong()).append(' ');
        }
        assertEquals(expected.toString(), got.toString());
        assertEquals((5L * MIB + 8192) + "+" + MIB + " ", got.toString());
        Cli.Result text = ok(cli.run("diff", "vm@1", "vm", "--stats"));
        assertTrue(text.out().contains("Offset") && text.out().contains(String.valueOf(5L * MIB + 8192)), text.out());
        assertTrue(text.err().contains("read") && text.err().contains("pointer chunks"), text.err());
        assertEquals("[ ]", ok(cli.run("diff", "vm@2", "vm", "--json")).out().strip().replaceAll("\\s+", " "));

        // an image that does not exist
        failsWith(cli.run("import", "--as-version", b.toString(), "nope"), 1, "'nope'", "not found");
        // snapshot of an unchanged image
        Cli.Result snap = ok(cli.run("snapshot", "vm", "-m", "again"));
        assertTrue(snap.out().contains("vm is unchanged since version 2: no version added"), snap.out());
        assertEquals(2, json.readTree(cli.run("log", "vm", "--json").out()).size());
    }

    @Test
    void labelsNameVersionsEverywhereAndWhatIsServedIsRefused() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] one = new byte[4 * MIB];
        new Random(5).nextBytes(one);
        ok(cli.run("import", write("a.raw", one).toString(), "vm"));
        ok(cli.run("tag", "vm@1", "gold"));
        failsWith(cli.run("tag", "vm@1", "gold"), 1, "gold", "'vm'");
        failsWith(cli.run("tag", "vm@1", "7"), 1, "label '7'");
        failsWith(cli.run("tag", "vm@1", "latest"), 1, "reserved");
        failsWith(cli.run("export", "vm@silver", dir.resolve("x.raw").toString()), 1, "no label 'silver'", "gold");
        byte[] two = one.clone();
        Arrays.fill(two, 0, MIB, (byte) 9);
        ok(cli.run("import", "--as-version", write("b.raw", two).toString(), "vm"));
        assertArrayEquals(one, export(cli, "vm@gold"));
        assertEquals(1, json.readTree(ok(cli.run("info", "vm@gold", "--json")).out()).get("version").asInt());
        ok(cli.run("clone", "vm@gold", "copy"));
        assertArrayEquals(one, export(cli, "copy"));
        assertEquals("gold", json.readTree(ok(cli.run("tag", "vm", "--json")).out()).get(0).get("label").asText());

        Server server = new Server(cli, "--checkpoint-interval", "0", "--no-warmup");
        try {
            try (NbdClient ro = new NbdClient(server.port, "vm@gold")) {
                assertArrayEquals(Arrays.copyOf(one, 4096), ro.read(0, 4096), "NAME@LABEL is a read-only export");
            }
            try (NbdClient c = new NbdClient(server.port, "vm")) {
                c.read(0, 4096);
                failsWith(cli.run("import", "--as-version", write("c.raw", one).toString(), "vm"), 1, "'vm'", "open read-write");
                failsWith(cli.run("resize", "vm", "8M"), 1, "'vm'", "open read-write");
                failsWith(cli.run("mv", "vm", "vm2"), 1, "'vm'", "open read-write");
                failsWith(cli.run("rollback", "vm@gold"), 1, "'vm'", "open read-write");
            }
        } finally {
            server.close();
        }
        // rollback NAME@LABEL (and NAME@VER) once nobody serves it
        Cli.Result rb = ok(cli.run("rollback", "vm@gold"));
        assertTrue(rb.out().contains("rollback to version 1"), rb.out());
        assertArrayEquals(one, export(cli, "vm"));
        ok(cli.run("rollback", "vm@2"));
        assertArrayEquals(two, export(cli, "vm"));
        failsWith(cli.run("rollback", "vm@2", "1"), 2, "not both");
    }

    @Test
    void resizeGrowsWithZerosAndShrinksOnlyWhenAsked() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] one = new byte[3 * MIB + 1000];
        new Random(7).nextBytes(one);
        ok(cli.run("import", "--whole-disk", write("a.raw", one).toString(), "vm"));
        Cli.Result grow = ok(cli.run("resize", "vm", "40M"));
        assertTrue(grow.out().contains("vm version 2"), grow.out());
        byte[] grown = export(cli, "vm");
        assertEquals(40L * MIB, grown.length);
        assertArrayEquals(one, Arrays.copyOf(grown, one.length), "the old data is intact");
        for (int i = one.length; i < grown.length; i += 4093) assertEquals(0, grown[i], "zero at " + i);
        assertArrayEquals(new byte[grown.length - one.length], Arrays.copyOfRange(grown, one.length, grown.length));

        failsWith(cli.run("resize", "vm", "1M"), 1, "'vm'", "--shrink");
        failsWith(cli.run("resize", "vm", "lots"), 2, "lots");
        ok(cli.run("resize", "vm", "1000000", "--shrink"));
        assertArrayEquals(Arrays.copyOf(one, 1_000_000), export(cli, "vm"));
        ok(cli.run("resize", "vm", "2M"));
        byte[] again = export(cli, "vm");
        assertArrayEquals(Arrays.copyOf(one, 1_000_000), Arrays.copyOf(again, 1_000_000));
        assertArrayEquals(new byte[2 * MIB - 1_000_000], Arrays.copyOfRange(again, 1_000_000, 2 * MIB), "what shrink cut reads as zeros");
        assertArrayEquals(one, export(cli, "vm@1"));
        ok(cli.run("check", "--deep"));
    }

    @Test
    void mvKeepsVersionsAndClonesAndDuAddsUp() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] one = new byte[8 * MIB];
        new Random(9).nextBytes(one);
        ok(cli.run("import", write("a.raw", one).toString(), "team/base"));
        ok(cli.run("clone", "team/base", "team/c1"));
        ok(cli.run("clone", "team/base", "team/c2"));
        byte[] two = one.clone();
        new Random(10).nextBytes(two);
        System.arraycopy(one, 0, two, 0, 6 * MIB); // c1's backup: the last 2 MiB differ
        ok(cli.run("import", "--as-version", write("b.raw", two).toString(), "team/c1"));

        JsonNode du = json.readTree(ok(cli.run("du", "--json")).out());
        long sum = 0;
        java.util.Map<String, Long> excl = new java.util.HashMap<>();
        for (JsonNode r : du.get("images")) {
            excl.put(r.get("image").asText(), r.get("exclusive_bytes").asLong());
            sum += r.get("exclusive_bytes").asLong();
        }
        assertEquals(du.get("total_bytes").asLong(), sum + du.get("shared_bytes").asLong(), du.toString());
        assertEquals(0, excl.get("team/c2"), "a clone holds nothing of its own");
        assertTrue(excl.get("team/c1") >= 2 * MIB && excl.get("team/c1") < 2 * MIB + 64 * 1024, du.toString());
        assertTrue(du.get("shared_bytes").asLong() >= 8 * MIB, du.toString());
        JsonNode c1 = json.readTree(ok(cli.run("du", "team/c1", "--json")).out()).get("images").get(0);
        assertTrue(c1.get("shared_bytes").asLong() >= 8 * MIB && c1.get("shared_bytes").asLong() < 8 * MIB + 256 * 1024, c1.toString());
        JsonNode vs = json.readTree(ok(cli.run("du", "team/c1", "--versions", "--json")).out()).get("versions");
        assertEquals(2, vs.size());
        assertEquals(excl.get("team/c1"), vs.get(1).get("exclusive_bytes").asLong(), "what only version 2 holds");
        assertTrue(ok(cli.run("du")).out().contains("EXCLUSIVE"));

        failsWith(cli.run("mv", "team/base", "team/c1"), 1, "'team/c1'", "already exists");
        ok(cli.run("mv", "team/base", "archive/base"));
        assertEquals(1, cli.run("info", "team/base").code());
        JsonNode info = json.readTree(ok(cli.run("info", "team/c2", "--json")).out());
        assertEquals("archive/base@1", info.get("origin").asText());
        assertArrayEquals(one, export(cli, "archive/base"));
        assertArrayEquals(one, export(cli, "team/c2"));
        ok(cli.run("check"));
    }
}
