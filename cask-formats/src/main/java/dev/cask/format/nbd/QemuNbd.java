package dev.cask.format.nbd;

import dev.cask.common.CaskException;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * One {@code qemu-nbd} process serving one image file on a private Unix socket, so that QEMU's own
 * drivers read and write the formats cask does not parse itself (vmdk, vhdx, vpc, vdi, qed...),
 * with NBD as the interchange, as virt-v2v and nbdcopy do.
 *
 * <p>The socket lives in a fresh directory only the owner can enter ({@code 0700}, under
 * {@code java.io.tmpdir}), so no other user can connect. {@code qemu-nbd} runs without
 * {@code --persistent}: it serves the one connection cask makes and exits when cask disconnects.
 * {@link #close} disconnects, waits for the exit (a non-zero status of a writable server is an
 * error: the image may be incomplete), kills a server that does not exit and removes the
 * directory. Its stderr is kept so that a failure is reported with QEMU's own words, on one line.
 *
 * <p>Tools are found on {@code PATH}; a missing one is a {@link CaskException.NotFound} naming the
 * Debian package. Not thread-safe; one owner.
 */
public final class QemuNbd implements AutoCloseable {
    private static final long START_TIMEOUT_MS = 60_000;

    private final Path file;
    private final Process process;
    private final Path dir;
    private final ByteArrayOutputStream stderr = new ByteArrayOutputStream();
    private final Thread pump;
    private final boolean writable;

    private QemuNbd(Path file, Process process, Path dir, boolean writable) {
        this.file = file;
        this.process = process;
        this.dir = dir;
        this.writable = writable;
        this.pump = Thread.ofPlatform().daemon().name("qemu-nbd-stderr").start(() -> drain(process.getErrorStream(), stderr));
    }

    /** The path of {@code name} on PATH, or NotFound naming the package that provides it and why cask needs it. */
    public static Path tool(String name, String purpose) {
        String pathVar = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String d : pathVar.split(File.pathSeparator)) {
            Path p = Path.of(d.isEmpty() ? "." : d, name);
            if (Files.isExecutable(p)) return p;
        }
        throw new CaskException.NotFound(name + " not found on PATH: install the Debian package qemu-utils (cask uses it to " + purpose + ")");
    }

    /**
     * Starts {@code qemu-nbd} on {@code file} in {@code format} and waits until it takes connections;
     * {@code readOnly} serves it read-only.
     */
    public static QemuNbd start(Path file, String format, boolean readOnly, String purpose) {
        Path exe = tool("qemu-nbd", purpose);
        Path dir;
        try {
            dir = Files.createTempDirectory("cask-nbd-", PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (IOException e) {
            throw new CaskException.Io("cannot make a private directory for qemu-nbd's socket: " + e.getMessage(), e);
        }
        Path socket = dir.resolve("nbd.sock");
        List<String> cmd = new ArrayList<>(List.of(exe.toString(), "--format=" + format, "--socket=" + socket, "--shared=1",
                "--cache=writeback"));
        if (readOnly) cmd.add("--read-only");
        cmd.add(file.toAbsolutePath().toString());
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        } catch (IOException e) {
            deleteTree(dir);
            throw new CaskException.Io(file + ": cannot start qemu-nbd: " + e.getMessage(), e);
        }
        QemuNbd q = new QemuNbd(file, p, dir, !readOnly);
        try {
            q.awaitSocket(socket);
        } catch (RuntimeException e) {
            q.kill();
            throw e;
        }
        return q;
    }

    private void awaitSocket(Path socket) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(START_TIMEOUT_MS);
        while (!Files.exists(socket)) {
            if (!process.isAlive()) {
                try {
                    pump.join(5_000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                throw new CaskException.InvalidInput(file + ": qemu-nbd cannot open it: " + message());
            }
            if (System.nanoTime() > deadline) throw new CaskException.Io(file + ": qemu-nbd did not start in " + START_TIMEOUT_MS / 1000 + " s", null);
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CaskException("interrupted while qemu-nbd started");
            }
        }
    }

    /**
     * Connects to the served image (one connection per server). The socket file appears when
     * qemu-nbd binds it, a moment before it listens: a refused connection is tried again while
     * the server runs.
     */
    public NbdDevice connect() {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(START_TIMEOUT_MS);
        while (true) {
            try {
                return NbdDevice.connect(new NbdUri(null, 0, dir.resolve("nbd.sock"), ""), writable);
            } catch (CaskException.Io e) {
                if (!(e.getCause() instanceof java.net.ConnectException) || System.nanoTime() > deadline) throw e;
                if (!process.isAlive()) throw new CaskException.InvalidInput(file + ": qemu-nbd cannot open it: " + message());
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
                throw new CaskException("interrupted while connecting to qemu-nbd");
            }
        }
    }

    /** What qemu-nbd said on stderr, on one line. */
    private String message() {
        String s;
        synchronized (stderr) {
            s = stderr.toString(StandardCharsets.UTF_8);
        }
        s = s.strip().replaceAll("\\s*\\n\\s*", "; ").replaceFirst("^qemu-nbd: ", "");
        return s.isEmpty() ? "exit status " + (process.isAlive() ? "?" : process.exitValue()) : s;
    }

    /**
     * Waits for qemu-nbd to exit (after the client disconnected); a writable server that fails to
     * exit cleanly is an error, since the image may not hold every write.
     */
    @Override
    public void close() {
        try {
            boolean exited = process.waitFor(60, TimeUnit.SECONDS);
            if (!exited) {
                kill();
                if (writable) throw new CaskException.Io(file + ": qemu-nbd did not exit after the export; killed it", null);
                return;
            }
            pump.join(5_000);
            if (writable && process.exitValue() != 0) {
                throw new CaskException.Io(file + ": qemu-nbd failed (exit status " + process.exitValue() + "): " + message(), null);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            kill();
        } finally {
            deleteTree(dir);
        }
    }

    /** Stops the server at once (on failure paths). */
    public void kill() {
        process.destroyForcibly();
        try {
            process.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        deleteTree(dir);
    }

    // ------------------------------------------------------------------ qemu-img

    /** Runs qemu-img with {@code args}; returns stdout, or throws InvalidInput with its stderr on one line. */
    public static String qemuImg(String subject, String purpose, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(tool("qemu-img", purpose).toString());
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            Thread t = Thread.ofPlatform().daemon().start(() -> drain(p.getErrorStream(), err));
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor();
            t.join();
            if (p.exitValue() != 0) {
                String msg = err.toString(StandardCharsets.UTF_8).strip().replaceAll("\\s*\\n\\s*", "; ").replaceFirst("^qemu-img: ", "");
                throw new CaskException.InvalidInput(subject + ": " + msg);
            }
            return out;
        } catch (IOException e) {
            throw new CaskException.Io(subject + ": cannot run qemu-img: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CaskException("interrupted while qemu-img ran");
        }
    }

    private static void drain(InputStream in, ByteArrayOutputStream sink) {
        byte[] buf = new byte[4096];
        try {
            for (int n; (n = in.read(buf)) > 0; ) {
                synchronized (sink) {
                    sink.write(buf, 0, n);
                }
            }
        } catch (IOException ignored) {
            // the process is gone
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // best effort: a socket in a private temporary directory
        }
    }
}
