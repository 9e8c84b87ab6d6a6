package dev.cask.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import dev.cask.common.CaskException;
import dev.cask.common.Sizes;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Renders an analysis report (the JSON document of {@code cask analyze}) as one self-contained
 * HTML file: inline CSS, inline SVG charts drawn in Java, no script, no font, image or style
 * from anywhere else, so it opens in a browser with no network. It reads both kinds of
 * document: {@code "kind":"blocks"} (block-level, one entry per strategy such as
 * {@code fixed-4096}) and {@code "kind":"files"} ({@link FileReport#toJson}).
 *
 * <h2>Stable element ids</h2>
 * Tests and users (scripts, links into the page) may rely on these; {@code NAME} is a strategy
 * name with every character outside {@code A-Z a-z 0-9 . _ -} replaced by {@code _} (and
 * {@code -2}, {@code -3}... appended if two strategies would share an id).
 * <table>
 *   <caption>kind "blocks"</caption>
 *   <tr><td>{@code summary}</td><td>paragraph: images, logical size, the strategy with the fewest unique bytes</td></tr>
 *   <tr><td>{@code table-images}</td><td>one row per image: name, format, logical size, partitions, source</td></tr>
 *   <tr><td>{@code chart-unique-vs-block-size}</td><td>SVG line chart: collection unique bytes against block
 *       size (log2 axis), one solid series per strategy kind (fixed, aligned, cdc, then any other),
 *       and a dashed series of compressed bytes per kind where the report has them</td></tr>
 *   <tr><td>{@code table-strategies}</td><td>one row per strategy: its collection numbers (logical, zero,
 *       non-zero, unique, compressed bytes, chunks, unique chunks, dedup ratio)</td></tr>
 *   <tr><td>{@code heatmap-NAME}</td><td>SVG heat map of the strategy's overlap matrix, image names on both
 *       axes, the value in each cell ({@code images}&sup2; {@code <rect class="cell">}); one per strategy that
 *       has a matrix, the 4 KiB fixed one (else the first) shown open, the others folded</td></tr>
 *   <tr><td>{@code chart-growth}</td><td>SVG line chart: cumulative unique bytes as images are added, one
 *       series per strategy</td></tr>
 *   <tr><td>{@code table-growth}</td><td>the same numbers: one row per image, one column per strategy</td></tr>
 *   <tr><td>{@code table-strategy-NAME}</td><td>per image numbers of one strategy (logical, zero, non-zero,
 *       unique, internal duplicate bytes, chunks, unique chunks); its footer row holds the collection</td></tr>
 * </table>
 * <table>
 *   <caption>kind "files"</caption>
 *   <tr><td>{@code summary}</td><td>paragraph: trees, files, bytes, unique bytes, duplicate share</td></tr>
 *   <tr><td>{@code table-trees}</td><td>one row per tree: files, bytes, unique, duplicate, duplicate share,
 *       hard links, empty files, skipped (and unreadable when the report has it)</td></tr>
 *   <tr><td>{@code table-collection}</td><td>the same numbers for all trees together</td></tr>
 *   <tr><td>{@code heatmap-files}</td><td>SVG heat map of the overlap matrix between trees</td></tr>
 *   <tr><td>{@code chart-growth}</td><td>SVG line chart: cumulative unique bytes as trees are added, and the
 *       cumulative bytes without deduplication (dashed)</td></tr>
 *   <tr><td>{@code table-growth}</td><td>one row per tree: unique bytes so far, added by the tree, bytes so far</td></tr>
 * </table>
 * Sections are {@code section-*} and change freely; ids inside the SVGs other than the charts'
 * own are internal.
 *
 * <h2>Invariants</h2>
 * Sizes are shown human-readable (binary units) with the exact byte count in a {@code title}
 * attribute ({@code title="123456 bytes"}). Every string from the document (image, tree and
 * strategy names, paths) is escaped, so a name like {@code <script>} is text, never markup;
 * characters XML forbids are replaced by U+FFFD. The output is polyglot: it parses as XML
 * (XHTML) as well as HTML, and its only URL is the SVG namespace. Missing optional numbers show
 * as a dash; malformed input (no or an unknown {@code kind}, a missing required field, a value
 * of the wrong type, an overlap matrix of the wrong size) is refused with
 * {@link CaskException.InvalidInput} naming the field. Extra fields are ignored.
 *
 * <h2>Thread-safety</h2>
 * Stateless: {@link #render} may be called from any number of threads.
 */
public final class HtmlReport {
    private HtmlReport() {}

    /**
     * The HTML page for {@code report}.
     *
     * @throws CaskException.InvalidInput the document is not an object, has no or an unknown
     *     {@code kind}, or misses or mistypes a required field
     */
    public static String render(JsonNode report) {
        if (report == null || !report.isObject()) {
            throw new CaskException.InvalidInput("report: expected a JSON object, got "
                    + (report == null ? "nothing" : report.getNodeType().toString().toLowerCase(Locale.ROOT)));
        }
        JsonNode kind = report.get("kind");
        if (kind == null || kind.isNull()) {
            throw new CaskException.InvalidInput("report: no \"kind\" field; expected \"blocks\" or \"files\"");
        }
        String k = kind.isTextual() ? kind.asText() : kind.toString();
        return switch (k) {
            case "blocks" -> new Page().blocks(parseBlocks(report));
            case "files" -> new Page().files(parseFiles(report));
            default -> throw new CaskException.InvalidInput("report: unknown kind \"" + k
                    + "\"; expected \"blocks\" or \"files\"");
        };
    }

    // ---- the documents, validated ------------------------------------------------------------

    record Image(String name, String source, String format, Long logicalBytes, Integer partitions) {}

    /** Collection numbers ({@code name} null) or one image's numbers of a strategy. */
    record BlockNumbers(String name, Long logical, Long zero, Long nonzero, Long unique, Long compressed,
                        Long internalDuplicate, Long chunks, Long uniqueChunks, Double dedupRatio) {}

    record Step(String name, long uniqueBytes) {}

    record Strategy(String name, String kind, long blockSize, BlockNumbers collection, List<BlockNumbers> perImage,
                    double[][] overlap, List<Step> growth) {}

    record BlocksDocument(List<Image> images, List<Strategy> strategies) {}

    record TreeRow(String name, String source, Long files, Long bytes, Long unique, Long duplicate, Double share,
                   Long hardLinks, Long empty, Long skipped, Long unreadable) {}

    record FilesDocument(List<TreeRow> trees, TreeRow collection, double[][] overlap, List<Step> growth,
                 boolean hasUnreadable) {}

    static BlocksDocument parseBlocks(JsonNode r) {
        String ctx = "report (blocks)";
        List<Image> images = new ArrayList<>();
        for (JsonNode i : array(r, "images", ctx, true)) {
            String c = ctx + ": images[" + images.size() + "]";
            requireObject(i, c);
            JsonNode parts = i.get("partitions");
            images.add(new Image(text(i, "name", c, true), text(i, "source", c, false), text(i, "format", c, false),
                    optLong(i, "logical_bytes", c), parts != null && parts.isArray() ? parts.size() : null));
        }
        List<Strategy> strategies = new ArrayList<>();
        for (JsonNode s : array(r, "strategies", ctx, true)) {
            String c = ctx + ": strategies[" + strategies.size() + "]";
            requireObject(s, c);
            String name = text(s, "name", c, true);
            c = ctx + ": strategy \"" + name + "\"";
            String kind = text(s, "kind", c, true);
            Long blockSize = optLong(s, "block_size", c);
            if (blockSize == null || blockSize <= 0) {
                throw new CaskException.InvalidInput(c + ": \"block_size\" must be a positive number, got "
                        + s.get("block_size"));
            }
            JsonNode col = s.get("collection");
            if (col == null || !col.isObject()) throw new CaskException.InvalidInput(c + ": no \"collection\" object");
            BlockNumbers collection = blockNumbers(col, null, c + ": collection");
            List<BlockNumbers> perImage = new ArrayList<>();
            for (JsonNode p : array(s, "per_image", c, false)) {
                String pc = c + ": per_image[" + perImage.size() + "]";
                requireObject(p, pc);
                perImage.add(blockNumbers(p, text(p, "name", pc, true), pc));
            }
            double[][] overlap = matrix(s.get("overlap"), images.size(), c, "image");
            strategies.add(new Strategy(name, kind, blockSize, collection, perImage, overlap,
                    steps(s, "image", c)));
        }
        return new BlocksDocument(images, strategies);
    }

    private static BlockNumbers blockNumbers(JsonNode o, String name, String c) {
        return new BlockNumbers(name, optLong(o, "logical_bytes", c), optLong(o, "zero_bytes", c),
                optLong(o, "nonzero_bytes", c), optLong(o, "unique_bytes", c), optLong(o, "compressed_bytes", c),
                optLong(o, "internal_duplicate_bytes", c), optLong(o, "chunks", c), optLong(o, "unique_chunks", c),
                optDouble(o, "dedup_ratio", c));
    }

    static FilesDocument parseFiles(JsonNode r) {
        String ctx = "report (files)";
        List<TreeRow> trees = new ArrayList<>();
        boolean unreadable = false;
        for (JsonNode t : array(r, "trees", ctx, true)) {
            String c = ctx + ": trees[" + trees.size() + "]";
            requireObject(t, c);
            TreeRow row = treeRow(t, text(t, "name", c, true), c);
            unreadable |= row.unreadable() != null;
            trees.add(row);
        }
        JsonNode col = r.get("collection");
        if (col == null || !col.isObject()) throw new CaskException.InvalidInput(ctx + ": no \"collection\" object");
        TreeRow collection = treeRow(col, "collection", ctx + ": collection");
        return new FilesDocument(trees, collection, matrix(r.get("overlap"), trees.size(), ctx, "tree"),
                steps(r, "tree", ctx), unreadable);
    }

    private static TreeRow treeRow(JsonNode o, String name, String c) {
        return new TreeRow(name, text(o, "source", c, false), optLong(o, "files", c), optLong(o, "bytes", c),
                optLong(o, "unique_bytes", c), optLong(o, "duplicate_bytes", c), optDouble(o, "duplicate_share", c),
                optLong(o, "hard_links", c), optLong(o, "empty_files", c), optLong(o, "skipped", c),
                optLong(o, "unreadable", c));
    }

    private static List<Step> steps(JsonNode o, String nameField, String c) {
        List<Step> steps = new ArrayList<>();
        for (JsonNode g : array(o, "growth", c, false)) {
            String gc = c + ": growth[" + steps.size() + "]";
            requireObject(g, gc);
            Long u = optLong(g, "unique_bytes", gc);
            if (u == null) throw new CaskException.InvalidInput(gc + ": no \"unique_bytes\"");
            steps.add(new Step(text(g, nameField, gc, true), u));
        }
        return steps;
    }

    /** An n x n matrix of numbers (null entries become NaN), or null when the field is absent. */
    private static double[][] matrix(JsonNode m, int n, String c, String what) {
        if (m == null || m.isNull()) return null;
        if (!m.isArray() || m.size() != n) {
            throw new CaskException.InvalidInput(c + ": \"overlap\" has " + (m.isArray() ? m.size() + " rows" : "no rows")
                    + ", expected " + n + " (one per " + what + ")");
        }
        double[][] out = new double[n][n];
        for (int i = 0; i < n; i++) {
            JsonNode row = m.get(i);
            if (!row.isArray() || row.size() != n) {
                throw new CaskException.InvalidInput(c + ": \"overlap\" row " + i + " has "
                        + (row.isArray() ? row.size() : 0) + " values, expected " + n);
            }
            for (int j = 0; j < n; j++) {
                JsonNode v = row.get(j);
                if (v.isNull()) out[i][j] = Double.NaN;
                else if (v.isNumber()) out[i][j] = v.asDouble();
                else throw new CaskException.InvalidInput(c + ": \"overlap\"[" + i + "][" + j + "] is not a number: " + v);
            }
        }
        return out;
    }

    private static void requireObject(JsonNode n, String c) {
        if (!n.isObject()) throw new CaskException.InvalidInput(c + ": expected an object, got " + n);
    }

    private static List<JsonNode> array(JsonNode o, String field, String c, boolean required) {
        JsonNode a = o.get(field);
        if (a == null || a.isNull()) {
            if (required) throw new CaskException.InvalidInput(c + ": no \"" + field + "\" array");
            return List.of();
        }
        if (!a.isArray()) throw new CaskException.InvalidInput(c + ": \"" + field + "\" is not an array");
        List<JsonNode> out = new ArrayList<>();
        a.forEach(out::add);
        return out;
    }

    private static String text(JsonNode o, String field, String c, boolean required) {
        JsonNode v = o.get(field);
        if (v == null || v.isNull()) {
            if (required) throw new CaskException.InvalidInput(c + ": no \"" + field + "\"");
            return null;
        }
        if (!v.isTextual()) throw new CaskException.InvalidInput(c + ": \"" + field + "\" is not a string: " + v);
        return v.asText();
    }

    private static Long optLong(JsonNode o, String field, String c) {
        JsonNode v = o.get(field);
        if (v == null || v.isNull()) return null;
        if (v.isIntegralNumber() && v.canConvertToLong()) return v.asLong();
        if (v.isNumber() && v.asDouble() == Math.rint(v.asDouble()) && Math.abs(v.asDouble()) < 0x1p62) {
            return (long) v.asDouble();
        }
        throw new CaskException.InvalidInput(c + ": \"" + field + "\" is not a whole number: " + v);
    }

    private static Double optDouble(JsonNode o, String field, String c) {
        JsonNode v = o.get(field);
        if (v == null || v.isNull()) return null;
        if (!v.isNumber()) throw new CaskException.InvalidInput(c + ": \"" + field + "\" is not a number: " + v);
        return v.asDouble();
    }

    // ---- markup ------------------------------------------------------------------------------

    /**
     * Escapes text for use in XML/HTML text and double- or single-quoted attributes; characters
     * XML 1.0 forbids (controls, unpaired surrogates, U+FFFE/U+FFFF) become U+FFFD.
     */
    static String escape(String s) {
        if (s == null) return "";
        StringBuilder sb = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '&' -> sb.append("&amp;");
                case '<' -> sb.append("&lt;");
                case '>' -> sb.append("&gt;");
                case '"' -> sb.append("&quot;");
                case '\'' -> sb.append("&#39;");
                default -> {
                    if (Character.isHighSurrogate(ch) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                        sb.append(ch).append(s.charAt(++i));
                    } else if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || Character.isSurrogate(ch)
                            || ch == 0xfffe || ch == 0xffff) {
                        sb.append('\ufffd');
                    } else {
                        sb.append(ch);
                    }
                }
            }
        }
        return sb.toString();
    }

    private static final String CSS = """
            body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0 auto;\
            max-width:1180px;padding:1em 1.5em 3em}
            h1{font-size:1.6em;margin:.4em 0}h2{font-size:1.25em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
            nav a{margin-right:1em}
            table{border-collapse:collapse;margin:.6em 0 1.2em}
            caption{text-align:left;font-weight:600;padding:.2em 0}
            th,td{border:1px solid #d8d8d8;padding:3px 8px;vertical-align:top}
            th{background:#f2f4f7;text-align:left}
            td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
            td.na{color:#999}
            tfoot td,tfoot th{font-weight:600;background:#fafafa}
            td.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;word-break:break-all}
            details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
            svg{display:block;max-width:100%;height:auto;margin:.4em 0}
            .note{color:#555}
            footer{margin-top:3em;color:#777;font-size:.9em}
            """;

    private static final Map<String, Integer> KIND_HUES = Map.of("fixed", 207, "aligned", 28, "cdc", 120);
    private static final String[] KIND_COLORS = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    private static final int[] OTHER_HUES = {0, 275, 330, 50, 185, 95};

    /** One page being written: the output and the ids used so far. Not thread-safe; one per call. */
    private static final class Page {
        private final StringBuilder out = new StringBuilder(1 << 16);
        private final Set<String> ids = new HashSet<>();

        /** A unique id {@code prefix + name}, with characters outside {@code A-Za-z0-9._-} replaced by {@code _}. */
        String id(String prefix, String name) {
            StringBuilder sb = new StringBuilder(prefix);
            name.codePoints().forEach(cp -> sb.append(
                    (cp < 128 && (Character.isLetterOrDigit(cp) || cp == '.' || cp == '_' || cp == '-')) ? (char) cp : '_'));
            String base = sb.toString();
            String id = base;
            for (int n = 2; !ids.add(id); n++) id = base + "-" + n;
            return id;
        }

        String fixedId(String id) {
            if (!ids.add(id)) throw new AssertionError("duplicate id " + id);
            return id;
        }

        private void head(String title, String heading) {
            out.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n")
                    .append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n")
                    .append("<title>").append(escape(title)).append("</title>\n<style>\n").append(CSS)
                    .append("</style>\n</head>\n<body>\n<h1>").append(escape(heading)).append("</h1>\n");
        }

        private void nav(String... sectionsAndTitles) {
            out.append("<nav>");
            for (int i = 0; i < sectionsAndTitles.length; i += 2) {
                out.append("<a href=\"#").append(sectionsAndTitles[i]).append("\">")
                        .append(escape(sectionsAndTitles[i + 1])).append("</a>");
            }
            out.append("</nav>\n");
        }

        private void section(String id, String title) {
            out.append("<section id=\"").append(fixedId(id)).append("\">\n<h2>").append(escape(title)).append("</h2>\n");
        }

        private String end() {
            out.append("<footer>Written by cask analyze. Sizes are binary (1 KiB = 1024 bytes); hover over a size ")
                    .append("for its exact byte count, over a chart point or a heat map cell for its value.</footer>\n")
                    .append("</body>\n</html>\n");
            return out.toString();
        }

        // ---- blocks ----

        String blocks(BlocksDocument doc) {
            List<Image> images = doc.images();
            List<Strategy> strategies = doc.strategies();
            head("cask analysis: " + images.size() + " images, blocks",
                    "Block-level duplication: " + count(images.size(), "image") + ", "
                            + count(strategies.size(), "strategy", "strategies"));

            StringBuilder summary = new StringBuilder();
            summary.append(count(images.size(), "image"));
            Long logical = sumOrNull(images.stream().map(Image::logicalBytes).toList());
            if (logical != null) summary.append(", ").append(Sizes.human(logical)).append(" logical");
            summary.append("; ").append(count(strategies.size(), "strategy", "strategies")).append('.');
            Strategy best = null;
            for (Strategy s : strategies) {
                Long u = s.collection().unique();
                if (u != null && (best == null || u < best.collection().unique())) best = s;
            }
            if (best != null) {
                summary.append(" Fewest unique bytes: ").append(best.name()).append(", ")
                        .append(Sizes.human(best.collection().unique()));
                if (best.collection().dedupRatio() != null) {
                    summary.append(" (dedup ratio ").append(ratio(best.collection().dedupRatio())).append(')');
                }
                summary.append('.');
            }
            out.append("<p id=\"").append(fixedId("summary")).append("\">").append(escape(summary.toString()))
                    .append("</p>\n");
            nav("section-images", "Images", "section-block-size", "Block size", "section-overlap", "Overlap",
                    "section-growth", "Growth", "section-strategies", "Per image");

            section("section-images", "Images");
            out.append("<table id=\"").append(fixedId("table-images")).append("\">\n<thead><tr><th>#</th><th>image</th>")
                    .append("<th>format</th><th>logical size</th><th>partitions</th><th>source</th></tr></thead>\n<tbody>\n");
            for (int i = 0; i < images.size(); i++) {
                Image im = images.get(i);
                out.append("<tr><td class=\"num\">").append(i + 1).append("</td>").append(textCell(im.name()))
                        .append(textCell(im.format())).append(bytesCell(im.logicalBytes()))
                        .append(countCell(im.partitions() == null ? null : (long) im.partitions()))
                        .append("<td class=\"path\">").append(escape(im.source())).append("</td></tr>\n");
            }
            out.append("</tbody>\n</table>\n</section>\n");

            section("section-block-size", "Unique bytes against block size");
            out.append("<p class=\"note\">Collection unique bytes (what a store would keep, before compression) for "
                    + "each strategy kind and block size; dashed: the same after compression.</p>\n");
            blockSizeChart(strategies);
            strategiesTable(strategies);
            out.append("</section>\n");

            section("section-overlap", "Overlap between images");
            out.append("<p class=\"note\">For each pair of images: unique bytes present in both over unique bytes "
                    + "present in either (1 = same content, 0 = nothing shared).</p>\n");
            Strategy primary = primary(strategies);
            for (Strategy s : strategies) {
                if (s.overlap() == null) {
                    out.append("<p class=\"note\">").append(escape(s.name())).append(": no overlap matrix in the report.</p>\n");
                    continue;
                }
                out.append(s == primary ? "<details open=\"open\">" : "<details>").append("<summary>")
                        .append(escape(s.name())).append("</summary>\n");
                out.append(SvgCharts.heatMap(id("heatmap-", s.name()), "Overlap between images, " + s.name(),
                        images.stream().map(Image::name).toList(), s.overlap()));
                out.append("</details>\n");
            }
            out.append("</section>\n");

            section("section-growth", "Growth");
            out.append("<p class=\"note\">Collection unique bytes as images are added in order.</p>\n");
            blocksGrowth(images, strategies);
            out.append("</section>\n");

            section("section-strategies", "Per image, per strategy");
            for (Strategy s : strategies) {
                out.append(s == primary ? "<details open=\"open\">" : "<details>").append("<summary>")
                        .append(escape(s.name() + " (" + s.kind() + ", " + blockSize(s.blockSize()) + " blocks)"))
                        .append("</summary>\n");
                strategyTable(s);
                out.append("</details>\n");
            }
            out.append("</section>\n");
            return end();
        }

        private Strategy primary(List<Strategy> strategies) {
            for (Strategy s : strategies) if (s.name().equals("fixed-4096") && s.overlap() != null) return s;
            for (Strategy s : strategies) if (s.blockSize() == 4096 && s.overlap() != null) return s;
            for (Strategy s : strategies) if (s.overlap() != null) return s;
            return strategies.isEmpty() ? null : strategies.getFirst();
        }

        private void blockSizeChart(List<Strategy> strategies) {
            Map<String, List<Strategy>> byKind = byKind(strategies);
            List<SvgCharts.Series> series = new ArrayList<>();
            java.util.TreeSet<Long> sizes = new java.util.TreeSet<>();
            int k = 0;
            for (Map.Entry<String, List<Strategy>> e : byKind.entrySet()) {
                String color = kindColor(e.getKey(), k++);
                List<Strategy> list = new ArrayList<>(e.getValue());
                list.sort(java.util.Comparator.comparingLong(Strategy::blockSize));
                List<SvgCharts.Point> unique = new ArrayList<>(), compressed = new ArrayList<>();
                for (Strategy s : list) {
                    sizes.add(s.blockSize());
                    double x = log2(s.blockSize());
                    Long u = s.collection().unique(), c = s.collection().compressed();
                    if (u != null) unique.add(new SvgCharts.Point(x, u, s.name() + ": unique " + withBytes(u)));
                    if (c != null) compressed.add(new SvgCharts.Point(x, c, s.name() + ": compressed " + withBytes(c)));
                }
                series.add(new SvgCharts.Series(e.getKey() + " unique", color, false, unique));
                if (!compressed.isEmpty()) {
                    series.add(new SvgCharts.Series(e.getKey() + " compressed", color, true, compressed));
                }
            }
            List<SvgCharts.Tick> ticks = new ArrayList<>();
            for (long s : sizes) ticks.add(new SvgCharts.Tick(log2(s), blockSize(s)));
            double min = sizes.isEmpty() ? 0 : log2(sizes.first());
            double max = sizes.isEmpty() ? 0 : log2(sizes.last());
            out.append(SvgCharts.lineChart(fixedId("chart-unique-vs-block-size"),
                    "Collection unique bytes against block size, per strategy kind",
                    new SvgCharts.XAxis(min, max, ticks, false, "block size (log2 scale)"), "bytes", series));
        }

        private void strategiesTable(List<Strategy> strategies) {
            out.append("<table id=\"").append(fixedId("table-strategies")).append("\">\n<caption>Collection, per strategy")
                    .append("</caption>\n<thead><tr><th>strategy</th><th>kind</th><th>block size</th><th>logical</th>")
                    .append("<th>zero</th><th>non-zero</th><th>unique</th><th>compressed</th><th>chunks</th>")
                    .append("<th>unique chunks</th><th>dedup ratio</th></tr></thead>\n<tbody>\n");
            for (Strategy s : strategies) {
                BlockNumbers c = s.collection();
                out.append("<tr>").append(textCell(s.name())).append(textCell(s.kind()))
                        .append("<td class=\"num\" title=\"").append(s.blockSize()).append(" bytes\">")
                        .append(escape(blockSize(s.blockSize()))).append("</td>")
                        .append(bytesCell(c.logical())).append(bytesCell(c.zero())).append(bytesCell(c.nonzero()))
                        .append(bytesCell(c.unique())).append(bytesCell(c.compressed())).append(countCell(c.chunks()))
                        .append(countCell(c.uniqueChunks())).append(ratioCell(c.dedupRatio())).append("</tr>\n");
            }
            out.append("</tbody>\n</table>\n");
        }

        private void blocksGrowth(List<Image> images, List<Strategy> strategies) {
            List<String> names = new ArrayList<>(images.stream().map(Image::name).toList());
            int steps = names.size();
            for (Strategy s : strategies) steps = Math.max(steps, s.growth().size());
            for (int i = names.size(); i < steps; i++) {
                String n = null;
                for (Strategy s : strategies) if (i < s.growth().size()) { n = s.growth().get(i).name(); break; }
                names.add(n);
            }
            List<SvgCharts.Series> series = new ArrayList<>();
            Map<String, List<Strategy>> byKind = byKind(strategies);
            int k = 0;
            for (Map.Entry<String, List<Strategy>> e : byKind.entrySet()) {
                List<Strategy> list = new ArrayList<>(e.getValue());
                list.sort(java.util.Comparator.comparingLong(Strategy::blockSize));
                int hue = KIND_HUES.getOrDefault(e.getKey(), OTHER_HUES[k % OTHER_HUES.length]);
                k += KIND_HUES.containsKey(e.getKey()) ? 0 : 1;
                for (int i = 0; i < list.size(); i++) {
                    Strategy s = list.get(i);
                    double light = list.size() == 1 ? 42 : 28 + 40.0 * i / (list.size() - 1);
                    List<SvgCharts.Point> points = new ArrayList<>();
                    for (int j = 0; j < s.growth().size(); j++) {
                        Step st = s.growth().get(j);
                        points.add(new SvgCharts.Point(j, st.uniqueBytes(),
                                s.name() + " after " + st.name() + ": " + withBytes(st.uniqueBytes())));
                    }
                    series.add(new SvgCharts.Series(s.name(), hsl(hue, 70, light), false, points));
                }
            }
            out.append(SvgCharts.lineChart(fixedId("chart-growth"), "Collection unique bytes as images are added",
                    categorical(names, "images, in order"), "unique bytes", series));

            out.append("<table id=\"").append(fixedId("table-growth")).append("\">\n<caption>Unique bytes after each image")
                    .append("</caption>\n<thead><tr><th>#</th><th>image</th>");
            for (Strategy s : strategies) out.append("<th>").append(escape(s.name())).append("</th>");
            out.append("</tr></thead>\n<tbody>\n");
            for (int i = 0; i < steps; i++) {
                out.append("<tr><td class=\"num\">").append(i + 1).append("</td>").append(textCell(names.get(i)));
                for (Strategy s : strategies) {
                    out.append(bytesCell(i < s.growth().size() ? s.growth().get(i).uniqueBytes() : null));
                }
                out.append("</tr>\n");
            }
            out.append("</tbody>\n</table>\n");
        }

        private void strategyTable(Strategy s) {
            BlockNumbers c = s.collection();
            if (c.compressed() != null || c.dedupRatio() != null) {
                out.append("<p class=\"note\">Collection: ");
                if (c.compressed() != null) {
                    out.append("compressed <span title=\"").append(c.compressed()).append(" bytes\">")
                            .append(escape(Sizes.human(c.compressed()))).append("</span>");
                }
                if (c.dedupRatio() != null) {
                    out.append(c.compressed() != null ? ", " : "").append("dedup ratio ").append(escape(ratio(c.dedupRatio())));
                }
                out.append(".</p>\n");
            }
            out.append("<table id=\"").append(id("table-strategy-", s.name())).append("\">\n<caption>")
                    .append(escape(s.name())).append("</caption>\n<thead><tr><th>image</th><th>logical</th><th>zero</th>")
                    .append("<th>non-zero</th><th>unique</th><th>internal duplicate</th><th>chunks</th>")
                    .append("<th>unique chunks</th></tr></thead>\n<tbody>\n");
            for (BlockNumbers p : s.perImage()) row(p, p.name());
            out.append("</tbody>\n<tfoot>\n");
            row(c, "collection");
            out.append("</tfoot>\n</table>\n");
        }

        private void row(BlockNumbers n, String name) {
            out.append("<tr>").append(textCell(name)).append(bytesCell(n.logical())).append(bytesCell(n.zero()))
                    .append(bytesCell(n.nonzero())).append(bytesCell(n.unique())).append(bytesCell(n.internalDuplicate()))
                    .append(countCell(n.chunks())).append(countCell(n.uniqueChunks())).append("</tr>\n");
        }

        // ---- files ----

        String files(FilesDocument doc) {
            List<TreeRow> trees = doc.trees();
            TreeRow c = doc.collection();
            head("cask analysis: " + trees.size() + " trees, files", "File-level duplication: " + count(trees.size(), "tree"));
            StringBuilder summary = new StringBuilder(count(trees.size(), "tree"));
            if (c.files() != null) summary.append(", ").append(count(c.files(), "file"));
            if (c.bytes() != null) summary.append(", ").append(Sizes.human(c.bytes()));
            if (c.unique() != null) summary.append("; ").append(Sizes.human(c.unique())).append(" unique");
            if (c.share() != null) summary.append("; ").append(percent(c.share())).append(" of the bytes are duplicates");
            summary.append('.');
            out.append("<p id=\"").append(fixedId("summary")).append("\">").append(escape(summary.toString()))
                    .append("</p>\n");
            nav("section-trees", "Trees", "section-overlap", "Overlap", "section-growth", "Growth");

            section("section-trees", "Trees");
            out.append("<p class=\"note\">Regular files of non-zero length, each file once (hard links are not "
                    + "duplicates). Duplicate: bytes of files whose content already appeared in the same tree.</p>\n");
            String header = "<th>files</th><th>bytes</th><th>unique</th><th>duplicate</th><th>duplicate share</th>"
                    + "<th>hard links</th>";
            out.append("<table id=\"").append(fixedId("table-trees")).append("\">\n<thead><tr><th>tree</th>")
                    .append(header).append("<th>empty files</th><th>skipped</th>")
                    .append(doc.hasUnreadable() ? "<th>unreadable</th>" : "").append("<th>source</th></tr></thead>\n<tbody>\n");
            for (TreeRow t : trees) {
                out.append("<tr>").append(textCell(t.name()));
                treeNumbers(t);
                out.append(countCell(t.empty())).append(countCell(t.skipped()));
                if (doc.hasUnreadable()) out.append(countCell(t.unreadable()));
                out.append("<td class=\"path\">").append(escape(t.source())).append("</td></tr>\n");
            }
            out.append("</tbody>\n</table>\n");
            out.append("<table id=\"").append(fixedId("table-collection")).append("\">\n<caption>All trees together")
                    .append("</caption>\n<thead><tr>").append(header).append("</tr></thead>\n<tbody>\n<tr>");
            treeNumbers(c);
            out.append("</tr>\n</tbody>\n</table>\n</section>\n");

            section("section-overlap", "Overlap between trees");
            out.append("<p class=\"note\">For each pair of trees: bytes of the distinct contents present in both over "
                    + "bytes of the distinct contents present in either.</p>\n");
            if (doc.overlap() != null) {
                out.append(SvgCharts.heatMap(fixedId("heatmap-files"), "Overlap between trees",
                        trees.stream().map(TreeRow::name).toList(), doc.overlap()));
            } else {
                out.append("<p class=\"note\">No overlap matrix in the report.</p>\n");
            }
            out.append("</section>\n");

            section("section-growth", "Growth");
            List<Step> growth = doc.growth();
            List<String> names = growth.stream().map(Step::name).toList();
            List<SvgCharts.Point> unique = new ArrayList<>(), all = new ArrayList<>();
            long[] sofar = new long[growth.size()];
            boolean allKnown = true;
            long running = 0;
            for (int i = 0; i < growth.size(); i++) {
                Step st = growth.get(i);
                unique.add(new SvgCharts.Point(i, st.uniqueBytes(), "unique after " + st.name() + ": "
                        + withBytes(st.uniqueBytes())));
                Long b = i < trees.size() ? trees.get(i).bytes() : null;
                if (b == null) allKnown = false;
                else running += b;
                sofar[i] = running;
                if (allKnown) {
                    all.add(new SvgCharts.Point(i, running, "bytes after " + st.name() + ": " + withBytes(running)));
                }
            }
            List<SvgCharts.Series> series = new ArrayList<>();
            series.add(new SvgCharts.Series("unique bytes", KIND_COLORS[0], false, unique));
            if (!all.isEmpty()) series.add(new SvgCharts.Series("bytes, no deduplication", "#888888", true, all));
            out.append(SvgCharts.lineChart(fixedId("chart-growth"), "Unique bytes as trees are added",
                    categorical(names, "trees, in order"), "bytes", series));
            out.append("<table id=\"").append(fixedId("table-growth")).append("\">\n<thead><tr><th>#</th><th>tree</th>")
                    .append("<th>unique so far</th><th>added by this tree</th><th>bytes so far</th></tr></thead>\n<tbody>\n");
            for (int i = 0; i < growth.size(); i++) {
                long u = growth.get(i).uniqueBytes(), prev = i == 0 ? 0 : growth.get(i - 1).uniqueBytes();
                out.append("<tr><td class=\"num\">").append(i + 1).append("</td>").append(textCell(growth.get(i).name()))
                        .append(bytesCell(u)).append(bytesCell(u - prev))
                        .append(bytesCell(i < all.size() ? sofar[i] : null)).append("</tr>\n");
            }
            out.append("</tbody>\n</table>\n</section>\n");
            return end();
        }

        private void treeNumbers(TreeRow t) {
            out.append(countCell(t.files())).append(bytesCell(t.bytes())).append(bytesCell(t.unique()))
                    .append(bytesCell(t.duplicate())).append(shareCell(t.share())).append(countCell(t.hardLinks()));
        }
    }

    // ---- helpers -----------------------------------------------------------------------------

    private static Map<String, List<Strategy>> byKind(List<Strategy> strategies) {
        Map<String, List<Strategy>> byKind = new LinkedHashMap<>();
        for (String k : List.of("fixed", "aligned", "cdc")) {
            for (Strategy s : strategies) if (s.kind().equals(k)) byKind.computeIfAbsent(k, x -> new ArrayList<>()).add(s);
        }
        for (Strategy s : strategies) {
            if (!KIND_HUES.containsKey(s.kind())) byKind.computeIfAbsent(s.kind(), x -> new ArrayList<>()).add(s);
        }
        return byKind;
    }

    private static String kindColor(String kind, int index) {
        return switch (kind) {
            case "fixed" -> KIND_COLORS[0];
            case "aligned" -> KIND_COLORS[1];
            case "cdc" -> KIND_COLORS[2];
            default -> KIND_COLORS[3 + index % (KIND_COLORS.length - 3)];
        };
    }

    private static SvgCharts.XAxis categorical(List<String> names, String title) {
        List<SvgCharts.Tick> ticks = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) ticks.add(new SvgCharts.Tick(i, names.get(i) == null ? "" : names.get(i)));
        return new SvgCharts.XAxis(0, Math.max(0, names.size() - 1), ticks, true, title);
    }

    static String hsl(double h, double s, double l) {
        s /= 100;
        l /= 100;
        double c = (1 - Math.abs(2 * l - 1)) * s, hp = h / 60, x = c * (1 - Math.abs(hp % 2 - 1)), m = l - c / 2;
        double[] rgb = hp < 1 ? new double[] {c, x, 0} : hp < 2 ? new double[] {x, c, 0} : hp < 3 ? new double[] {0, c, x}
                : hp < 4 ? new double[] {0, x, c} : hp < 5 ? new double[] {x, 0, c} : new double[] {c, 0, x};
        return String.format(Locale.ROOT, "#%02x%02x%02x", Math.round((rgb[0] + m) * 255), Math.round((rgb[1] + m) * 255),
                Math.round((rgb[2] + m) * 255));
    }

    private static double log2(long v) {
        return Math.log(v) / Math.log(2);
    }

    /** A block size the way people say it: {@code 512 B}, {@code 4 KiB}, {@code 1 MiB}. */
    static String blockSize(long b) {
        if (b >= 1 << 20 && b % (1 << 20) == 0) return (b >> 20) + " MiB";
        if (b >= 1024 && b % 1024 == 0) return (b >> 10) + " KiB";
        return b + " B";
    }

    private static Long sumOrNull(List<Long> values) {
        long sum = 0;
        for (Long v : values) {
            if (v == null) return null;
            sum += v;
        }
        return values.isEmpty() ? null : sum;
    }

    private static String withBytes(long v) {
        return Sizes.human(v) + " (" + v + " bytes)";
    }

    private static String count(long n, String one) {
        return count(n, one, one + "s");
    }

    private static String count(long n, String one, String many) {
        return String.format(Locale.ROOT, "%,d", n) + " " + (n == 1 ? one : many);
    }

    static String percent(double share) {
        return String.format(Locale.ROOT, "%.1f %%", 100 * share);
    }

    static String ratio(double r) {
        return String.format(Locale.ROOT, "%.2f\u00d7", r);
    }

    private static final String NA = "<td class=\"num na\">\u2013</td>";

    static String bytesCell(Long v) {
        if (v == null) return NA;
        return "<td class=\"num\" title=\"" + v + " bytes\">" + escape(Sizes.human(v)) + "</td>";
    }

    static String countCell(Long v) {
        return v == null ? NA : "<td class=\"num\">" + String.format(Locale.ROOT, "%,d", v) + "</td>";
    }

    private static String shareCell(Double v) {
        return v == null ? NA : "<td class=\"num\" title=\"" + v + "\">" + escape(percent(v)) + "</td>";
    }

    private static String ratioCell(Double v) {
        return v == null ? NA : "<td class=\"num\" title=\"" + v + "\">" + escape(ratio(v)) + "</td>";
    }

    private static String textCell(String s) {
        return s == null ? "<td class=\"na\">\u2013</td>" : "<td>" + escape(s) + "</td>";
    }
}
