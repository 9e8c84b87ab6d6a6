package dev.cask.analysis;

import com.github.luben.zstd.ZstdInputStreamNoFinalizer;
import dev.cask.common.CaskException;
import dev.cask.common.Pool;
import dev.cask.common.Progress;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.archivers.tar.TarUtils;
import org.apache.commons.compress.compressors.bzip2.BZip2CompressorInputStream;
import org.tukaani.xz.XZInputStream;

import java.io.BufferedInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.function.LongConsumer;
import java.util.zip.GZIPInputStream;

/**
 * File-level duplication, as the original study measured it: the SHA-256 of every regular file
 * in a few directory trees or tar files, and how many of their bytes are repeated contents,
 * inside each tree and between trees. The numbers are defined in {@link FileReport}.
 *
 * <h2>Inputs</h2>
 * Each root is a directory or a tar file. A directory is walked without following symbolic
 * links (a root that is itself a link is followed, like {@code find -H}); links, devices, fifos
 * and sockets are counted as skipped. A tar file may be plain or compressed with gzip, bzip2,
 * xz or zstd: the compression is recognised by its magic bytes, not the file name, and the
 * first header must carry the ustar magic or a valid checksum, else the root is refused before
 * any work starts. A hard-link entry in a tar is a hard link, never a duplicate.
 *
 * <h2>Hard links</h2>
 * A file is its (device, inode), taken from {@link BasicFileAttributes#fileKey()} during the
 * walk; the first path to reach it counts, later paths in the same tree are hard links. Keys are
 * remembered across trees, so a file reached from two trees counts in both trees but once in
 * the collection. On a file system without file keys every path is a file.
 *
 * <h2>Work and memory</h2>
 * A directory tree is walked first (metadata only: that gives the progress total), then its
 * files are hashed by {@code min(4, cores)} platform threads, each with a 1 MiB buffer and a
 * digest borrowed from a pool; at most four files per thread are queued. A tar is a stream and
 * is hashed in the calling thread; its progress counts compressed bytes. Trees are processed
 * one after the other, so the growth curve is exact. Memory: one entry per distinct content
 * (32-byte digest as four longs, size, a bit set of trees: about 150 bytes), one file key per
 * file, and while a directory is hashed, its list of paths.
 *
 * <h2>Errors</h2>
 * A root that does not exist, or is neither a directory nor a tar file: {@link CaskException}
 * before any hashing. A file or directory that cannot be read: a warning through the given
 * consumer, counted as unreadable, and the analysis goes on. A tar that breaks mid-way (truncated,
 * corrupt): {@link CaskException.Io} naming the tar and the entry, since its numbers would be
 * wrong. Nothing is printed.
 *
 * <h2>Thread-safety</h2>
 * {@link #analyze} may be called from several threads at once (it shares no state). During one
 * call, the warning consumer is called with a lock held, so never concurrently; the progress
 * receives {@code advance} from worker threads, as its contract allows.
 */
public final class FileAnalysis {
    /** The read buffer of each hashing thread. */
    static final int BUFFER_BYTES = 1 << 20;
    private static final int MAX_THREADS = 4;
    private static final int QUEUED_PER_THREAD = 4;
    private static final String TAR_KINDS = "plain, gzip, bzip2, xz or zstd";

    private FileAnalysis() {}

    /**
     * Analyses {@code roots} in order. {@code warnings} receives one line per unreadable file or
     * directory ({@code tree etc: /etc/shadow: unreadable (permission denied), skipped}).
     *
     * @throws CaskException.InvalidInput no roots, or a root is neither a directory nor a tar
     * @throws CaskException.NotFound a root does not exist
     * @throws CaskException.Io a tar cannot be read to its end, or a directory walk fails
     */
    public static FileReport analyze(List<Path> roots, Progress progress, Consumer<String> warnings) {
        Objects.requireNonNull(progress, "progress");
        Objects.requireNonNull(warnings, "warnings");
        if (roots.isEmpty()) throw new CaskException.InvalidInput("file analysis: no directory or tar file given");
        List<Boolean> isTar = new ArrayList<>();
        for (Path root : roots) isTar.add(checkRoot(root));
        List<String> names = treeNames(roots);
        Accounts accounts = new Accounts(roots.size(), warnings);
        Pool<Hasher> hashers = new Pool<>(Hasher::new);
        for (int t = 0; t < roots.size(); t++) {
            Path root = roots.get(t);
            TreeCounts tree = new TreeCounts(t, names.get(t), root.toAbsolutePath().normalize().toString());
            if (isTar.get(t)) readTar(root, tree, accounts, progress, hashers);
            else walkDirectory(root, tree, accounts, progress, hashers);
            accounts.endTree(tree);
        }
        return accounts.report();
    }

