package dev.cask.analysis;

import dev.cask.analysis.ReportDocument.StrategyEntry;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Which {@code cask import} flags to use, from the strategies a block-level report measured;
 * only layouts import can make are ever recommended.
 *
 * <p>What import can make: {@code aligned-N} (cut at each partition's start, the default) and
 * {@code fixed-N} ({@code --whole-disk}), with {@code --block-size N} a power of two from
 * {@link #MIN_IMPORT_BLOCK} to {@link #MAX_IMPORT_BLOCK}. It does not cut content-defined chunks
 * ({@code cdc-N}) nor blocks of 512 bytes to 2 KiB: those strategies are reported as information
 * only, with what they would have saved.
 *
 * <p>The measure is what the store would keep: the collection's {@code compressed_bytes} (each
 * unique chunk compressed as the store does) when every strategy compared has it, else
 * {@code unique_bytes}. Ties go to {@code aligned} (no extra flag, and the same chunks as
 * {@code fixed} when they tie), then to the larger block (fewer chunks to index). Strategies
 * without the number are left out.
 *
 * <p>Immutable and thread-safe.
 */
record ImportRecommendation(List<Option> importable, List<Option> other, boolean compressed) {
    static final long MIN_IMPORT_BLOCK = 4096, MAX_IMPORT_BLOCK = 1 << 20;

    /** One strategy and the bytes it would store; {@code flags} are its {@code cask import} flags, or null. */
    record Option(StrategyEntry strategy, long storedBytes, String flags) {}

    /** The best importable option, or null when the report measured none. */
    Option best() {
        return importable.isEmpty() ? null : importable.getFirst();
    }

    /** The best option of those import cannot make that matches {@code cdc} (or else the small blocks), or null. */
    Option bestOther(boolean cdc) {
        for (Option o : other) if (o.strategy().kind().equals("cdc") == cdc) return o;
        return null;
    }

    static boolean importable(StrategyEntry s) {
        long n = s.blockSize();
        return (s.kind().equals("aligned") || s.kind().equals("fixed"))
                && Long.bitCount(n) == 1 && n >= MIN_IMPORT_BLOCK && n <= MAX_IMPORT_BLOCK;
    }

    /** The flags that make import lay a disk out as {@code s}, which must be {@link #importable}. */
    static String flags(StrategyEntry s) {
        String size = HtmlPage.shortSize(s.blockSize());
        return s.kind().equals("fixed") ? "--whole-disk --block-size " + size : "--block-size " + size;
    }

    static ImportRecommendation of(List<StrategyEntry> strategies) {
        boolean allCompressed = true, any = false;
        for (StrategyEntry s : strategies) {
            if (s.collection().unique() == null && s.collection().compressed() == null) continue;
            any = true;
            allCompressed &= s.collection().compressed() != null;
        }
        boolean compressed = any && allCompressed;
        List<Option> importable = new ArrayList<>(), other = new ArrayList<>();
        for (StrategyEntry s : strategies) {
            Long v = compressed ? s.collection().compressed() : s.collection().unique();
            if (v == null) continue;
            if (importable(s)) importable.add(new Option(s, v, flags(s)));
            else other.add(new Option(s, v, null));
        }
        Comparator<Option> order = Comparator.comparingLong(Option::storedBytes)
                .thenComparing(o -> o.strategy().kind().equals("aligned") ? 0 : 1)
                .thenComparing(o -> -o.strategy().blockSize());
        importable.sort(order);
        other.sort(order);
        return new ImportRecommendation(List.copyOf(importable), List.copyOf(other), compressed);
    }
}
