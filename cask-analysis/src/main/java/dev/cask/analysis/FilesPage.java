package dev.cask.analysis;

import dev.cask.analysis.ReportDocument.FilesDocument;
import dev.cask.analysis.ReportDocument.Step;
import dev.cask.analysis.ReportDocument.TreeRow;
import dev.cask.common.Sizes;

import java.util.ArrayList;
import java.util.List;

/** The page of a file-level report ({@code "kind":"files"}); see {@link HtmlReport} for its ids. One per page. */
final class FilesPage extends HtmlPage {
    FilesPage(HtmlReport.Provenance by) {
        super(by);
    }

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
        out.append("<div class=\"table-wrap\">\n<table id=\"").append(fixedId("table-trees")).append("\">\n<thead><tr><th>tree</th>")
                .append(header).append("<th>empty files</th><th>skipped</th>")
                .append(doc.hasUnreadable() ? "<th>unreadable</th>" : "").append("<th>source</th></tr></thead>\n<tbody>\n");
        for (TreeRow t : trees) {
            out.append("<tr>").append(textCell(t.name()));
            treeNumbers(t);
            out.append(countCell(t.empty())).append(countCell(t.skipped()));
            if (doc.hasUnreadable()) out.append(countCell(t.unreadable()));
            out.append("<td class=\"path\">").append(escape(t.source())).append("</td></tr>\n");
        }
        out.append("</tbody>\n</table>\n</div>\n");
        out.append("<div class=\"table-wrap\">\n<table id=\"").append(fixedId("table-collection")).append("\">\n<caption>All trees together")
                .append("</caption>\n<thead><tr>").append(header).append("</tr></thead>\n<tbody>\n<tr>");
        treeNumbers(c);
        out.append("</tr>\n</tbody>\n</table>\n</div>\n</section>\n");

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
        out.append("<div class=\"table-wrap\">\n<table id=\"").append(fixedId("table-growth")).append("\">\n<thead><tr><th>#</th><th>tree</th>")
                .append("<th>unique so far</th><th>added by this tree</th><th>bytes so far</th></tr></thead>\n<tbody>\n");
        for (int i = 0; i < growth.size(); i++) {
            long u = growth.get(i).uniqueBytes(), prev = i == 0 ? 0 : growth.get(i - 1).uniqueBytes();
            out.append("<tr><td class=\"num\">").append(i + 1).append("</td>").append(textCell(growth.get(i).name()))
                    .append(bytesCell(u)).append(bytesCell(u - prev))
                    .append(bytesCell(i < all.size() ? sofar[i] : null)).append("</tr>\n");
        }
        out.append("</tbody>\n</table>\n</div>\n</section>\n");
        return end();
    }

    private void treeNumbers(TreeRow t) {
        out.append(countCell(t.files())).append(bytesCell(t.bytes())).append(bytesCell(t.unique()))
                .append(bytesCell(t.duplicate())).append(shareCell(t.share())).append(countCell(t.hardLinks()));
}
}
