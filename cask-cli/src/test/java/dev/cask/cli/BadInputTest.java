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
    void missingFilesNamesAndFormatsAreRefusedWithoutAVisibleImage() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        Path raw = dir.resolve("ok.raw");
        Files.write(raw, new byte[8192]);
        assertFails(cli.run("import", dir.resolve("nope.raw").toString(), "a"), 1, "nope.raw", "no such file");
        assertFails(cli.run("import", raw.toString(), "bad//name"), 1, "bad//name");
        assertFails(cli.run("import", raw.toString(), "x/.hidden"), 1, "x/.hidden");
        assertFails(cli.run("import", raw.toString(), "a@3"), 1, "a@3");
        assertFails(cli.run("import", "--format", "vmdk", raw.toString(), "a"), 1, "vmdk");
        assertFails(cli.run("import", "--block-size", "3000", raw.toString(), "a"), 1, "3000");
        assertFails(cli.run("import", "--block-size", "2M", raw.toString(), "a"), 1, "power of two");
        assertFails(cli.run("create", "x", "12Q"), 1, "12Q");
        assertEquals(0, imageCount(cli));
        assertEquals(0, cli.run("import", raw.toString(), "a").code());
        assertFails(cli.run("import", raw.toString(), "a"), 1, "'a' already exists");
        assertFails(cli.run("info", "missing/img"), 1, "missing/img", "not found");
        assertFails(cli.run("info", "a@9"), 1, "a", "9");
        assertFails(cli.run("rollback", "a", "7"), 1, "7");
        assertFails(cli.run("export", "a", dir.resolve("x").toString(), "--format", "iso"), 1, "iso"); // vhd is a format now (written by qemu-nbd)
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
}
