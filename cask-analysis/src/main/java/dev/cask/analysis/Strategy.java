package dev.cask.analysis;

import dev.cask.common.CaskException;
import dev.cask.common.Sizes;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;

/**
 * One way of cutting a disk into chunks, at one block size: what {@link BlockAnalysis} measures.
 *
 * <ul>
 *   <li>{@code fixed-N}: chunks of N bytes at multiples of N from disk offset 0; the last chunk
 *       of the disk may be shorter.
 *   <li>{@code aligned-N}: the disk is first split at every partition boundary (start and end of
 *       each MBR or GPT partition), giving the table and gaps as segments of their own; each
 *       segment is cut at multiples of N from its own start, so its last chunk may be shorter.
 *       This is how an import lays out a disk: the same file system at sector 63 and at sector
 *       2048 gives the same chunks. Without a partition table it is {@code fixed-N}.
 *   <li>{@code cdc-N}: content-defined chunks over the whole disk (FastCDC with normalized
 *       chunking, nominal average N; see {@link FastCdc} for the minimum and maximum sizes).
 * </ul>
 *
 * Block sizes are powers of two from 512 bytes to 1 MiB. Immutable.
 */
public record Strategy(Kind kind, int blockSize) {
    public static final int MIN_BLOCK = 512;
    public static final int MAX_BLOCK = 1 << 20;
    public static final String DEFAULT_BLOCK_SIZES = "512,1K,4K,8K,16K,64K";
    public static final String DEFAULT_KINDS = "fixed,aligned,cdc";

    public enum Kind {
        FIXED, ALIGNED, CDC;

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    public Strategy {
        checkBlockSize(blockSize);
    }

    /** {@code fixed-4096}, {@code aligned-512}, {@code cdc-16384}. */
    public String name() {
        return kind.label() + "-" + blockSize;
    }

    /** Largest chunk this strategy can cut. */
    public int maxChunk() {
        return kind == Kind.CDC ? FastCdc.maxSize(blockSize) : blockSize;
    }

    public static void checkBlockSize(long n) {
        if (n < MIN_BLOCK || n > MAX_BLOCK || Long.bitCount(n) != 1) {
            throw new CaskException.InvalidInput("block size " + n + ": must be a power of two from 512 to 1M");
        }
    }

    /** Parses {@code 512,1K,4K}: sorted ascending, duplicates dropped; a bad size names itself. */
    public static List<Integer> parseBlockSizes(String text) {
        TreeSet<Integer> out = new TreeSet<>();
        for (String part : text.split(",")) {
            String p = part.trim();
            if (p.isEmpty()) continue;
            long n;
            try {
                n = Sizes.parse(p);
            } catch (CaskException e) {
                throw new CaskException.InvalidInput("block size '" + p + "': not a size (e.g. 512, 4K, 1M)");
            }
            if (n < MIN_BLOCK || n > MAX_BLOCK || Long.bitCount(n) != 1) {
                throw new CaskException.InvalidInput("block size '" + p + "': must be a power of two from 512 to 1M");
            }
            out.add((int) n);
        }
        if (out.isEmpty()) throw new CaskException.InvalidInput("block sizes '" + text + "': none given");
        return List.copyOf(out);
    }

    /** Parses {@code fixed,aligned,cdc} in that canonical order; an unknown name names itself. */
    public static List<Kind> parseKinds(String text) {
        TreeSet<Kind> out = new TreeSet<>();
        for (String part : text.split(",")) {
            String p = part.trim().toLowerCase(Locale.ROOT);
            if (p.isEmpty()) continue;
            try {
                out.add(Kind.valueOf(p.toUpperCase(Locale.ROOT)));
            } catch (IllegalArgumentException e) {
                throw new CaskException.InvalidInput("strategy '" + part.trim() + "': unknown (known: fixed, aligned, cdc)");
            }
        }
        if (out.isEmpty()) throw new CaskException.InvalidInput("strategies '" + text + "': none given");
        return List.copyOf(out);
    }

    /** Every kind at every block size, grouped by kind then ascending size (the report's order). */
    public static List<Strategy> all(List<Kind> kinds, List<Integer> blockSizes) {
        List<Strategy> out = new ArrayList<>();
        for (Kind k : kinds) for (int bs : blockSizes) out.add(new Strategy(k, bs));
        return out;
    }
}
