package dev.cask.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad input gets one clear line on stderr, exit 1 (2 for usage), and leaves the catalog untouched. */
class BadInputTest {
    @TempDir
    Path dir;

    private void assertFails(Cli.Result r, int code, String... fragments) {
        assertEquals(code, r.code(), r.toString());
        String err = r.err().strip();
        assertFalse(err.isEmpty(), "an error message on stderr");
        assertTrue(err.startsWith("cask: "), err);
        for (String f : fragments) assertTrue(err.contains(f), "stderr should mention '" + f + "': " + err);
    }

    private int imageCount(Cli cli) throws Exception {
        return new ObjectMapper().readTree(cli.run("ls", "--json").out()).size();
    }

    @Test
    void usageErrorsExitTwo() {
        Cli cli = new Cli(dir.resolve("store"));
        assertFails(cli.run("import"), 2, "Missing required parameter");
        assertFails(cli.run("frobnicate"), 2);
        assertFails(cli.run("ls", "--no-such-flag"), 2, "--no-such-flag");
        assertFails(cli.run("serve", "--log-level", "loud", "--no-warmup"), 2, "--log-level", "loud", "error, warn, info");
        Cli.Result help = cli.run("import", "--help");
        assertEquals(0, help.code());
        assertTrue(help.out().contains("--block-size"), help.out());
    }

    @Test
    void missingFilesNamesAndFormatsAreRefusedWithoutAVisibleImage() throws Exception { // usage errors (names, sizes, formats) exit 2, failures 1
        Cli cli = new Cli(dir.resolve("store"));
        Path raw = dir.resolve("ok.raw");
        Files.write(raw, new byte[8192]);
        assertFails(cli.run("import", dir.resolve("nope.raw").toString(), "a"), 1, "nope.raw", "no such file");
        assertFails(cli.run("import", raw.toString(), "bad//name"), 2, "bad//name");
        assertFails(cli.run("import", raw.toString(), "x/.hidden"), 2, "x/.hidden");
        assertFails(cli.run("import", raw.toString(), "a@3"), 2, "a@3");
        assertFails(cli.run("import", "--format", "vmdk", raw.toString(), "a"), 1, "vmdk"); // a known format, but not this file's
        assertFails(cli.run("import", "--block-size", "3000", raw.toString(), "a"), 2, "3000");
        assertFails(cli.run("import", "--block-size", "2M", raw.toString(), "a"), 2, "power of two");
        assertFails(cli.run("create", "x", "12Q"), 2, "12Q");
        assertFails(cli.run("create", "x", "1000"), 2, "1000", "multiple of 512");
        assertEquals(0, imageCount(cli));
        assertEquals(0, cli.run("import", raw.toString(), "a").code());
        assertFails(cli.run("import", raw.toString(), "a"), 1, "'a' already exists");
        assertFails(cli.run("info", "missing/img"), 1, "missing/img", "not found");
        assertFails(cli.run("info", "a@9"), 1, "a", "9");
        assertFails(cli.run("rollback", "a", "7"), 1, "7");
        assertFails(cli.run("export", "a", dir.resolve("x").toString(), "--format", "iso"), 2, "iso"); // vhd is a format now (written by qemu-nbd)
        assertEquals(1, imageCount(cli));
    }

