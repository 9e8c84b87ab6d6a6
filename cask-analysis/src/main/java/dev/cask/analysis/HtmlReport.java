package dev.cask.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import dev.cask.common.CaskException;

import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.Locale;
import java.util.Objects;

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
 *   <tr><td>{@code recommendation}</td><td>paragraph: the layout {@code cask import} can make that stores the
 *       fewest bytes ({@link ImportRecommendation}), or why there is none</td></tr>
 *   <tr><td>{@code recommendation-command}</td><td>the {@code cask import} command line with its exact flags
 *       (absent when no strategy analysed is one import can make)</td></tr>
 *   <tr><td>{@code table-import-options}</td><td>every layout import can make that was analysed, fewest bytes
 *       first: strategy, flags, bytes stored, more than the first, unique chunks</td></tr>
 *   <tr><td>{@code recommendation-not-importable}</td><td>information only: what the best cdc and the best
 *       small-block strategy (which import cannot make) would store</td></tr>
 *   <tr><td>{@code table-images}</td><td>one row per image: name, format, logical size, partitions, source</td></tr>
 *   <tr><td>{@code chart-unique-vs-block-size}</td><td>SVG line chart: collection unique bytes against block
 *       size (log2 axis), one solid series per strategy kind (fixed, aligned, cdc, then any other),
 *       and a dashed series of compressed bytes per kind where the report has them</td></tr>
 *   <tr><td>{@code table-strategies}</td><td>one row per strategy: its collection numbers (logical, zero,
 *       non-zero, unique, compressed bytes, chunks, unique chunks, dedup ratio)</td></tr>
 *   <tr><td>{@code heatmap-NAME}</td><td>SVG heat map of the strategy's overlap matrix, image names on both
 *       axes, the value in each cell ({@code images}&sup2; {@code <rect class="cell">}); one per strategy that
 *       has a matrix, the 4 KiB fixed one (else the first) shown open, the others folded</td></tr>
 *   <tr><td>{@code chart-growth}</td><td>SVG line chart: cumulative unique bytes as images are added, at
 *       4 KiB blocks (else the smallest block size), one series per strategy kind</td></tr>
 *   <tr><td>{@code chart-growth-N}</td><td>the same at each other block size N (bytes), folded</td></tr>
 *   <tr><td>{@code table-growth-KIND}</td><td>the same numbers for one strategy kind: one row per image, one
 *       column per block size (past 8 block sizes, the rest in {@code table-growth-KIND-2})</td></tr>
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
 * Both kinds end with {@code footer}: the cask version ({@code cask-version}, as {@code cask --version}
 * prints it) and when the page was written ({@code written-at}, a {@code <time>} in ISO 8601 with
 * the offset of the writer's zone, e.g. {@code 2025-12-02T07:48:27+01:00}); see {@link Provenance}.
 * Sections are {@code section-*} and change freely; ids inside the SVGs other than the charts'
 * own are internal.
 *
 * <h2>Invariants</h2>
 * Every {@code <table>} sits in a {@code <div class="table-wrap">} that scrolls sideways instead of
 * widening the page, and no table gets a column per image or per strategy: at most 11 columns
 * whatever the report (a page 1280 px wide, or A4 when printed, holds them).
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
     * Who wrote the page and when, for its footer: {@code caskVersion} as {@code cask --version}
     * prints it ({@code cask 1.2.0}), {@code written} in the writer's time zone.
     */
    public record Provenance(String caskVersion, ZonedDateTime written) {
        public Provenance {
            Objects.requireNonNull(caskVersion, "caskVersion");
            Objects.requireNonNull(written, "written");
        }

        /** {@code written} in ISO 8601 with its offset, to the second: {@code 2025-12-02T07:48:27+01:00}. */
        public String writtenIso() {
            return written.truncatedTo(ChronoUnit.SECONDS).format(DateTimeFormatter.ISO_OFFSET_DATE_TIME);
        }
    }

    /** The page for {@code report}, written now by a cask of unknown version; see {@link #render(JsonNode, Provenance)}. */
    public static String render(JsonNode report) {
        return render(report, new Provenance("cask (version unknown)", ZonedDateTime.now()));
    }

    /**
     * The HTML page for {@code report}; its footer names {@code by}.
     *
     * @throws CaskException.InvalidInput the document is not an object, has no or an unknown
     *     {@code kind}, or misses or mistypes a required field
     */
    public static String render(JsonNode report, Provenance by) {
        Objects.requireNonNull(by, "by");
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
            case "blocks" -> new BlocksPage(by).blocks(ReportDocument.parseBlocks(report));
            case "files" -> new FilesPage(by).files(ReportDocument.parseFiles(report));
            default -> throw new CaskException.InvalidInput("report: unknown kind \"" + k
                    + "\"; expected \"blocks\" or \"files\"");
        };
    }

    /** Escapes text for XML/HTML; see {@link HtmlPage#escape}. */
    static String escape(String s) {
        return HtmlPage.escape(s);
    }
}
