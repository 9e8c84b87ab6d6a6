package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Round trips through the CLI, checked with qemu-img: what a user does on day one. */
class ImportExportTest {
    @TempDir
    Path dir;

    private Cli cli() {
        return new Cli(dir.resolve("store"));
    }

    /** A qcow2 with data at the start, middle and end, a zero range and holes, written by qemu-io. */
    /** Writes {@code bytes} random bytes (seeded) to {@code file}; returns them. */
    private static byte[] writeRandom(Path file, int bytes, long seed) throws Exception {
        byte[] disk = new byte[bytes];
        new Random(seed).nextBytes(disk);
        Files.write(file, disk);
        return disk;
    }

    private Path sampleQcow2(String name, String size) throws Exception {
        Path img = dir.resolve(name);
        Cli.mustTool("qemu-img", "create", "-q", "-f", "qcow2", img.toString(), size);
        Cli.mustTool("qemu-io", "-f", "qcow2",
                "-c", "write -P 0xab 0 1M",
                "-c", "write -P 0x5c 5M 300k",
                "-c", "write -P 0x01 17M 4k",
                "-c", "write -z 20M 1M",
                "-c", "write -P 0xee 33550336 4096", img.toString());
        return img;
    }

    @Test
    void qcow2ImportsAndExportsBitForBitAsRawAndQcow2() throws Exception {
        Cli cli = cli();
        Path src = sampleQcow2("a.qcow2", "32M");
        Cli.Result r = cli.run("import", src.toString(), "team/web/vm-1");
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("team/web/vm-1 version 1"), r.out());

        Path raw = dir.resolve("out.raw");
        assertEquals(0, cli.run("export", "team/web/vm-1", raw.toString()).code());
        Cli.mustTool("qemu-img", "compare", "-q", src.toString(), raw.toString());
        assertEquals(32L << 20, Files.size(raw));
        // the raw export is sparse: far less allocated than its size
        Cli.Result du = Cli.mustTool("du", "-B1", raw.toString());
        long allocated = Long.parseLong(du.out().split("\\s+")[0]);
        assertTrue(allocated < 4L << 20, "raw export should be sparse, allocated " + allocated);

