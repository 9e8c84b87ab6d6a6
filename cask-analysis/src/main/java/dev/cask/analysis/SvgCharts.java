package dev.cask.analysis;

import java.util.List;
import java.util.Locale;

import static dev.cask.analysis.HtmlReport.escape;

/**
 * The two charts of {@link HtmlReport}, drawn as inline SVG in Java: a line chart of byte
 * counts (several series, a legend, a tooltip per point) and a heat map of a square matrix of
 * values in [0, 1] (names on both axes, the value written in each cell, a color scale).
 *
 * <p>Output is well-formed XML (every attribute quoted, every text escaped with
 * {@link HtmlReport#escape}, no entity but the five of XML), so each {@code <svg>} parses on its
 * own and the page parses as XHTML. The only URL is the SVG namespace. A linear y axis of the
 * line chart starts at zero, with ticks at 1, 2 or 5 times a power of 1024 bytes, at most six.
 *
 * <p>Stateless; all methods are pure functions of their arguments and thread-safe.
 */
final class SvgCharts {
    private SvgCharts() {}

    static final String SVG_NS = "http://www.w3.org/2000/svg";

    /** A point; {@code title} is its tooltip. */
    record Point(double x, long y, String title) {}

    /** How a series' points are marked: a shape each, so series stay apart without colour (print, colour blindness). */
    enum Marker { CIRCLE, SQUARE, TRIANGLE, DIAMOND }

    /**
     * One line: {@code dash} is an SVG {@code stroke-dasharray} ({@code null}: solid), {@code label}
     * is what the legend says and {@code data-series} holds.
     */
    record Series(String label, String color, String dash, Marker marker, List<Point> points) {
        /** A solid or dashed ({@code 6 4}) series marked with circles. */
        Series(String label, String color, boolean dashed, List<Point> points) {
            this(label, color, dashed ? "6 4" : null, Marker.CIRCLE, points);
        }
    }

    record Tick(double at, String label) {}

    /** The x axis: its range, its ticks, and whether tick labels are long names (drawn slanted). */
    record XAxis(double min, double max, List<Tick> ticks, boolean slanted, String title) {}

    static final int WIDTH = 900, LEFT = 84, TOP = 16, PLOT_HEIGHT = 280, LEGEND_WIDTH = 270, LEGEND_ROW = 18;
    /** Characters of a legend line that fit in {@link #LEGEND_WIDTH} at 11 px. */
    static final int LEGEND_CHARS = 36;
    /** Slanted name labels: their angle, font size and longest text (code points). */
    static final double SLANT_DEGREES = 40, LABEL_FONT = 11;
    static final int LABEL_CHARS = 28;
    /** Below this ratio of the smallest series maximum to the largest, the y axis is logarithmic. */
    static final double LOG_SCALE_BELOW = 0.1;
    /** The dash a series gets when it is drawn over another with the same points, so the one below shows through. */
    static final String OVER_TWIN_DASH = "3 5";

