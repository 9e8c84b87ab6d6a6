package dev.cask.cli;

import dev.cask.analysis.BlockAnalysis;
import dev.cask.analysis.BlockReport;
import dev.cask.analysis.Strategy;
import dev.cask.common.CaskException;
import dev.cask.common.Sizes;
import dev.cask.image.Images;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code cask analyze IMG...}: how well a collection of images would deduplicate, per chunking
 * strategy and block size, in one pass over the data ({@link BlockAnalysis}). Prints tables, or
 * the report's JSON with {@code --json}.
 */
@Command(name = "analyze", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Measure how much a collection of disk images (raw or qcow2 files, stored images as cask:NAME[@VER])"
                + " would deduplicate, for each chunking strategy at each block size, reading every image once.",
                "",
                "Strategies: fixed-N cuts at multiples of N from disk offset 0; aligned-N cuts at multiples of N from each"
                        + " partition's start (MBR and GPT; the table and gaps are cut from their own start, as import does);"
                        + " cdc-N cuts where the content says (FastCDC, average N, min N/4, max 8N)."},
        footer = {"",
                "Numbers, per strategy, for each image and for the collection (bytes):",
                "  zero        in chunks that are all zeros (holes count as zero);",
                "              non-zero = logical - zero",
                "  unique      sum of the sizes of the distinct non-zero chunks",
                "              (distinct within the image, or across all images)",
                "  int-dup     duplication inside one image: its non-zero - its unique",
                "  dedup       collection non-zero / collection unique",
                "  overlap     of two images: distinct non-zero chunks in both / in either",
                "  cumulative  collection unique after the images so far, in the order given",
                "  zstd        the collection's unique chunks, each compressed with zstd",
                "              level 1 as the store does (raw size when that does not pay)",
                "Chunks are compared by the first 64 bits of their SHA-256: the chance of one",
                "false match is about 5e-6 for 50 GiB of distinct 4K chunks.",
                "Memory: 21-32 bytes per distinct chunk per strategy, about 1 GiB for fixed,",
                "aligned and cdc at 4K over 50 GiB of distinct data.",
                "Exit status: 0 ok, 1 failed, 2 usage error."})
final class AnalyzeCommand extends Common implements Callable<Integer> {
    private static final String CASK_PREFIX = "cask:";

    @Parameters(arity = "1..*", paramLabel = "IMG", description = "Raw or qcow2 image files, or cask:NAME[@VER] for a stored image"
            + " (with --files: directories or tar files, plain or gzip/bzip2/xz/zstd-compressed).")
    List<String> images;
    @Option(names = "--files", description = {"File level instead: SHA-256 of every regular file under each directory or tar;"
            + " duplicate share inside each tree (by size) and the overlap between trees. Hard links count once;"
            + " empty files, symlinks and special files are ignored."})
    boolean files;
    @Option(names = "--html", paramLabel = "FILE", description = "Also write a self-contained HTML report (charts, heat maps,"
            + " tables, the cask import flags that store the fewest bytes; dated, with the cask version) to FILE.")
    Path html;
    @Option(names = "--block-sizes", paramLabel = "LIST", defaultValue = Strategy.DEFAULT_BLOCK_SIZES,
            description = "Block sizes, powers of two from 512 to 1M (default: ${DEFAULT-VALUE}).")
    String blockSizes;
    @Option(names = "--strategies", paramLabel = "LIST", defaultValue = Strategy.DEFAULT_KINDS,
            description = "Any of fixed, aligned, cdc (default: ${DEFAULT-VALUE}).")
    String strategies;
    @Option(names = "--json", description = "Machine-readable output (the report the HTML page renders).")
    boolean json;

