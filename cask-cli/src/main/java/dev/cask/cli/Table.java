package dev.cask.cli;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;

/**
 * A text table for listings: every column as wide as its widest cell (header included), two
 * spaces between columns, numbers right-aligned, and the last column never padded (so a long
 * name or message does not drag trailing blanks along). Nothing is cut: a long name widens its
 * column rather than lose characters a user may need to copy.
 */
final class Table {
    private final String[] headers;
    private final boolean[] right;
    private final List<String[]> rows = new ArrayList<>();

    /** Headers; a header starting with '>' names a right-aligned column (the '>' is not shown). */
    Table(String... headers) {
        this.headers = new String[headers.length];
        this.right = new boolean[headers.length];
        for (int i = 0; i < headers.length; i++) {
            right[i] = headers[i].startsWith(">");
            this.headers[i] = right[i] ? headers[i].substring(1) : headers[i];
        }
    }

    Table row(Object... cells) {
        if (cells.length != headers.length) throw new IllegalArgumentException(cells.length + " cells for " + headers.length + " columns");
        String[] r = new String[cells.length];
        for (int i = 0; i < cells.length; i++) r[i] = cells[i] == null ? "-" : cells[i].toString();
        rows.add(r);
        return this;
    }

    /** Prints the header and the rows; nothing at all when there are no rows. */
    void print(PrintWriter out) {
        if (rows.isEmpty()) return;
        int[] width = new int[headers.length];
        for (int i = 0; i < headers.length; i++) width[i] = headers[i].length();
        for (String[] r : rows) for (int i = 0; i < r.length; i++) width[i] = Math.max(width[i], r[i].length());
        line(out, headers, width);
        for (String[] r : rows) line(out, r, width);
    }

    private void line(PrintWriter out, String[] cells, int[] width) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < cells.length; i++) {
            if (i > 0) sb.append("  ");
            boolean last = i == cells.length - 1;
            int pad = width[i] - cells[i].length();
            if (right[i]) sb.append(" ".repeat(pad)).append(cells[i]);
            else sb.append(cells[i]).append(last ? "" : " ".repeat(pad));
        }
        out.println(sb);
    }
}
