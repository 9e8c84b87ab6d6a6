package dev.cask.analysis;

import dev.cask.analysis.ReportDocument.StrategyEntry;
import dev.cask.common.Sizes;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * One HTML page being written, and the layout every report shares: the head with its inline
 * CSS, the navigation, sections, the footer, and the cells that show a size, a count, a share or
 * a ratio. {@link BlocksPage} and {@link FilesPage} add their sections.
 *
 * <p>Not thread-safe; one instance per page. The static helpers are pure.
 */
abstract class HtmlPage {
    /** The strategy kinds analyze knows, in the order the report shows them; others follow. */
    static final List<String> KINDS = List.of("fixed", "aligned", "cdc");
    static final String[] KIND_COLORS = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

    final StringBuilder out = new StringBuilder(1 << 16);
    private final Set<String> ids = new HashSet<>();
    private final HtmlReport.Provenance by;

    HtmlPage(HtmlReport.Provenance by) {
        this.by = by;
    }

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

    void head(String title, String heading) {
        out.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n")
                .append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n")
                .append("<title>").append(escape(title)).append("</title>\n<style>\n").append(CSS)
                .append("</style>\n</head>\n<body>\n<h1>").append(escape(heading)).append("</h1>\n");
    }

    void nav(String... sectionsAndTitles) {
        out.append("<nav>");
        for (int i = 0; i < sectionsAndTitles.length; i += 2) {
            out.append("<a href=\"#").append(sectionsAndTitles[i]).append("\">")
                    .append(escape(sectionsAndTitles[i + 1])).append("</a>");
        }
        out.append("</nav>\n");
    }

    void section(String id, String title) {
        out.append("<section id=\"").append(fixedId(id)).append("\">\n<h2>").append(escape(title)).append("</h2>\n");
    }

    String end() {
        String when = by.writtenIso();
        out.append("<footer id=\"").append(fixedId("footer")).append("\">Written by <span id=\"")
                .append(fixedId("cask-version")).append("\">").append(escape(by.caskVersion()))
                .append("</span> (cask analyze) on <time id=\"").append(fixedId("written-at")).append("\" datetime=\"")
                .append(escape(when)).append("\">").append(escape(when)).append("</time>. ")
                .append("Sizes are binary (1 KiB = 1024 bytes); hover over a size ")
                .append("for its exact byte count, over a chart point or a heat map cell for its value.</footer>\n")
                .append("</body>\n</html>\n");
        return out.toString();
    }

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

    static final String CSS = """
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
            .table-wrap{max-width:100%;overflow-x:auto}
            .table-wrap>table{margin-top:0}
            code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
            pre.command{background:#f4f6f8;border:1px solid #dde;padding:.5em .8em;white-space:pre-wrap;word-break:break-all}
            .recommended{font-size:1.05em}
            @page{size:A4;margin:12mm}
            @media print{body{font-size:10px;max-width:none;padding:0}.table-wrap{overflow:visible}\
            th,td{padding:1px 4px}svg{page-break-inside:avoid}nav{display:none}}
            """;

    static Map<String, List<StrategyEntry>> byKind(List<StrategyEntry> strategies) {
        Map<String, List<StrategyEntry>> byKind = new LinkedHashMap<>();
        for (String k : KINDS) {
            for (StrategyEntry s : strategies) if (s.kind().equals(k)) byKind.computeIfAbsent(k, x -> new ArrayList<>()).add(s);
        }
        for (StrategyEntry s : strategies) {
            if (!KINDS.contains(s.kind())) byKind.computeIfAbsent(s.kind(), x -> new ArrayList<>()).add(s);
        }
        return byKind;
    }

    static String kindColor(String kind, int index) {
        return switch (kind) {
            case "fixed" -> KIND_COLORS[0];
            case "aligned" -> KIND_COLORS[1];
            case "cdc" -> KIND_COLORS[2];
            default -> KIND_COLORS[3 + index % (KIND_COLORS.length - 3)];
        };
    }

    static SvgCharts.XAxis categorical(List<String> names, String title) {
        List<SvgCharts.Tick> ticks = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) ticks.add(new SvgCharts.Tick(i, names.get(i) == null ? "" : names.get(i)));
        return new SvgCharts.XAxis(0, Math.max(0, names.size() - 1), ticks, true, title);
    }

    static double log2(long v) {
        return Math.log(v) / Math.log(2);
    }

    /** A strategy as the legend says it: {@code aligned-4K} for {@code aligned-4096}, else its name. */
    static String shortName(StrategyEntry s) {
        return s.name().equals(s.kind() + "-" + s.blockSize())
                ? s.kind() + "-" + shortSize(s.blockSize()) : s.name();
    }

    /** A block size as the CLI takes it: {@code 512}, {@code 4K}, {@code 1M}. */
    static String shortSize(long n) {
        if (n >= 1 << 20 && n % (1 << 20) == 0) return (n >> 20) + "M";
        if (n >= 1024 && n % 1024 == 0) return (n >> 10) + "K";
        return Long.toString(n);
    }

    /** A block size the way people say it: {@code 512 B}, {@code 4 KiB}, {@code 1 MiB}. */
    static String blockSize(long b) {
        if (b >= 1 << 20 && b % (1 << 20) == 0) return (b >> 20) + " MiB";
        if (b >= 1024 && b % 1024 == 0) return (b >> 10) + " KiB";
        return b + " B";
    }

    static Long sumOrNull(List<Long> values) {
        long sum = 0;
        for (Long v : values) {
            if (v == null) return null;
            sum += v;
        }
        return values.isEmpty() ? null : sum;
    }

    static String withBytes(long v) {
        return Sizes.human(v) + " (" + v + " bytes)";
    }

    static String count(long n, String one) {
        return count(n, one, one + "s");
    }

    static String count(long n, String one, String many) {
        return String.format(Locale.ROOT, "%,d", n) + " " + (n == 1 ? one : many);
    }

    static String percent(double share) {
        return String.format(Locale.ROOT, "%.1f %%", 100 * share);
    }

    static String ratio(double r) {
        return String.format(Locale.ROOT, "%.2f\u00d7", r);
    }

    static final String NA = "<td class=\"num na\">\u2013</td>";

    static String bytesCell(Long v) {
        if (v == null) return NA;
        return "<td class=\"num\" title=\"" + v + " bytes\">" + escape(Sizes.human(v)) + "</td>";
    }

    static String countCell(Long v) {
        return v == null ? NA : "<td class=\"num\">" + String.format(Locale.ROOT, "%,d", v) + "</td>";
    }

    static String shareCell(Double v) {
        return v == null ? NA : "<td class=\"num\" title=\"" + v + "\">" + escape(percent(v)) + "</td>";
    }

    static String ratioCell(Double v) {
        return v == null ? NA : "<td class=\"num\" title=\"" + v + "\">" + escape(ratio(v)) + "</td>";
    }

    static String textCell(String s) {
        return s == null ? "<td class=\"na\">\u2013</td>" : "<td>" + escape(s) + "</td>";
    }

}
