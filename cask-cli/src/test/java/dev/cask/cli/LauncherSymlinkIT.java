package dev.cask.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The checkout's {@code ./cask} launcher put on PATH as a symlink (what {@code ln -s ~/cask/cask
 * /usr/local/bin/cask} does), run from another directory: it must find its checkout through the
 * link, and its jar (built by this Maven run, so no build happens here), and run commands.
 * Runs after {@code package} (failsafe), on the jar the build just made.
 */
class LauncherSymlinkIT {
    @TempDir
    Path dir;

    private static Cli.Result run(Path cwd, String path, String... cmd) throws Exception {
        List<String> argv = new java.util.ArrayList<>(List.of("env")); // env finds the command on the PATH given here
        argv.addAll(List.of(cmd));
        ProcessBuilder pb = new ProcessBuilder(argv).directory(cwd.toFile());
        pb.environment().put("PATH", path);
        pb.environment().put("CASK_AOT", "0"); // the start-up cache is not what this tests
        pb.environment().remove("CASK_STORE");
        Process p = pb.start();
        p.getOutputStream().close();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread t = Cli.pump(p.getErrorStream(), err);
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), String.join(" ", cmd) + " did not finish in 120 s");
        t.join();
        return new Cli.Result(p.exitValue(), new String(out, StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void caskSymlinkedOntoPathFindsItsCheckoutAndRuns() throws Exception {
        Path launcher = Path.of(System.getProperty("cask.checkout"), "cask").toRealPath();
        assertTrue(Files.isExecutable(launcher), launcher + " is executable");
        // bin/cask -> checkout/cask, and a second link to that link (relative), as package managers and users make
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Files.createSymbolicLink(bin.resolve("cask"), launcher);
        Path other = Files.createDirectories(dir.resolve("other/bin"));
        Files.createSymbolicLink(other.resolve("cask"), Path.of("../../bin/cask"));
        Path work = Files.createDirectories(dir.resolve("work"));
        String path = bin + ":" + System.getenv("PATH");

        Cli.Result version = run(work, path, "cask", "--version");
        assertEquals(0, version.code(), version.toString());
        assertEquals("cask " + System.getProperty("cask.version"), version.out().strip());
        assertFalse(version.err().contains("building"), "the jar this build made is used, not rebuilt: " + version.err());

        Cli.Result viaChain = run(work, System.getenv("PATH"), other.resolve("cask").toString(), "--version");
        assertEquals(0, viaChain.code(), viaChain.toString());
        assertEquals(version.out(), viaChain.out());

        // a real command through the link, from a directory that is not the checkout
        byte[] disk = new byte[1 << 20];
        new Random(7).nextBytes(disk);
        Files.write(work.resolve("d.raw"), disk);
        List<String[]> steps = List.of(
                new String[]{"cask", "init", "store"},
                new String[]{"cask", "--store", "store", "import", "d.raw", "vm"},
                new String[]{"cask", "--store", "store", "export", "vm", "back.raw"});
        for (String[] step : steps) {
            Cli.Result r = run(work, path, step);
            assertEquals(0, r.code(), String.join(" ", step) + ": " + r);
        }
        assertArrayEquals(disk, Files.readAllBytes(work.resolve("back.raw")));
    }
}
