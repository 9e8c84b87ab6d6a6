package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Names, clones, versions, rollback and time travel through the CLI. */
class VersionsTest {
    @TempDir
    Path dir;
    private final ObjectMapper json = new ObjectMapper();

    private Path file(String name, int fill) throws Exception {
        byte[] b = new byte[1 << 20];
        java.util.Arrays.fill(b, (byte) fill);
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

    @Test
    void cloneSnapshotRollbackAndTimeTravel() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Path a = file("a.raw", 1);
        assertEquals(0, cli.run("import", a.toString(), "team/base").code());
        assertEquals(0, cli.run("clone", "team/base", "team/web/vm-1").code());
        assertArrayEquals(Files.readAllBytes(a), export(cli, "team/web/vm-1"));

        Cli.Result same = cli.run("snapshot", "team/base", "-m", "nothing changed");
        assertEquals(0, same.code(), same.toString());
        assertTrue(same.out().contains("team/base is unchanged since version 1: no version added"), same.out());
        Cli.Result snap = cli.run("import", "--as-version", file("b.raw", 2).toString(), "team/base", "-m", "before upgrade");
        assertEquals(0, snap.code(), snap.toString());
        Thread.sleep(20);
        Instant between = Instant.now();
        Thread.sleep(20);
        assertEquals(0, cli.run("create", "team/other", "1M").code());

        JsonNode log = json.readTree(cli.run("log", "team/base", "--json").out());
        assertEquals(2, log.size());
        assertEquals("before upgrade", log.get(1).get("message").asText());
        assertTrue(log.get(1).get("head").asBoolean());

        // rollback to version 1 makes version 3 with version 1's content
        Cli.Result rb = cli.run("rollback", "team/base", "1");
        assertEquals(0, rb.code(), rb.toString());
        log = json.readTree(cli.run("log", "team/base", "--json").out());
        assertEquals(3, log.size());
        assertTrue(log.get(2).get("message").asText().contains("rollback to version 1"));

        // @TIME resolves to the version that was head then (version 2)
        String t = DateTimeFormatter.ISO_LOCAL_DATE_TIME.format(between.atZone(ZoneId.systemDefault()).toLocalDateTime());
        JsonNode info = json.readTree(cli.run("info", "team/base@" + t, "--json").out());
        assertEquals(2, info.get("version").asInt());
        assertEquals(3, json.readTree(cli.run("info", "team/base@latest", "--json").out()).get("version").asInt());
        Cli.Result early = cli.run("info", "team/base@2001-01-01T00:00");
        assertEquals(1, early.code());
        assertTrue(early.err().contains("team/base"), early.err());

        // ls with a prefix, as JSON
        JsonNode ls = json.readTree(cli.run("ls", "team/web", "--json").out());
        assertEquals(1, ls.size());
        assertEquals("team/web/vm-1", ls.get(0).get("name").asText());
        assertEquals(3, json.readTree(cli.run("ls", "team", "--json").out()).size());
        assertEquals(0, json.readTree(cli.run("ls", "tea", "--json").out()).size());
    }

    @Test
    void removingAnImageKeepsItsClones() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Path a = file("a.raw", 7);
        cli.run("import", a.toString(), "src");
        cli.run("clone", "src@1", "copy");
        Cli.Result rm = cli.run("rm", "src");
        assertEquals(0, rm.code(), rm.toString());
        assertArrayEquals(Files.readAllBytes(a), export(cli, "copy"));
        assertEquals(1, cli.run("info", "src").code());
        Cli.Result check = cli.run("check");
        assertEquals(0, check.code(), check.toString());
        JsonNode ls = json.readTree(cli.run("ls", "--json").out());
        assertEquals(1, ls.size());
    }

    @Test
    void createMakesAZeroDiskOfTheGivenSize() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "team/vm-9", "20G").code());
        JsonNode info = json.readTree(cli.run("info", "team/vm-9", "--json").out());
        assertEquals(20L << 30, info.get("size").asLong());
        assertEquals(0, info.get("allocated_bytes").asLong());
        Path q = dir.resolve("empty.qcow2");
        assertEquals(0, cli.run("export", "team/vm-9", q.toString(), "--format", "qcow2").code());
        JsonNode qi = json.readTree(Cli.mustTool("qemu-img", "info", "--output=json", q.toString()).out());
        assertEquals(20L << 30, qi.get("virtual-size").asLong());
        assertFalse(qi.get("actual-size").asLong() > (1 << 20), "an empty disk exports to a tiny qcow2");
    }

    /** ls: columns as wide as their content (a long name is never cut or misaligned), with allocated bytes and origin. */
    @Test
    void lsColumnsFitTheirContentWithAllocatedBytesAndOrigin() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] d = new byte[1 << 20];
        java.util.Arrays.fill(d, 0, 300 << 10, (byte) 7);
        Path raw = dir.resolve("d.raw");
        java.nio.file.Files.write(raw, d);
        String longName = "team/" + "a".repeat(60) + "/vm-1";
        assertEquals(0, cli.run("import", raw.toString(), "base").code());
        assertEquals(0, cli.run("clone", "base", longName).code());
        java.util.List<String> lines = cli.run("ls").out().lines().toList();
        assertEquals(3, lines.size(), lines.toString());
        String header = lines.get(0);
        assertTrue(header.startsWith("NAME ") && header.contains("ALLOCATED") && header.contains("ORIGIN"), header);
        int col = header.indexOf("VERSION");
        assertTrue(col > longName.length(), "the NAME column is as wide as the longest name: " + lines);
        for (String l : lines.subList(1, 3)) assertEquals(' ', l.charAt(col - 1), "columns line up: " + lines);
        String clone = lines.stream().filter(l -> l.startsWith(longName + " ")).findFirst().orElseThrow();
        assertTrue(clone.contains("300 KiB") && clone.endsWith("base@1"), clone);
        JsonNode js = json.readTree(cli.run("ls", "--json").out());
        assertEquals(300 << 10, js.get(0).get("allocated").asLong(), js.toString());
    }
}
