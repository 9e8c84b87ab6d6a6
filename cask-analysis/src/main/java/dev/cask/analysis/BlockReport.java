package dev.cask.analysis;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.List;

/**
 * The result of a block-level analysis ({@link BlockAnalysis}) and its JSON form, which the CLI
 * prints with {@code --json} and the HTML report renders ({@code "kind": "blocks"}).
 *
 * <p><b>Definitions</b>, per strategy (all in bytes):
 * <ul>
 *   <li>{@code logical_bytes}: disk sizes (the sum of every chunk's size).
 *   <li>{@code zero_bytes}: bytes in chunks that are all zeros (holes count as zero);
 *       {@code nonzero_bytes = logical_bytes - zero_bytes}.
 *   <li>{@code unique_bytes}: sum of the sizes of the distinct non-zero chunks: distinct within the
 *       image for {@code per_image}, across all images for {@code collection}.
 *   <li>{@code internal_duplicate_bytes} (per image) {@code = nonzero_bytes - unique_bytes}: what
 *       deduplication inside that image alone saves.
 *   <li>{@code dedup_ratio} (collection) {@code = nonzero_bytes / unique_bytes} (1.0 when there is
 *       no non-zero data).
 *   <li>{@code overlap[i][j]}: bytes of distinct non-zero chunks present in both images i and j,
 *       divided by bytes of those present in i or j (byte-weighted Jaccard); 1.0 on the diagonal,
 *       0.0 when both images hold no non-zero data.
 *   <li>{@code growth[k]}: collection {@code unique_bytes} (and {@code compressed_bytes}) after
 *       images 0..k, in the order given.
 *   <li>{@code compressed_bytes}: the collection's distinct non-zero chunks, each compressed on its
 *       own with zstd level 1 (as the store writes chunks), the raw size when that does not pay.
 *   <li>{@code chunks}: every chunk cut, zero ones included ({@code zero_chunks} of them);
 *       {@code unique_chunks}: the distinct non-zero ones.
 * </ul>
 * Immutable (the arrays are not copied: do not change them).
 */
public record BlockReport(List<ImageInfo> images, List<Integer> blockSizes, List<StrategyResult> strategies,
                          double seconds) {

    /** A partition found on an image (byte offset and length); kind is "mbr" or "gpt", type the table's words. */
    public record Partition(long offset, long length, String kind, String type) {}

    /**
     * One analysed image. {@code partitionError} is null unless the partition table could not be
     * read (then {@code aligned-N} cut the whole disk like {@code fixed-N}).
     */
    public record ImageInfo(String name, String source, String format, long logicalBytes, List<Partition> partitions,
                            String partitionError) {}

    public record Totals(long logicalBytes, long zeroBytes, long uniqueBytes, long compressedBytes, long chunks,
                         long zeroChunks, long uniqueChunks) {
        public long nonzeroBytes() {
            return logicalBytes - zeroBytes;
        }

        public double dedupRatio() {
            return uniqueBytes == 0 ? 1.0 : (double) nonzeroBytes() / uniqueBytes;
        }
    }

    public record ImageTotals(String name, long logicalBytes, long zeroBytes, long uniqueBytes, long chunks,
                              long zeroChunks, long uniqueChunks) {
        public long nonzeroBytes() {
            return logicalBytes - zeroBytes;
        }

        public long internalDuplicateBytes() {
            return nonzeroBytes() - uniqueBytes;
        }
    }

    public record Growth(String image, long uniqueBytes, long compressedBytes) {}

    /**
     * One strategy's numbers. For cdc, {@code minChunk}/{@code maxChunk} are FastCDC's bounds and
     * {@code zeroChunk} the size zero runs are cut into; for fixed and aligned all three are N.
     */
    public record StrategyResult(Strategy strategy, int minChunk, int maxChunk, int zeroChunk, Totals collection,
                                 List<ImageTotals> perImage, double[][] overlap, List<Growth> growth,
                                 long tableBytes) {
        public String name() {
            return strategy.name();
        }
    }

    /** The result for one strategy, or null. */
    public StrategyResult strategy(String name) {
        for (StrategyResult s : strategies) if (s.name().equals(name)) return s;
        return null;
    }

    /** The JSON document described in the class comment (field names in snake_case). */
    public ObjectNode toJson() {
        JsonNodeFactory f = JsonNodeFactory.instance;
        ObjectNode root = f.objectNode();
        root.put("kind", "blocks");
        ArrayNode imgs = root.putArray("images");
        for (ImageInfo i : images) {
            ObjectNode o = imgs.addObject();
            o.put("name", i.name());
            o.put("source", i.source());
            o.put("format", i.format());
            o.put("logical_bytes", i.logicalBytes());
            ArrayNode parts = o.putArray("partitions");
            for (Partition p : i.partitions()) {
                ObjectNode po = parts.addObject();
                po.put("offset", p.offset());
                po.put("length", p.length());
                po.put("kind", p.kind());
                po.put("type", p.type());
            }
            if (i.partitionError() != null) o.put("partition_error", i.partitionError());
        }
        ArrayNode sizes = root.putArray("block_sizes");
        for (int bs : blockSizes) sizes.add(bs);
        root.put("fingerprint", "sha256-64");
        root.put("compression", "zstd-1 per chunk");
        root.put("seconds", Math.round(seconds * 1000) / 1000.0);
        ArrayNode strats = root.putArray("strategies");
        for (StrategyResult s : strategies) {
            ObjectNode o = strats.addObject();
            o.put("name", s.name());
            o.put("kind", s.strategy().kind().label());
            o.put("block_size", s.strategy().blockSize());
            o.put("min_chunk", s.minChunk());
            o.put("max_chunk", s.maxChunk());
            o.put("zero_chunk", s.zeroChunk());
            Totals c = s.collection();
            ObjectNode co = o.putObject("collection");
            co.put("logical_bytes", c.logicalBytes());
            co.put("zero_bytes", c.zeroBytes());
            co.put("nonzero_bytes", c.nonzeroBytes());
            co.put("unique_bytes", c.uniqueBytes());
            co.put("compressed_bytes", c.compressedBytes());
            co.put("chunks", c.chunks());
            co.put("zero_chunks", c.zeroChunks());
            co.put("unique_chunks", c.uniqueChunks());
            co.put("dedup_ratio", c.dedupRatio());
            ArrayNode per = o.putArray("per_image");
            for (ImageTotals t : s.perImage()) {
                ObjectNode po = per.addObject();
                po.put("name", t.name());
                po.put("logical_bytes", t.logicalBytes());
                po.put("zero_bytes", t.zeroBytes());
                po.put("nonzero_bytes", t.nonzeroBytes());
                po.put("unique_bytes", t.uniqueBytes());
                po.put("internal_duplicate_bytes", t.internalDuplicateBytes());
                po.put("chunks", t.chunks());
                po.put("zero_chunks", t.zeroChunks());
                po.put("unique_chunks", t.uniqueChunks());
            }
            ArrayNode ov = o.putArray("overlap");
            for (double[] row : s.overlap()) {
                ArrayNode r = ov.addArray();
                for (double v : row) r.add(v);
            }
            ArrayNode gr = o.putArray("growth");
            for (Growth g : s.growth()) {
                ObjectNode go = gr.addObject();
                go.put("image", g.image());
                go.put("unique_bytes", g.uniqueBytes());
                go.put("compressed_bytes", g.compressedBytes());
            }
            o.put("table_bytes", s.tableBytes());
        }
        return root;
    }
}