    // ---- roots -------------------------------------------------------------------------------

    /** Returns true for a tar file, false for a directory; throws for anything else. */
    private static boolean checkRoot(Path root) {
        if (Files.isDirectory(root)) return false;
        if (!Files.exists(root)) {
            throw new CaskException.NotFound("file analysis: " + root + ": no such directory or tar file");
        }
        if (!Files.isRegularFile(root)) {
            throw new CaskException.InvalidInput("file analysis: " + root + ": not a directory or a regular file");
        }
        try {
            openTarStream(root, Progress.NONE).close(); // throws if it is not a tar
            return true;
        } catch (IOException e) {
            throw new CaskException.Io("file analysis: " + root + ": cannot read: " + describe(e), e);
        }
    }

    /**
     * Tree names: the last path element, or the whole path as given where two roots share a
     * last element, made unique with a suffix if they still collide (the same root twice).
     */
    static List<String> treeNames(List<Path> roots) {
        List<String> base = new ArrayList<>();
        Map<String, Integer> count = new HashMap<>();
        for (Path r : roots) {
            Path abs = r.toAbsolutePath().normalize();
            String name = abs.getFileName() == null ? abs.toString() : abs.getFileName().toString();
            base.add(name);
            count.merge(name, 1, Integer::sum);
        }
        List<String> names = new ArrayList<>();
        Set<String> used = new HashSet<>();
        for (int i = 0; i < roots.size(); i++) {
            String name = count.get(base.get(i)) > 1 ? roots.get(i).toString() : base.get(i);
            String unique = name;
            for (int n = 2; !used.add(unique); n++) unique = name + " (" + n + ")";
            names.add(unique);
        }
        return names;
    }

    // ---- directories -------------------------------------------------------------------------

    private record Pending(Path path, boolean newInCollection) {}

    private static void walkDirectory(Path root, TreeCounts tree, Accounts accounts, Progress progress,
                                      Pool<Hasher> hashers) {
        List<Pending> pending = new ArrayList<>();
        long[] total = {0};
        try {
            Path start = root.toRealPath();
            Files.walkFileTree(start, Set.of(), Integer.MAX_VALUE, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) {
                    if (attrs.isRegularFile()) {
                        Object key = attrs.fileKey();
                        Claim claim = key == null ? Claim.NEW : accounts.claim(key, tree.index);
                        if (claim == Claim.SAME_TREE) {
                            accounts.hardLink(tree);
                        } else if (attrs.size() == 0) {
                            accounts.empty(tree);
                        } else {
                            pending.add(new Pending(file, claim == Claim.NEW));
                            total[0] += attrs.size();
                        }
                    } else if (!attrs.isDirectory()) {
                        accounts.skipped(tree);
                    }
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFileFailed(Path file, IOException e) {
                    accounts.unreadable(tree, file.toString(), e);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult postVisitDirectory(Path dir, IOException e) {
                    if (e != null) accounts.unreadable(tree, dir.toString(), e);
                    return FileVisitResult.CONTINUE;
                }
            });
        } catch (IOException e) {
            throw new CaskException.Io("file analysis: tree " + tree.name + ": cannot walk " + root + ": " + describe(e), e);
        }

        progress.start("hashing " + tree.name, total[0]);
        int threads = Math.max(1, Math.min(MAX_THREADS, Runtime.getRuntime().availableProcessors()));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        boolean interrupted = false;
        try (ExecutorService pool = Executors.newFixedThreadPool(threads)) {
            Semaphore queued = new Semaphore(threads * QUEUED_PER_THREAD);
            for (Pending p : pending) {
                if (failure.get() != null) break;
                try {
                    queued.acquire();
                } catch (InterruptedException e) {
                    interrupted = true;
                    break;
                }
                pool.execute(() -> {
                    try {
                        Hashed h;
                        try (InputStream in = Files.newInputStream(p.path())) {
                            h = hashers.with(x -> x.hash(in, progress::advance));
                        } catch (IOException e) {
                            h = new Hashed(null, 0, e);
                        }
                        accounts.add(tree, p.path().toString(), h, p.newInCollection());
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    } finally {
                        queued.release();
                    }
                });
            }
        } finally {
            progress.done();
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
            throw new CaskException("file analysis: tree " + tree.name + ": interrupted");
        }
        Throwable f = failure.get();
        if (f instanceof RuntimeException r) throw r;
        if (f instanceof Error e) throw e;
        if (f != null) throw new CaskException("file analysis: tree " + tree.name + ": " + f, f);
    }

