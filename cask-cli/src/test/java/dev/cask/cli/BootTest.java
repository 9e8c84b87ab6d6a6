package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The mission in one test: a Debian VM (qemu-system-x86_64, TCG) boots from an image cask serves
 * over NBD, runs /sbin/bootcheck (reads much of the disk, writes 16 MiB, prints BOOT-OK), and the
 * data it wrote is in a new version afterwards. The images come from the fixture script
 * (../shared/fixtures/build-images.sh, or the copy in scripts/), cached in $CASK_FIXTURES or
 * ~/.cache/cask-fixtures; building them the first time takes a few minutes.
 */
class BootTest {
    @TempDir
    Path dir;

    static Path fixtures() throws Exception {
        String env = System.getenv("CASK_FIXTURES");
        Path out = env != null && !env.isBlank() ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "cask-fixtures");
        if (Files.exists(out.resolve("bookworm-minbase.raw")) && Files.exists(out.resolve("vmlinuz")) && Files.exists(out.resolve("initrd.img"))) {
            return out;
        }
        Path repo = Path.of("").toAbsolutePath().getParent();
        Path script = repo.resolveSibling("shared").resolve("fixtures").resolve("build-images.sh");
        if (!Files.exists(script)) script = repo.resolve("scripts").resolve("build-images.sh");
        Process p = new ProcessBuilder("bash", script.toString(), out.toString()).redirectErrorStream(true).start();
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        Thread t = Cli.pump(p.getInputStream(), log);
        if (!p.waitFor(20, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("building the fixture images took over 20 minutes: " + log);
        }
        t.join();
        assertEquals(0, p.exitValue(), "fixture build failed: " + log);
        return out;
    }

    /**
     * Boots the fixture kernel with its root file system on the NBD export {@code uri}, running
     * /sbin/bootcheck, until the VM powers off (at most 10 minutes); returns its console.
     */
    static String boot(Path fixtures, String uri) throws Exception {
        Process vm = new ProcessBuilder("qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "1024",
                "-nographic", "-no-reboot", "-kernel", fixtures.resolve("vmlinuz").toString(), "-initrd", fixtures.resolve("initrd.img").toString(),
                "-append", "root=/dev/vda1 console=ttyS0 init=/sbin/bootcheck panic=-1",
                "-drive", "file=" + uri + ",format=raw,if=virtio").redirectErrorStream(true).start();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Thread t = Cli.pump(vm.getInputStream(), out);
        if (!vm.waitFor(10, TimeUnit.MINUTES)) {
            vm.destroyForcibly();
            throw new AssertionError("the VM did not power off within 10 minutes:\n" + out);
        }
        t.join();
        return out.toString();
    }

    @Test
    void aDebianVmBootsFromCaskAndItsWritesBecomeAVersion() throws Exception {
        Path f = fixtures();
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("import", f.resolve("bookworm-minbase.raw").toString(), "team/vm-1").code());
        ObjectMapper json = new ObjectMapper();
        long storedBefore = json.readTree(cli.run("stats", "--json").out()).get("stored_bytes").asLong();
        String console;
        try (Server server = new Server(cli, "--checkpoint-interval", "0")) {
            console = boot(f, server.uri("team/vm-1"));
        }
        assertTrue(console.contains("BOOT-OK"), "the guest must print BOOT-OK:\n" + console);
        JsonNode log = json.readTree(cli.run("log", "team/vm-1", "--json").out());
        assertTrue(log.size() >= 2, "a version after the boot: " + log);
        long storedAfter = json.readTree(cli.run("stats", "--json").out()).get("stored_bytes").asLong();
        assertTrue(storedAfter - storedBefore >= 16L << 20, "the 16 MiB of random data the guest wrote is stored: "
                + storedBefore + " -> " + storedAfter);
        Cli.Result check = cli.run("check");
        assertEquals(0, check.code(), check.toString());
    }
}
