package dev.cask.cli;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A real {@code cask serve} process on an ephemeral port, for tests. */
final class Server implements AutoCloseable {
    final Process process;
    final int port;
    final ByteArrayOutputStream log = new ByteArrayOutputStream();
    private final Thread logPump;

    Server(Cli cli, String... extra) throws IOException {
        String[] args = new String[3 + extra.length];
        args[0] = "serve";
        args[1] = "--listen";
        args[2] = "127.0.0.1:0";
        System.arraycopy(extra, 0, args, 3, extra.length);
        // with SIGINT at its default action: a server that tests stop with SIGINT must not inherit
        // it ignored from a test JVM started in the background (CI once was; the stop then hung)
        process = cli.startInterruptible(args);
        logPump = Cli.pump(process.getErrorStream(), log);
        BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream()));
        Pattern p = Pattern.compile("nbd://127\\.0\\.0\\.1:(\\d+)/");
        int found = -1;
        String line;
        while ((line = out.readLine()) != null) {
            Matcher m = p.matcher(line);
            if (m.find()) {
                found = Integer.parseInt(m.group(1));
                break;
            }
        }
        if (found < 0) {
            try {
                logPump.join(10_000); // its stderr, whole: why it stopped
            } catch (InterruptedException ignored) {
                // report what there is
            }
            throw new AssertionError("cask serve did not start (exit " + (process.isAlive() ? "none yet" : process.exitValue()) + "): " + log);
        }
        port = found;
        Thread.ofVirtual().start(() -> {
            try {
                out.transferTo(java.io.Writer.nullWriter());
            } catch (IOException ignored) {
                // process gone
            }
        });
    }

    String uri(String export) {
        return "nbd://127.0.0.1:" + port + "/" + export;
    }

    /** Stops the server as an operator would (SIGTERM) and waits for its checkpoints. */
    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("cask serve did not stop in 60 s: " + log);
        }
        logPump.join(10_000); // all of the log is in {@link #log} now
    }

    /** Sends {@code signal} (TERM, INT...) and returns the exit status; the log is complete afterwards. */
    int stop(String signal) throws IOException, InterruptedException {
        Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(process.pid())).inheritIO().start();
        if (kill.waitFor() != 0) throw new AssertionError("kill -" + signal + " " + process.pid() + " failed");
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("cask serve did not stop in 60 s after SIG" + signal + ": " + log);
        }
        logPump.join();
        return process.exitValue();
    }

    /** kill -9. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(30, TimeUnit.SECONDS);
    }
}
