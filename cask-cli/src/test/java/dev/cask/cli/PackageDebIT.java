package dev.cask.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.net.ServerSocket;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Debian package as a user gets it: {@code scripts/package-deb.sh} builds it from the jar this
 * Maven run made, {@code dpkg -i} installs it, and the installed {@code /usr/bin/cask} (its own
 * runtime, its native libraries, the start-up cache postinst makes) runs {@code --version},
 * {@code init}, an import and an export; the systemd unit is installed, passes
 * {@code systemd-analyze verify}, and its command line, run as systemd runs it (an empty state
 * directory, SIGTERM to stop), serves a disk over NBD and keeps the writes in a version;
 * {@code dpkg --purge} leaves no file behind. Runs after {@code package}
 * (failsafe). Needs root (dpkg), as CI runs; one run at a time per machine (a lock file), since
 * there is one {@code /usr/bin/cask}.
 */
class PackageDebIT {
    private static final Path LAUNCHER = Path.of("/usr/bin/cask");
    private static final Path UNIT = Path.of("/lib/systemd/system/cask.service");
    private static final Path APP = Path.of("/usr/lib/cask");
    private static final long MAX_DEB_BYTES = 40L << 20;

    @TempDir
    Path dir;

    private static Cli.Result exec(Map<String, String> env, long timeoutSeconds, String... cmd) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().remove("CASK_STORE");
        pb.environment().putAll(env);
        Process p;
        try {
            p = pb.start();
        } catch (java.io.IOException e) {
            throw new AssertionError(cmd[0] + " is not installed (run ./run-tests, which installs the test tools): " + e.getMessage(), e);
        }
        p.getOutputStream().close();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread t = Cli.pump(p.getErrorStream(), err);
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(String.join(" ", cmd) + " did not finish in " + timeoutSeconds + " s");
        }
        t.join();
        return new Cli.Result(p.exitValue(), new String(out, StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private static Cli.Result must(String... cmd) throws Exception {
        Cli.Result r = exec(Map.of(), 600, cmd);
        assertEquals(0, r.code(), String.join(" ", cmd) + ": " + r);
        return r;
    }

    /** dpkg refuses at once while apt or another dpkg runs (another checkout's install-deps): wait for it. */
    private static Cli.Result dpkg(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("dpkg"));
        cmd.addAll(List.of(args));
        for (int attempt = 0; ; attempt++) {
            Cli.Result r = exec(Map.of("DEBIAN_FRONTEND", "noninteractive"), 600, cmd.toArray(String[]::new));
            if (r.code() == 0 || !(r.out() + r.err()).contains("lock") || attempt == 300) return r;
            Thread.sleep(2000);
        }
    }

    private static void lap(String what, long t0) {
        System.out.printf("%s: done at %.1f s%n", what, (System.nanoTime() - t0) / 1e9);
    }

    private static String installedVersion() throws Exception {
        Cli.Result r = exec(Map.of(), 60, "dpkg-query", "-W", "-f=${Status} ${Version}", "cask");
        return r.code() == 0 && r.out().startsWith("install ok installed") ? r.out().substring("install ok installed ".length()) : null;
    }

    @Test
    void debInstallsRunsServesAndPurgesCleanly() throws Exception {
        Path checkout = Path.of(System.getProperty("cask.checkout")).toRealPath();
        Path lockFile = Path.of("/var/lock/cask-package-deb-test.lock");
        try (FileChannel ch = FileChannel.open(lockFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileLock ignored = ch.lock()) {
            // build: the one documented command, on the jar this build made
            long t0 = System.nanoTime();
            Path dest = Path.of(System.getProperty("cask.jar")).getParent().resolve("deb");
            Cli.Result built = must(checkout.resolve("scripts/package-deb.sh").toString(),
                    "--jar", System.getProperty("cask.jar"), "--dest", dest.toString());
            Path deb = Path.of(built.out().strip());
            assertTrue(Files.isRegularFile(deb), "package-deb.sh prints the package it made: " + built);
            assertTrue(deb.getFileName().toString().matches("cask_[0-9][^_]*_[a-z0-9]+\\.deb"), deb.toString());
            long debBytes = Files.size(deb);
            assertTrue(debBytes < MAX_DEB_BYTES, "the package stays small (one platform's native libraries, a trimmed runtime): " + debBytes);
            System.out.printf("built %s (%.1f MiB) in %.1f s%n", deb, debBytes / 1048576.0, (System.nanoTime() - t0) / 1e9);
            String control = must("dpkg-deb", "-f", deb.toString(), "Package", "Version", "Depends").out();
            assertTrue(control.contains("Package: cask"), control);
            assertFalse(control.contains("java") || control.contains("jdk") || control.contains("jre"), "brings its own Java: " + control);

            String before = installedVersion();
            String ours = must("dpkg-deb", "-f", deb.toString(), "Version").out().strip();
            assertTrue(before == null || before.equals(ours),
                    "another cask package (" + before + ") is installed on this machine; the test would replace and remove it. dpkg -r cask first");
            try {
                Cli.Result installed = dpkg("-i", deb.toString());
                assertEquals(0, installed.code(), "dpkg -i: " + installed);
                lap("dpkg -i", t0);
                checkInstalled(checkout);
                lap("--version and the unit", t0);
                checkCommands();
                lap("init, import, export", t0);
                checkUnitServes();
                lap("the unit's serve", t0);
            } finally {
                Cli.Result purged = dpkg("--purge", "cask");
                lap("dpkg --purge", t0);
                assertEquals(0, purged.code(), "dpkg --purge cask: " + purged);
            }
            assertEquals(null, installedVersion(), "purged");
            assertFalse(Files.exists(LAUNCHER, java.nio.file.LinkOption.NOFOLLOW_LINKS), "purge removes " + LAUNCHER);
            assertFalse(Files.exists(UNIT), "purge removes " + UNIT);
            assertFalse(Files.exists(APP), "purge removes " + APP);
            lap("whole test", t0);
        }
    }

    private void checkInstalled(Path checkout) throws Exception {
        assertTrue(Files.isExecutable(LAUNCHER), LAUNCHER + " is installed");
        assertEquals("cask: " + LAUNCHER, must("dpkg", "-S", LAUNCHER.toString()).out().strip(), "the package owns the launcher");
        Cli.Result version = must(LAUNCHER.toString(), "--version");
        assertEquals("cask " + System.getProperty("cask.version"), version.out().strip());
        assertTrue(Files.isRegularFile(APP.resolve("runtime/bin/java")), "the package carries its own Java runtime");
        assertTrue(Files.isRegularFile(APP.resolve("app/cask.aot")), "postinst made the commands' start-up cache");

        // the unit: the repository's file, valid for systemd, with what the service needs
        assertArrayEquals(Files.readAllBytes(checkout.resolve("packaging/cask.service")), Files.readAllBytes(UNIT),
                UNIT + " is packaging/cask.service");
        Cli.Result analyze = exec(Map.of(), 120, "sh", "-c", "command -v systemd-analyze");
        if (analyze.code() == 0) { // systemd-analyze is part of systemd; a machine without systemd has no use for the unit
            Cli.Result verify = must("systemd-analyze", "verify", UNIT.toString());
            assertEquals("", (verify.out() + verify.err()).strip(), "systemd-analyze verify has nothing to say");
        }
        Map<String, Map<String, List<String>>> unit = parseUnit(Files.readString(UNIT));
        Map<String, List<String>> service = unit.get("Service");
        assertTrue(List.of("simple", "exec").contains(one(service, "Type")), "Type");
        assertTrue(one(service, "ExecStart").startsWith(LAUNCHER + " serve"), "ExecStart runs " + LAUNCHER + " serve");
        assertEquals("cask", one(service, "StateDirectory"), "systemd makes /var/lib/cask");
        assertTrue(service.get("Environment").contains("CASK_STORE=/var/lib/cask"), "the store is the state directory");
        assertEquals("on-failure", one(service, "Restart"));
        assertTrue(one(service, "TimeoutStopSec").matches("[0-9]+(s|min)"), "a stop timeout for the final checkpoints");
        assertTrue(Long.parseLong(one(service, "LimitNOFILE")) >= 65536, "many open files");
        assertEquals("yes", one(service, "NoNewPrivileges"));
        assertEquals("strict", one(service, "ProtectSystem"));
        assertEquals("yes", one(service, "PrivateTmp"));
        assertEquals("multi-user.target", one(unit.get("Install"), "WantedBy"));
    }

    private void checkCommands() throws Exception {
        // a disk with data, a hole and an unaligned tail, through the installed command from start to end
        byte[] disk = new byte[3 * 1024 * 1024 + 1234];
        Random rnd = new Random(25);
        for (int i = 0; i < disk.length; i += 8192) {
            byte[] b = new byte[4096];
            rnd.nextBytes(b);
            if (i < 1 << 20 || i >= 2 << 20) System.arraycopy(b, 0, disk, i, Math.min(4096, disk.length - i));
        }
        Path src = Files.write(dir.resolve("disk.raw"), disk);
        Path store = dir.resolve("store");
        String c = LAUNCHER.toString();
        must(c, "init", store.toString());
        assertTrue(Files.isRegularFile(store.resolve("cask.store")), "cask init made a store");
        must(c, "--store", store.toString(), "import", src.toString(), "team/vm-1");
        Path back = dir.resolve("back.raw");
        must(c, "--store", store.toString(), "export", "team/vm-1", back.toString());
        assertArrayEquals(disk, Files.readAllBytes(back), "export returns the imported bytes");
        String ls = must(c, "--store", store.toString(), "ls", "--json").out();
        assertTrue(ls.contains("\"team/vm-1\""), ls);
    }

    /**
     * The unit's command line as systemd runs it: the unit's environment, a state directory systemd
     * just made (empty), a serve.conf with a free port and a socket in the test directory; NBD
     * writes, then SIGTERM (systemctl stop): exit 0 and the writes are a version.
     */
    private void checkUnitServes() throws Exception {
        Map<String, List<String>> service = parseUnit(Files.readString(UNIT)).get("Service");
        Path state = Files.createDirectories(dir.resolve("var-lib-cask"));
        Map<String, String> env = new LinkedHashMap<>();
        for (String e : service.get("Environment")) {
            String a = e.length() > 1 && e.startsWith("\"") && e.endsWith("\"") ? e.substring(1, e.length() - 1) : e; // systemd: one quoted assignment
            env.put(a.substring(0, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
        }
        assertEquals("/var/lib/cask", env.get("CASK_STORE"));
        env.put("CASK_STORE", state.toString());
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        // the options an administrator puts in /etc/cask/serve.conf (here through $CASK_CONFIG, which
        // serve reads first): the unit's command line sets none, so they are not overridden
        Path config = Files.writeString(dir.resolve("serve.conf"),
                "listen = 127.0.0.1:" + port + "\nsocket = " + dir.resolve("nbd.sock") + "\n");
        env.put("CASK_CONFIG", config.toString());
        List<String> cmd = new ArrayList<>(Arrays.asList(one(service, "ExecStart").split("\\s+")));
        assertEquals(List.of(LAUNCHER.toString(), "serve"), cmd, "ExecStart sets no option that would override serve.conf");
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        // the log to a file, not a pipe: a pipe's last lines can be lost when the process exits while
        // the reading thread is behind (the JDK closes the stream under it)
        Path logFile = dir.resolve("serve.log");
        Process serve = pb.redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(logFile.toFile()).start();
        Log log = new Log(logFile);
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            String listening = "listening on 127.0.0.1:" + port;
            while (!log.toString().contains(listening) && serve.isAlive() && System.nanoTime() < deadline) Thread.sleep(100);
            assertTrue(serve.isAlive() && log.toString().contains(listening), "serve started: " + log);
            assertTrue(Files.isRegularFile(state.resolve("cask.store")), "the empty state directory became a store");
            String maps = Files.readString(Path.of("/proc", Long.toString(serve.pid()), "maps"));
            assertTrue(maps.contains(APP.resolve("app/native/libsqlitejdbc.so").toString())
                    && maps.contains(APP.resolve("app/native/libzstd-jni.so").toString()), "native libraries load from the package, not /tmp");
            // the unit runs serve on ZGC (JAVA_TOOL_OPTIONS), which cannot map the start-up cache made with G1
            assertEquals("-XX:+UseZGC -Xmx2g -XX:SoftMaxHeapSize=1g", env.get("JAVA_TOOL_OPTIONS"), "the unit runs serve on ZGC with a 2 GiB heap it aims to keep under 1 GiB");
            assertTrue(threadNames(serve.pid()).stream().anyMatch(n -> n.startsWith("ZDriver") || n.startsWith("ZDirector")),
                    "serve runs on ZGC: " + threadNames(serve.pid()));

            Map<String, String> cli = Map.of("CASK_STORE", state.toString());
            Cli.Result created = exec(cli, 120, LAUNCHER.toString(), "create", "team/vm-1", "4M");
            assertEquals(0, created.code(), created.toString());
            String uri = "nbd://127.0.0.1:" + port + "/team/vm-1";
            Cli.mustTool("qemu-io", "-f", "raw", "-c", "write -P 0xab 0 64k", "-c", "flush", uri);
            String unixUri = "nbd+unix:///team/vm-1?socket=" + dir.resolve("nbd.sock");
            Cli.mustTool("qemu-io", "-f", "raw", "-c", "read -P 0xab 0 64k", unixUri);

            serve.destroy(); // SIGTERM, what systemctl stop sends
            assertTrue(serve.waitFor(120, TimeUnit.SECONDS), "SIGTERM stops serve: " + log);
            assertEquals(0, serve.exitValue(), "systemctl stop ends with status 0: " + log);
            assertTrue(log.toString().contains("stopped in"), log.toString());
            Path out = dir.resolve("vm-1.raw");
            Cli.Result exported = exec(cli, 120, LAUNCHER.toString(), "export", "team/vm-1", out.toString());
            assertEquals(0, exported.code(), exported.toString());
            byte[] got = Files.readAllBytes(out);
            byte[] want = new byte[4 << 20];
            Arrays.fill(want, 0, 65536, (byte) 0xab);
            assertArrayEquals(want, got, "the NBD writes are in the image after the server stopped");
        } finally {
            if (serve.isAlive()) serve.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
    }

    /** The names of a process's threads as the kernel knows them (15 characters at most). */
    private static List<String> threadNames(long pid) throws java.io.IOException {
        List<String> names = new ArrayList<>();
        try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (Path t : tasks.toList()) {
                try {
                    names.add(Files.readString(t.resolve("comm")).strip());
                } catch (java.nio.file.NoSuchFileException gone) {
                    // a thread that ended meanwhile
                }
            }
        }
        return names;
    }

    /** The server's log file, read whole each time it is looked at or printed. */
    private record Log(Path file) {
        @Override
        public String toString() {
            try {
                return Files.readString(file);
            } catch (java.io.IOException e) {
                return "(no log: " + e + ")";
            }
        }
    }

    private static String one(Map<String, List<String>> section, String key) {
        List<String> v = section.get(key);
        assertTrue(v != null && v.size() == 1, key + " is set once: " + v);
        return v.getFirst();
    }

    /** section -> key -> values, in the order of the file (systemd's syntax without line continuations). */
    static Map<String, Map<String, List<String>>> parseUnit(String text) {
        Map<String, Map<String, List<String>>> unit = new LinkedHashMap<>();
        Map<String, List<String>> section = null;
        for (String raw : text.lines().toList()) {
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#") || line.startsWith(";")) continue;
            assertFalse(line.endsWith("\\"), "no continuation lines: " + line);
            if (line.startsWith("[") && line.endsWith("]")) {
                section = unit.computeIfAbsent(line.substring(1, line.length() - 1), k -> new LinkedHashMap<>());
                continue;
            }
            assertTrue(section != null && line.indexOf('=') > 0, "a key=value line in a section: " + line);
            String key = line.substring(0, line.indexOf('=')).strip();
            section.computeIfAbsent(key, k -> new ArrayList<>()).add(line.substring(line.indexOf('=') + 1).strip());
        }
        assertTrue(unit.containsKey("Unit") && unit.containsKey("Service") && unit.containsKey("Install"), unit.keySet().toString());
        return unit;
    }
}
