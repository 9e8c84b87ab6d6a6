package dev.cask.analysis;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.List;

/**
 * The result of a {@link FileAnalysis}: per tree, for the whole collection, between trees, and
 * as trees are added. All sizes are in bytes and count regular files of non-zero length only.
 *
 * <h2>Definitions</h2>
 * <ul>
 *   <li>{@code files}, {@code bytes}: the regular, non-empty files of a tree, each file (inode)
 *       once: a second path to a file already counted is a hard link, not a file.</li>
 *   <li>{@code unique_bytes}: the sum of the sizes of the distinct contents (by SHA-256) of
 *       those files; {@code duplicate_bytes} = {@code bytes} - {@code unique_bytes}, the bytes
 *       of files whose content already appeared earlier (in any order: the sum does not
 *       depend on it); {@code duplicate_share} = duplicate / bytes (0 when bytes is 0).</li>
 *   <li>{@code hard_links}: paths not counted because they reach a file already counted in
 *       the same tree (directories: the same device and inode; tars: hard-link entries).</li>
 *   <li>{@code empty_files}: zero-length regular files, ignored. {@code skipped}: symbolic
 *       links, devices, fifos and sockets, ignored. {@code unreadable}: files or directories
 *       that could not be read; each one was reported as a warning.</li>
 *   <li>collection: the same over all trees together. A file reached from two trees (a
 *       directory tree hard-linked into another, as backup tools do) is counted once, so
 *       collection {@code files} and {@code bytes} can be less than the sums over the trees.</li>
 *   <li>{@code overlap[i][j]}: bytes of the distinct contents present in both tree i and tree j
 *       over bytes of the distinct contents present in either (weighted Jaccard); 1.0 on the
 *       diagonal, 0.0 when both trees are empty.</li>
 *   <li>{@code growth[k]}: distinct-content bytes of trees 0..k together, in input order.</li>
 * </ul>
 *
 * <p>Immutable and thread-safe; {@link #overlap(int, int)} reads a private copy of the matrix.
 */
public final class FileReport {
    /** One input tree (a directory or a tar file). */
    public record Tree(String name, String source, long files, long bytes, long uniqueBytes,
                       long hardLinks, long emptyFiles, long skipped, long unreadable) {
        public long duplicateBytes() {
            return bytes - uniqueBytes;
        }

        public double duplicateShare() {
            return share(duplicateBytes(), bytes);
        }
    }

    /** All trees together; {@code hardLinks} counts every path not counted as a file of the collection. */
    public record Totals(long files, long bytes, long uniqueBytes, long hardLinks) {
        public long duplicateBytes() {
            return bytes - uniqueBytes;
        }

        public double duplicateShare() {
            return share(duplicateBytes(), bytes);
        }
    }

    /** Distinct-content bytes of the trees up to and including {@code tree}. */
    public record Growth(String tree, long uniqueBytes) {}

    private final List<Tree> trees;
    private final Totals collection;
    private final double[][] overlap;
    private final List<Growth> growth;

    FileReport(List<Tree> trees, Totals collection, double[][] overlap, List<Growth> growth) {
        assert overlap.length == trees.size() && growth.size() == trees.size();
        this.trees = List.copyOf(trees);
        this.collection = collection;
        this.overlap = new double[overlap.length][];
        for (int i = 0; i < overlap.length; i++) {
            assert overlap[i].length == trees.size();
            this.overlap[i] = overlap[i].clone();
        }
        this.growth = List.copyOf(growth);
    }

    public List<Tree> trees() {
        return trees;
    }

    public Totals collection() {
        return collection;
    }

    /** The overlap of tree {@code i} and tree {@code j} (indexes into {@link #trees()}). */
    public double overlap(int i, int j) {
        return overlap[i][j];
    }

    public List<Growth> growth() {
        return growth;
    }

    /** The report as the {@code "kind":"files"} JSON document that {@link HtmlReport} renders. */
    public ObjectNode toJson(ObjectMapper mapper) {
        ObjectNode root = mapper.createObjectNode();
        root.put("kind", "files");
        ArrayNode ts = root.putArray("trees");
        for (Tree t : trees) {
            ObjectNode o = ts.addObject();
            o.put("name", t.name());
            o.put("source", t.source());
            o.put("files", t.files());
            o.put("bytes", t.bytes());
            o.put("unique_bytes", t.uniqueBytes());
            o.put("duplicate_bytes", t.duplicateBytes());
            o.put("duplicate_share", t.duplicateShare());
            o.put("hard_links", t.hardLinks());
            o.put("empty_files", t.emptyFiles());
            o.put("skipped", t.skipped());
            o.put("unreadable", t.unreadable());
        }
        ObjectNode c = root.putObject("collection");
        c.put("files", collection.files());
        c.put("bytes", collection.bytes());
        c.put("unique_bytes", collection.uniqueBytes());
        c.put("duplicate_bytes", collection.duplicateBytes());
        c.put("duplicate_share", collection.duplicateShare());
        c.put("hard_links", collection.hardLinks());
        ArrayNode m = root.putArray("overlap");
        for (double[] row : overlap) {
            ArrayNode r = m.addArray();
            for (double v : row) r.add(v);
        }
        ArrayNode g = root.putArray("growth");
        for (Growth x : growth) {
            g.addObject().put("tree", x.tree()).put("unique_bytes", x.uniqueBytes());
        }
        return root;
    }

    static double share(long part, long whole) {
        return whole == 0 ? 0.0 : (double) part / whole;
    }
}
