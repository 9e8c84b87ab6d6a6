package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Runs cask command lines against one store, in-process or as a real child process, and runs tools;
 * and the checks tests share on what a command did ({@link #json}, {@link #assertExports}).
 * A store is named by global options ({@code --store PATH}, or a shared store's {@code --store},
 * {@code --catalog} and {@code --state}); child processes get {@code env} added to their environment
 * (a shared store's S3 endpoint and keys).
 */
final class Cli {
    record Result(int code, String out, String err) {
        @Override
        public String toString() {
            return "exit " + code + "\nstdout: " + out + "\nstderr: " + err;
        }
    }

    private final List<String> global;
    private final java.util.Map<String, String> env;

    /** A Cli on {@code store}, created as an empty directory when missing (an explicit store must exist; it then becomes a store). */
    Cli(Path store) {
        this(List.of("--store", store.toString()), java.util.Map.of());
        try {
            java.nio.file.Files.createDirectories(store);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** A Cli whose command lines start with {@code global} (the store options), its child processes with {@code env} set. */
    Cli(List<String> global, java.util.Map<String, String> env) {
        this.global = List.copyOf(global);
        this.env = java.util.Map.copyOf(env);
    }

    /**
     * In-process: fast, same JVM. The command runs on a thread of its own: one that lowers its
     * thread's priority as maintenance does (gc: nice 10) leaves the test's thread as it was, and
     * with it the processes the test starts later (a child's threads start at its parent thread's
     * nice value).
     */
    Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        List<String> all = new ArrayList<>(global);
        all.addAll(List.of(args));
        int[] code = {0};
        Throwable[] thrown = {null};
        Thread t = Thread.ofPlatform().name("cli-" + (args.length > 0 ? args[0] : "")).start(() -> {
            try {
                code[0] = Main.run(all.toArray(String[]::new), new PrintWriter(out, true), new PrintWriter(err, true));
            } catch (Throwable e) {
                thrown[0] = e;
            }
        });
        boolean interrupted = false;
        while (t.isAlive()) {
            try {
                t.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
        if (thrown[0] instanceof RuntimeException e) throw e;
        if (thrown[0] instanceof Error e) throw e;
        if (thrown[0] != null) throw new IllegalStateException(thrown[0]);
        return new Result(code[0], out.toString(), err.toString());
    }

    /** What command {@code r} printed with {@code --json}; fails the test unless it exited 0. */
    static JsonNode json(Result r) throws IOException {
        assertEquals(0, r.code(), r.toString());
        return new ObjectMapper().readTree(r.out());
    }

    /** Exports image {@code name} next to {@code raw} and fails the test unless it is {@code raw} bit for bit (cmp); the export is deleted after. */
    void assertExports(String name, Path raw) throws IOException, InterruptedException {
        Path out = raw.resolveSibling("out-" + name.replace('/', '_') + ".raw");
        assertEquals(0, run("export", name, out.toString()).code());
        mustTool("cmp", raw.toString(), out.toString());
        java.nio.file.Files.delete(out);
    }

    /** A real cask process (for stdin/stdout, exit codes and several processes at once). */
    Process start(String... args) throws IOException {
        return start(List.of(), args);
    }

    /**
     * Like {@link #start(String...)} with SIGINT at its default action, as in a terminal: a test
     * JVM started in the background by a shell inherits SIGINT ignored, and so would the child.
     */
    Process startInterruptible(String... args) throws IOException {
        return start(List.of("env", "--default-signal=INT"), args);
    }

    private Process start(List<String> prefix, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(prefix);
        cmd.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "--enable-native-access=ALL-UNNAMED"));
        // tuning knobs a test set for itself (cask.pack.limit, cask.cache.bytes) hold for its children too
        for (String knob : List.of("cask.pack.limit", "cask.cache.bytes", "cask.gc.rest", "cask.gc.rest.busy", "cask.gc.quantum.ms", "cask.compact.batch", "cask.recompress.batch", "cask.checkpoint.rest.busy")) {
            if (System.getProperty(knob) != null) cmd.add("-D" + knob + "=" + System.getProperty(knob));
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(global);
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        return pb.start();
    }

    Result process(byte[] stdin, String... args) throws IOException, InterruptedException {
        Process p = start(args);
        Thread feeder = new Thread(() -> {
            try (var in = p.getOutputStream()) {
                if (stdin != null) in.write(stdin);
            } catch (IOException ignored) {
                // the process may exit early
            }
        });
        feeder.start();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread errPump = pump(p.getErrorStream(), err);
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("cask " + String.join(" ", args) + " did not finish in 120 s");
        }
        errPump.join();
        feeder.join();
        return new Result(p.exitValue(), new String(out, StandardCharsets.ISO_8859_1), err.toString(StandardCharsets.UTF_8));
    }

    static Thread pump(InputStream in, ByteArrayOutputStream sink) {
        Thread t = new Thread(() -> {
            try {
                in.transferTo(sink);
            } catch (IOException ignored) {
                // process gone
            }
        });
        t.start();
        return t;
    }

    /** Runs an external tool (qemu-img, qemu-io...); fails the test when it is missing. */
    static Result tool(String... cmd) throws IOException, InterruptedException {
        Process p;
        try {
            p = new ProcessBuilder(cmd).start();
        } catch (IOException e) {
            throw new AssertionError(cmd[0] + " is not installed (run ./run-tests, which installs the test tools): " + e.getMessage(), e);
        }
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread t = pump(p.getErrorStream(), err);
        byte[] out = p.getInputStream().readAllBytes();
        p.waitFor();
        t.join();
        return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    static Result mustTool(String... cmd) throws IOException, InterruptedException {
        Result r = tool(cmd);
        if (r.code() != 0) throw new AssertionError(String.join(" ", cmd) + " failed: " + r);
        return r;
    }
}