    // ---- tar files ---------------------------------------------------------------------------

    private static void readTar(Path path, TreeCounts tree, Accounts accounts, Progress progress,
                                Pool<Hasher> hashers) {
        String entry = "(start)";
        try {
            progress.start("hashing " + tree.name, Files.size(path));
            try (TarArchiveInputStream tar = new TarArchiveInputStream(openTarStream(path, progress))) {
                TarArchiveEntry e;
                while ((e = tar.getNextEntry()) != null) {
                    entry = e.getName();
                    if (e.isDirectory()) continue;
                    if (e.isLink()) {
                        accounts.hardLink(tree);
                    } else if (e.isSymbolicLink() || e.isCharacterDevice() || e.isBlockDevice() || e.isFIFO()
                            || !e.isFile()) {
                        accounts.skipped(tree);
                    } else if (!tar.canReadEntryData(e)) {
                        accounts.unreadable(tree, path + ":" + entry, "unsupported tar entry");
                    } else {
                        Hashed h = hashers.with(x -> x.hash(tar, n -> {}));
                        if (h.error() != null) throw h.error();
                        accounts.add(tree, entry, h, true);
                    }
                }
            }
        } catch (IOException e) {
            throw new CaskException.Io("file analysis: tar " + path + ": at entry " + entry + ": " + describe(e), e);
        } catch (IllegalArgumentException e) { // commons-compress on some malformed headers
            throw new CaskException.InvalidInput("file analysis: tar " + path + ": after entry " + entry
                    + ": malformed header: " + e.getMessage(), e);
        } finally {
            progress.done();
        }
    }

    /**
     * Opens a tar file as its decompressed stream, positioned at the first header, after
     * checking that the first header is one. {@code progress} advances by compressed bytes read.
     */
    static InputStream openTarStream(Path path, Progress progress) throws IOException {
        InputStream raw = new Counting(Files.newInputStream(path), progress);
        try {
            BufferedInputStream in = new BufferedInputStream(raw, 1 << 16);
            in.mark(8);
            byte[] m = in.readNBytes(6);
            in.reset();
            InputStream plain;
            if (m.length >= 2 && u(m[0]) == 0x1f && u(m[1]) == 0x8b) {
                plain = new GZIPInputStream(in, 1 << 16);
            } else if (m.length >= 4 && u(m[0]) == 0x28 && u(m[1]) == 0xb5 && u(m[2]) == 0x2f && u(m[3]) == 0xfd) {
                plain = new ZstdInputStreamNoFinalizer(in);
            } else if (m.length >= 6 && u(m[0]) == 0xfd && m[1] == '7' && m[2] == 'z' && m[3] == 'X' && m[4] == 'Z'
                    && m[5] == 0) {
                plain = new XZInputStream(in);
            } else if (m.length >= 3 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h') {
                plain = new BZip2CompressorInputStream(in, true);
            } else {
                plain = in;
            }
            BufferedInputStream tar = new BufferedInputStream(plain, 1 << 16);
            tar.mark(512);
            byte[] header = tar.readNBytes(512);
            tar.reset();
            boolean ok = TarArchiveInputStream.matches(header, header.length)
                    || (header.length == 512 && checksumOk(header));
            if (!ok) {
                throw new CaskException.InvalidInput("file analysis: " + path
                        + ": not a directory or a tar archive (" + TAR_KINDS + ")");
            }
            return tar;
        } catch (IOException | RuntimeException e) {
            raw.close();
            if (e instanceof IOException io && plainFailure(io)) {
                throw new CaskException.InvalidInput("file analysis: " + path + ": not a directory or a tar archive ("
                        + TAR_KINDS + "): " + describe(io), io);
            }
            throw e;
        }
    }