        Path q = dir.resolve("out.qcow2");
        assertEquals(0, cli.run("export", "team/web/vm-1", q.toString(), "--format", "qcow2").code());
        Cli.mustTool("qemu-img", "check", "-q", q.toString());
        Cli.mustTool("qemu-img", "compare", "-q", src.toString(), q.toString());
        JsonNode map = new ObjectMapper().readTree(Cli.mustTool("qemu-img", "map", "--output=json", q.toString()).out());
        long dataBytes = 0;
        for (JsonNode m : map) if (m.get("data").asBoolean()) dataBytes += m.get("length").asLong();
        assertTrue(dataBytes <= 4L << 20, "holes must stay unallocated in the qcow2 export, data=" + dataBytes);
    }

    @Test
    void rawImportFromFileAndStdinMatchAndStdoutExportIsTheDisk() throws Exception {
        Cli cli = cli();
        byte[] disk = new byte[3 << 20 | 777]; // not a multiple of the block size
        Random rnd = new Random(42);
        for (int i = 0; i < disk.length; i += 8192) {
            if (rnd.nextInt(3) > 0) {
                int n = Math.min(4096, disk.length - i);
                byte[] b = new byte[n];
                rnd.nextBytes(b);
                System.arraycopy(b, 0, disk, i, n);
            }
        }
        Path raw = dir.resolve("d.raw");
        Files.write(raw, disk);
        assertEquals(0, cli.run("import", raw.toString(), "a").code());
        Cli.Result stdin = cli.process(disk, "import", "-", "b");
        assertEquals(0, stdin.code(), stdin.toString());
        Cli.Result out = cli.process(null, "export", "b", "-");
        assertEquals(0, out.code(), out.err());
        assertArrayEquals(disk, out.out().getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        // identical content: the second import stores nothing new
        JsonNode a = new ObjectMapper().readTree(cli.run("info", "a", "--json").out());
        JsonNode b = new ObjectMapper().readTree(cli.run("info", "b", "--json").out());
        assertEquals(a.get("layout").get(0).get("top"), b.get("layout").get(0).get("top"));
        assertEquals(disk.length, b.get("size").asLong());
    }

    @Test
    void sparseTwoTebibyteRawImportsWithoutReadingHoles() throws Exception {
        Cli cli = cli();
        Path raw = dir.resolve("big.raw");
        try (var ch = java.nio.channels.FileChannel.open(raw, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap("hello at the start".getBytes()), 0);
            ch.write(java.nio.ByteBuffer.wrap("and at the end".getBytes()), (2L << 40) - 14);
        }
        Cli.Result r = cli.run("import", raw.toString(), "big");
        assertEquals(0, r.code(), r.toString());
        JsonNode info = new ObjectMapper().readTree(cli.run("info", "big", "--json").out());
        assertEquals(2L << 40, info.get("size").asLong());
        assertEquals(8192, info.get("allocated_bytes").asLong());
        assertEquals(0, cli.run("clone", "big", "big-clone").code());
        Path q = dir.resolve("big.qcow2");
        assertEquals(0, cli.run("export", "big-clone", q.toString(), "--format", "qcow2").code());
        Cli.mustTool("qemu-img", "check", "-q", q.toString());
        Cli.mustTool("qemu-img", "compare", "-q", raw.toString(), q.toString());
    }

    @Test
    void statsJsonReportsDedup() throws Exception {
        Cli cli = cli();
        Path src = sampleQcow2("a.qcow2", "32M");
        cli.run("import", src.toString(), "one");
        cli.run("import", src.toString(), "two");
        JsonNode s = new ObjectMapper().readTree(cli.run("stats", "--json").out());
        assertEquals(2, s.get("images").asInt());
        assertEquals(64L << 20, s.get("logical_bytes").asLong());
        long stored = s.get("stored_bytes").asLong();
        long allocated = s.get("allocated_bytes").asLong();
        assertTrue(stored > 0 && stored < allocated / 2, "two identical images are stored once: stored " + stored + " allocated " + allocated);
        assertTrue(s.get("unique_chunks").asLong() > 0);
        assertTrue(s.get("dedup_ratio").asDouble() > 2.0, s.toString());
    }

    @Test
    void blockSizesFrom4KTo1MRoundTrip() throws Exception {
        Cli cli = cli();
        Path src = sampleQcow2("a.qcow2", "32M");
        for (String bs : new String[]{"4K", "64K", "1M"}) {
            assertEquals(0, cli.run("import", "--block-size", bs, src.toString(), "bs-" + bs).code());
            Path out = dir.resolve("bs-" + bs + ".raw");
            assertEquals(0, cli.run("export", "bs-" + bs, out.toString()).code());
            Cli.mustTool("qemu-img", "compare", "-q", src.toString(), out.toString());
            JsonNode info = new ObjectMapper().readTree(cli.run("info", "bs-" + bs, "--json").out());
            assertEquals(dev.cask.common.Sizes.parse(bs), info.get("layout").get(0).get("block_size").asLong());
        }
    }

    @Test
    void severalPairsImportAndExportInOneCommandAndABadNameStopsTheBatchBeforeAnyWork() throws Exception {
        Cli cli = cli();
        Path q = sampleQcow2("a.qcow2", "32M");
        Path raw = dir.resolve("b.raw");
        writeRandom(raw, 2 << 20, 7);

        Cli.Result r = cli.run("import", q.toString(), "team/a", raw.toString(), "team/b");
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.out().contains("imported team/a version 1") && r.out().contains("imported team/b version 1"), r.out());

        Path outA = dir.resolve("a.out.qcow2"); // --format holds for every pair
        Path outB = dir.resolve("b.out.qcow2");
        r = cli.run("export", "team/a@1", outA.toString(), "team/b", outB.toString(), "--format", "qcow2");
        assertEquals(0, r.code(), r.toString());
        Cli.mustTool("qemu-img", "compare", "-q", "-f", "qcow2", "-F", "qcow2", q.toString(), outA.toString());
        Cli.mustTool("qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", raw.toString(), outB.toString());

        // a taken name anywhere in the batch: exit 1 before any import, so nothing new appears
        r = cli.run("import", raw.toString(), "team/c", raw.toString(), "team/a");
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().contains("image 'team/a' already exists"), r.err());
        assertTrue(cli.run("ls").out().lines().noneMatch(l -> l.startsWith("team/c")), "no half batch: team/c must not exist");
        // the same name twice, an odd count, two stdins, an unknown export: clear errors
        r = cli.run("import", raw.toString(), "x", raw.toString(), "x");
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains("'x' is named twice"), r.err());
        r = cli.run("import", raw.toString(), "x", raw.toString());
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains("expected pairs of SRC NAME, got 3 arguments"), r.err());
        r = cli.run("import", "-", "x", "-", "y");
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().contains("stdin ('-') imports one image at a time"), r.err());
        Path outC = dir.resolve("c.raw");
        r = cli.run("export", "team/a", outC.toString(), "team/nope", dir.resolve("d.raw").toString());
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().contains("team/nope"), r.err());
        assertTrue(!Files.exists(outC), "an unknown name later in the batch stops it before the first export");
    }

    /**
     * A source that fails halfway through a batch stops it there: the images before it stay (and
     * are said on stdout), the ones after it are not imported, and the store checks clean.
     */
    @Test
    void aFailingSourceInABatchKeepsTheImagesBeforeItAndStopsTheRest() throws Exception {
        Cli cli = cli();
        Path q = sampleQcow2("a.qcow2", "32M");
        Path raw = dir.resolve("b.raw");
        byte[] disk = writeRandom(raw, 3 << 20, 8);
        Path broken = dir.resolve("broken.qcow2"); // a qcow2 header that promises a table the file does not hold
        byte[] head = Files.readAllBytes(q);
        Files.write(broken, java.util.Arrays.copyOf(head, 4096));

        Cli.Result r = cli.run("import", raw.toString(), "team/a", q.toString(), "team/b", broken.toString(), "team/c",
                raw.toString(), "team/d");
        assertEquals(1, r.code(), r.toString());
        assertTrue(r.err().contains("broken.qcow2"), "the error names the file: " + r.err());
        assertTrue(r.out().contains("imported team/a version 1") && r.out().contains("imported team/b version 1"), r.out());
        java.util.List<String> names = cli.run("ls").out().lines().skip(1).map(l -> l.split("\\s+")[0]).toList();
        assertEquals(java.util.List.of("team/a", "team/b"), names, "the images before the failure, and only they");
        Path outA = dir.resolve("a.out.raw");
        Path outB = dir.resolve("b.out.raw");
        assertEquals(0, cli.run("export", "team/a", outA.toString(), "team/b", outB.toString()).code());
        assertArrayEquals(disk, Files.readAllBytes(outA));
        Cli.mustTool("qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw", q.toString(), outB.toString());
        r = cli.run("check");
        assertEquals(0, r.code(), r.toString());
        // and a batch that succeeds after it: every image, in order, each as stored
        r = cli.run("import", q.toString(), "team/c", raw.toString(), "team/d", q.toString(), "team/e");
        assertEquals(0, r.code(), r.toString());
        java.util.List<String> lines = r.out().lines().toList();
        assertEquals(3, lines.size(), r.out());
        for (int i = 0; i < 3; i++) assertTrue(lines.get(i).startsWith("imported team/" + "cde".charAt(i) + " version 1"), r.out());
        Path outD = dir.resolve("d.out.raw");
        assertEquals(0, cli.run("export", "team/d", outD.toString()).code());
        assertArrayEquals(disk, Files.readAllBytes(outD));
    }
}
