package dev.cask.analysis;

import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.cask.analysis.HtmlReportTest.parse;
import static dev.cask.analysis.HtmlReportTest.xpath;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The line chart is readable: a y axis in one named unit with tick marks, a legend with a sample
 * of each line, series told apart by colour, dash and marker, a series hidden under an identical
 * one drawn over it and named as such, a dwarfed series still visible (log scale), and slanted
 * image names that never overlap.
 */
class SvgChartsTest {
    static final long GIB = 1L << 30, MIB = 1L << 20;

    static List<SvgCharts.Point> points(long... ys) {
        List<SvgCharts.Point> out = new ArrayList<>();
        for (int i = 0; i < ys.length; i++) out.add(new SvgCharts.Point(i, ys[i], "p" + i));
        return out;
    }

    static SvgCharts.XAxis names(int n, String prefix) {
        List<SvgCharts.Tick> ticks = new ArrayList<>();
        for (int i = 0; i < n; i++) ticks.add(new SvgCharts.Tick(i, prefix + i));
        return new SvgCharts.XAxis(0, n - 1, ticks, true, "images");
    }

    static Element chart(String svg) throws Exception {
        return parse(svg, false).getDocumentElement();
    }

    static List<String> texts(Element e, String xpath) throws Exception {
        return xpath(e, xpath).stream().map(Node::getTextContent).toList();
    }

    /** The legend's labels: each text's own words and second line, without its tooltip. */
    static List<String> legend(Element svg) throws Exception {
        List<String> out = new ArrayList<>();
        for (Element t : xpath(svg, ".//*[@class='legend']/*[@class='legend-label']")) {
            StringBuilder sb = new StringBuilder(t.getFirstChild().getNodeValue());
            for (Element span : xpath(t, "./*[local-name()='tspan']")) sb.append(' ').append(span.getTextContent());
            out.add(sb.toString());
        }
        return out;
    }

    @Test
    void yAxisIsInOneNamedUnitWithTickMarks() throws Exception {
        Element svg = chart(SvgCharts.lineChart("c", "growth", names(3, "img"), "unique bytes", List.of(
                new SvgCharts.Series("a", "#111111", false, points(GIB / 2, GIB, 3 * GIB / 2)))));
        List<String> title = texts(svg, ".//*[@class='axis y-axis']/*[@class='axis-title']");
        assertEquals(List.of("unique bytes (GiB)"), title);
        List<String> labels = texts(svg, ".//*[@class='axis y-axis']/*[@class='tick-label']");
        assertEquals(List.of("0", "0.5", "1", "1.5"), labels);
        assertEquals(labels.size(), xpath(svg, ".//*[@class='axis y-axis']/*[@class='tick']").size());
        assertEquals("linear", xpath(svg, ".//*[@class='axis y-axis']").getFirst().getAttribute("data-scale"));

        Element small = chart(SvgCharts.lineChart("c", "growth", names(2, "img"), "bytes", List.of(
                new SvgCharts.Series("a", "#111111", false, points(100 * MIB, 700 * MIB)))));
        assertEquals(List.of("bytes (MiB)"), texts(small, ".//*[@class='axis y-axis']/*[@class='axis-title']"));
        assertTrue(texts(small, ".//*[@class='axis y-axis']/*[@class='tick-label']").contains("768"));
    }

    @Test
    void seriesDifferInColourDashAndMarkerAndTheLegendShowsEach() throws Exception {
        List<SvgCharts.Series> series = List.of(
                new SvgCharts.Series("fixed-4K", "#1f77b4", null, SvgCharts.Marker.CIRCLE, points(GIB, 2 * GIB)),
                new SvgCharts.Series("aligned-4K", "#ff7f0e", "10 4", SvgCharts.Marker.SQUARE, points(GIB / 2, GIB)),
                new SvgCharts.Series("cdc-4K", "#2ca02c", "2 3", SvgCharts.Marker.TRIANGLE, points(GIB / 3, GIB / 2)));
        Element svg = chart(SvgCharts.lineChart("c", "growth", names(2, "img"), "bytes", series));
        Set<String> styles = new HashSet<>();
        for (Element line : xpath(svg, ".//*[local-name()='polyline']")) {
            styles.add(line.getAttribute("stroke") + "/" + line.getAttribute("stroke-dasharray"));
        }
        assertEquals(3, styles.size(), styles.toString());
        assertEquals(2, xpath(svg, ".//*[@data-series='fixed-4K']/*[local-name()='circle' and @class='point']").size());
        assertEquals(2, xpath(svg, ".//*[@data-series='aligned-4K']/*[local-name()='rect' and @class='point']").size());
        assertEquals(2, xpath(svg, ".//*[@data-series='cdc-4K']/*[local-name()='polygon' and @class='point']").size());
        assertEquals(List.of("fixed-4K", "aligned-4K", "cdc-4K"), legend(svg));
        assertEquals(3, xpath(svg, ".//*[@class='legend']/*[@class='legend-marker']").size());
    }