    /** A pre-POSIX (v7) tar header has no magic: its checksum is the only sign it is one. */
    private static boolean checksumOk(byte[] header) {
        try {
            return TarUtils.verifyCheckSum(header);
        } catch (IllegalArgumentException e) { // the checksum field is not even octal
            return false;
        }
    }

    /** A decompressor that rejects its input at the first bytes means "not this format" to the user too. */
    private static boolean plainFailure(IOException e) {
        return e instanceof java.util.zip.ZipException || e instanceof org.tukaani.xz.XZFormatException
                || e instanceof org.tukaani.xz.CorruptedInputException;
    }

    private static int u(byte b) {
        return b & 0xff;
    }

    /** Counts the bytes read from the underlying file into a progress. */
    private static final class Counting extends FilterInputStream {
        private final Progress progress;

        Counting(InputStream in, Progress progress) {
            super(in);
            this.progress = progress;
        }

        @Override
        public int read() throws IOException {
            int b = in.read();
            if (b >= 0) progress.advance(1);
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = in.read(b, off, len);
            if (n > 0) progress.advance(n);
            return n;
        }

        @Override
        public long skip(long n) throws IOException {
            long s = in.skip(n);
            if (s > 0) progress.advance(s);
            return s;
        }
    }

    // ---- hashing -----------------------------------------------------------------------------

    /** A SHA-256 digest as four longs: no array, cheap equality; about 32 bytes of payload. */
    record Digest(long a, long b, long c, long d) {
        static Digest of(byte[] sha256) {
            ByteBuffer bb = ByteBuffer.wrap(sha256);
            return new Digest(bb.getLong(), bb.getLong(), bb.getLong(), bb.getLong());
        }
    }

    /** A file's digest and the bytes actually read, or why it could not be read. */
    private record Hashed(Digest digest, long size, IOException error) {}

    /** A SHA-256 context and its read buffer; not thread-safe, borrowed from a pool per file. */
    private static final class Hasher {
        private final MessageDigest sha256;
        private final byte[] buffer = new byte[BUFFER_BYTES];

        Hasher() {
            try {
                sha256 = MessageDigest.getInstance("SHA-256");
            } catch (NoSuchAlgorithmException e) {
                throw new AssertionError("every JDK has SHA-256", e);
            }
        }

        Hashed hash(InputStream in, LongConsumer advanced) {
            sha256.reset();
            long size = 0;
            try {
                int n;
                while ((n = in.read(buffer, 0, buffer.length)) >= 0) {
                    sha256.update(buffer, 0, n);
                    size += n;
                    advanced.accept(n);
                }
            } catch (IOException e) {
                return new Hashed(null, size, e);
            }
            return new Hashed(Digest.of(sha256.digest()), size, null);
        }
    }