    /**
     * A line chart of bytes (y) against {@code x}; {@code id} goes on the {@code <svg>} element.
     *
     * <p>The y axis is linear from zero, in one binary unit named in its title ({@code bytes
     * (GiB)}), unless one series dwarfs another (its largest value under {@link #LOG_SCALE_BELOW} of
     * the largest): then it is logarithmic (base 2, ticks at powers of 4 in binary units) and its
     * title says so. A series whose points are exactly those of a later one would be hidden under
     * it: it is drawn last, with the {@link #OVER_TWIN_DASH} dash and hollow markers, and its legend
     * says {@code (same as LABEL)}. Slanted names on the x axis are thinned out (every k-th) so that
     * no two overlap.
     */
    static String lineChart(String id, String caption, XAxis x, String yTitle, List<Series> series) {
        int x0 = LEFT, x1 = WIDTH - LEGEND_WIDTH - 24, y0 = TOP, y1 = TOP + PLOT_HEIGHT;
        int bottom = x.slanted() ? 140 : 52;
        long yMax = 0;
        long smallestMax = Long.MAX_VALUE, minPositive = Long.MAX_VALUE;
        boolean any = false;
        for (Series s : series) {
            long m = 0;
            for (Point p : s.points()) {
                m = Math.max(m, p.y());
                if (p.y() > 0) minPositive = Math.min(minPositive, p.y());
                any = true;
            }
            if (!s.points().isEmpty()) smallestMax = Math.min(smallestMax, m);
            yMax = Math.max(yMax, m);
        }
        YScale scale = any && smallestMax > 0 && smallestMax < LOG_SCALE_BELOW * yMax
                ? YScale.log(minPositive, yMax, y0, y1) : YScale.linear(yMax, y0, y1);

        // twins: series i drawn over the last later series with the same points
        int[] twinOf = new int[series.size()];
        for (int i = 0; i < series.size(); i++) {
            twinOf[i] = -1;
            for (int j = series.size() - 1; j > i; j--) {
                if (!series.get(i).points().isEmpty() && samePoints(series.get(i).points(), series.get(j).points())) {
                    twinOf[i] = j;
                    break;
                }
            }
        }

        // legend lines: a label too long for the legend's width puts its "(same as X)" on a second line
        List<List<String>> legend = new java.util.ArrayList<>();
        int legendRows = 0;
        for (int i = 0; i < series.size(); i++) {
            String label = series.get(i).label(), same = twinOf[i] >= 0 ? "(same as " + series.get(twinOf[i]).label() + ")" : null;
            List<String> lines = same == null ? List.of(shorten(label, LEGEND_CHARS))
                    : (label + " " + same).length() <= LEGEND_CHARS ? List.of(label + " " + same)
                    : List.of(shorten(label, LEGEND_CHARS), shorten(same, LEGEND_CHARS));
            legend.add(lines);
            legendRows += lines.size();
        }
        int height = Math.max(y1 + bottom, TOP + legendRows * LEGEND_ROW + 24);

        StringBuilder sb = new StringBuilder();
        open(sb, id, "chart line-chart", WIDTH, height, caption);
        // grid and y axis
        sb.append("<g class=\"axis y-axis\" data-scale=\"").append(scale.log ? "log" : "linear").append("\">");
        sb.append(fmt("<line class=\"axis-line\" stroke=\"#888888\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", x0, y0, x0, y1));
        for (int t = 0; t < scale.ticks.length; t++) {
            double py = scale.y(scale.ticks[t]);
            sb.append(fmt("<line class=\"grid\" stroke=\"#e6e6e6\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", x0, py, x1, py));
            sb.append(fmt("<line class=\"tick\" stroke=\"#888888\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", x0 - 5, py, x0, py));
            sb.append(fmt("<text class=\"tick-label\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">", x0 - 8, py))
                    .append(escape(scale.labels[t])).append("</text>");
        }
        sb.append(fmt("<text class=\"axis-title\" font-size=\"12\" fill=\"#555555\" transform=\"rotate(-90 14 %d)\" x=\"14\" y=\"%d\" text-anchor=\"middle\">",
                (y0 + y1) / 2, (y0 + y1) / 2)).append(escape(yTitle + " (" + scale.unitTitle + ")")).append("</text></g>");
        // x axis
        sb.append("<g class=\"axis x-axis\">");
        sb.append(fmt("<line class=\"axis-line\" stroke=\"#888888\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", x0, y1, x1, y1));
        int every = x.slanted() ? labelStride(x, x0, x1) : 1;
        for (int t = 0; t < x.ticks().size(); t++) {
            Tick tick = x.ticks().get(t);
            double px = xPos(x, tick.at(), x0, x1);
            sb.append(fmt("<line class=\"tick\" stroke=\"#888888\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", px, y1, px, y1 + 5));
            if (t % every != 0) continue;
            if (x.slanted()) {
                sb.append(fmt("<text class=\"tick-label\" transform=\"rotate(-%.0f %.1f %d)\" x=\"%.1f\" y=\"%d\" text-anchor=\"end\">",
                        SLANT_DEGREES, px, y1 + 14, px, y1 + 14));
                sb.append(escape(shorten(tick.label(), LABEL_CHARS))).append("<title>").append(escape(tick.label())).append("</title>");
            } else {
                sb.append(fmt("<text class=\"tick-label\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", px, y1 + 18)).append(escape(tick.label()));
            }
            sb.append("</text>");
        }
        sb.append(fmt("<text class=\"axis-title\" font-size=\"12\" fill=\"#555555\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">", (x0 + x1) / 2, height - 8))
                .append(escape(x.title())).append("</text></g>");
        // series: those drawn over a twin go last
        List<Integer> order = new java.util.ArrayList<>();
        for (int i = 0; i < series.size(); i++) if (twinOf[i] < 0) order.add(i);
        for (int i = 0; i < series.size(); i++) if (twinOf[i] >= 0) order.add(i);
        for (int i : order) {
            Series s = series.get(i);
            boolean over = twinOf[i] >= 0;
            String dash = over ? OVER_TWIN_DASH : s.dash();
            sb.append("<g class=\"series\" data-series=\"").append(escape(s.label())).append("\"");
            if (over) sb.append(" data-same-as=\"").append(escape(series.get(twinOf[i]).label())).append("\"");
            sb.append(">");
            if (!s.points().isEmpty()) {
                sb.append("<polyline fill=\"none\" stroke=\"").append(s.color()).append("\" stroke-width=\"2\"");
                if (dash != null) sb.append(" stroke-dasharray=\"").append(dash).append("\"");
                sb.append(" points=\"");
                for (Point p : s.points()) sb.append(fmt("%.1f,%.1f ", xPos(x, p.x(), x0, x1), scale.y(p.y())));
                sb.setLength(sb.length() - 1);
                sb.append("\"/>");
                for (Point p : s.points()) {
                    marker(sb, s.marker(), xPos(x, p.x(), x0, x1), scale.y(p.y()), s.color(), over, p.title());
                }
            }
            sb.append("</g>");
        }
        if (!any) {
            sb.append(fmt("<text class=\"no-data\" font-size=\"14\" fill=\"#999999\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">no data</text>",
                    (x0 + x1) / 2, (y0 + y1) / 2));
        }
        // legend
        sb.append("<g class=\"legend\">");
        int lx = WIDTH - LEGEND_WIDTH;
        int row = 0;
        for (int i = 0; i < series.size(); i++) {
            Series s = series.get(i);
            boolean over = twinOf[i] >= 0;
            String dash = over ? OVER_TWIN_DASH : s.dash();
            int ly = TOP + 8 + row * LEGEND_ROW;
            row += legend.get(i).size();
            sb.append(fmt("<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>",
                    lx, ly, lx + 28, ly, s.color(), dash == null ? "" : " stroke-dasharray=\"" + dash + "\""));
            marker(sb, s.marker(), lx + 14, ly, s.color(), over, null);
            String label = s.label() + (over ? " (same as " + series.get(twinOf[i]).label() + ")" : "");
            sb.append(fmt("<text class=\"legend-label\" x=\"%d\" y=\"%d\" dominant-baseline=\"middle\">", lx + 34, ly))
                    .append(escape(legend.get(i).getFirst()));
            if (legend.get(i).size() > 1) {
                sb.append(fmt("<tspan x=\"%d\" dy=\"%d\">", lx + 34, LEGEND_ROW)).append(escape(legend.get(i).get(1))).append("</tspan>");
            }
            sb.append("<title>").append(escape(label)).append("</title></text>");
        }
        sb.append("</g></svg>\n");
        return sb.toString();
    }

    private static boolean samePoints(List<Point> a, List<Point> b) {
        if (a.size() != b.size()) return false;
        for (int i = 0; i < a.size(); i++) {
            if (a.get(i).x() != b.get(i).x() || a.get(i).y() != b.get(i).y()) return false;
        }
        return true;
    }

    /** Draws one marker; hollow ones are larger, so a filled one under them stays visible. */
    private static void marker(StringBuilder sb, Marker m, double cx, double cy, String color, boolean hollow, String title) {
        double r = hollow ? 5.5 : 3.5;
        String paint = hollow ? "fill=\"#ffffff\" fill-opacity=\"0\" stroke=\"" + color + "\" stroke-width=\"1.6\""
                : "fill=\"" + color + "\"";
        String cls = title == null ? "legend-marker" : "point";
        switch (m) {
            case CIRCLE -> sb.append(fmt("<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" %s>", cls, cx, cy, r, paint));
            case SQUARE -> sb.append(fmt("<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" %s>",
                    cls, cx - r, cy - r, 2 * r, 2 * r, paint));
            case TRIANGLE -> sb.append(fmt("<polygon class=\"%s\" points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" %s>", cls,
                    cx, cy - 1.3 * r, cx - 1.2 * r, cy + 0.8 * r, cx + 1.2 * r, cy + 0.8 * r, paint));
            case DIAMOND -> sb.append(fmt("<polygon class=\"%s\" points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" %s>", cls,
                    cx, cy - 1.3 * r, cx + 1.3 * r, cy, cx, cy + 1.3 * r, cx - 1.3 * r, cy, paint));
        }
        if (title != null) sb.append("<title>").append(escape(title)).append("</title>");
        sb.append(switch (m) {
            case CIRCLE -> "</circle>";
            case SQUARE -> "</rect>";
            case TRIANGLE, DIAMOND -> "</polygon>";
        });
    }

    /**
     * Every how many ticks a slanted label is drawn: two neighbours {@code d} apart along the axis
     * are {@code d sin(angle)} apart across their text, which must be at least the font size and
     * a little air.
     */
    static int labelStride(XAxis x, int x0, int x1) {
        if (x.ticks().size() < 2) return 1;
        double d = Math.abs(xPos(x, x.ticks().get(1).at(), x0, x1) - xPos(x, x.ticks().get(0).at(), x0, x1));
        double across = d * Math.sin(Math.toRadians(SLANT_DEGREES));
        return Math.max(1, (int) Math.ceil((LABEL_FONT + 3) / Math.max(0.001, across)));
    }

    /** The y axis: a linear one from zero in one unit, or a log2 one; ticks with their labels. */
    private static final class YScale {
        final boolean log;
        final double lo, hi;
        final int y0, y1;
        final long[] ticks;
        final String[] labels;
        final String unitTitle;

        private YScale(boolean log, double lo, double hi, int y0, int y1, long[] ticks, String[] labels, String unitTitle) {
            this.log = log;
            this.lo = lo;
            this.hi = hi;
            this.y0 = y0;
            this.y1 = y1;
            this.ticks = ticks;
            this.labels = labels;
            this.unitTitle = unitTitle;
        }

        static YScale linear(long yMax, int y0, int y1) {
            long step = niceByteStep(Math.max(1, yMax) / 5.0);
            long top = Math.max(step, step * (long) Math.ceil((double) yMax / step));
            int k = unitIndex(top);
            int n = (int) (top / step) + 1;
            long[] ticks = new long[n];
            String[] labels = new String[n];
            for (int i = 0; i < n; i++) {
                ticks[i] = i * step;
                labels[i] = inUnit(ticks[i], k);
            }
            return new YScale(false, 0, top, y0, y1, ticks, labels, UNITS[k]);
        }

        /** From the power of 4 at or below {@code min} to the one at or above {@code max}. */
        static YScale log(long min, long max, int y0, int y1) {
            int a = (int) Math.floor(Math.log(min) / Math.log(4)), b = (int) Math.ceil(Math.log(max) / Math.log(4));
            if (b <= a) b = a + 1;
            long[] ticks = new long[b - a + 1];
            String[] labels = new String[ticks.length];
            for (int i = 0; i < ticks.length; i++) {
                ticks[i] = 1L << (2 * (a + i));
                labels[i] = tickBytes(ticks[i]);
            }
            return new YScale(true, 2.0 * a, 2.0 * b, y0, y1, ticks, labels, "log scale");
        }

        double y(long v) {
            double f = log ? ((v <= 0 ? lo : Math.max(lo, Math.log(v) / Math.log(2))) - lo) / (hi - lo) : v / hi;
            return y1 - f * (y1 - y0);
        }
    }

    static double xPos(XAxis x, double v, int x0, int x1) {
        if (x.max() <= x.min()) return (x0 + x1) / 2.0;
        double pad = x.slanted() ? 64 : 16; // room on the left for the first slanted label
        return x0 + pad + (v - x.min()) / (x.max() - x.min()) * (x1 - x0 - 2 * pad);
    }

    static final String[] UNITS = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

    /** The largest binary unit (index into {@link #UNITS}) not above {@code v}; bytes for 0. */
    static int unitIndex(long v) {
        int k = 0;
        while (k < 6 && v >= (1L << (10 * (k + 1)))) k++;
        return k;
    }

    /** {@code v} in unit {@code k}, at most two decimals, no unit: {@code 0}, {@code 0.25}, {@code 768}. */
    static String inUnit(long v, int k) {
        if (v == 0) return "0";
        return String.format(Locale.ROOT, "%.2f", (double) v / (1L << (10 * k))).replaceAll("\\.?0+$", "");
    }

    /**
     * A heat map of {@code values} (square, one row and one column per name; NaN shows as
     * grey with a dash). Every cell is a {@code <rect class="cell">} with a tooltip naming the
     * row, the column and the value, followed by the value as text.
     */
    static String heatMap(String id, String caption, List<String> names, double[][] values) {
        int n = names.size();
        int cell = Math.max(16, Math.min(56, 480 / Math.max(1, n)));
        int longest = 1;
        for (String name : names) longest = Math.max(longest, Math.min(24, name.codePointCount(0, name.length())));
        int left = 16 + (int) (longest * 6.6);
        int top = 16 + (int) (longest * 6.6 * 0.72);
        int grid = n * cell;
        int legendX = left + grid + 24, barHeight = Math.max(120, grid);
        int width = legendX + 70, height = top + Math.max(grid, barHeight) + 16;
        double font = Math.min(12, cell / 3.2);

        StringBuilder sb = new StringBuilder();
        open(sb, id, "chart heat-map", width, height, caption);
        String gradient = id + "-scale";
        sb.append("<defs><linearGradient id=\"").append(escape(gradient)).append("\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
        for (int i = 0; i <= 4; i++) {
            sb.append(fmt("<stop offset=\"%.2f\" stop-color=\"%s\"/>", i / 4.0, color(i / 4.0)));
        }
        sb.append("</linearGradient></defs>");
        sb.append("<g class=\"labels\">");
        for (int i = 0; i < n; i++) {
            String name = names.get(i);
            double cy = top + i * cell + cell / 2.0;
            sb.append(fmt("<text class=\"row-label\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">",
                    left - 6, cy)).append(escape(shorten(name, 24)))
                    .append("<title>").append(escape(name)).append("</title></text>");
            double cx = left + i * cell + cell / 2.0;
            sb.append(fmt("<text class=\"column-label\" transform=\"rotate(-45 %.1f %d)\" x=\"%.1f\" y=\"%d\">",
                    cx, top - 6, cx, top - 6)).append(escape(shorten(name, 24)))
                    .append("<title>").append(escape(name)).append("</title></text>");
        }
        sb.append("</g><g class=\"cells\">");
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double v = values[i][j];
                boolean known = !Double.isNaN(v);
                String text = known ? String.format(Locale.ROOT, "%.2f", v) : "\u2013";
                int x = left + j * cell, y = top + i * cell;
                sb.append(fmt("<rect class=\"cell\" stroke=\"#ffffff\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\">",
                        x, y, cell, cell, known ? color(v) : "#dddddd"));
                sb.append("<title>").append(escape(names.get(i) + " \u00d7 " + names.get(j) + ": "
                        + (known ? String.format(Locale.ROOT, "%.4f", v) : "unknown"))).append("</title></rect>");
                sb.append(fmt("<text class=\"cell-value\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                                + "dominant-baseline=\"middle\" font-size=\"%.1f\" fill=\"%s\">",
                        x + cell / 2.0, y + cell / 2.0, font, known && v > 0.55 ? "#ffffff" : "#111111"))
                        .append(text).append("</text>");
            }
        }
        sb.append("</g><g class=\"legend\">");
        sb.append(fmt("<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"%d\" fill=\"url(#%s)\"/>",
                legendX, top, barHeight, escape(gradient)));
        for (int i = 0; i <= 2; i++) {
            double v = i / 2.0;
            sb.append(fmt("<text x=\"%d\" y=\"%.1f\" dominant-baseline=\"middle\">%s</text>",
                    legendX + 22, top + barHeight - v * barHeight, i == 1 ? "0.5" : i == 0 ? "0" : "1"));
        }
        sb.append("</g></svg>\n");
        return sb.toString();
    }

    private static void open(StringBuilder sb, String id, String cls, int width, int height, String caption) {
        sb.append("<svg xmlns=\"").append(SVG_NS).append("\" id=\"").append(escape(id)).append("\" class=\"")
                .append(cls).append(fmt("\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
                                + "font-family=\"system-ui, sans-serif\" font-size=\"11\" fill=\"#333333\">",
                        width, height, width, height));
        sb.append("<title>").append(escape(caption)).append("</title>");
    }

    /** Sequential blues from near white (0) to dark blue (1), interpolated between five stops. */
    static String color(double v) {
        int[][] stops = {{0xf7, 0xfb, 0xff}, {0xc6, 0xdb, 0xef}, {0x6b, 0xae, 0xd6}, {0x21, 0x71, 0xb5}, {0x08, 0x30, 0x6b}};
        double t = Math.max(0, Math.min(1, v)) * (stops.length - 1);
        int i = Math.min(stops.length - 2, (int) t);
        double f = t - i;
        StringBuilder sb = new StringBuilder("#");
        for (int c = 0; c < 3; c++) {
            sb.append(String.format(Locale.ROOT, "%02x", (int) Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]))));
        }
        return sb.toString();
    }

    /**
     * The smallest of 1, 2, 5, 10, 20, 50, 100, 256, 512 times a power of 1024 that is at least
     * {@code raw}: steps of 256 and 512 (a quarter and a half of the next unit) keep labels round
     * where they cross into the next unit (768 MiB, 1 GiB, 1.25 GiB).
     */
    static long niceByteStep(double raw) {
        int[] multiples = {1, 2, 5, 10, 20, 50, 100, 256, 512};
        for (int k = 0; k <= 5; k++) {
            long unit = 1L << (10 * k);
            for (int m : multiples) {
                if ((double) m * unit >= raw) return m * unit;
            }
        }
        return 1L << 60;
    }

    /** A tick label in the largest unit not above it, at most two decimals: {@code 0}, {@code 768 MiB}, {@code 1.25 GiB}. */
    static String tickBytes(long v) {
        if (v == 0) return "0";
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        int k = 0;
        while (k < 6 && v >= (1L << (10 * (k + 1)))) k++;
        String n = String.format(Locale.ROOT, "%.2f", (double) v / (1L << (10 * k)));
        n = n.replaceAll("\\.?0+$", "");
        return n + " " + units[k];
    }

    /** At most {@code max} code points, with an ellipsis when cut. */
    static String shorten(String s, int max) {
        if (s.codePointCount(0, s.length()) <= max) return s;
        return s.substring(0, s.offsetByCodePoints(0, max - 1)) + "\u2026";
    }

    private static String fmt(String format, Object... args) {
        return String.format(Locale.ROOT, format, args);
    }
}