    @Test
    void aSeriesIdenticalToALaterOneIsDrawnOverItDashedAndTheLegendSaysSo() throws Exception {
        List<SvgCharts.Series> series = List.of(
                new SvgCharts.Series("fixed-4K", "#1f77b4", null, SvgCharts.Marker.CIRCLE, points(GIB, 2 * GIB, 3 * GIB)),
                new SvgCharts.Series("aligned-4K", "#ff7f0e", "10 4", SvgCharts.Marker.SQUARE, points(GIB, 2 * GIB, 3 * GIB)),
                new SvgCharts.Series("cdc-4K", "#2ca02c", "2 3", SvgCharts.Marker.TRIANGLE, points(GIB, GIB, 2 * GIB)));
        Element svg = chart(SvgCharts.lineChart("c", "growth", names(3, "img"), "bytes", series));
        List<Element> drawn = xpath(svg, ".//*[@class='series']");
        assertEquals(List.of("aligned-4K", "cdc-4K", "fixed-4K"), drawn.stream().map(e -> e.getAttribute("data-series")).toList(),
                "the hidden one is drawn last, on top");
        Element fixed = drawn.get(2);
        assertEquals("aligned-4K", fixed.getAttribute("data-same-as"));
        Element line = xpath(fixed, "./*[local-name()='polyline']").getFirst();
        assertEquals(SvgCharts.OVER_TWIN_DASH, line.getAttribute("stroke-dasharray"), "gaps let the line below show");
        for (Element m : xpath(fixed, "./*[@class='point']")) {
            assertEquals("0", m.getAttribute("fill-opacity"), "hollow markers let the ones below show");
        }
        List<String> legend = legend(svg);
        assertEquals(List.of("fixed-4K (same as aligned-4K)", "aligned-4K", "cdc-4K"), legend);
        // a long label keeps its "(same as X)" whole, on a second line inside the chart
        Element wide = chart(SvgCharts.lineChart("c", "by size", names(3, "img"), "bytes", List.of(
                new SvgCharts.Series("fixed compressed", "#1f77b4", "6 4", SvgCharts.Marker.CIRCLE, points(GIB, 2 * GIB, 3 * GIB)),
                new SvgCharts.Series("aligned compressed", "#ff7f0e", "6 4", SvgCharts.Marker.SQUARE, points(GIB, 2 * GIB, 3 * GIB)))));
        assertEquals(List.of("fixed compressed (same as aligned compressed)", "aligned compressed"), legend(wide));
        for (String second : texts(wide, ".//*[@class='legend-label']/*[local-name()='tspan']")) {
            assertTrue(second.length() <= SvgCharts.LEGEND_CHARS, second);
        }
    }

    @Test
    void aDwarfedSeriesGetsALogarithmicAxis() throws Exception {
        Element svg = chart(SvgCharts.lineChart("c", "growth", names(3, "img"), "bytes", List.of(
                new SvgCharts.Series("big", "#111111", false, points(10 * GIB, 40 * GIB, 90 * GIB)),
                new SvgCharts.Series("small", "#222222", false, points(64 * MIB, 100 * MIB, 200 * MIB)))));
        Element axis = xpath(svg, ".//*[@class='axis y-axis']").getFirst();
        assertEquals("log", axis.getAttribute("data-scale"));
        assertEquals(List.of("bytes (log scale)"), texts(axis, "./*[@class='axis-title']"));
        List<String> ticks = texts(axis, "./*[@class='tick-label']");
        assertEquals("64 MiB", ticks.getFirst());
        assertEquals("256 GiB", ticks.getLast());
        // the small series spans a visible height: its points are not all on the bottom line
        List<Double> ys = new ArrayList<>();
        for (Element c : xpath(svg, ".//*[@data-series='small']/*[@class='point']")) ys.add(Double.parseDouble(c.getAttribute("cy")));
        assertTrue(ys.getFirst() - ys.getLast() > 20, ys.toString());
    }

    /** Slanted labels {@code d} apart along the axis are {@code d sin(angle)} apart across: at least the font size. */
    @Test
    void slantedImageNamesNeverOverlap() throws Exception {
        for (int n : new int[] {4, 12, 40, 100}) {
            String svgText = SvgCharts.lineChart("c", "growth", names(n, "a-rather-long-image-name-number-"), "bytes",
                    List.of(new SvgCharts.Series("a", "#111111", false, points(new long[n]))));
            Element svg = chart(svgText);
            List<Double> xs = new ArrayList<>();
            Pattern rotate = Pattern.compile("rotate\\(-(\\d+) ([0-9.]+) ");
            for (Element t : xpath(svg, ".//*[@class='axis x-axis']/*[@class='tick-label']")) {
                Matcher m = rotate.matcher(t.getAttribute("transform"));
                assertTrue(m.find(), t.getAttribute("transform"));
                assertEquals(SvgCharts.SLANT_DEGREES, Double.parseDouble(m.group(1)));
                xs.add(Double.parseDouble(m.group(2)));
                String label = t.getFirstChild().getTextContent();
                assertTrue(label.codePointCount(0, label.length()) <= SvgCharts.LABEL_CHARS, label);
                assertTrue(Double.parseDouble(t.getAttribute("x")) - label.length() * 0.55 * SvgCharts.LABEL_FONT * Math.cos(Math.toRadians(SvgCharts.SLANT_DEGREES)) > 0,
                        "label inside the chart on the left: " + label);
            }
            assertTrue(xs.size() >= Math.min(n, 8), n + " images: " + xs.size() + " labels");
            for (int i = 1; i < xs.size(); i++) {
                double across = (xs.get(i) - xs.get(i - 1)) * Math.sin(Math.toRadians(SvgCharts.SLANT_DEGREES));
                assertTrue(across >= SvgCharts.LABEL_FONT, n + " images: labels " + across + " px apart");
            }
            assertFalse(svgText.contains("NaN"));
        }
    }
}
