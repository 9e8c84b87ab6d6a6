package dev.cask.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.common.Sizes;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;

import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.xpath.XPathConstants;
import javax.xml.xpath.XPathFactory;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The HTML report of hand-built documents of both kinds: every documented id is there, the
 * page and each SVG are well-formed XML, nothing points outside the file, hostile names stay
 * text, and the tables and heat maps carry the document's numbers.
 */
class HtmlReportTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String HOSTILE = "<script>alert(1)</script>";
    static final List<String> IMAGES = List.of("bookworm-minbase.raw", HOSTILE, "trixie & \"friends\" 'q'.qcow2");
    static final List<String> KINDS = List.of("fixed", "aligned", "cdc");
    static final long[] BLOCK_SIZES = {4096, 16384, 65536};
    static final double[][] OVERLAP = {{1.0, 0.93, 0.25}, {0.93, 1.0, 0.5}, {0.25, 0.5, 1.0}};

    /** Distinct, recognisable numbers per strategy (k: kind index, b: block size index) and image. */
    static long unique(int k, int b) {
        return 1_500_000_000L + k * 100_000_007L - b * 9_999_991L;
    }

    static long imageUnique(int k, int b, int i) {
        return 600_000_000L + k * 10_000_019L + b * 1_000_003L + i * 77_777L;
    }

    static long growth(int k, int b, int i) {
        return (i + 1) * unique(k, b) / 3;
    }

    static String strategyName(int k, int b) {
        return KINDS.get(k) + "-" + BLOCK_SIZES[b];
    }

    static ObjectNode blocksDocument() {
        ObjectNode d = JSON.createObjectNode();
        d.put("kind", "blocks");
        d.put("written_by", "a field this renderer does not know");
        ArrayNode images = d.putArray("images");
        for (int i = 0; i < IMAGES.size(); i++) {
            ObjectNode im = images.addObject();
            im.put("name", IMAGES.get(i)).put("source", "/images/" + IMAGES.get(i)).put("format", i == 0 ? "raw" : "qcow2")
                    .put("logical_bytes", (2L << 30) + i);
            im.putArray("partitions").addObject().put("offset", 1048576).put("length", (2L << 30) - 1048576).put("kind", "ext4");
        }
        ArrayNode bs = d.putArray("block_sizes");
        for (long b : BLOCK_SIZES) bs.add(b);
        ArrayNode strategies = d.putArray("strategies");
        for (int k = 0; k < KINDS.size(); k++) {
            for (int b = 0; b < BLOCK_SIZES.length; b++) {
                ObjectNode s = strategies.addObject();
                s.put("name", strategyName(k, b)).put("kind", KINDS.get(k)).put("block_size", BLOCK_SIZES[b]);
                ObjectNode c = s.putObject("collection");
                c.put("logical_bytes", 3 * (2L << 30) + 3).put("zero_bytes", 2_000_000_000L + k).put("nonzero_bytes", 4_442_450_947L)
                        .put("unique_bytes", unique(k, b)).put("chunks", 1_000_000 + b).put("unique_chunks", 400_000 + k)
                        .put("dedup_ratio", 2.5 + k);
                if (!(k == 2 && b == 2)) c.put("compressed_bytes", unique(k, b) / 2); // cdc-65536 has none
                ArrayNode per = s.putArray("per_image");
                for (int i = 0; i < IMAGES.size(); i++) {
                    per.addObject().put("name", IMAGES.get(i)).put("logical_bytes", (2L << 30) + i).put("zero_bytes", 700_000_000L)
                            .put("nonzero_bytes", (2L << 30) + i - 700_000_000L).put("unique_bytes", imageUnique(k, b, i))
                            .put("internal_duplicate_bytes", 12_345_678L + i).put("chunks", 524_288 + i).put("unique_chunks", 300_000 + i);
                }
                ArrayNode m = s.putArray("overlap");
                for (double[] row : OVERLAP) {
                    ArrayNode r = m.addArray();
                    for (double v : row) r.add(v);
                }
                ArrayNode g = s.putArray("growth");
                for (int i = 0; i < IMAGES.size(); i++) g.addObject().put("image", IMAGES.get(i)).put("unique_bytes", growth(k, b, i));
            }
        }
        return d;
    }

    static final List<String> TREES = List.of("etc", HOSTILE, "usr");
    static final long[][] TREE_NUMBERS = { // files, bytes, unique, hard links, empty, skipped
            {1200, 5_000_000, 4_000_000, 3, 40, 12}, {7, 70_000, 70_000, 0, 0, 1}, {90_000, 3_000_000_000L, 2_100_000_000L, 55, 900, 4000}};

    static ObjectNode filesDocument() {
        ObjectNode d = JSON.createObjectNode();
        d.put("kind", "files");
        ArrayNode trees = d.putArray("trees");
        for (int i = 0; i < TREES.size(); i++) {
            long[] n = TREE_NUMBERS[i];
            trees.addObject().put("name", TREES.get(i)).put("source", "/srv/" + TREES.get(i)).put("files", n[0]).put("bytes", n[1])
                    .put("unique_bytes", n[2]).put("duplicate_bytes", n[1] - n[2]).put("duplicate_share", (double) (n[1] - n[2]) / n[1])
                    .put("hard_links", n[3]).put("empty_files", n[4]).put("skipped", n[5]);
        }
        d.putObject("collection").put("files", 91_207).put("bytes", 3_005_070_000L).put("unique_bytes", 2_103_000_000L)
                .put("duplicate_bytes", 902_070_000L).put("duplicate_share", 902_070_000.0 / 3_005_070_000L);
        ArrayNode m = d.putArray("overlap");
        for (double[] row : OVERLAP) {
            ArrayNode r = m.addArray();
            for (double v : row) r.add(v);
        }
        ArrayNode g = d.putArray("growth");
        long[] growth = {4_000_000, 4_050_000, 2_103_000_000L};
        for (int i = 0; i < TREES.size(); i++) g.addObject().put("tree", TREES.get(i)).put("unique_bytes", growth[i]);
        return d;
    }

    // ---- XML helpers -------------------------------------------------------------------------

    static Document parse(String xml, boolean namespaces) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(namespaces);
        f.setFeature("http://apache.org/xml/features/nonvalidating/load-external-dtd", false);
        f.setExpandEntityReferences(false);
        return f.newDocumentBuilder().parse(new InputSource(new StringReader(xml)));
    }

    static List<Element> xpath(Node context, String expression) throws Exception {
        NodeList list = (NodeList) XPathFactory.newInstance().newXPath().evaluate(expression, context, XPathConstants.NODESET);
        List<Element> out = new ArrayList<>();
        for (int i = 0; i < list.getLength(); i++) out.add((Element) list.item(i));
        return out;
    }

    static Element byId(Document d, String id) throws Exception {
        List<Element> found = xpath(d, "//*[@id='" + id + "']");
        assertEquals(1, found.size(), "elements with id " + id);
        return found.getFirst();
    }

    /** The cells of the first row of {@code table} whose first cell's text is {@code first}. */
    static List<Element> row(Element table, String first) throws Exception {
        for (Element tr : xpath(table, ".//tr")) {
            List<Element> cells = xpath(tr, "./td|./th");
            if (!cells.isEmpty() && cells.getFirst().getTextContent().equals(first)) return cells;
        }
        throw new AssertionError("no row '" + first + "' in table " + table.getAttribute("id"));
    }

    static List<String> headers(Element table) throws Exception {
        return xpath(table, "./thead/tr/th").stream().map(Node::getTextContent).toList();
    }

    static void assertBytes(long expected, Element td) {
        assertEquals(expected + " bytes", td.getAttribute("title"));
        assertEquals(Sizes.human(expected), td.getTextContent());
    }

    static Element cell(Element table, String rowName, String column) throws Exception {
        int c = headers(table).indexOf(column);
        assertTrue(c >= 0, "column " + column + " in " + headers(table));
        return row(table, rowName).get(c);
    }

    static void checkCommon(String html, int svgs) throws Exception {
        // Well-formed as a whole (polyglot XHTML) ...
        Document doc = parse(html, false);
        assertEquals("html", doc.getDocumentElement().getTagName());
        // ... and each SVG on its own, in the SVG namespace.
        Matcher m = Pattern.compile("(?s)<svg\\b.*?</svg>").matcher(html);
        int n = 0;
        while (m.find()) {
            Document svg = parse(m.group(), true);
            assertEquals("svg", svg.getDocumentElement().getLocalName());
            assertEquals(SvgCharts.SVG_NS, svg.getDocumentElement().getNamespaceURI());
            n++;
        }
        assertEquals(svgs, n, "svg elements");
        // Nothing from outside the file: no URL but the SVG namespace, no script, no loaded resource.
        String rest = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assertFalse(rest.contains("http://"), "an http:// reference");
        assertFalse(rest.contains("https://"), "an https:// reference");
        assertFalse(rest.contains("//"), "a protocol-relative reference");
        assertFalse(rest.toLowerCase().contains("<script"), "a script element");
        assertFalse(rest.contains("src="), "a src attribute");
        assertFalse(rest.contains("@import") || rest.contains("@font-face"), "CSS that loads something");
        assertEquals(html.split("url\\(", -1).length - 1, html.split("url\\(#", -1).length - 1, "url() other than #fragment");
        // Ids are unique.
        Set<String> ids = new HashSet<>();
        for (Element e : xpath(doc, "//*[@id]")) assertTrue(ids.add(e.getAttribute("id")), "duplicate id " + e.getAttribute("id"));
        // The hostile name is text, never markup.
        assertFalse(html.contains(HOSTILE));
        assertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    // ---- blocks ------------------------------------------------------------------------------

    @Test
    void blocksReportHasEveryDocumentedElement() throws Exception {
        String html = HtmlReport.render(blocksDocument());
        checkCommon(html, 1 + 3 + 9); // block size chart, a growth chart per block size, a heat map per strategy
        Document doc = parse(html, false);
        assertEquals("p", byId(doc, "summary").getTagName());
        assertEquals("table", byId(doc, "table-images").getTagName());
        assertEquals("svg", byId(doc, "chart-unique-vs-block-size").getTagName());
        assertEquals("table", byId(doc, "table-strategies").getTagName());
        assertEquals("svg", byId(doc, "chart-growth").getTagName());
        assertEquals("svg", byId(doc, "chart-growth-16384").getTagName());
        assertEquals("svg", byId(doc, "chart-growth-65536").getTagName());
        for (String kind : KINDS) assertEquals("table", byId(doc, "table-growth-" + kind).getTagName());
        assertEquals("p", byId(doc, "recommendation").getTagName());
        assertEquals("table", byId(doc, "table-import-options").getTagName());
        assertEquals("footer", byId(doc, "footer").getTagName());
        for (int k = 0; k < 3; k++) {
            for (int b = 0; b < 3; b++) {
                assertEquals("svg", byId(doc, "heatmap-" + strategyName(k, b)).getTagName());
                assertEquals("table", byId(doc, "table-strategy-" + strategyName(k, b)).getTagName());
            }
        }
        assertTrue(byId(doc, "summary").getTextContent().contains("Fewest unique bytes: fixed-65536"),
                byId(doc, "summary").getTextContent());
    }

    @Test
    void imageNamesSurviveEscapingAsText() throws Exception {
        Document doc = parse(HtmlReport.render(blocksDocument()), false);
        Element images = byId(doc, "table-images");
        for (int i = 0; i < IMAGES.size(); i++) {
            List<Element> cells = row(images, String.valueOf(i + 1));
            assertEquals(IMAGES.get(i), cells.get(1).getTextContent());
            assertEquals("/images/" + IMAGES.get(i), cells.get(5).getTextContent());
            assertBytes((2L << 30) + i, cells.get(3));
        }
        // The heat map's axis labels carry the full names in their tooltips.
        Element heat = byId(doc, "heatmap-fixed-4096");
        List<String> tooltips = xpath(heat, ".//*[local-name()='text' and @class='row-label']/*[local-name()='title']")
                .stream().map(Node::getTextContent).toList();
        assertEquals(IMAGES, tooltips);
    }

    @Test
    void strategyTableHoldsTheCollectionNumbersOfEveryStrategy() throws Exception {
        Element t = byId(parse(HtmlReport.render(blocksDocument()), false), "table-strategies");
        for (int k = 0; k < 3; k++) {
            for (int b = 0; b < 3; b++) {
                String name = strategyName(k, b);
                assertBytes(unique(k, b), cell(t, name, "unique"));
                assertEquals(KINDS.get(k), cell(t, name, "kind").getTextContent());
                assertEquals(BLOCK_SIZES[b] / 1024 + " KiB", cell(t, name, "block size").getTextContent());
                assertBytes(3 * (2L << 30) + 3, cell(t, name, "logical"));
                assertBytes(2_000_000_000L + k, cell(t, name, "zero"));
                assertEquals(String.format(Locale.ROOT, "%,d", 1_000_000 + b), cell(t, name, "chunks").getTextContent());
                assertEquals(String.format(Locale.ROOT, "%,d", 400_000 + k), cell(t, name, "unique chunks").getTextContent());
                assertEquals(String.format(Locale.ROOT, "%.2f\u00d7", 2.5 + k), cell(t, name, "dedup ratio").getTextContent());
                if (k == 2 && b == 2) assertEquals("\u2013", cell(t, name, "compressed").getTextContent());
                else assertBytes(unique(k, b) / 2, cell(t, name, "compressed"));
            }
        }
    }

    @Test
    void perStrategyTablesHoldEveryImageAndTheCollection() throws Exception {
        Document doc = parse(HtmlReport.render(blocksDocument()), false);
        for (int k = 0; k < 3; k++) {
            for (int b = 0; b < 3; b++) {
                Element t = byId(doc, "table-strategy-" + strategyName(k, b));
                assertEquals(IMAGES.size(), xpath(t, "./tbody/tr").size());
                for (int i = 0; i < IMAGES.size(); i++) {
                    assertBytes(imageUnique(k, b, i), cell(t, IMAGES.get(i), "unique"));
                    assertBytes(12_345_678L + i, cell(t, IMAGES.get(i), "internal duplicate"));
                    assertBytes((2L << 30) + i - 700_000_000L, cell(t, IMAGES.get(i), "non-zero"));
                    assertEquals(String.format(Locale.ROOT, "%,d", 524_288 + i), cell(t, IMAGES.get(i), "chunks").getTextContent());
                }
                List<Element> footer = xpath(t, "./tfoot/tr/td");
                assertEquals("collection", footer.getFirst().getTextContent());
                assertBytes(unique(k, b), cell(t, "collection", "unique"));
            }
        }
    }

    @Test
    void heatMapsHaveOneCellPerPairOfImagesWithItsValue() throws Exception {
        Document doc = parse(HtmlReport.render(blocksDocument()), false);
        for (int k = 0; k < 3; k++) {
            for (int b = 0; b < 3; b++) {
                Element heat = byId(doc, "heatmap-" + strategyName(k, b));
                assertEquals(IMAGES.size() * IMAGES.size(), xpath(heat, ".//*[local-name()='rect' and @class='cell']").size());
                List<String> values = xpath(heat, ".//*[local-name()='text' and @class='cell-value']").stream()
                        .map(Node::getTextContent).toList();
                List<String> expected = new ArrayList<>();
                for (double[] r : OVERLAP) for (double v : r) expected.add(String.format(Locale.ROOT, "%.2f", v));
                assertEquals(expected, values);
            }
        }
    }

    @Test
    void chartsHaveTheirSeriesAndPoints() throws Exception {
        Document doc = parse(HtmlReport.render(blocksDocument()), false);
        Element bySize = byId(doc, "chart-unique-vs-block-size");
        List<String> series = xpath(bySize, ".//*[local-name()='g' and @class='series']").stream()
                .map(e -> e.getAttribute("data-series")).toList();
        assertEquals(List.of("fixed unique", "fixed compressed", "aligned unique", "aligned compressed", "cdc unique",
                "cdc compressed"), series);
        assertEquals(3 * 3 + 3 * 3 - 1, xpath(bySize, ".//*[@class='point']").size());
        List<String> ticks = xpath(bySize, ".//*[local-name()='g' and @class='axis x-axis']/*[local-name()='text']")
                .stream().map(Node::getTextContent).toList();
        assertEquals(List.of("4 KiB", "16 KiB", "64 KiB", "block size (log2 scale)"), ticks);
        List<String> tips = xpath(bySize, ".//*[@class='point']/*[local-name()='title']").stream()
                .map(Node::getTextContent).toList();
        assertTrue(tips.contains("cdc-16384: unique " + Sizes.human(unique(2, 1)) + " (" + unique(2, 1) + " bytes)"), tips.toString());

        // growth: one chart per block size (4 KiB first), one series per kind, a point per image
        for (int b = 0; b < 3; b++) {
            Element growth = byId(doc, b == 0 ? "chart-growth" : "chart-growth-" + BLOCK_SIZES[b]);
            String size = BLOCK_SIZES[b] / 1024 + "K";
            assertEquals(List.of("fixed-" + size, "aligned-" + size, "cdc-" + size),
                    xpath(growth, ".//*[local-name()='g' and @class='series']").stream().map(e -> e.getAttribute("data-series")).toList());
            assertEquals(3, xpath(growth, ".//*[local-name()='polyline']").size());
            assertEquals(9, xpath(growth, ".//*[@class='point']").size());
        }
    }

    @Test
    void growthTableHoldsEveryStep() throws Exception {
        Document doc = parse(HtmlReport.render(blocksDocument()), false);
        for (int k = 0; k < 3; k++) {
            Element t = byId(doc, "table-growth-" + KINDS.get(k));
            assertEquals(List.of("#", "image", "4 KiB", "16 KiB", "64 KiB"), headers(t));
            for (int i = 0; i < IMAGES.size(); i++) {
                assertEquals(IMAGES.get(i), row(t, String.valueOf(i + 1)).get(1).getTextContent());
                for (int b = 0; b < 3; b++) {
                    assertBytes(growth(k, b, i), cell(t, String.valueOf(i + 1), BLOCK_SIZES[b] / 1024 + " KiB"));
                }
            }
        }
    }

    @Test
    void strategyNamesBecomeSafeUniqueIds() throws Exception {
        ObjectNode d = blocksDocument();
        ArrayNode s = (ArrayNode) d.get("strategies");
        ((ObjectNode) s.get(0)).put("name", "cdc 4k/\"x\"");
        ((ObjectNode) s.get(1)).put("name", "cdc 4k/\"x\"");
        String html = HtmlReport.render(d);
        checkCommon(html, 13);
        Document doc = parse(html, false);
        byId(doc, "heatmap-cdc_4k__x_");
        byId(doc, "heatmap-cdc_4k__x_-2");
        byId(doc, "table-strategy-cdc_4k__x_");
        byId(doc, "table-strategy-cdc_4k__x_-2");
    }

    @Test
    void emptyAndSparseDocumentsStillRender() throws Exception {
        ObjectNode d = JSON.createObjectNode().put("kind", "blocks");
        d.putArray("images");
        d.putArray("strategies");
        String html = HtmlReport.render(d);
        checkCommonWithoutHostile(html, 2);
        assertTrue(html.contains("no data"));

        // One image, one strategy with only what is required: missing numbers show as dashes.
        ObjectNode one = JSON.createObjectNode().put("kind", "blocks");
        one.putArray("images").addObject().put("name", "only.raw");
        ObjectNode st = one.putArray("strategies").addObject().put("name", "fixed-4096").put("kind", "fixed").put("block_size", 4096);
        st.putObject("collection").put("unique_bytes", 12345);
        Document doc = parse(HtmlReport.render(one), false);
        Element t = byId(doc, "table-strategies");
        assertBytes(12345, cell(t, "fixed-4096", "unique"));
        assertEquals("\u2013", cell(t, "fixed-4096", "compressed").getTextContent());
        byId(doc, "table-strategy-fixed-4096");
        assertTrue(xpath(doc, "//*[@id='heatmap-fixed-4096']").isEmpty(), "no matrix, no heat map");
    }

    static void checkCommonWithoutHostile(String html, int svgs) throws Exception {
        parse(html, false);
        Matcher m = Pattern.compile("(?s)<svg\\b.*?</svg>").matcher(html);
        int n = 0;
        while (m.find()) {
            parse(m.group(), true);
            n++;
        }
        assertEquals(svgs, n);
    }

    // ---- page width, readable charts, recommendation, footer ----------------------------------

    /** A document of {@code n} images with long names, every kind at every one of {@code sizes}. */
    static ObjectNode manyImages(int n, long[] sizes) {
        ObjectNode d = JSON.createObjectNode().put("kind", "blocks");
        ArrayNode images = d.putArray("images");
        for (int i = 0; i < n; i++) {
            images.addObject().put("name", "debian-12-genericcloud-amd64-2025010" + i + ".qcow2").put("source", "/srv/images/" + i)
                    .put("format", "qcow2").put("logical_bytes", 2L << 30).putArray("partitions");
        }
        ArrayNode strategies = d.putArray("strategies");
        for (String kind : KINDS) {
            for (long bs : sizes) {
                ObjectNode s = strategies.addObject().put("name", kind + "-" + bs).put("kind", kind).put("block_size", bs);
                s.putObject("collection").put("logical_bytes", n * (2L << 30)).put("zero_bytes", n * (1L << 30))
                        .put("nonzero_bytes", n * (1L << 30)).put("unique_bytes", (1L << 30) + bs * 1000 + kind.length())
                        .put("compressed_bytes", (1L << 29) + bs * 1000).put("chunks", n * (2L << 30) / bs).put("unique_chunks", 1000)
                        .put("dedup_ratio", 2.0);
                ArrayNode per = s.putArray("per_image"), m = s.putArray("overlap"), g = s.putArray("growth");
                for (int i = 0; i < n; i++) {
                    per.addObject().put("name", "debian-12-genericcloud-amd64-2025010" + i + ".qcow2").put("unique_bytes", 1L << 29);
                    ArrayNode row = m.addArray();
                    for (int j = 0; j < n; j++) row.add(i == j ? 1.0 : 0.5);
                    g.addObject().put("image", "debian-12-genericcloud-amd64-2025010" + i + ".qcow2")
                            .put("unique_bytes", (i + 1) * ((1L << 28) + bs * 100 + kind.length()));
                }
            }
        }
        return d;
    }

    /** The most cells in one row of {@code table}. */
    static int columns(Element table) throws Exception {
        int most = 0;
        for (Element tr : xpath(table, ".//tr")) most = Math.max(most, xpath(tr, "./td|./th").size());
        return most;
    }

    static final int MOST_COLUMNS = 11;

    @Test
    void everyTableScrollsInsideThePageAndNoneWidensWithMoreImagesOrStrategies() throws Exception {
        long[] sizes = {512, 1024, 4096, 8192, 16384, 65536}; // the default block sizes: 18 strategies
        long[] every = new long[12]; // every block size analyze takes, 512 to 1M: 36 strategies
        for (int i = 0; i < every.length; i++) every[i] = 512L << i;
        java.util.Map<String, Integer> widths = new java.util.HashMap<>();
        for (int n : new int[] {3, 12, -12}) {
            String html = HtmlReport.render(manyImages(Math.abs(n), n < 0 ? every : sizes));
            assertTrue(html.contains(".table-wrap{max-width:100%;overflow-x:auto}"), "the containers' rule");
            Document doc = parse(html, false);
            List<Element> tables = xpath(doc, "//table");
            assertTrue(tables.size() > 20, "tables: " + tables.size());
            for (Element t : tables) {
                Element parent = (Element) t.getParentNode();
                assertEquals("div", parent.getTagName(), "table " + t.getAttribute("id") + " is in a container");
                assertEquals("table-wrap", parent.getAttribute("class"));
                int c = columns(t);
                assertTrue(c <= MOST_COLUMNS, n + " images: table " + t.getAttribute("id") + " has " + c + " columns");
                Integer before = n < 0 ? null : widths.put(t.getAttribute("id"), c);
                if (before != null) assertEquals(before, c, "table " + t.getAttribute("id") + " widens with the images");
            }
        }
    }

    @Test
    void fixedIdenticalToAlignedStaysVisibleAndTheLegendSaysSo() throws Exception {
        ObjectNode d = blocksDocument();
        ArrayNode s = (ArrayNode) d.get("strategies");
        for (int b = 0; b < 3; b++) { // an unpartitioned disk: fixed-N cuts as aligned-N does
            ObjectNode fixed = (ObjectNode) s.get(b), aligned = (ObjectNode) s.get(3 + b);
            fixed.set("collection", aligned.get("collection").deepCopy());
            fixed.set("growth", aligned.get("growth").deepCopy());
        }
        Document doc = parse(HtmlReport.render(d), false);
        Element growth = byId(doc, "chart-growth");
        Element fixed = xpath(growth, ".//*[@data-series='fixed-4K']").getFirst();
        assertEquals("aligned-4K", fixed.getAttribute("data-same-as"));
        assertFalse(xpath(fixed, "./*[local-name()='polyline']").getFirst().getAttribute("stroke-dasharray").isEmpty());
        List<String> legend = SvgChartsTest.legend(growth);
        assertEquals(List.of("fixed-4K (same as aligned-4K)", "aligned-4K", "cdc-4K"), legend);
        List<String> bySize = SvgChartsTest.legend(byId(doc, "chart-unique-vs-block-size"));
        assertTrue(bySize.contains("fixed unique (same as aligned unique)"), bySize.toString());
        // and the recommendation says the two layouts are one here
        String note = xpath(byId(doc, "section-recommendation"), ".//p").stream().map(Node::getTextContent)
                .filter(t -> t.contains("stores the same")).findFirst().orElse("");
        assertTrue(note.startsWith("fixed-64K (--whole-disk --block-size 64K) stores the same"), note);
    }

    /** A blocks document of one image and the given strategies: {name, kind, block size, unique, compressed}. */
    static ObjectNode strategies(Object[]... rows) {
        ObjectNode d = JSON.createObjectNode().put("kind", "blocks");
        d.putArray("images").addObject().put("name", "only.raw");
        ArrayNode a = d.putArray("strategies");
        for (Object[] r : rows) {
            ObjectNode s = a.addObject().put("name", (String) r[0]).put("kind", (String) r[1]).put("block_size", (Integer) r[2]);
            s.putObject("collection").put("unique_bytes", (Long) r[3]).put("compressed_bytes", (Long) r[4]).put("unique_chunks", 7);
        }
        return d;
    }

    @Test
    void theRecommendationIsOnlyWhatImportCanDoWithItsExactFlags() throws Exception {
        Document doc = parse(HtmlReport.render(strategies(
                new Object[] {"cdc-4096", "cdc", 4096, 150L << 20, 100L << 20},
                new Object[] {"aligned-512", "aligned", 512, 160L << 20, 110L << 20},
                new Object[] {"fixed-2048", "fixed", 2048, 170L << 20, 115L << 20},
                new Object[] {"aligned-4096", "aligned", 4096, 300L << 20, 200L << 20},
                new Object[] {"fixed-4096", "fixed", 4096, 290L << 20, 210L << 20},
                new Object[] {"aligned-65536", "aligned", 65536, 100L << 20, 300L << 20},
                new Object[] {"fixed-1048576", "fixed", 1 << 20, 500L << 20, 400L << 20})), false);
        assertEquals("cask import --block-size 4K IMAGE-FILE NAME", byId(doc, "recommendation-command").getTextContent());
        assertTrue(byId(doc, "recommendation").getTextContent().contains("aligned-4K"), byId(doc, "recommendation").getTextContent());
        Element t = byId(doc, "table-import-options");
        assertEquals(List.of("aligned-4K", "fixed-4K", "aligned-64K", "fixed-1M"),
                xpath(t, "./tbody/tr").stream().map(tr -> tr.getElementsByTagName("td").item(1).getTextContent()).toList());
        assertEquals(List.of("--block-size 4K", "--whole-disk --block-size 4K", "--block-size 64K", "--whole-disk --block-size 1M"),
                xpath(t, "./tbody/tr/td/code").stream().map(Node::getTextContent).toList());
        assertBytes(200L << 20, cell(t, "1", "stored"));
        assertBytes(100L << 20, cell(t, "3", "more than the first"));
        String info = byId(doc, "recommendation-not-importable").getTextContent();
        assertTrue(info.contains("For information only"), info);
        assertTrue(info.contains("cdc-4K would store 100 MiB, 100 MiB (50.0 %) less than aligned-4K"), info);
        assertTrue(info.contains("aligned-512 would store 110 MiB, 90.0 MiB (45.0 %) less than aligned-4K"), info);
        for (String flag : List.of("512", "2K", "2048", "cdc")) {
            assertFalse(t.getTextContent().contains(flag), flag + " in the options import has");
        }

        // nothing import can use: no command, and how to measure what it can
        doc = parse(HtmlReport.render(strategies(new Object[] {"cdc-4096", "cdc", 4096, 1L << 20, 1L << 19},
                new Object[] {"fixed-1024", "fixed", 1024, 2L << 20, 1L << 20})), false);
        assertTrue(xpath(doc, "//*[@id='recommendation-command']").isEmpty());
        assertTrue(xpath(doc, "//*[@id='table-import-options']").isEmpty());
        assertTrue(byId(doc, "recommendation").getTextContent().startsWith("None of the strategies analysed"));
        assertTrue(byId(doc, "recommendation-not-importable").getTextContent().contains("cdc-4K would store 512 KiB"));

        // a tie between fixed and aligned: aligned, the default layout (no --whole-disk)
        doc = parse(HtmlReport.render(strategies(new Object[] {"fixed-16384", "fixed", 16384, 9L << 20, 5L << 20},
                new Object[] {"aligned-16384", "aligned", 16384, 9L << 20, 5L << 20})), false);
        assertEquals("cask import --block-size 16K IMAGE-FILE NAME", byId(doc, "recommendation-command").getTextContent());
    }

    @Test
    void theFooterHasTheDateWithItsZoneAndTheCaskVersion() throws Exception {
        var by = new HtmlReport.Provenance("cask 9.8.7-test",
                java.time.ZonedDateTime.of(2025, 6, 1, 12, 34, 56, 789_000_000, java.time.ZoneId.of("Europe/Paris")));
        for (JsonNode d : List.of(blocksDocument(), filesDocument())) {
            Document doc = parse(HtmlReport.render(d, by), false);
            Element footer = byId(doc, "footer");
            assertEquals("footer", footer.getTagName());
            assertEquals("cask 9.8.7-test", byId(doc, "cask-version").getTextContent());
            Element time = byId(doc, "written-at");
            assertEquals("time", time.getTagName());
            assertEquals("2025-06-01T12:34:56+02:00", time.getAttribute("datetime"));
            assertEquals("2025-06-01T12:34:56+02:00", time.getTextContent());
            assertTrue(footer.getTextContent().startsWith("Written by cask 9.8.7-test (cask analyze) on 2025-06-01T12:34:56+02:00."),
                    footer.getTextContent());
        }
    }

    // ---- files -------------------------------------------------------------------------------

    @Test
    void filesReportHasEveryDocumentedElementAndItsNumbers() throws Exception {
        String html = HtmlReport.render(filesDocument());
        checkCommon(html, 2);
        Document doc = parse(html, false);
        assertEquals("p", byId(doc, "summary").getTagName());
        Element trees = byId(doc, "table-trees");
        assertEquals("table", trees.getTagName());
        for (int i = 0; i < TREES.size(); i++) {
            long[] n = TREE_NUMBERS[i];
            String name = TREES.get(i);
            assertEquals(String.format(Locale.ROOT, "%,d", n[0]), cell(trees, name, "files").getTextContent());
            assertBytes(n[1], cell(trees, name, "bytes"));
            assertBytes(n[2], cell(trees, name, "unique"));
            assertBytes(n[1] - n[2], cell(trees, name, "duplicate"));
            assertEquals(String.format(Locale.ROOT, "%.1f %%", 100.0 * (n[1] - n[2]) / n[1]), cell(trees, name, "duplicate share").getTextContent());
            assertEquals(String.format(Locale.ROOT, "%,d", n[3]), cell(trees, name, "hard links").getTextContent());
            assertEquals(String.format(Locale.ROOT, "%,d", n[4]), cell(trees, name, "empty files").getTextContent());
            assertEquals(String.format(Locale.ROOT, "%,d", n[5]), cell(trees, name, "skipped").getTextContent());
            assertEquals("/srv/" + name, cell(trees, name, "source").getTextContent());
        }
        Element c = byId(doc, "table-collection");
        List<Element> cells = xpath(c, "./tbody/tr/td");
        assertEquals("91,207", cells.get(0).getTextContent());
        assertBytes(3_005_070_000L, cells.get(1));
        assertBytes(2_103_000_000L, cells.get(2));
        assertBytes(902_070_000L, cells.get(3));
        assertEquals("30.0 %", cells.get(4).getTextContent());

        Element heat = byId(doc, "heatmap-files");
        assertEquals(9, xpath(heat, ".//*[local-name()='rect' and @class='cell']").size());
        Element growth = byId(doc, "chart-growth");
        assertEquals(2, xpath(growth, ".//*[local-name()='polyline']").size()); // unique, and bytes without dedup
        Element g = byId(doc, "table-growth");
        assertBytes(4_000_000, cell(g, "1", "unique so far"));
        assertBytes(50_000, cell(g, "2", "added by this tree"));
        assertBytes(2_103_000_000L, cell(g, "3", "unique so far"));
        assertBytes(3_005_070_000L, cell(g, "3", "bytes so far"));
    }

    @Test
    void rendersARealFileAnalysis(@TempDir Path dir) throws Exception {
        Path a = dir.resolve("a"), b = dir.resolve(HOSTILE.replace('/', '_'));
        Files.createDirectories(a);
        Files.createDirectories(b);
        Files.writeString(a.resolve("one"), "same content");
        Files.writeString(a.resolve("two"), "same content");
        Files.writeString(b.resolve("three"), "same content");
        Files.writeString(b.resolve("four"), "other content");
        Consumer<String> failOnWarning = w -> { throw new AssertionError(w); };
        FileReport r = FileAnalysis.analyze(List.of(a, b), Progress.NONE, failOnWarning);
        String html = HtmlReport.render(r.toJson(JSON));
        Document doc = parse(html, false);
        assertBytes(24, cell(byId(doc, "table-trees"), "a", "bytes"));
        assertBytes(12, cell(byId(doc, "table-trees"), "a", "unique"));
        assertBytes(25, cell(byId(doc, "table-trees"), b.getFileName().toString(), "unique"));
        assertEquals("0", cell(byId(doc, "table-trees"), "a", "unreadable").getTextContent());
        assertNotNull(byId(doc, "heatmap-files"));
        assertFalse(html.contains("<script>"));
    }

    // ---- validation --------------------------------------------------------------------------

    static String refused(JsonNode d) {
        return assertThrows(CaskException.InvalidInput.class, () -> HtmlReport.render(d)).getMessage();
    }

    @Test
    void malformedDocumentsAreRefusedWithAClearMessage() throws Exception {
        assertTrue(refused(JSON.readTree("[1, 2]")).contains("expected a JSON object, got array"));
        assertTrue(refused(JSON.readTree("{\"images\": []}")).contains("no \"kind\" field; expected \"blocks\" or \"files\""));
        assertTrue(refused(JSON.readTree("{\"kind\": \"chunks\"}")).contains("unknown kind \"chunks\""));
        assertTrue(refused(JSON.readTree("{\"kind\": 7}")).contains("unknown kind \"7\""));
        assertTrue(refused(JSON.readTree("{\"kind\": \"blocks\", \"images\": []}")).contains("no \"strategies\" array"));
        assertTrue(refused(JSON.readTree("{\"kind\": \"files\", \"trees\": []}")).contains("no \"collection\" object"));

        ObjectNode d = blocksDocument();
        ((ObjectNode) d.get("strategies").get(4).get("collection")).put("unique_bytes", "lots");
        String m = refused(d);
        assertTrue(m.contains("strategy \"aligned-16384\": collection: \"unique_bytes\" is not a whole number"), m);

        d = blocksDocument();
        ((ArrayNode) d.get("strategies").get(0).get("overlap")).remove(2);
        m = refused(d);
        assertTrue(m.contains("strategy \"fixed-4096\": \"overlap\" has 2 rows, expected 3 (one per image)"), m);

        d = blocksDocument();
        ((ObjectNode) d.get("strategies").get(1)).remove("block_size");
        assertTrue(refused(d).contains("\"block_size\" must be a positive number"));

        d = blocksDocument();
        ((ObjectNode) d.get("images").get(1)).remove("name");
        assertTrue(refused(d).contains("images[1]: no \"name\""));

        ObjectNode f = filesDocument();
        ((ArrayNode) f.get("overlap").get(1)).add(0.1);
        m = refused(f);
        assertTrue(m.contains("\"overlap\" row 1 has 4 values, expected 3"), m);
    }

    @Test
    void axisTicksAreRoundInBinaryUnits() {
        assertEquals(512L << 20, SvgCharts.niceByteStep(400.0 * (1 << 20)));
        assertEquals(5L << 30, SvgCharts.niceByteStep(4.1 * (1 << 30)));
        assertEquals(1, SvgCharts.niceByteStep(0.2));
        assertEquals("0", SvgCharts.tickBytes(0));
        assertEquals("768 MiB", SvgCharts.tickBytes(768L << 20));
        assertEquals("1 GiB", SvgCharts.tickBytes(1L << 30));
        assertEquals("1.25 GiB", SvgCharts.tickBytes(5L << 28));
        assertEquals("100 KiB", SvgCharts.tickBytes(100 << 10));
        assertEquals("20 B", SvgCharts.tickBytes(20));
    }

    @Test
    void escapeKeepsTextAndDropsWhatXmlForbids() {
        assertEquals("a&amp;b&lt;c&gt;d&quot;e&#39;f", HtmlReport.escape("a&b<c>d\"e'f"));
        assertEquals("x\ufffdy\ufffdz", HtmlReport.escape("x\u0001y\ud800z"));
        assertEquals("\ud83d\ude00 tab\tok", HtmlReport.escape("\ud83d\ude00 tab\tok"));
    }
}
