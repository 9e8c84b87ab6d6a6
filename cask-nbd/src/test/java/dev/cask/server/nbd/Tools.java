package dev.cask.server.nbd;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Runs the real NBD tools (nbdinfo, nbdcopy, qemu-img, qemu-io, fio) as separate processes. A
 * missing tool fails the test, naming the Debian package; it never skips.
 */
final class Tools {
    private Tools() {}

    record Result(int exit, String stdout, String stderr) {
        String all() {
            return stdout + stderr;
        }
    }

    static Path tool(String name) {
        String pathVar = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : pathVar.split(File.pathSeparator)) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, name);
            if (Files.isExecutable(p)) return p;
        }
        String pkg = switch (name) {
            case "nbdinfo", "nbdcopy" -> "libnbd-bin";
            case "qemu-img", "qemu-io", "qemu-nbd" -> "qemu-utils";
            default -> name;
        };
        return fail(name + " not found on PATH (" + pathVar + "); install the Debian package " + pkg + " to run the NBD interop tests");
    }

    /** Runs a command (the first word is looked up on PATH) and returns exit code, stdout and stderr. */
    static Result exec(String... command) {
        return exec(Map.of(), command);
    }

    /** Like {@link #exec(String...)}, with extra environment variables. */
    static Result exec(Map<String, String> env, String... command) {
        List<String> cmd = new ArrayList<>(List.of(command));
        cmd.set(0, tool(cmd.getFirst()).toString());
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
            pb.environment().putAll(env);
            Process p = pb.start();
            CompletableFuture<byte[]> err = CompletableFuture.supplyAsync(() -> {
                try {
                    return p.getErrorStream().readAllBytes();
                } catch (IOException e) {
                    return new byte[0];
                }
            });
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return fail("timed out: " + String.join(" ", cmd));
            }
            return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8), new String(err.join(), StandardCharsets.UTF_8));
        } catch (IOException e) {
            return fail("cannot run " + String.join(" ", cmd) + ": " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return fail("interrupted: " + String.join(" ", cmd));
        }
    }

    /** Runs a command that must succeed; returns its stdout. */
    static String run(String... command) {
        Result r = exec(command);
        if (r.exit() != 0) fail(String.join(" ", command) + " exited " + r.exit() + ":\n" + r.all());
        return r.stdout();
    }

    /** Runs qemu-io commands against an NBD URI; fails on any error in the output. */
    static String qemuIo(String uri, String... commands) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(uri);
        Result r = exec(cmd.toArray(String[]::new));
        String out = r.all();
        if (r.exit() != 0 || out.contains("error") || out.contains("failed") || out.contains("Pattern verification")) {
            fail("qemu-io " + String.join(" ; ", commands) + " on " + uri + " exited " + r.exit() + ":\n" + out);
        }
        return out;
    }
}
