package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code cask serve} driven by real NBD clients while the CLI keeps working on the store. */
class ServeTest {
    @TempDir
    Path dir;
    private final ObjectMapper json = new ObjectMapper();

    private Path randomDisk(String name, int size) throws Exception {
        byte[] d = new byte[size];
        Random rnd = new Random(11);
        for (int i = 0; i < size; i += 3 * 4096) {
            byte[] b = new byte[4096];
            rnd.nextBytes(b);
            System.arraycopy(b, 0, d, i, Math.min(4096, size - i));
        }
        Path p = dir.resolve(name);
        Files.write(p, d);
        return p;
    }

    /** The nice value of a thread, from its /proc/PID/task/TID directory (field 19 of its stat line). */
    private static int niceOf(Path task) throws java.io.IOException {
        String stat = Files.readString(task.resolve("stat"));
        return Integer.parseInt(stat.substring(stat.lastIndexOf(')') + 2).split(" ")[16]);
    }

    @Test
    void servesImagesReadWriteAndVersionsReadOnlyWhileTheCliWorks() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Path disk = randomDisk("d.raw", 8 << 20);
        assertEquals(0, cli.run("import", disk.toString(), "team/vm-1").code());
        // an in-process gc lowers its own thread only (Cli.run): not the test's, whose nice value the server starts with
        Path self = Path.of("/proc/self/task/" + dev.cask.common.Background.threadId());
        int mine = niceOf(self);
        assertEquals(0, cli.run("gc", "--in-process").code());
        assertEquals(mine, niceOf(self), "the test's thread after an in-process gc");
        try (Server server = new Server(cli, "--checkpoint-interval", "0")) {
            for (int i = 0; i < 100 && !server.log.toString().contains("warm-up"); i++) Thread.sleep(50); // stderr is pumped by a thread
            String started = server.log.toString();
            assertTrue(started.contains("warm-up took") && !started.contains("warm-up skipped"), "the warm-up ran before serving: " + started);
            assertFalse(started.contains("warmup"), "the warm-up's throwaway image stays out of the log: " + started);
            // after the warm-up the JIT compiles on the CPU the clients leave: its threads at nice 10 (as ps -L shows them)
            // (the server's first thread has the nice value it was started with: a test JVM's thread
            // that lowered itself before, e.g. an in-process gc, passes its own on to the server)
            Path proc = Path.of("/proc/" + server.process.pid() + "/task");
            int base = niceOf(proc.resolve(Long.toString(server.process.pid())));
            int jit = 0;
            try (var tasks = Files.list(proc)) {
                for (Path t : (Iterable<Path>) tasks::iterator) {
                    String comm = Files.readString(t.resolve("comm")).strip();
                    int nice = niceOf(t);
                    if (comm.startsWith("C1 CompilerThre") || comm.startsWith("C2 CompilerThre")) {
                        jit++;
                        assertEquals(Math.max(base, 10), nice, "the server's " + comm + " (the server started at nice " + base + ")");
                    } else if (comm.equals("VM Thread")) {
                        assertEquals(base, nice, "the server's VM Thread is not lowered");
                    }
                }
            }
            assertTrue(jit >= 1, "the server's JIT threads were found");
            assertEquals(0, cli.run("ls").out().lines().filter(l -> l.contains("warmup")).count(), "the warm-up never touches the user's store");
            JsonNode info = json.readTree(Cli.mustTool("nbdinfo", "--json", server.uri("team/vm-1")).out());
            JsonNode export = info.get("exports").get(0);
            assertEquals(8 << 20, export.get("export-size").asLong());
            assertFalse(export.get("is_read_only").asBoolean());
            assertTrue(export.get("can_flush").asBoolean() && export.get("can_fua").asBoolean()
                    && export.get("can_multi_conn").asBoolean() && export.get("can_trim").asBoolean(), export.toString());
            assertTrue(export.get("contexts").toString().contains("base:allocation"), export.toString());

            // writes at the start, the middle, the end and unaligned, read back through another connection
            String uri = server.uri("team/vm-1");
            Cli.mustTool("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 64k", "-c", "write -P 0x22 4000000 5000",
                    "-c", "write -P 0x33 8384512 4096", "-c", "write -z 1M 512k", uri);
            Cli.mustTool("qemu-io", "-f", "raw", "-c", "read -P 0x11 0 64k", "-c", "read -P 0x22 4000000 5000",
                    "-c", "read -P 0x33 8384512 4096", "-c", "read -P 0 1M 512k", uri);
            Cli.Result map = Cli.mustTool("nbdinfo", "--map", uri);
            assertTrue(map.out().contains("hole"), map.out());

            // the CLI keeps working against the same store
            assertEquals(0, cli.run("create", "team/vm-2", "1G").code());
            assertEquals(0, cli.run("clone", "team/vm-1@1", "team/vm-3").code());
            Cli.Result snap = cli.run("snapshot", "team/vm-1", "-m", "while served");
            assertEquals(0, snap.code(), snap.toString());
            assertEquals(3, json.readTree(cli.run("ls", "--json").out()).size());

            // the version the client's writes made (a checkpoint when its last connection closed) is readable
            JsonNode log = json.readTree(cli.run("log", "team/vm-1", "--json").out());
            assertTrue(log.size() >= 2, log.toString());
            Path v = dir.resolve("v.raw");
            assertEquals(0, cli.run("export", "team/vm-1", v.toString()).code());
            Cli.mustTool("qemu-img", "compare", "-f", "raw", "-F", "raw", v.toString(), uri);
            assertNotEquals(0, Cli.tool("cmp", "-s", disk.toString(), v.toString()).code(), "the writes are in the new version");

            // @1 is read-only and still the imported content
            JsonNode ro = json.readTree(Cli.mustTool("nbdinfo", "--json", server.uri("team/vm-1@1")).out()).get("exports").get(0);
            assertTrue(ro.get("is_read_only").asBoolean());
            Cli.tool("qemu-io", "-f", "raw", "-c", "write -P 0x77 0 4k", server.uri("team/vm-1@1")); // must not take
            Cli.mustTool("qemu-img", "compare", "-f", "raw", "-F", "raw", disk.toString(), server.uri("team/vm-1@1"));

            // unknown names are refused with a message
            Cli.Result unknown = Cli.tool("nbdinfo", server.uri("no/such/image"));
            assertNotEquals(0, unknown.code());
            assertTrue(unknown.err().contains("no/such/image"), unknown.err());

            // nbdcopy out and back in
            Path copy = dir.resolve("copy.raw");
            Cli.mustTool("nbdcopy", uri, copy.toString());
            Cli.mustTool("nbdcopy", copy.toString(), server.uri("team/vm-2"));
            Cli.mustTool("qemu-img", "compare", "-f", "raw", "-F", "raw", copy.toString(), server.uri("team/vm-2"));
        }
        Cli.Result check = cli.run("check");
        assertEquals(0, check.code(), check.toString());
    }

    @Test
    void aSecondServerCannotWriteAnImageTheFirstHasOpen() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "a", "64M").code());
        try (Server one = new Server(cli, "--checkpoint-interval", "0");
             Server two = new Server(cli, "--checkpoint-interval", "0")) {
            // a client holds the image open on server one while server two is asked for it
            Process holder = new ProcessBuilder("qemu-io", "-f", "raw", one.uri("a")).start();
            try {
                Thread.sleep(1500);
                Cli.Result r = Cli.tool("nbdinfo", two.uri("a"));
                assertNotEquals(0, r.code(), r.toString());
                Thread.sleep(200);
                assertTrue(two.log.toString().contains("already open read-write"), "server two logs why: " + two.log);
                Cli.Result rb = cli.run("rollback", "a", "1");
                assertEquals(1, rb.code());
                assertTrue(rb.err().contains("served"), rb.err());
            } finally {
                holder.destroy();
                holder.waitFor();
            }
        }
    }

    @Test
    void checkpointsComeFromTheTimerAndFromSnapshotWhileAClientIsConnected() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "team/db", "32M").code());
        try (Server server = new Server(cli, "--checkpoint-interval", "1s");
             NbdClient client = new NbdClient(server.port, "team/db")) {
            byte[] one = new byte[4096];
            java.util.Arrays.fill(one, (byte) 1);
            client.write(8192, one);
            client.flush();
            long deadline = System.currentTimeMillis() + 15_000;
            JsonNode log;
            do {
                Thread.sleep(300);
                log = json.readTree(cli.run("log", "team/db", "--json").out());
            } while (log.size() < 2 && System.currentTimeMillis() < deadline);
            assertEquals("automatic checkpoint", log.get(log.size() - 1).get("message").asText(), log.toString());

            byte[] two = new byte[4096];
            java.util.Arrays.fill(two, (byte) 2);
            client.write(12288, two);
            Cli.Result snap = cli.run("snapshot", "team/db", "-m", "release 1.0");
            assertEquals(0, snap.code(), snap.toString());
            assertTrue(snap.out().contains("running server"), snap.out());
            log = json.readTree(cli.run("log", "team/db", "--json").out());
            JsonNode last = log.get(log.size() - 1);
            assertEquals("release 1.0", last.get("message").asText());
            // the snapshot holds the write made just before it, even though the client never flushed
            Path v = dir.resolve("v.raw");
            assertEquals(0, cli.run("export", "team/db@" + last.get("version").asInt(), v.toString()).code());
            byte[] got = Files.readAllBytes(v);
            assertEquals(2, got[12288]);
            assertEquals(1, got[8192]);
            // rollback of an image a client has open is refused
            Cli.Result rb = cli.run("rollback", "team/db", "1");
            assertEquals(1, rb.code(), rb.toString());
        }
    }

    /**
     * SIGTERM (systemd's stop) and SIGINT (Ctrl-C) with a client connected and a flushed write not
     * yet checkpointed: the server stops accepting, disconnects the client, checkpoints, says so
     * in its log (ISO-8601 time with milliseconds and zone, a standard level name) and exits 0.
     */
    @Test
    void sigtermAndSigintStopInOrderLogEachStepAndExitZero() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "team/db", "32M").code());
        int version = 1;
        for (String signal : new String[]{"TERM", "INT"}) {
            Server server = new Server(cli, "--checkpoint-interval", "0", "--no-warmup");
            byte[] data = new byte[4096];
            java.util.Arrays.fill(data, (byte) signal.charAt(0));
            NbdClient client = new NbdClient(server.port, "team/db");
            try {
                client.write(8192, data);
                client.flush();
                int code = server.stop(signal);
                String log = server.log.toString();
                assertEquals(0, code, "exit status after SIG" + signal + "; log: " + log);
                assertTrue(log.contains("stopping (SIG" + signal + ")"), log);
                assertTrue(log.contains("every client is disconnected"), log);
                assertTrue(log.contains("image 'team/db': checkpoint on close -> version " + (version + 1)), log);
                assertTrue(log.contains("closed image 'team/db'"), log);
                assertTrue(log.contains("stopped in"), log);
                assertFalse(log.contains("Exception") || log.contains("\tat "), "no stack trace: " + log);
                for (String line : log.lines().toList()) {
                    assertTrue(line.matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}(Z|[+-]\\d\\d:\\d\\d) (ERROR|WARN|INFO|DEBUG|TRACE) \\S+: .*"),
                            "log line format: " + line);
                }
            } finally {
                try {
                    client.close();
                } catch (java.io.IOException gone) {
                    // the server closed the connection, as it should
                }
            }
            version++;
            JsonNode log = json.readTree(cli.run("log", "team/db", "--json").out());
            assertEquals(version, log.size(), log.toString());
            Path v = dir.resolve("v.raw");
            assertEquals(0, cli.run("export", "team/db", v.toString()).code());
            assertEquals(signal.charAt(0), Files.readAllBytes(v)[8192], "the flushed write is in the version the stop made");
        }
    }

    @Test
    void maxConnectionsAndRequestTimeoutAreHonoured() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "team/vm-1", "8M").code());
        try (Server server = new Server(cli, "--no-warmup", "--checkpoint-interval", "0", "--max-connections", "1", "--request-timeout", "1s");
             NbdClient first = new NbdClient(server.port, "team/vm-1")) {
            first.write(0, new byte[4096]);
            assertNotEquals(0, Cli.tool("nbdinfo", "--size", server.uri("team/vm-1")).code(), "a second connection past --max-connections 1 is refused");
            for (int i = 0; i < 200 && !server.log.toString().contains("the limit is 1"); i++) Thread.sleep(50);
            assertTrue(server.log.toString().contains("the limit is 1"), server.log.toString());
        }
        // a client that stops in the middle of the handshake is closed after --request-timeout
        try (Server server = new Server(cli, "--no-warmup", "--checkpoint-interval", "0", "--request-timeout", "1s");
             java.net.Socket stalled = new java.net.Socket("127.0.0.1", server.port)) {
            stalled.setSoTimeout(60_000);
            var in = new java.io.DataInputStream(stalled.getInputStream());
            in.readNBytes(18); // NBDMAGIC, IHAVEOPT, handshake flags
            stalled.getOutputStream().write(new byte[] {0, 0, 0, 3, 0x49, 0x48}); // client flags, then 2 bytes of an option
            assertEquals(-1, in.read(), "the server closed the stalled connection");
            for (int i = 0; i < 200 && !server.log.toString().contains("request timeout 1000 ms"); i++) Thread.sleep(50);
            assertTrue(server.log.toString().contains("127.0.0.1:" + stalled.getLocalPort() + ")")
                    && server.log.toString().contains("request timeout 1000 ms"), server.log.toString());
        }
    }

    /**
     * What an admin sees of a running server: nbdinfo --list describes every image without opening
     * one read-write (no journal, no version); connects and disconnects are INFO lines with the
     * client's address, the export and the mode.
     */
    @Test
    void listingOpensNothingAndClientsAreLogged() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "team/a", "8M").code());
        assertEquals(0, cli.run("create", "team/b", "16M").code());
        try (Server server = new Server(cli, "--no-warmup", "--checkpoint-interval", "0")) {
            JsonNode list = json.readTree(Cli.mustTool("nbdinfo", "--list", "--json", "nbd://127.0.0.1:" + server.port).out());
            java.util.Map<String, Long> sizes = new java.util.TreeMap<>();
            for (JsonNode e : list.get("exports")) sizes.put(e.get("export-name").asText(), e.get("export-size").asLong());
            assertEquals(java.util.Map.of("team/a", 8L << 20, "team/b", 16L << 20), sizes, list.toString());
            for (JsonNode e : list.get("exports")) assertFalse(e.get("is_read_only").asBoolean(), "listed as the read-write export a client gets: " + e);
            Thread.sleep(300); // the log is pumped by a thread
            String log = server.log.toString();
            assertFalse(log.contains("opened image"), "listing opened an image read-write: " + log);
            try (var files = Files.list(dir.resolve("store").resolve("journals"))) {
                assertEquals(java.util.List.of(), files.map(f -> f.getFileName().toString()).filter(n -> n.contains("journal")).toList(),
                        "listing left journals");
            } catch (java.nio.file.NoSuchFileException none) {
                // no journals directory at all: nothing was opened
            }
            assertEquals(1, json.readTree(cli.run("log", "team/a", "--json").out()).size(), "listing made no version");

            Cli.mustTool("qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 64k", server.uri("team/a"));
            Cli.mustTool("nbdinfo", "--size", server.uri("team/b@1"));
            for (int i = 0; i < 100 && !server.log.toString().contains("disconnected from export 'team/b@1'"); i++) Thread.sleep(50);
            log = server.log.toString();
            assertTrue(log.matches("(?s).*INFO \\S+: nbd client \\d+ \\(127\\.0\\.0\\.1:\\d+\\): connected to export 'team/a' \\(read-write, 8388608 bytes\\).*"), log);
            assertTrue(log.matches("(?s).*\\(127\\.0\\.0\\.1:\\d+\\): disconnected from export 'team/a' \\(read-write.*"), log);
            assertTrue(log.matches("(?s).*\\(127\\.0\\.0\\.1:\\d+\\): connected to export 'team/b@1' \\(read-only, 16777216 bytes\\).*"), log);
        }
    }

    /** --read-only and --export PREFIX, on the command line and from a --config file; a bad config is refused. */
    @Test
    void readOnlyAndPrefixFromTheCommandLineOrAConfigFile() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "team/a", "8M").code());
        assertEquals(0, cli.run("create", "other/x", "8M").code());
        Path conf = dir.resolve("serve.conf");
        Files.writeString(conf, "# what this host serves\nread-only = true\nexport = team\ncheckpoint-interval = 0\nwarmup = false\n");
        for (String[] args : new String[][]{{"--no-warmup", "--read-only", "--export", "team"}, {"--config", conf.toString()}}) {
            try (Server server = new Server(cli, args)) {
                JsonNode list = json.readTree(Cli.mustTool("nbdinfo", "--list", "--json", "nbd://127.0.0.1:" + server.port).out());
                assertEquals(1, list.get("exports").size(), list.toString());
                JsonNode a = list.get("exports").get(0);
                assertEquals("team/a", a.get("export-name").asText());
                assertTrue(a.get("is_read_only").asBoolean(), a.toString());
                Cli.Result w = Cli.tool("qemu-io", "-f", "raw", "-c", "write -P 1 0 4k", server.uri("team/a"));
                assertTrue(w.code() != 0 || w.err().contains("ermission") || w.out().contains("ermission"), "a write is refused: " + w);
                Cli.Result other = Cli.tool("nbdinfo", server.uri("other/x"));
                assertNotEquals(0, other.code());
                assertTrue(other.err().contains("other/x"), other.err());
            }
            assertEquals(1, json.readTree(cli.run("log", "team/a", "--json").out()).size(), "a read-only server made no version");
        }
        Files.writeString(conf, "listen = 127.0.0.1:0\nread-onyl = true\n");
        Cli.Result bad = cli.run("serve", "--config", conf.toString());
        assertEquals(2, bad.code(), bad.toString());
        assertTrue(bad.err().contains("config " + conf + ": unknown setting 'read-onyl'"), bad.err());
        Cli.Result missing = cli.run("serve", "--config", dir.resolve("nope.conf").toString());
        assertEquals(1, missing.code(), missing.toString());
        assertTrue(missing.err().contains("nope.conf: no such file"), missing.err());
    }
}
