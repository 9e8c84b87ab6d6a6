package dev.cask.catalog.postgres;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * A real PostgreSQL server for the tests, started from the machine's binaries (Debian's
 * {@code postgresql} package: {@code /usr/lib/postgresql/VERSION/bin}), listening on 127.0.0.1 only.
 * No mocks, no containers.
 *
 * <p>{@link #shared()} is one server per test JVM, started on first use and shared by every test
 * class (each makes its own database with {@link #createDatabase}, and a schema per test), so the
 * suite pays for {@code initdb} once. A test that stops or crashes its server makes its own with
 * {@link #start()} and {@link #close()}s it.
 *
 * <p>How it runs: {@code initdb} into a new temporary directory (UTF8, C locale, SCRAM passwords,
 * a random password for the superuser {@value #SUPERUSER}), then {@code pg_ctl start} on a free
 * port with {@code listen_addresses=127.0.0.1} and the unix socket in the same directory (nothing
 * in /var/run). PostgreSQL refuses to run as root: when the tests run as root (CI does), every
 * command runs through {@code runuser -u USER} as the unprivileged {@code postgres} user the Debian
 * package creates (else {@code nobody}), which owns the temporary directory. The server is stopped
 * and the directory deleted by {@link #close()}, and by a JVM shutdown hook when a test run ends
 * (also when tests fail or the run is interrupted).
 *
 * <p>Binaries: {@code $CASK_PG_BIN} if set, else the newest {@code /usr/lib/postgresql/N/bin} with
 * {@code initdb} and {@code pg_ctl}, else {@code initdb} on the PATH. None found fails the test with
 * what to install ({@code scripts/install-deps.sh} installs {@code postgresql}); it never skips.
 */
public final class PostgresServer implements AutoCloseable {
    static final String SUPERUSER = "cask_test";
    private static final Object LOCK = new Object();
    private static PostgresServer shared;
    private static final AtomicInteger DATABASES = new AtomicInteger();

    private final Path bin;
    private final Path dir;
    private final Path data;
    private final String runAs;
    private final String password;
    private int port;
    private volatile boolean closed;
    private final Thread hook;

    private PostgresServer(Path bin, Path dir, String runAs, String password) {
        this.bin = bin;
        this.dir = dir;
        this.data = dir.resolve("data");
        this.runAs = runAs;
        this.password = password;
        this.hook = new Thread(this::closeQuietly, "postgres-test-server-stop");
    }

    /** The server this test JVM shares, started on first use. */
    public static PostgresServer shared() {
        synchronized (LOCK) {
            if (shared == null) shared = start();
            return shared;
        }
    }

    /** A new server of one's own (stop it with {@link #close()}; a shutdown hook does it otherwise). */
    public static PostgresServer start() {
        Path bin = findBinaries();
        String runAs = isRoot() ? unprivilegedUser() : null;
        byte[] secret = new byte[12];
        new SecureRandom().nextBytes(secret);
        String password = "pw-" + HexFormat.of().formatHex(secret);
        Path dir;
        try {
            dir = Files.createTempDirectory("cask-pg-", PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            if (runAs != null) {
                UserPrincipal owner = dir.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(runAs);
                Files.setOwner(dir, owner);
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot make a directory for the test PostgreSQL server: " + e, e);
        }
        PostgresServer server = new PostgresServer(bin, dir, runAs, password);
        Runtime.getRuntime().addShutdownHook(server.hook);
        try {
            server.initdb();
            server.startServer();
            return server;
        } catch (RuntimeException | Error e) {
            server.closeQuietly();
            throw e;
        }
    }

    private void initdb() {
        Path pwfile = dir.resolve("pwfile");
        try {
            Files.writeString(pwfile, password + "\n");
            if (runAs != null) Files.setOwner(pwfile, pwfile.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(runAs));
        } catch (IOException e) {
            throw new IllegalStateException("cannot write " + pwfile + ": " + e, e);
        }
        run(List.of(bin.resolve("initdb").toString(), "-D", data.toString(), "-U", SUPERUSER, "--pwfile=" + pwfile,
                "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"), 120);
        try {
            Files.delete(pwfile);
        } catch (IOException ignored) {
            // it goes with the directory
        }
    }

    /** Starts the server on a free port (another one if that port was taken meanwhile). */
    private void startServer() {
        IllegalStateException last = null;
        for (int attempt = 0; attempt < 3; attempt++) {
            port = freePort();
            try {
                pgCtl("start");
                return;
            } catch (IllegalStateException e) {
                last = e;
            }
        }
        throw last;
    }

    private void pgCtl(String action) {
        List<String> cmd = new ArrayList<>(List.of(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-w", "-t", "60"));
        if (action.equals("start")) {
            cmd.addAll(List.of("-l", dir.resolve("server.log").toString(), "-o", String.join(" ",
                    "-p", String.valueOf(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + dir,
                    "-c", "max_connections=200", "-c", "fsync=off", "-c", "full_page_writes=off",
                    "-c", "shared_buffers=32MB")));
        }
        cmd.add(action);
        run(cmd, 90);
    }

    /** Stops the server at once, as a crash would ({@code pg_ctl stop -m immediate}): no checkpoint, recovery on the next start. */
    public void crash() {
        run(List.of(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-w", "-t", "60", "-m", "immediate", "stop"), 90);
    }

    /** Starts the stopped server again, on the same port. */
    public void restart() {
        pgCtl("start");
    }

    public int port() {
        return port;
    }

    /** The superuser's password (for the tests' URLs; the catalog must never show it). */
    public String password() {
        return password;
    }

    /** A catalog URL for {@code database}, with the superuser and its password in it. */
    public String url(String database) {
        return "postgresql://" + SUPERUSER + ":" + password + "@127.0.0.1:" + port + "/" + database;
    }

    /** A plain JDBC connection to {@code database} as the superuser, autocommit on (for setting up and for poking at the server). */
    public Connection connect(String database) throws SQLException {
        java.util.Properties p = new java.util.Properties();
        p.setProperty("user", SUPERUSER);
        p.setProperty("password", password);
        return DriverManager.getConnection("jdbc:postgresql://127.0.0.1:" + port + "/" + database, p);
    }

    /** Creates a new database named after {@code hint} (made unique) and returns its name. */
    public String createDatabase(String hint) {
        String name = (hint.toLowerCase(java.util.Locale.ROOT).replaceAll("[^a-z0-9]+", "_") + "_" + DATABASES.incrementAndGet());
        if (name.length() > 60) name = name.substring(name.length() - 60);
        if (!Character.isLetter(name.charAt(0))) name = "d" + name;
        try (Connection c = connect("postgres"); Statement st = c.createStatement()) {
            st.execute("CREATE DATABASE " + name);
        } catch (SQLException e) {
            throw new IllegalStateException("cannot create database " + name + ": " + e.getMessage(), e);
        }
        return name;
    }

    /** Runs one SQL statement in {@code database} as the superuser. */
    public void execute(String database, String sql) {
        try (Connection c = connect(database); Statement st = c.createStatement()) {
            st.execute(sql);
        } catch (SQLException e) {
            throw new IllegalStateException(sql + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        closeQuietly();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException ignored) {
            // already shutting down
        }
    }

    private void closeQuietly() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        try {
            if (Files.exists(data.resolve("postmaster.pid"))) {
                run(List.of(bin.resolve("pg_ctl").toString(), "-D", data.toString(), "-w", "-t", "30", "-m", "immediate", "stop"), 60);
            }
        } catch (RuntimeException e) {
            System.err.println("test PostgreSQL server in " + dir + ": " + e.getMessage());
        }
        deleteTree(dir);
    }

    // ---- processes ----

    private void run(List<String> command, int timeoutSeconds) {
        List<String> cmd = new ArrayList<>();
        if (runAs != null) cmd.addAll(List.of("runuser", "-u", runAs, "--"));
        cmd.addAll(command);
        try {
            Path out = Files.createTempFile("cask-pg-cmd", ".out");
            try {
                Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).redirectOutput(out.toFile()).start();
                if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    throw new IllegalStateException(String.join(" ", cmd) + ": did not finish in " + timeoutSeconds + " s");
                }
                if (p.exitValue() != 0) {
                    String log = Files.exists(dir.resolve("server.log")) ? "\nserver.log:\n" + Files.readString(dir.resolve("server.log")) : "";
                    throw new IllegalStateException(String.join(" ", cmd) + ": exit " + p.exitValue() + "\n" + Files.readString(out) + log);
                }
            } finally {
                Files.deleteIfExists(out);
            }
        } catch (IOException e) {
            throw new IllegalStateException(String.join(" ", cmd) + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted: " + String.join(" ", cmd), e);
        }
    }

    private static Path findBinaries() {
        String env = System.getenv("CASK_PG_BIN");
        if (env != null && !env.isBlank()) {
            Path p = Path.of(env);
            if (Files.isExecutable(p.resolve("initdb")) && Files.isExecutable(p.resolve("pg_ctl"))) return p;
            throw new IllegalStateException("CASK_PG_BIN=" + env + " has no initdb and pg_ctl");
        }
        Path debian = Path.of("/usr/lib/postgresql");
        if (Files.isDirectory(debian)) {
            try (Stream<Path> versions = Files.list(debian)) {
                Path best = versions.filter(v -> v.getFileName().toString().matches("[0-9]+"))
                        .filter(v -> Files.isExecutable(v.resolve("bin/initdb")) && Files.isExecutable(v.resolve("bin/pg_ctl")))
                        .max(Comparator.comparingInt(v -> Integer.parseInt(v.getFileName().toString()))).orElse(null);
                if (best != null) return best.resolve("bin");
            } catch (IOException e) {
                throw new IllegalStateException("cannot list " + debian + ": " + e, e);
            }
        }
        for (String dirName : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (dirName.isEmpty()) continue;
            Path initdb = Path.of(dirName, "initdb");
            if (Files.isExecutable(initdb)) {
                try {
                    Path real = initdb.toRealPath().getParent();
                    if (Files.isExecutable(real.resolve("pg_ctl"))) return real;
                } catch (IOException ignored) {
                    // a dangling link: keep looking
                }
            }
        }
        throw new IllegalStateException("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on the PATH;"
                + " install Debian's postgresql package (scripts/install-deps.sh does) or set CASK_PG_BIN");
    }

    private static boolean isRoot() {
        try {
            return ((Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid")) == 0;
        } catch (IOException | UnsupportedOperationException e) {
            return "root".equals(System.getProperty("user.name"));
        }
    }

    /** The user to run PostgreSQL as when we are root: Debian's {@code postgres}, else {@code nobody}. */
    private static String unprivilegedUser() {
        for (String user : List.of("postgres", "nobody")) {
            try {
                Path.of("/").getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName(user);
                return user;
            } catch (IOException notThere) {
                // try the next
            }
        }
        throw new IllegalStateException("running as root, and there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL as");
    }

    private static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new IllegalStateException("no free port on 127.0.0.1: " + e, e);
        }
    }

    private static void deleteTree(Path root) {
        if (!Files.exists(root)) return;
        try {
            Files.walkFileTree(root, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    Files.deleteIfExists(file);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path d, IOException exc) throws IOException {
                    Files.deleteIfExists(d);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            System.err.println("cannot delete " + root + ": " + e);
        }
    }
}