    static String describe(IOException e) {
        if (e instanceof NoSuchFileException) return "no such file";
        if (e instanceof AccessDeniedException) return "permission denied";
        if (e instanceof FileSystemException f && f.getReason() != null) return f.getReason();
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    // ---- accounting --------------------------------------------------------------------------

    private enum Claim { NEW, OTHER_TREE, SAME_TREE }

    /** Counters of one tree; guarded by the {@link Accounts} lock. */
    private static final class TreeCounts {
        final int index;
        final String name;
        final String source;
        long files, bytes, uniqueBytes, hardLinks, emptyFiles, skipped, unreadable;

        TreeCounts(int index, String name, String source) {
            this.index = index;
            this.name = name;
            this.source = source;
        }

        FileReport.Tree toTree() {
            return new FileReport.Tree(name, source, files, bytes, uniqueBytes, hardLinks, emptyFiles, skipped, unreadable);
        }
    }

    /** One distinct content: its size and the trees that hold it. */
    private record Content(long size, BitSet trees) {}

    /**
     * Everything counted so far. All methods are synchronized: hashing threads report here, and
     * the work under the lock (a map look-up and a few additions) is tiny next to hashing.
     */
    private static final class Accounts {
        private final int treeCount;
        private final Consumer<String> warnings;
        private final Map<Digest, Content> contents = new HashMap<>();
        /** File key -> index of the last tree that reached it. */
        private final Map<Object, Integer> files = new HashMap<>();
        private final List<TreeCounts> trees = new ArrayList<>();
        private final List<FileReport.Growth> growth = new ArrayList<>();
        private long collectionFiles, collectionBytes, collectionUnique, collectionHardLinks;

        Accounts(int treeCount, Consumer<String> warnings) {
            this.treeCount = treeCount;
            this.warnings = warnings;
        }

        synchronized Claim claim(Object fileKey, int tree) {
            Integer last = files.put(fileKey, tree);
            if (last == null) return Claim.NEW;
            if (last == tree) return Claim.SAME_TREE;
            collectionHardLinks++;
            return Claim.OTHER_TREE;
        }

        synchronized void hardLink(TreeCounts tree) {
            tree.hardLinks++;
            collectionHardLinks++;
        }

        synchronized void empty(TreeCounts tree) {
            tree.emptyFiles++;
        }

        synchronized void skipped(TreeCounts tree) {
            tree.skipped++;
        }

        synchronized void unreadable(TreeCounts tree, String what, IOException e) {
            unreadable(tree, what, describe(e));
        }

        synchronized void unreadable(TreeCounts tree, String what, String why) {
            tree.unreadable++;
            warnings.accept("tree " + tree.name + ": " + what + ": unreadable (" + why + "), skipped");
        }

        synchronized void add(TreeCounts tree, String what, Hashed h, boolean newInCollection) {
            if (h.error() != null) {
                unreadable(tree, what, h.error());
                return;
            }
            if (h.size() == 0) { // emptied between the walk and the read
                tree.emptyFiles++;
                return;
            }
            tree.files++;
            tree.bytes += h.size();
            Content c = contents.get(h.digest());
            if (c == null) {
                c = new Content(h.size(), new BitSet(treeCount));
                contents.put(h.digest(), c);
                collectionUnique += h.size();
                // The file was counted in the collection by an earlier tree that could not read it
                // (or read other bytes): count it now, so unique never exceeds bytes.
                newInCollection = true;
            }
            if (newInCollection) {
                collectionFiles++;
                collectionBytes += h.size();
            }
            if (!c.trees().get(tree.index)) {
                c.trees().set(tree.index);
                tree.uniqueBytes += c.size();
            }
        }

        synchronized void endTree(TreeCounts tree) {
            trees.add(tree);
            growth.add(new FileReport.Growth(tree.name, collectionUnique));
        }

        synchronized FileReport report() {
            int n = trees.size();
            // Group contents by the set of trees that hold them: few distinct sets, so the
            // pairwise sums cost (sets x trees^2), not (contents x trees^2).
            Map<BitSet, Long> bySet = new HashMap<>();
            for (Content c : contents.values()) bySet.merge(c.trees(), c.size(), Long::sum);
            long[][] both = new long[n][n];
            for (Map.Entry<BitSet, Long> e : bySet.entrySet()) {
                BitSet s = e.getKey();
                for (int i = s.nextSetBit(0); i >= 0; i = s.nextSetBit(i + 1)) {
                    for (int j = s.nextSetBit(i + 1); j >= 0; j = s.nextSetBit(j + 1)) {
                        both[i][j] += e.getValue();
                    }
                }
            }
            double[][] overlap = new double[n][n];
            for (int i = 0; i < n; i++) {
                overlap[i][i] = 1.0;
                for (int j = i + 1; j < n; j++) {
                    long either = trees.get(i).uniqueBytes + trees.get(j).uniqueBytes - both[i][j];
                    overlap[i][j] = overlap[j][i] = either == 0 ? 0.0 : (double) both[i][j] / either;
                }
            }
            List<FileReport.Tree> out = trees.stream().map(TreeCounts::toTree).toList();
            return new FileReport(out, new FileReport.Totals(collectionFiles, collectionBytes, collectionUnique,
                    collectionHardLinks), overlap, growth);
        }
    }
}
