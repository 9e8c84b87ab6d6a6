package dev.cask.analysis;

import dev.cask.analysis.ReportDocument.BlockNumbers;
import dev.cask.analysis.ReportDocument.BlocksDocument;
import dev.cask.analysis.ReportDocument.Image;
import dev.cask.analysis.ReportDocument.Step;
import dev.cask.analysis.ReportDocument.StrategyEntry;
import dev.cask.common.Sizes;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The page of a block-level report ({@code "kind":"blocks"}); see {@link HtmlReport} for its ids. One per page. */
final class BlocksPage extends HtmlPage {
    BlocksPage(HtmlReport.Provenance by) {
        super(by);
    }

    String blocks(BlocksDocument doc) {
        List<Image> images = doc.images();
        List<StrategyEntry> strategies = doc.strategies();
        head("cask analysis: " + images.size() + " images, blocks",
                "Block-level duplication: " + count(images.size(), "image") + ", "
                        + count(strategies.size(), "strategy", "strategies"));

        StringBuilder summary = new StringBuilder();
        summary.append(count(images.size(), "image"));
        Long logical = sumOrNull(images.stream().map(Image::logicalBytes).toList());
        if (logical != null) summary.append(", ").append(Sizes.human(logical)).append(" logical");
        summary.append("; ").append(count(strategies.size(), "strategy", "strategies")).append('.');
        StrategyEntry best = null;
        for (StrategyEntry s : strategies) {
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
        nav("section-recommendation", "Import with", "section-images", "Images", "section-block-size", "Block size",
                "section-overlap", "Overlap", "section-growth", "Growth", "section-strategies", "Per image");

        section("section-recommendation", "What to import with");
        recommendation(ImportRecommendation.of(strategies));
        out.append("</section>\n");

        section("section-images", "Images");
        out.append("<div class=\"table-wrap\">\n<table id=\"").append(fixedId("table-images")).append("\">\n<thead><tr><th>#</th><th>image</th>")
                .append("<th>format</th><th>logical size</th><th>partitions</th><th>source</th></tr></thead>\n<tbody>\n");
        for (int i = 0; i < images.size(); i++) {
            Image im = images.get(i);
            out.append("<tr><td class=\"num\">").append(i + 1).append("</td>").append(textCell(im.name()))
                    .append(textCell(im.format())).append(bytesCell(im.logicalBytes()))
                    .append(countCell(im.partitions() == null ? null : (long) im.partitions()))
                    .append("<td class=\"path\">").append(escape(im.source())).append("</td></tr>\n");
        }
        out.append("</tbody>\n</table>\n</div>\n</section>\n");

        section("section-block-size", "Unique bytes against block size");
        out.append("<p class=\"note\">Collection unique bytes (what a store would keep, before compression) for "
                + "each strategy kind and block size; dashed: the same after compression.</p>\n");
        blockSizeChart(strategies);
        strategiesTable(strategies);
        out.append("</section>\n");

        section("section-overlap", "Overlap between images");
        out.append("<p class=\"note\">For each pair of images: unique bytes present in both over unique bytes "
                + "present in either (1 = same content, 0 = nothing shared).</p>\n");
        StrategyEntry primary = primary(strategies);
        for (StrategyEntry s : strategies) {
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
        out.append("<p class=\"note\">Collection unique bytes as images are added in the order given: one chart per "
                + "block size, one line per strategy kind (colour, dash and marker tell them apart).</p>\n");
        blocksGrowth(images, strategies);
        out.append("</section>\n");

        section("section-strategies", "Per image, per strategy");
        for (StrategyEntry s : strategies) {
            out.append(s == primary ? "<details open=\"open\">" : "<details>").append("<summary>")
                    .append(escape(s.name() + " (" + s.kind() + ", " + blockSize(s.blockSize()) + " blocks)"))
                    .append("</summary>\n");
            strategyTable(s);
            out.append("</details>\n");
        }
        out.append("</section>\n");
        return end();
    }

    private StrategyEntry primary(List<StrategyEntry> strategies) {
        for (StrategyEntry s : strategies) if (s.name().equals("fixed-4096") && s.overlap() != null) return s;
        for (StrategyEntry s : strategies) if (s.blockSize() == 4096 && s.overlap() != null) return s;
        for (StrategyEntry s : strategies) if (s.overlap() != null) return s;
        return strategies.isEmpty() ? null : strategies.getFirst();
    }

    private void blockSizeChart(List<StrategyEntry> strategies) {
        Map<String, List<StrategyEntry>> byKind = byKind(strategies);
        List<SvgCharts.Series> series = new ArrayList<>();
        java.util.TreeSet<Long> sizes = new java.util.TreeSet<>();
        int k = 0;
        for (Map.Entry<String, List<StrategyEntry>> e : byKind.entrySet()) {
            String color = kindColor(e.getKey(), k);
            SvgCharts.Marker marker = kindMarker(e.getKey(), k++);
            List<StrategyEntry> list = new ArrayList<>(e.getValue());
            list.sort(java.util.Comparator.comparingLong(StrategyEntry::blockSize));
            List<SvgCharts.Point> unique = new ArrayList<>(), compressed = new ArrayList<>();
            for (StrategyEntry s : list) {
                sizes.add(s.blockSize());
                double x = log2(s.blockSize());
                Long u = s.collection().unique(), c = s.collection().compressed();
                if (u != null) unique.add(new SvgCharts.Point(x, u, s.name() + ": unique " + withBytes(u)));
                if (c != null) compressed.add(new SvgCharts.Point(x, c, s.name() + ": compressed " + withBytes(c)));
            }
            series.add(new SvgCharts.Series(e.getKey() + " unique", color, null, marker, unique));
            if (!compressed.isEmpty()) {
                series.add(new SvgCharts.Series(e.getKey() + " compressed", color, "6 4", marker, compressed));
            }
        }
        List<SvgCharts.Tick> ticks = new ArrayList<>();
        for (long s : sizes) ticks.add(new SvgCharts.Tick(log2(s), blockSize(s)));
        double min = sizes.isEmpty() ? 0 : log2(sizes.first());
        double max = sizes.isEmpty() ? 0 : log2(sizes.last());
        out.append(SvgCharts.lineChart(fixedId("chart-unique-vs-block-size"),
                "Collection unique bytes against block size, per strategy kind",
                new SvgCharts.XAxis(min, max, ticks, false, "block size (log2 scale)"), "collection bytes", series));
    }

    private void strategiesTable(List<StrategyEntry> strategies) {
        out.append("<div class=\"table-wrap\">\n<table id=\"").append(fixedId("table-strategies")).append("\">\n<caption>Collection, per strategy")
                .append("</caption>\n<thead><tr><th>strategy</th><th>kind</th><th>block size</th><th>logical</th>")
                .append("<th>zero</th><th>non-zero</th><th>unique</th><th>compressed</th><th>chunks</th>")
                .append("<th>unique chunks</th><th>dedup ratio</th></tr></thead>\n<tbody>\n");
        for (StrategyEntry s : strategies) {
            BlockNumbers c = s.collection();
            out.append("<tr>").append(textCell(s.name())).append(textCell(s.kind()))
                    .append("<td class=\"num\" title=\"").append(s.blockSize()).append(" bytes\">")
                    .append(escape(blockSize(s.blockSize()))).append("</td>")
                    .append(bytesCell(c.logical())).append(bytesCell(c.zero())).append(bytesCell(c.nonzero()))
                    .append(bytesCell(c.unique())).append(bytesCell(c.compressed())).append(countCell(c.chunks()))
                    .append(countCell(c.uniqueChunks())).append(ratioCell(c.dedupRatio())).append("</tr>\n");
        }
        out.append("</tbody>\n</table>\n</div>\n");
    }

    /**
     * The growth charts, one per block size (the primary one open, as {@code chart-growth}; the
     * others folded), each with one series per strategy kind; and one table per kind, a column per
     * block size, so no table grows sideways with the number of strategies.
     */
    private void blocksGrowth(List<Image> images, List<StrategyEntry> strategies) {
        List<String> names = new ArrayList<>(images.stream().map(Image::name).toList());
        int steps = names.size();
        for (StrategyEntry s : strategies) steps = Math.max(steps, s.growth().size());
        for (int i = names.size(); i < steps; i++) {
            String n = null;
            for (StrategyEntry s : strategies) if (i < s.growth().size()) { n = s.growth().get(i).name(); break; }
            names.add(n);
        }
        Map<String, List<StrategyEntry>> byKind = byKind(strategies);
        java.util.TreeMap<Long, List<StrategyEntry>> bySize = new java.util.TreeMap<>();
        for (List<StrategyEntry> list : byKind.values()) {
            for (StrategyEntry s : list) bySize.computeIfAbsent(s.blockSize(), x -> new ArrayList<>()).add(s);
        }
        Long primary = bySize.containsKey(4096L) ? Long.valueOf(4096L) : bySize.isEmpty() ? null : bySize.firstKey();
        List<String> kinds = new ArrayList<>(byKind.keySet());
        if (primary == null) {
            out.append(SvgCharts.lineChart(fixedId("chart-growth"), "Collection unique bytes as images are added",
                    categorical(names, "images, in order"), "unique bytes", List.of()));
        } else {
            growthChart(fixedId("chart-growth"), primary, bySize.get(primary), kinds, names);
            if (bySize.size() > 1) {
                out.append("<details><summary>Other block sizes</summary>\n");
                for (Map.Entry<Long, List<StrategyEntry>> e : bySize.entrySet()) {
                    if (e.getKey().equals(primary)) continue;
                    growthChart(id("chart-growth-", String.valueOf(e.getKey())), e.getKey(), e.getValue(), kinds, names);
                }
                out.append("</details>\n");
            }
        }
        for (Map.Entry<String, List<StrategyEntry>> e : byKind.entrySet()) {
            List<StrategyEntry> sorted = new ArrayList<>(e.getValue());
            sorted.sort(java.util.Comparator.comparingLong(StrategyEntry::blockSize));
            for (int from = 0; from < sorted.size(); from += GROWTH_COLUMNS) {
                growthTable(e.getKey(), sorted.subList(from, Math.min(sorted.size(), from + GROWTH_COLUMNS)), names, steps);
            }
        }
    }

    /** Block sizes per growth table: more go to a second table ({@code table-growth-KIND-2}). */
    static final int GROWTH_COLUMNS = 8;

    private void growthTable(String kind, List<StrategyEntry> list, List<String> names, int steps) {
        out.append("<div class=\"table-wrap\">\n<table id=\"").append(id("table-growth-", kind))
                .append("\">\n<caption>").append(escape("Unique bytes after each image, " + kind))
                .append("</caption>\n<thead><tr><th>#</th><th>image</th>");
        for (StrategyEntry s : list) {
            out.append("<th title=\"").append(escape(s.name())).append("\">").append(escape(blockSize(s.blockSize())))
                    .append("</th>");
        }
        out.append("</tr></thead>\n<tbody>\n");
        for (int i = 0; i < steps; i++) {
            out.append("<tr><td class=\"num\">").append(i + 1).append("</td>").append(textCell(names.get(i)));
            for (StrategyEntry s : list) {
                out.append(bytesCell(i < s.growth().size() ? s.growth().get(i).uniqueBytes() : null));
            }
            out.append("</tr>\n");
        }
        out.append("</tbody>\n</table>\n</div>\n");
    }

    private void growthChart(String chartId, long size, List<StrategyEntry> strategies, List<String> kinds, List<String> names) {
        List<SvgCharts.Series> series = new ArrayList<>();
        for (StrategyEntry s : strategies) {
            int k = kinds.indexOf(s.kind());
            List<SvgCharts.Point> points = new ArrayList<>();
            for (int j = 0; j < s.growth().size(); j++) {
                Step st = s.growth().get(j);
                points.add(new SvgCharts.Point(j, st.uniqueBytes(),
                        s.name() + " after " + st.name() + ": " + withBytes(st.uniqueBytes())));
            }
            series.add(new SvgCharts.Series(shortName(s), kindColor(s.kind(), k), kindDash(s.kind(), k),
                    kindMarker(s.kind(), k), points));
        }
        out.append(SvgCharts.lineChart(chartId, "Collection unique bytes as images are added, " + blockSize(size) + " blocks",
                categorical(names, "images, in the order given"), "collection unique bytes", series));
    }

    /**
     * The recommendation: the best layout import can make and its exact flags, the others it can
     * make ranked, and what strategies import cannot use would have stored, as information only.
     */
    private void recommendation(ImportRecommendation r) {
        ImportRecommendation.Option best = r.best();
        String measure = r.compressed() ? "compressed unique bytes" : "unique bytes";
        if (best == null) {
            out.append("<p id=\"").append(fixedId("recommendation")).append("\">None of the strategies analysed is a ")
                    .append("layout cask import makes (aligned-N, or fixed-N with --whole-disk, N a power of two from ")
                    .append("4 KiB to 1 MiB). Run <code>cask analyze --strategies fixed,aligned --block-sizes 4K,16K,64K</code> ")
                    .append("to compare those.</p>\n");
        } else {
            StrategyEntry s = best.strategy();
            out.append("<p id=\"").append(fixedId("recommendation")).append("\" class=\"recommended\">Import with ")
                    .append("<strong>").append(escape(shortName(s))).append("</strong>: of the layouts cask import can make, ")
                    .append("it stores the fewest bytes, <span title=\"").append(best.storedBytes()).append(" bytes\">")
                    .append(escape(Sizes.human(best.storedBytes()))).append("</span> (").append(measure).append(").</p>\n");
            out.append("<pre class=\"command\" id=\"").append(fixedId("recommendation-command")).append("\">")
                    .append(escape("cask import " + best.flags() + " IMAGE-FILE NAME")).append("</pre>\n");
            for (ImportRecommendation.Option o : r.importable()) {
                if (o != best && o.storedBytes() == best.storedBytes() && o.strategy().blockSize() == s.blockSize()) {
                    out.append("<p class=\"note\">").append(escape(shortName(o.strategy()) + " (" + o.flags()
                            + ") stores the same: the disks have no partition table, or their partitions start at multiples of "
                            + blockSize(s.blockSize()) + ".")).append("</p>\n");
                }
            }
            out.append("<div class=\"table-wrap\">\n<table id=\"").append(fixedId("table-import-options"))
                    .append("\">\n<caption>Layouts cask import can make, fewest bytes first</caption>\n")
                    .append("<thead><tr><th>#</th><th>strategy</th><th>cask import flags</th><th>stored</th>")
                    .append("<th>more than the first</th><th>unique chunks</th></tr></thead>\n<tbody>\n");
            int rank = 0;
            for (ImportRecommendation.Option o : r.importable()) {
                out.append("<tr><td class=\"num\">").append(++rank).append("</td>").append(textCell(shortName(o.strategy())))
                        .append("<td><code>").append(escape(o.flags())).append("</code></td>").append(bytesCell(o.storedBytes()))
                        .append(bytesCell(o.storedBytes() - best.storedBytes()))
                        .append(countCell(o.strategy().collection().uniqueChunks())).append("</tr>\n");
            }
            out.append("</tbody>\n</table>\n</div>\n");
        }
        // information only: what import cannot do
        List<String> info = new ArrayList<>();
        for (boolean cdc : new boolean[] {true, false}) {
            ImportRecommendation.Option o = r.bestOther(cdc);
            if (o == null) continue;
            StringBuilder sb = new StringBuilder(shortName(o.strategy())).append(" would store ")
                    .append(Sizes.human(o.storedBytes()));
            if (best != null) {
                long saved = best.storedBytes() - o.storedBytes();
                if (saved > 0) {
                    sb.append(", ").append(Sizes.human(saved)).append(" (")
                            .append(percent((double) saved / Math.max(1, best.storedBytes()))).append(") less than ")
                            .append(shortName(best.strategy()));
                } else {
                    sb.append(", no less than ").append(shortName(best.strategy()));
                }
            }
            info.add(sb.toString());
        }
        if (!info.isEmpty()) {
            out.append("<p class=\"note\" id=\"").append(fixedId("recommendation-not-importable")).append("\">")
                    .append("For information only: cask import cannot cut content-defined chunks (cdc) nor blocks smaller than ")
                    .append("4 KiB. The best of those analysed: ").append(escape(String.join("; ", info))).append(".</p>\n");
        }
    }

    static String kindDash(String kind, int index) {
        return switch (kind) {
            case "fixed" -> null;
            case "aligned" -> "10 4";
            case "cdc" -> "2 3";
            default -> index % 2 == 0 ? "10 3 2 3" : "6 2";
        };
    }

    static SvgCharts.Marker kindMarker(String kind, int index) {
        return switch (kind) {
            case "fixed" -> SvgCharts.Marker.CIRCLE;
            case "aligned" -> SvgCharts.Marker.SQUARE;
            case "cdc" -> SvgCharts.Marker.TRIANGLE;
            default -> SvgCharts.Marker.DIAMOND;
        };
    }

    private void strategyTable(StrategyEntry s) {
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
        out.append("<div class=\"table-wrap\">\n<table id=\"").append(id("table-strategy-", s.name())).append("\">\n<caption>")
                .append(escape(s.name())).append("</caption>\n<thead><tr><th>image</th><th>logical</th><th>zero</th>")
                .append("<th>non-zero</th><th>unique</th><th>internal duplicate</th><th>chunks</th>")
                .append("<th>unique chunks</th></tr></thead>\n<tbody>\n");
        for (BlockNumbers p : s.perImage()) row(p, p.name());
        out.append("</tbody>\n<tfoot>\n");
        row(c, "collection");
        out.append("</tfoot>\n</table>\n</div>\n");
    }

    private void row(BlockNumbers n, String name) {
        out.append("<tr>").append(textCell(name)).append(bytesCell(n.logical())).append(bytesCell(n.zero()))
                .append(bytesCell(n.nonzero())).append(bytesCell(n.unique())).append(bytesCell(n.internalDuplicate()))
                .append(countCell(n.chunks())).append(countCell(n.uniqueChunks())).append("</tr>\n");
    }
}
