package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code cask analyze} end to end: real ext4 file systems in sfdisk-made MBR partitions at
 * sectors 2048 and 63; the same disk as raw, as qcow2 (qemu-img) and as a stored image gives the
 * same numbers; the JSON has the agreed shape; bad input is one line and the right exit code.
 */
class AnalyzeCommandTest {
    @TempDir
    Path dir;
    private final ObjectMapper json = new ObjectMapper();

    private Cli cli() {
        return new Cli(dir.resolve("store"));
    }

    /** A 16 MiB ext4 file system holding random files, one of them twice (deterministic). */
    private Path ext4() throws Exception {
        Path root = dir.resolve("rootfs");
        Files.createDirectories(root);
        Random rnd = new Random(5);
        for (int i = 0; i < 8; i++) {
            byte[] b = new byte[100_000 + rnd.nextInt(300_000)];
            rnd.nextBytes(b);
            Files.write(root.resolve("file" + i), b);
            if (i == 3) Files.write(root.resolve("copy-of-file3"), b);
        }
        Path fs = dir.resolve("fs.img");
        Cli.mustTool("truncate", "-s", "16M", fs.toString());
        Cli.mustTool("mkfs.ext4", "-q", "-F", "-b", "4096", "-U", "clear",
                "-E", "hash_seed=00000000-0000-0000-0000-000000000000", "-d", root.toString(), fs.toString());
        return fs;
    }

