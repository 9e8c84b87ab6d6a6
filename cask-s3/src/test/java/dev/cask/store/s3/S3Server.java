package dev.cask.store.s3;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real S3 server for the tests: s3proxy (Maven Central's {@code org.gaul:s3proxy}, its runnable
 * {@code jar-with-dependencies}, which the cask-s3 pom copies to {@code target/s3proxy/s3proxy.jar}
 * and hands over as the system property {@code cask.s3proxy.jar}), run as a separate process with
 * its filesystem backend, so an object is a plain file under {@link #objectFile}: a test can damage
 * one as a bad disk would. No mocks, no containers.
 *
 * <p>{@link #shared()} is one server per test JVM, started on first use (about 4 s) and shared by
 * every test class (each uses its own bucket or prefix). A test that kills its server makes its
 * own with {@link #start()}. It listens on 127.0.0.1 on a free port, requires AWS signatures
 * (v2 or v4) from one identity with a random secret, runs with a small heap and the C1 compiler
 * only (the machine has two cores). {@link #kill()} is {@code kill -9}; {@link #restart()} starts
 * it again on the same port and data. {@link #close()}, and a shutdown hook when the run ends
 * (also when tests fail), stops it and deletes its directory.
 */
public final class S3Server implements AutoCloseable {
    static final String IDENTITY = "cask-test";
    static final String REGION = "us-east-1";
    private static final Object LOCK = new Object();
    private static S3Server shared;

    private final Path jar;
    private final Path dir;
    private final Path data;
    private final String credential;
    private final int port;
    private final Thread hook;
    private Process process;
    private boolean closed;

    private S3Server(Path jar, Path dir, String credential, int port) {
        this.jar = jar;
        this.dir = dir;
        this.data = dir.resolve("data");
        this.credential = credential;
        this.port = port;
        this.hook = new Thread(this::closeQuietly, "s3proxy-test-server-stop");
    }

    /** The server this test JVM shares, started on first use. */
    public static S3Server shared() {
        synchronized (LOCK) {
            if (shared == null) shared = start();
            return shared;
        }
    }

    /** A new server of one's own (stop it with {@link #close()}; a shutdown hook does otherwise). */
    public static S3Server start() {
        String property = System.getProperty("cask.s3proxy.jar");
        if (property == null || !Files.isRegularFile(Path.of(property))) {
            throw new IllegalStateException("no s3proxy jar (system property cask.s3proxy.jar = " + property
                    + "): run the tests through Maven, whose cask-s3 pom fetches org.gaul:s3proxy into target/s3proxy/");
        }
        byte[] secret = new byte[12];
        new SecureRandom().nextBytes(secret);
        Path dir;
        try {
            dir = Files.createTempDirectory("cask-s3proxy-");
            Files.createDirectories(dir.resolve("data"));
        } catch (IOException e) {
            throw new IllegalStateException("cannot make a directory for the test s3proxy: " + e, e);
        }
        S3Server server = new S3Server(Path.of(property), dir, "secret-" + HexFormat.of().formatHex(secret), freePort());
        Runtime.getRuntime().addShutdownHook(server.hook);
        try {
            server.startProcess();
            return server;
        } catch (RuntimeException | Error e) {
            server.closeQuietly();
            throw e;
        }
    }

    private synchronized void startProcess() {
        Path conf = dir.resolve("s3proxy.conf");
        try {
            Files.writeString(conf, String.join("\n",
                    "s3proxy.endpoint=http://127.0.0.1:" + port,
                    "s3proxy.authorization=aws-v2-or-v4",
                    "s3proxy.identity=" + IDENTITY,
                    "s3proxy.credential=" + credential,
                    "jclouds.provider=filesystem",
                    "jclouds.filesystem.basedir=" + data,
                    ""));
        } catch (IOException e) {
            throw new IllegalStateException("cannot write " + conf + ": " + e, e);
        }
        Path log = dir.resolve("s3proxy.log");
        try {
            process = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-DLOG_LEVEL=warn",
                    "-jar", jar.toString(), "--properties", conf.toString())
                    .directory(dir.toFile()).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot start s3proxy (" + jar + "): " + e, e);
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
        while (true) {
            if (!process.isAlive()) throw new IllegalStateException("s3proxy exited with " + process.exitValue() + ":\n" + tail(log));
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
                return;
            } catch (IOException notYet) {
                if (System.nanoTime() > deadline) throw new IllegalStateException("s3proxy did not listen on port " + port + " in 90 s:\n" + tail(log));
                try {
                    Thread.sleep(50);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while starting s3proxy", e);
                }
            }
        }
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    public URI endpoint() {
        return URI.create("http://127.0.0.1:" + port);
    }

    public int port() {
        return port;
    }

    /** The settings a store uses to reach this server. */
    public S3Settings settings() {
        return S3Settings.of(endpoint(), REGION, IDENTITY, credential);
    }

    /** The AWS SDK's environment variables that make a child process (a cask node) reach this server. */
    public java.util.Map<String, String> environment() {
        return java.util.Map.of("AWS_ENDPOINT_URL", endpoint().toString(), "AWS_REGION", REGION,
                "AWS_ACCESS_KEY_ID", IDENTITY, "AWS_SECRET_ACCESS_KEY", credential);
    }

    /** The secret key (for a child process's environment). */
    public String credential() {
        return credential;
    }

    /** A plain SDK client on this server, for setting up and looking. */
    public S3Client client() {
        return S3Client.builder().httpClient(UrlConnectionHttpClient.create()).region(Region.of(REGION)).endpointOverride(endpoint())
                .forcePathStyle(true).credentialsProvider(StaticCredentialsProvider.create(AwsBasicCredentials.create(IDENTITY, credential))).build();
    }

    /** Creates bucket {@code name} unless it exists. */
    public void createBucket(String name) {
        try (S3Client c = client()) {
            if (c.listBuckets().buckets().stream().noneMatch(b -> b.name().equals(name))) c.createBucket(b -> b.bucket(name));
        }
    }

    /** What the objects of {@code bucket} under {@code prefix} hold: their bytes together, and how many there are. */
    public record Objects(long bytes, int count) {}

    /** {@link Objects} under {@code prefix} in {@code bucket}, as a listing shows them (every page). */
    public Objects objects(String bucket, String prefix) {
        long bytes = 0;
        int count = 0;
        try (S3Client c = client()) {
            for (var o : c.listObjectsV2Paginator(b -> b.bucket(bucket).prefix(prefix)).contents()) {
                bytes += o.size();
                count++;
            }
        }
        return new Objects(bytes, count);
    }

    /** The file the filesystem backend keeps object {@code key} of {@code bucket} in. */
    public Path objectFile(String bucket, String key) {
        return data.resolve(bucket).resolve(key);
    }

    /** Kills the server at once ({@code kill -9}) and waits until it is gone. */
    public synchronized void kill() {
        process.destroyForcibly();
        try {
            process.waitFor(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Starts the killed server again, on the same port and data. */
    public void restart() {
        startProcess();
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
            if (process != null) {
                process.destroyForcibly();
                try {
                    process.waitFor(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        deleteTree(dir);
    }

    private static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new IllegalStateException("no free port on 127.0.0.1: " + e, e);
        }
    }

    static void deleteTree(Path root) {
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
