package dev.cask.analysis;

import com.fasterxml.jackson.databind.JsonNode;
import dev.cask.common.CaskException;

import java.util.ArrayList;
import java.util.List;

/**
 * The two analysis documents {@link HtmlReport} renders, read from their JSON and validated:
 * {@code "kind":"blocks"} ({@link BlockReport#toJson}) and {@code "kind":"files"}
 * ({@link FileReport#toJson}). Missing optional numbers are null; a missing required field, a
 * value of the wrong type or an overlap matrix of the wrong size is refused with
 * {@link CaskException.InvalidInput} naming the field. Extra fields are ignored.
 *
 * <p>Stateless; the records are immutable but for the matrices (do not change them).
 */
final class ReportDocument {
    private ReportDocument() {}

    record Image(String name, String source, String format, Long logicalBytes, Integer partitions) {}

    /** Collection numbers ({@code name} null) or one image's numbers of a strategy. */
    record BlockNumbers(String name, Long logical, Long zero, Long nonzero, Long unique, Long compressed,
                        Long internalDuplicate, Long chunks, Long uniqueChunks, Double dedupRatio) {}

    record Step(String name, long uniqueBytes) {}

    record StrategyEntry(String name, String kind, long blockSize, BlockNumbers collection, List<BlockNumbers> perImage,
                    double[][] overlap, List<Step> growth) {}

    record BlocksDocument(List<Image> images, List<StrategyEntry> strategies) {}

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
        List<StrategyEntry> strategies = new ArrayList<>();
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
            strategies.add(new StrategyEntry(name, kind, blockSize, collection, perImage, overlap,
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
}