    @Test
    void brokenQcow2IsRefusedAndNothingIsImported() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Path q = dir.resolve("broken.qcow2");
        Cli.mustTool("qemu-img", "create", "-q", "-f", "qcow2", q.toString(), "64M");
        byte[] b = Files.readAllBytes(q);
        // l1_table_offset (bytes 40..47) far past the end of the file
        for (int i = 40; i < 48; i++) b[i] = (byte) 0x7f;
        Files.write(q, b);
        assertFails(cli.run("import", q.toString(), "a"), 1, "broken.qcow2");
        Path trunc = dir.resolve("trunc.qcow2");
        Files.write(trunc, java.util.Arrays.copyOf(b, 50));
        assertFails(cli.run("import", trunc.toString(), "b"), 1, "trunc.qcow2");
        assertEquals(0, imageCount(cli));
        assertEquals(0, cli.run("check").code());
    }

    @Test
    void aStoreThatIsNotAStoreIsRefused() throws Exception {
        Path notStore = dir.resolve("home");
        Files.createDirectories(notStore);
        Files.writeString(notStore.resolve("important.txt"), "do not touch");
        Cli.Result r = new Cli(notStore).run("ls");
        assertFails(r, 1, "not a cask store");
        assertEquals("do not touch", Files.readString(notStore.resolve("important.txt")));
    }

    /** A typo in --store or $CASK_STORE is an error naming the path, never a fresh empty store; init makes one on purpose. */
    @Test
    void aStorePathThatDoesNotExistIsAnErrorUntilInitCreatesIt() throws Exception {
        Path typo = dir.resolve("stroe");
        java.io.StringWriter out = new java.io.StringWriter();
        java.io.StringWriter err = new java.io.StringWriter();
        int code = Main.run(new String[]{"--store", typo.toString(), "ls"}, new java.io.PrintWriter(out, true), new java.io.PrintWriter(err, true));
        assertFails(new Cli.Result(code, out.toString(), err.toString()), 1, typo.toString(), "no such directory", "cask init");
        assertFalse(Files.exists(typo), "nothing is created at a mistyped path");

        // the same through $CASK_STORE, in a real process
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Main.class.getName(), "import",
                dir.resolve("nothing.raw").toString(), "x");
        pb.environment().put("CASK_STORE", typo.toString());
        Process p = pb.start();
        String perr = new String(p.getErrorStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(1, p.waitFor(), perr);
        assertTrue(perr.startsWith("cask: store " + typo) && perr.contains("$CASK_STORE"), perr);
        assertFalse(Files.exists(typo));

        // init creates it (parents too); then commands work; a second init changes nothing and says so
        Path nested = typo.resolve("a/b");
        code = Main.run(new String[]{"init", nested.toString()}, new java.io.PrintWriter(out, true), new java.io.PrintWriter(err, true));
        assertEquals(0, code, err.toString());
        Cli cli = new Cli(nested);
        assertEquals(0, cli.run("create", "vm", "1M").code());
        Cli.Result again = cli.run("init", nested.toString());
        assertFails(again, 1, "already a cask store");
        assertEquals(1, cli.run("ls", "--json").out().split("\"name\"").length - 1, "init did not touch the existing store");
    }

    /** Help that a user can copy from: every command has --help (exit 0), and no address or path is broken across lines. */
    @Test
    void helpNeverBreaksAnAddressOrAPath() {
        Cli cli = new Cli(dir.resolve("store"));
        picocli.CommandLine root = new picocli.CommandLine(new Main());
        for (String c : new String[]{"init", "import", "export", "create", "clone", "snapshot", "rollback", "ls", "log", "info", "rm", "stats",
                "check", "serve", "analyze"}) {
            Cli.Result r = cli.run(c, "--help");
            assertEquals(0, r.code(), c + ": " + r);
            // every address or path the help text holds (interpolated defaults included) is whole on one line
            root.addSubcommand(c, Main.subcommand(c));
            picocli.CommandLine.Model.CommandSpec spec = root.getSubcommands().get(c).getCommandSpec();
            java.util.List<String> texts = new java.util.ArrayList<>(java.util.List.of(spec.usageMessage().description()));
            for (var o : spec.options()) texts.addAll(java.util.List.of(o.description()));
            java.util.List<String> lines = r.out().lines().toList();
            for (String text : texts) {
                String t = text.replace("${DEFAULT-VALUE}", "");
                for (String token : t.split("\\s+")) {
                    String w = token.replaceAll("[.,;)(]+$", "").replaceAll("^[(]+", "");
                    if (!(w.contains("://") || w.matches(".*[~$/].*/.*") || w.matches(".*\\d:\\d.*"))) continue;
                    assertTrue(lines.stream().anyMatch(l -> l.contains(w)), "cask " + c + " --help breaks '" + w + "' across lines:\n" + r.out());
                }
            }
            for (var o : spec.options()) {
                String d = o.defaultValue();
                if (d != null && d.matches(".*\\d:\\d.*")) assertTrue(lines.stream().anyMatch(l -> l.contains(d)), c + ": default " + d + " broken:\n" + r.out());
            }
        }
    }
}
