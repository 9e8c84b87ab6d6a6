package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code cask gc} with a {@code cask serve} of the store running: the collection runs in the
 * server (its pid in {@code --json}, its log line), frees what an {@code rm} left, shows its
 * phases as a progress bar here, and the server keeps serving the data it holds; with
 * {@code --in-process}, or when the server is read-only, it runs in the command's own JVM.
 */
class GcInServerTest {
    @TempDir
    Path dir;

    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void gcRunsInTheServerAndFreesWhatRmLeft() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Random rnd = new Random(7);
        byte[] a = new byte[2 << 20], b = new byte[2 << 20];
        rnd.nextBytes(a);
        rnd.nextBytes(b);
        Files.write(dir.resolve("a.raw"), a);
        Files.write(dir.resolve("b.raw"), b);
        assertEquals(0, cli.run("import", dir.resolve("a.raw").toString(), "team/a").code());
        assertEquals(0, cli.run("import", dir.resolve("b.raw").toString(), "team/b").code());
        try (Server server = new Server(cli, "--checkpoint-interval", "0", "--gc-interval", "0", "--no-warmup")) {
            assertEquals(0, cli.run("rm", "team/b").code());
            Cli.Result dry = cli.run("gc", "--dry-run", "--json");
            assertEquals(0, dry.code(), dry.toString());
            JsonNode d = JSON.readTree(dry.out());
            assertEquals(server.process.pid(), d.get("server_pid").asLong(), dry.out());
            assertTrue(d.get("dry_run").asBoolean());
            assertTrue(d.get("chunks_freed").asLong() >= 512, dry.out()); // b's 2 MiB of random 4 KiB blocks

            Cli.Result gc = cli.run("gc", "--progress", "--json");
            assertEquals(0, gc.code(), gc.toString());
            JsonNode g = JSON.readTree(gc.out());
            assertEquals(server.process.pid(), g.get("server_pid").asLong(), gc.out());
            assertFalse(g.get("dry_run").asBoolean());
            assertEquals(d.get("chunks_freed").asLong(), g.get("chunks_freed").asLong(), gc.out());
            assertTrue(gc.err().contains("mark"), "the server's phases as a progress bar: " + gc.err());
            assertTrue(server.log.toString().contains("asked for by cask gc"), server.log.toString());

            // a second gc finds nothing left, and the server still serves what it kept
            JsonNode again = JSON.readTree(cli.run("gc", "--json").out());
            assertEquals(0, again.get("chunks_freed").asLong());
            // the first collection on a store scans the whole index; one after a complete one only what changed; --full asks for the scan
            assertEquals("full", g.get("sweep").asText(), gc.out());
            assertEquals("incremental", again.get("sweep").asText(), again.toString());
            JsonNode full = JSON.readTree(cli.run("gc", "--full", "--json").out());
            assertEquals("full", full.get("sweep").asText(), full.toString());
            assertEquals(server.process.pid(), full.get("server_pid").asLong(), full.toString());
            try (NbdClient c = new NbdClient(server.port, "team/a")) {
                assertArrayEquals(a, c.read(0, a.length));
            }

            // --in-process: this JVM collects (no server pid); text output names no server
            Cli.Result here = cli.run("gc", "--in-process", "--json");
            assertEquals(0, here.code(), here.toString());
            assertFalse(JSON.readTree(here.out()).has("server_pid"), here.out());
            Cli.Result text = cli.run("gc");
            assertTrue(text.out().contains("(in cask serve, pid " + server.process.pid() + ")"), text.out());
        }
        assertEquals(0, cli.run("check", "--deep").code());
        Path out = dir.resolve("a.out");
        assertEquals(0, cli.run("export", "team/a", out.toString()).code());
        assertArrayEquals(a, Files.readAllBytes(out));
    }

    /** {@code --paced} (in the server, and in the command's JVM) frees what an unpaced gc frees and says how long it rested. */
    @Test
    void aPacedGcFreesTheSameAndSaysHowLongItRested() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Random rnd = new Random(10);
        byte[] a = new byte[1 << 20], b = new byte[1 << 20], c = new byte[1 << 20];
        rnd.nextBytes(a);
        rnd.nextBytes(b);
        rnd.nextBytes(c);
        Files.write(dir.resolve("a.raw"), a);
        Files.write(dir.resolve("b.raw"), b);
        Files.write(dir.resolve("c.raw"), c);
        for (String n : List.of("a", "b", "c")) assertEquals(0, cli.run("import", dir.resolve(n + ".raw").toString(), "team/" + n).code());
        try (Server server = new Server(cli, "--checkpoint-interval", "0", "--gc-interval", "0", "--no-warmup")) {
            assertEquals(0, cli.run("rm", "team/b").code());
            Cli.Result gc = cli.run("gc", "--paced", "--json");
            assertEquals(0, gc.code(), gc.toString());
            JsonNode g = JSON.readTree(gc.out());
            assertEquals(server.process.pid(), g.get("server_pid").asLong(), gc.out());
            assertTrue(g.get("chunks_freed").asLong() >= 256, gc.out()); // b's 1 MiB of random 4 KiB blocks, and its pointer chunks
            assertTrue(g.get("rest_seconds").asDouble() >= 0 && g.get("rest_seconds").asDouble() <= g.get("seconds").asDouble(), gc.out());

            assertEquals(0, cli.run("rm", "team/c").code());
            Cli.Result here = cli.run("gc", "--paced", "--in-process", "--json");
            assertEquals(0, here.code(), here.toString());
            JsonNode h = JSON.readTree(here.out());
            assertFalse(h.has("server_pid"), here.out());
            assertTrue(h.get("chunks_freed").asLong() >= 256, here.out());
            assertTrue(h.has("rest_seconds"), here.out());

            // --dry-run and --full together reach the server as both
            JsonNode dry = JSON.readTree(cli.run("gc", "--dry-run", "--full", "--json").out());
            assertTrue(dry.get("dry_run").asBoolean(), dry.toString());
            assertEquals("full", dry.get("mark").asText(), dry.toString());
            assertEquals(server.process.pid(), dry.get("server_pid").asLong(), dry.toString());
            try (NbdClient client = new NbdClient(server.port, "team/a")) {
                assertArrayEquals(a, client.read(0, a.length));
            }
        }
        assertEquals(0, cli.run("check", "--deep").code());
    }

    @Test
    void aReadOnlyServerLeavesTheGcToTheCommand() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] a = new byte[1 << 20];
        new Random(8).nextBytes(a);
        Files.write(dir.resolve("a.raw"), a);
        assertEquals(0, cli.run("import", dir.resolve("a.raw").toString(), "a").code());
        assertEquals(0, cli.run("import", dir.resolve("a.raw").toString(), "b").code());
        assertEquals(0, cli.run("rm", "a").code());
        try (Server server = new Server(cli, "--read-only", "--no-warmup")) {
            Cli.Result gc = cli.run("gc", "--json");
            assertEquals(0, gc.code(), gc.toString());
            assertFalse(JSON.readTree(gc.out()).has("server_pid"), gc.out());
            assertTrue(gc.err().contains("read-only") && gc.err().contains("collecting here"), gc.err());
            try (NbdClient c = new NbdClient(server.port, "b")) {
                assertArrayEquals(a, c.read(0, a.length));
            }
        }
    }

    @Test
    void killingTheCommandStopsTheServersCollection() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] a = new byte[1 << 20];
        new Random(9).nextBytes(a);
        Files.write(dir.resolve("a.raw"), a);
        assertEquals(0, cli.run("import", dir.resolve("a.raw").toString(), "a").code());
        try (Server server = new Server(cli, "--checkpoint-interval", "0", "--gc-interval", "0", "--no-warmup")) {
            // an import from stdin holds a writer session open until its stdin ends: a gc waits for it
            Process imp = cli.start("import", "-", "slow");
            imp.getOutputStream().write(a, 0, 4096);
            imp.getOutputStream().flush();
            Path sessions = dir.resolve("store").resolve("sessions");
            long until = System.nanoTime() + 60_000_000_000L;
            while (!hasSession(sessions, imp.pid()) && System.nanoTime() < until) Thread.sleep(20);
            assertTrue(hasSession(sessions, imp.pid()), "the import's writer session");
            Process gc = cli.start("gc");
            java.io.BufferedReader err = new java.io.BufferedReader(new java.io.InputStreamReader(gc.getErrorStream()));
            Cli.pump(gc.getInputStream(), new java.io.ByteArrayOutputStream());
            String line;
            while ((line = err.readLine()) != null && !line.contains("waiting for writer")) {
                // the server's wait, forwarded
            }
            assertTrue(line != null, "cask gc ended without saying it waits for the import");
            gc.destroyForcibly().waitFor();
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (!server.log.toString().contains("gc (asked for): stopped") && System.nanoTime() < deadline) Thread.sleep(50);
            assertTrue(server.log.toString().contains("gc (asked for): stopped (the cask gc that asked for it went away)"), server.log.toString());

            imp.getOutputStream().write(a, 4096, a.length - 4096);
            imp.getOutputStream().close();
            assertEquals(0, imp.waitFor());
            Cli.Result again = cli.run("gc", "--json");
            assertEquals(0, again.code(), again.toString());
            assertEquals(server.process.pid(), JSON.readTree(again.out()).get("server_pid").asLong());
            try (NbdClient c = new NbdClient(server.port, "slow")) {
                assertArrayEquals(a, c.read(0, a.length));
            }
        }
        assertEquals(0, cli.run("check", "--deep").code());
    }

    private static boolean hasSession(Path sessions, long pid) throws java.io.IOException {
        if (!Files.isDirectory(sessions)) return false;
        try (var s = Files.list(sessions)) {
            return s.anyMatch(p -> p.getFileName().toString().startsWith(pid + "-") && p.getFileName().toString().endsWith(".session"));
        }
    }
}
