package dev.cask.format.qcow2;

import dev.cask.device.BlockDevice;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Runs the real QEMU tools for the qcow2 tests. A missing tool fails the test (CI installs
 * qemu-utils); it never skips.
 */
final class Qemu {
    private Qemu() {}

    record Result(int exit, String output) {}

    static Path tool(String name) {
        String pathVar = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : pathVar.split(File.pathSeparator)) {
            Path p = Path.of(dir.isEmpty() ? "." : dir, name);
            if (Files.isExecutable(p)) return p;
        }
        return fail(name + " not found on PATH (" + pathVar + "); install qemu-utils (Debian) to run the qcow2 tests");
    }

    /** Runs a command and returns its exit code and combined output. */
    static Result exec(Path dir, String... command) {
        List<String> cmd = new ArrayList<>(List.of(command));
        cmd.set(0, tool(cmd.getFirst()).toString());
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
            Process p = pb.start();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return fail("timed out: " + String.join(" ", cmd));
            }
            return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
        } catch (IOException e) {
            return fail("cannot run " + String.join(" ", cmd) + ": " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return fail("interrupted: " + String.join(" ", cmd));
        }
    }

    /** Runs a command that must succeed; returns its output. */
    static String run(Path dir, String... command) {
        Result r = exec(dir, command);
        if (r.exit() != 0) fail(String.join(" ", command) + " exited " + r.exit() + ":\n" + r.output());
        return r.output();
    }

    static void img(Path dir, String... args) {
        String[] cmd = new String[args.length + 1];
        cmd[0] = "qemu-img";
        System.arraycopy(args, 0, cmd, 1, args.length);
        run(dir, cmd);
    }

    /** Runs qemu-io commands (each like {@code write -P 0xab 0 64k}) on a qcow2 image. */
    static void io(Path image, String... commands) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "qcow2"));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(image.toString());
        String out = run(image.getParent(), cmd.toArray(String[]::new));
        if (out.contains("error") || out.contains("failed")) fail("qemu-io " + String.join(" ", commands) + ": " + out);
    }

    /** The guest view of {@code image} as QEMU sees it: {@code qemu-img convert -O raw}, read back. */
    static byte[] toRaw(Path image) {
        try {
            Path raw = Files.createTempFile(image.getParent(), "expected", ".raw");
            Files.delete(raw);
            img(image.getParent(), "convert", "-O", "raw", image.toString(), raw.toString());
            byte[] bytes = Files.readAllBytes(raw);
            Files.delete(raw);
            return bytes;
        } catch (IOException e) {
            return fail(e);
        }
    }

    /** Reads the whole device with odd-sized requests that straddle clusters. */
    static byte[] readAll(BlockDevice device) {
        byte[] out = new byte[Math.toIntExact(device.size())];
        int pos = 0;
        int[] steps = {4096, 65536 + 513, 1, 100_000, 512, 3 << 20, 7777};
        int i = 0;
        while (pos < out.length) {
            int n = Math.min(steps[i++ % steps.length], out.length - pos);
            device.read(pos, out, pos, n);
            pos += n;
        }
        return out;
    }
}