    @Override
    public Integer call() {
        List<Integer> sizes;
        List<Strategy.Kind> kinds;
        try {
            sizes = Strategy.parseBlockSizes(blockSizes);
            kinds = Strategy.parseKinds(strategies);
        } catch (CaskException.InvalidInput e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
        if (files) return callFiles();
        Images store = null;
        try {
            List<BlockAnalysis.Input> inputs = new ArrayList<>();
            for (String arg : images) {
                if (arg.startsWith(CASK_PREFIX)) {
                    if (store == null) store = openStore();
                    inputs.add(BlockAnalysis.stored(store, arg.substring(CASK_PREFIX.length())));
                } else {
                    inputs.add(BlockAnalysis.file(Path.of(arg)));
                }
            }
            BlockReport report = BlockAnalysis.run(inputs, Strategy.all(kinds, sizes), progress(), this::warn);
            com.fasterxml.jackson.databind.JsonNode doc = report.toJson();
            if (html != null) writeHtml(doc);
            if (json) printJson(doc);
            else printTables(out(), report);
        } finally {
            if (store != null) store.close();
        }
        return 0;
    }

    /** {@code --files}: the file-level analysis of directories and tars. */
    private int callFiles() {
        List<Path> roots = images.stream().map(Path::of).toList();
        dev.cask.analysis.FileReport report = dev.cask.analysis.FileAnalysis.analyze(roots, progress(), this::warn);
        com.fasterxml.jackson.databind.JsonNode doc = report.toJson(json());
        if (html != null) writeHtml(doc);
        if (json) {
            printJson(doc);
            return 0;
        }
        PrintWriter out = out();
        int width = Math.max(20, report.trees().stream().mapToInt(t -> t.name().length()).max().orElse(0) + 2);
        out.printf("  %-" + width + "s %8s %10s %10s %10s %7s %10s%n", "TREE", "FILES", "BYTES", "UNIQUE", "DUPLICATE", "SHARE", "CUMULATIVE");
        for (int i = 0; i < report.trees().size(); i++) {
            var t = report.trees().get(i);
            out.printf(Locale.ROOT, "  %-" + width + "s %8d %10s %10s %10s %6.1f%% %10s%n", t.name(), t.files(), Sizes.human(t.bytes()),
                    Sizes.human(t.uniqueBytes()), Sizes.human(t.duplicateBytes()), 100 * t.duplicateShare(),
                    Sizes.human(report.growth().get(i).uniqueBytes()));
        }
        var c = report.collection();
        out.printf(Locale.ROOT, "  %-" + width + "s %8d %10s %10s %10s %6.1f%%%n", "collection", c.files(), Sizes.human(c.bytes()),
                Sizes.human(c.uniqueBytes()), Sizes.human(c.duplicateBytes()), 100 * c.duplicateShare());
        int n = report.trees().size();
        if (n > 1 && n <= 12) {
            StringBuilder head = new StringBuilder(String.format("  %-" + width + "s", "overlap"));
            for (int j = 0; j < n; j++) head.append(String.format("%7d", j + 1));
            out.println(head);
            for (int i = 0; i < n; i++) {
                StringBuilder row = new StringBuilder(String.format("  %-" + width + "s", (i + 1) + " " + report.trees().get(i).name()));
                for (int j = 0; j < n; j++) row.append(String.format(Locale.ROOT, "%7.3f", report.overlap(i, j)));
                out.println(row);
            }
        }
        return 0;
    }

    /** Writes the HTML report next to its destination, then renames it into place. */
    private void writeHtml(com.fasterxml.jackson.databind.JsonNode doc) {
        Path target = html.toAbsolutePath();
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        try {
            var by = new dev.cask.analysis.HtmlReport.Provenance(Main.Version.line(), java.time.ZonedDateTime.now());
            Files.writeString(tmp, dev.cask.analysis.HtmlReport.render(doc, by), java.nio.charset.StandardCharsets.UTF_8);
            Files.move(tmp, target, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (java.io.IOException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (java.io.IOException ignored) {
                // reporting the first error
            }
            throw new CaskException.Io("report " + html + ": cannot write: " + e.getMessage(), e);
        }
        if (!json) err().println("cask: wrote the HTML report to " + html);
    }

    private Images openStore() {
        if (main.choice() instanceof StoreChoice.Shared) return openImages();
        Path dir = main.store();
        if (!Files.isDirectory(dir)) throw new CaskException.NotFound("store " + dir + ": no such directory (for the cask: images)");
        return openImages();
    }

    // ------------------------------------------------------------------ text output

    static void printTables(PrintWriter out, BlockReport r) {
        long logical = r.images().stream().mapToLong(BlockReport.ImageInfo::logicalBytes).sum();
        out.printf(Locale.ROOT, "%d image%s, %s logical; block sizes %s; %.1f s%n", r.images().size(), r.images().size() == 1 ? "" : "s",
                Sizes.human(logical), String.join(", ", r.blockSizes().stream().map(AnalyzeCommand::size).toList()), r.seconds());
        for (BlockReport.ImageInfo i : r.images()) {
            StringBuilder parts = new StringBuilder();
            for (BlockReport.Partition p : i.partitions()) {
                parts.append(parts.isEmpty() ? "" : ", ").append(p.kind()).append(" at ").append(p.offset())
                        .append(" (").append(Sizes.human(p.length())).append(')');
            }
            if (i.partitionError() != null) parts.append("partition table unreadable");
            out.printf("  %-28s %-6s %10s  %s%n", i.name(), i.format(), Sizes.human(i.logicalBytes()),
                    parts.isEmpty() ? "no partitions" : parts);
        }
        int width = Math.max(20, r.images().stream().mapToInt(i -> i.name().length()).max().orElse(0) + 4);
        for (BlockReport.StrategyResult s : r.strategies()) {
            BlockReport.Totals c = s.collection();
            out.println();
            out.printf(Locale.ROOT, "%s: %s%n", s.name(), describe(s));
            out.printf(Locale.ROOT, "  collection: %s non-zero of %s, %s unique (dedup %.2fx), %s zstd; %d chunks, %d unique%n",
                    Sizes.human(c.nonzeroBytes()), Sizes.human(c.logicalBytes()), Sizes.human(c.uniqueBytes()), c.dedupRatio(),
                    Sizes.human(c.compressedBytes()), c.chunks(), c.uniqueChunks());
            out.printf("  %-" + width + "s %10s %10s %10s %10s %10s%n", "IMAGE", "NON-ZERO", "ZERO", "UNIQUE", "INT-DUP", "CUMULATIVE");
            for (int i = 0; i < s.perImage().size(); i++) {
                BlockReport.ImageTotals t = s.perImage().get(i);
                out.printf("  %-" + width + "s %10s %10s %10s %10s %10s%n", t.name(), Sizes.human(t.nonzeroBytes()), Sizes.human(t.zeroBytes()),
                        Sizes.human(t.uniqueBytes()), Sizes.human(t.internalDuplicateBytes()), Sizes.human(s.growth().get(i).uniqueBytes()));
            }
            int n = s.overlap().length;
            if (n > 1 && n <= 12) {
                StringBuilder head = new StringBuilder(String.format("  %-" + width + "s", "overlap"));
                for (int j = 0; j < n; j++) head.append(String.format("%7d", j + 1));
                out.println(head);
                for (int i = 0; i < n; i++) {
                    StringBuilder row = new StringBuilder(String.format("  %-" + width + "s", (i + 1) + " " + s.perImage().get(i).name()));
                    for (int j = 0; j < n; j++) row.append(String.format(Locale.ROOT, "%7.3f", s.overlap()[i][j]));
                    out.println(row);
                }
            } else if (n > 12) {
                out.println("  (overlap matrix of " + n + " images: see --json)");
            }
        }
        out.println();
        out.println("summary: collection unique bytes (zstd-compressed) by block size");
        List<String> kinds = new ArrayList<>();
        for (BlockReport.StrategyResult s : r.strategies()) {
            if (!kinds.contains(s.strategy().kind().label())) kinds.add(s.strategy().kind().label());
        }
        StringBuilder head = new StringBuilder(String.format("  %-8s", "strategy"));
        for (int bs : r.blockSizes()) head.append(String.format("  %21s", size(bs)));
        out.println(head);
        for (String k : kinds) {
            StringBuilder row = new StringBuilder(String.format("  %-8s", k));
            for (int bs : r.blockSizes()) {
                BlockReport.StrategyResult s = r.strategy(k + "-" + bs);
                row.append(String.format("  %21s", s == null ? "-"
                        : Sizes.human(s.collection().uniqueBytes()) + " (" + Sizes.human(s.collection().compressedBytes()) + ")"));
            }
            out.println(row);
        }
    }

    private static String describe(BlockReport.StrategyResult s) {
        int n = s.strategy().blockSize();
        return switch (s.strategy().kind()) {
            case FIXED -> "chunks of " + size(n) + " from disk offset 0";
            case ALIGNED -> "chunks of " + size(n) + " from each partition's start";
            case CDC -> "content-defined chunks, average " + size(n) + " (min " + size(s.minChunk()) + ", max " + size(s.maxChunk()) + ")";
        };
    }

    private static String size(int n) {
        if (n >= 1 << 20 && n % (1 << 20) == 0) return (n >> 20) + "M";
        if (n >= 1024 && n % 1024 == 0) return (n >> 10) + "K";
        return Integer.toString(n);
    }
}
