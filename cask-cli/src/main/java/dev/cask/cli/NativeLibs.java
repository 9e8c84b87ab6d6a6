package dev.cask.cli;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The two native libraries cask uses (sqlite-jdbc's and zstd-jni's) loaded from a directory
 * instead of from the jar. On their own, both copy their {@code .so} out of the jar into the
 * temporary directory on every start, and sqlite-jdbc also runs {@code uname -o} and compares its
 * copy byte by byte: tens of milliseconds of every command. The launcher has {@link AotTraining}
 * {@link #extract} them once per jar and passes the directory as {@code -Dcask.native.dir};
 * {@link #useDirectory} then points both libraries at it before either is used. Anything amiss
 * (no such file, a library that does not load) leaves the libraries to load themselves as usual.
 *
 * <p>Process-wide and called once, from {@code main}, before any store is opened.
 */
final class NativeLibs {
    static final String PROPERTY = "cask.native.dir";
    private static final String SQLITE = "libsqlitejdbc.so";
    private static final String ZSTD = "libzstd-jni.so";

    private NativeLibs() {}

    /** Loads zstd-jni's library from {@code dir} and tells sqlite-jdbc to load its own from there. */
    static void useDirectory(String dir) {
        if (dir == null || dir.isEmpty()) return;
        Path zstd = Path.of(dir, ZSTD).toAbsolutePath();
        if (Files.isRegularFile(zstd)) {
            try {
                System.load(zstd.toString());
                com.github.luben.zstd.util.Native.assumeLoaded();
            } catch (Throwable e) { // UnsatisfiedLinkError and friends: zstd-jni loads its own copy later
            }
        }
        Path sqlite = Path.of(dir, SQLITE).toAbsolutePath();
        if (Files.isRegularFile(sqlite) && System.getProperty("org.sqlite.lib.path") == null) {
            System.setProperty("org.sqlite.lib.path", sqlite.getParent().toString());
            System.setProperty("org.sqlite.lib.name", SQLITE);
            // sqlite-jdbc lists its temporary directory on every start to delete stale copies of its
            // library (~25 ms on a busy /tmp); pointed here, it lists a directory of two files
            if (System.getProperty("org.sqlite.tmpdir") == null) System.setProperty("org.sqlite.tmpdir", sqlite.getParent().toString());
        }
    }

    /**
     * Copies the libraries this platform would load out of the jar into {@code dir}: sqlite-jdbc's
     * from the folder its own loader picks, zstd-jni's from the resource its loader reads. Returns
     * false (copying nothing or only one) when either is not found.
     */
    static boolean extract(Path dir) throws IOException {
        String sqlite = "/org/sqlite/native/" + org.sqlite.util.OSInfo.getNativeLibFolderPathForCurrentOS() + "/"
                + System.mapLibraryName("sqlitejdbc");
        String zstd;
        try {
            var m = com.github.luben.zstd.util.Native.class.getDeclaredMethod("resourceName");
            m.setAccessible(true);
            zstd = (String) m.invoke(null);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return false;
        }
        Files.createDirectories(dir);
        return copy(sqlite, dir.resolve(SQLITE)) && copy(zstd, dir.resolve(ZSTD));
    }

    private static boolean copy(String resource, Path to) throws IOException {
        try (InputStream in = NativeLibs.class.getResourceAsStream(resource)) {
            if (in == null) return false;
            Files.copy(in, to, StandardCopyOption.REPLACE_EXISTING);
            return true;
        }
    }
}