    /** A sparse disk of {@code size} partitioned by the sfdisk script, with {@code fs} copied to sector {@code start}. */
    private Path disk(String name, String size, long start, Path fs) throws Exception {
        Path d = dir.resolve(name);
        Cli.mustTool("truncate", "-s", size, d.toString());
        Process p = new ProcessBuilder("sfdisk", "-q", d.toString()).redirectErrorStream(true).start();
        try (OutputStream in = p.getOutputStream()) {
            in.write(("label: dos\nstart=" + start + ", size=" + (Files.size(fs) / 512) + ", type=83\n").getBytes());
        }
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), "sfdisk: " + out);
        try (FileChannel src = FileChannel.open(fs); FileChannel dst = FileChannel.open(d, StandardOpenOption.WRITE)) {
            long at = start * 512, pos = 0;
            java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate(65536);
            while (pos < src.size()) { // copy only non-zero 64 KiB blocks: the disk stays sparse
                buf.clear();
                int n = src.read(buf, pos);
                boolean zero = true;
                for (int i = 0; i < n && zero; i++) zero = buf.get(i) == 0;
                if (!zero) {
                    buf.flip();
                    dst.write(buf, at + pos);
                }
                pos += n;
            }
        }
        return d;
    }

    private JsonNode analyzeJson(Cli cli, String... args) throws Exception {
        List<String> all = new java.util.ArrayList<>(List.of("analyze", "--json", "--block-sizes", "4K,16K"));
        all.addAll(List.of(args));
        Cli.Result r = cli.run(all.toArray(String[]::new));
        assertEquals(0, r.code(), r.toString());
        assertEquals("", r.err(), "no warnings expected");
        return json.readTree(r.out());
    }

    /** The numbers of a report, without names, sources, formats and timing. */
    private JsonNode numbers(JsonNode report) {
        ObjectNode copy = report.deepCopy();
        copy.remove("seconds");
        for (JsonNode i : copy.get("images")) {
            ((ObjectNode) i).remove(List.of("name", "source", "format"));
        }
        for (JsonNode s : copy.get("strategies")) {
            for (JsonNode p : s.get("per_image")) ((ObjectNode) p).remove("name");
            for (JsonNode g : s.get("growth")) ((ObjectNode) g).remove("image");
        }
        return copy;
    }

    @Test
    void rawQcow2AndStoredImagesGiveTheSameNumbers() throws Exception {
        Cli cli = cli();
        Path fs = ext4();
        Path d2048 = disk("d2048.raw", "40M", 2048, fs);
        Path d63 = disk("d63.raw", "40M", 63, fs);
        Path q2048 = dir.resolve("d2048.qcow2");
        Path q63 = dir.resolve("d63.qcow2");
        Cli.mustTool("qemu-img", "convert", "-f", "raw", "-O", "qcow2", d2048.toString(), q2048.toString());
        Cli.mustTool("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", d63.toString(), q63.toString());
        assertEquals(0, cli.run("import", d2048.toString(), "vm/a").code());
        assertEquals(0, cli.run("import", q63.toString(), "vm/b").code());

        JsonNode raw = analyzeJson(cli, d2048.toString(), d63.toString());
        JsonNode qcow2 = analyzeJson(cli, q2048.toString(), q63.toString());
        JsonNode stored = analyzeJson(cli, "cask:vm/a", "cask:vm/b@1");
        assertEquals(numbers(raw), numbers(qcow2));
        assertEquals(numbers(raw), numbers(stored));
        assertEquals("qcow2", qcow2.get("images").get(1).get("format").asText());
        assertEquals("cask", stored.get("images").get(0).get("format").asText());
        assertEquals("cask:vm/b@1", stored.get("images").get(1).get("source").asText());
        assertEquals("vm/a@1", stored.get("images").get(0).get("name").asText());
        assertEquals("d63.raw", raw.get("images").get(1).get("name").asText());
        assertEquals(d63.toAbsolutePath().toString(), raw.get("images").get(1).get("source").asText());

        // what the disks were built to show
        JsonNode aligned = strategy(raw, "aligned-4096");
        JsonNode fixed = strategy(raw, "fixed-4096");
        assertTrue(aligned.get("overlap").get(0).get(1).asDouble() > 0.97, aligned.toString());
        assertTrue(fixed.get("overlap").get(0).get(1).asDouble() < 0.05, fixed.toString());
        assertTrue(strategy(raw, "cdc-4096").get("overlap").get(0).get(1).asDouble() > 0.9);
        long dup = aligned.get("per_image").get(0).get("internal_duplicate_bytes").asLong();
        assertTrue(dup >= 90_000, "the copied file is an internal duplicate: " + dup);
        assertEquals(63 * 512, raw.get("images").get(1).get("partitions").get(0).get("offset").asLong());
        assertEquals("mbr", raw.get("images").get(1).get("partitions").get(0).get("kind").asText());
    }

    private static JsonNode strategy(JsonNode report, String name) {
        for (JsonNode s : report.get("strategies")) if (s.get("name").asText().equals(name)) return s;
        throw new AssertionError("no strategy " + name + " in " + report);
    }

    @Test
    void jsonHasTheAgreedShapeAndTextHasTables() throws Exception {
        Cli cli = cli();
        Random r = new Random(1);
        byte[] a = new byte[3 << 20];
        r.nextBytes(a);
        a[510] = 0;
        byte[] b = a.clone();
        java.util.Arrays.fill(b, 1 << 20, 2 << 20, (byte) 0);
        Path pa = dir.resolve("a.raw"), pb = dir.resolve("b.raw");
        Files.write(pa, a);
        Files.write(pb, b);
        Cli.Result res = cli.run("analyze", "--json", "--block-sizes", "16K,4K,4096", "--strategies", "cdc,fixed", pa.toString(), pb.toString());
        assertEquals(0, res.code(), res.toString());
        JsonNode j = json.readTree(res.out());
        assertEquals("blocks", j.get("kind").asText());
        assertEquals(List.of(4096, 16384), json.convertValue(j.get("block_sizes"), json.getTypeFactory().constructCollectionType(List.class, Integer.class)));
        JsonNode img = j.get("images").get(0);
        for (String f : List.of("name", "source", "format", "logical_bytes", "partitions")) assertTrue(img.has(f), f);
        assertEquals(3 << 20, img.get("logical_bytes").asLong());
        List<String> names = new java.util.ArrayList<>();
        for (JsonNode s : j.get("strategies")) names.add(s.get("name").asText());
        assertEquals(List.of("fixed-4096", "fixed-16384", "cdc-4096", "cdc-16384"), names);
        for (JsonNode s : j.get("strategies")) {
            for (String f : List.of("name", "kind", "block_size", "collection", "per_image", "overlap", "growth")) assertTrue(s.has(f), f);
            JsonNode c = s.get("collection");
            for (String f : List.of("logical_bytes", "zero_bytes", "nonzero_bytes", "unique_bytes", "compressed_bytes", "chunks",
                    "unique_chunks", "dedup_ratio")) assertTrue(c.has(f), f);
            assertEquals(6L << 20, c.get("logical_bytes").asLong());
            for (JsonNode p : s.get("per_image")) {
                for (String f : List.of("name", "logical_bytes", "zero_bytes", "nonzero_bytes", "unique_bytes",
                        "internal_duplicate_bytes", "chunks", "unique_chunks")) assertTrue(p.has(f), f);
            }
            assertEquals(2, s.get("overlap").size());
            assertEquals(1.0, s.get("overlap").get(0).get(0).asDouble());
            double o = s.get("overlap").get(0).get(1).asDouble();
            assertEquals(o, s.get("overlap").get(1).get(0).asDouble());
            assertTrue(o > 0.6 && o < 0.7, s.get("name") + " overlap " + o); // b is a with its middle third zeroed
            assertEquals("a.raw", s.get("growth").get(0).get("image").asText());
            assertEquals(c.get("unique_bytes").asLong(), s.get("growth").get(1).get("unique_bytes").asLong());
            assertEquals(s.get("per_image").get(0).get("unique_bytes").asLong(), s.get("growth").get(0).get("unique_bytes").asLong());
        }

        Cli.Result text = cli.run("analyze", "--block-sizes", "4K,16K", pa.toString(), pb.toString());
        assertEquals(0, text.code(), text.toString());
        for (String want : List.of("fixed-4096", "aligned-16384", "cdc-16384", "collection:", "a.raw", "b.raw", "overlap", "summary", "CUMULATIVE")) {
            assertTrue(text.out().contains(want), "text output should contain '" + want + "':\n" + text.out());
        }
        assertEquals("", text.err());
        Cli.Result help = cli.run("analyze", "--help");
        assertEquals(0, help.code());
        for (String want : List.of("--block-sizes", "--strategies", "--json", "unique", "overlap", "zstd", "cask:NAME")) {
            assertTrue(help.out().contains(want), want + " in\n" + help.out());
        }
    }

    private static void assertFails(Cli.Result r, int code, String... fragments) {
        assertEquals(code, r.code(), r.toString());
        String err = r.err().strip();
        assertTrue(err.startsWith("cask: "), err);
        if (code == 1) assertFalse(err.contains("\n"), "one line: " + err);
        for (String f : fragments) assertTrue(err.contains(f), "stderr should mention '" + f + "': " + err);
        assertEquals("", r.out());
    }

    @Test
    void badInputIsOneLineWithTheRightExitCode() throws Exception {
        Cli cli = cli();
        Path ok = dir.resolve("ok.raw");
        Files.write(ok, new byte[8192]);
        Path vmdk = dir.resolve("disk.vmdk");
        Files.write(vmdk, "KDMV\u0001\0\0\0 sparse extent".getBytes());
        assertFails(cli.run("analyze", ok.toString(), dir.resolve("nope.raw").toString()), 1, "nope.raw", "no such file");
        assertFails(cli.run("analyze", vmdk.toString()), 1, "disk.vmdk", "vmdk");
        assertFails(cli.run("analyze", dir.toString()), 1, "directory");
        assertFails(cli.run("analyze", "--block-sizes", "4K,3000", ok.toString()), 2, "3000");
        assertFails(cli.run("analyze", "--block-sizes", "2M", ok.toString()), 2, "2M", "power of two");
        assertFails(cli.run("analyze", "--block-sizes", "256", ok.toString()), 2, "256");
        assertFails(cli.run("analyze", "--block-sizes", "4Q", ok.toString()), 2, "4Q");
        assertFails(cli.run("analyze", "--strategies", "fixed,rolling", ok.toString()), 2, "rolling");
        assertFails(cli.run("analyze"), 2, "IMG");
        assertFails(cli.run("analyze", "cask:no/such"), 1, "no/such", "not found");
        assertEquals(0, cli.run("create", "x", "1M").code());
        assertFails(cli.run("analyze", "cask:no/such"), 1, "no/such");
        assertFails(cli.run("analyze", "cask:x@7"), 1, "7");
        // an empty image analyses fine: all zero
        JsonNode j = analyzeJson(cli, "cask:x", ok.toString());
        assertEquals(0, strategy(j, "cdc-4096").get("collection").get("unique_bytes").asLong());
    }

    /** --html writes one self-contained page with every chart and table, for blocks and for files. */
    @Test
    void htmlReportHoldsEveryChartAndTable() throws Exception {
        Path fs = ext4();
        Path d2048 = disk("d2048.raw", "24M", 2048, fs);
        Path d63 = disk("d63.raw", "24M", 63, fs);
        Path page = dir.resolve("report.html");
        Cli.Result r = cli().run("analyze", "--block-sizes", "4K,16K", "--html", page.toString(), d2048.toString(), d63.toString());
        assertEquals(0, r.code(), r.toString());
        String html = Files.readString(page);
        for (String id : List.of("chart-unique-vs-block-size", "chart-growth", "table-images", "table-strategies",
                "heatmap-fixed-4096", "heatmap-aligned-16384", "heatmap-cdc-4096", "table-strategy-cdc-16384")) {
            assertTrue(html.contains("id=\"" + id + "\""), "the report has " + id);
        }
        assertTrue(html.contains("d63.raw") && html.contains("d2048.raw"), "image names are in the report");
        assertFalse(html.contains("<script src") || html.contains("<link"), "nothing is loaded from elsewhere");
        assertFalse(Files.exists(dir.resolve("report.html.tmp")));
        // the footer: the cask version as --version prints it, and when, in ISO 8601 with the zone's offset
        Cli.Result version = cli().run("--version");
        assertEquals(0, version.code(), version.toString());
        assertTrue(version.out().strip().startsWith("cask "), version.out());
        assertTrue(html.contains("<span id=\"cask-version\">" + version.out().strip() + "</span>"), "the footer names " + version.out());
        java.util.regex.Matcher at = java.util.regex.Pattern.compile("<time id=\"written-at\" datetime=\"([^\"]+)\">([^<]+)</time>")
                .matcher(html);
        assertTrue(at.find(), "the footer has the date");
        assertEquals(at.group(1), at.group(2));
        java.time.OffsetDateTime.parse(at.group(1)); // ISO 8601 with an offset, or this throws
        // what to import with: a layout import makes, with its flags
        assertTrue(html.contains("id=\"recommendation-command\">cask import --block-size "), "the recommended import command");

        // file level: the rootfs tree and a tar of it are the same files
        Path tar = dir.resolve("rootfs.tar");
        Cli.mustTool("tar", "-C", dir.toString(), "-cf", tar.toString(), "rootfs");
        Path filesPage = dir.resolve("files.html");
        Cli.Result f = cli().run("analyze", "--files", "--json", "--html", filesPage.toString(), dir.resolve("rootfs").toString(), tar.toString());
        assertEquals(0, f.code(), f.toString());
        JsonNode j = json.readTree(f.out());
        assertEquals("files", j.get("kind").asText());
        assertEquals(9, j.get("trees").get(0).get("files").asLong(), j.toString());
        assertEquals(1.0, j.get("overlap").get(0).get(1).asDouble(), 1e-9, "a tree and its tar hold the same contents");
        assertTrue(j.get("trees").get(0).get("duplicate_bytes").asLong() >= 100_000, "the copied file is a duplicate");
        String fh = Files.readString(filesPage);
        for (String id : List.of("table-trees", "table-collection", "heatmap-files", "chart-growth")) {
            assertTrue(fh.contains("id=\"" + id + "\""), "the files report has " + id);
        }
        Cli.Result text = cli().run("analyze", "--files", dir.resolve("rootfs").toString());
        assertEquals(0, text.code(), text.toString());
        assertTrue(text.out().contains("collection") && text.out().contains("rootfs"), text.out());

        Cli.Result bad = cli().run("analyze", "--files", dir.resolve("nope").toString());
        assertEquals(1, bad.code());
        assertEquals(1, bad.err().strip().lines().count(), bad.err());
    }
}
