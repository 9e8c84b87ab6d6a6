package dev.cask.store.local;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import dev.cask.common.Pool;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * Chunks into pack records and segments, by the rules of {@code LocalChunkStore}'s "Segments"
 * essay; the one encoder of a local pack file and of an S3 store's pack object, so both hold the
 * same bytes for the same chunks:
 * <ul>
 *   <li>a single chunk of 64 bytes or more is compressed with zstd (level {@code zstdLevel}) when
 *       that saves at least 1/16, else stored plain;
 *   <li>a run of new chunks of one batch is compressed together as one segment (level
 *       {@code segmentLevel}) when that saves at least a quarter; a run that saves less than 1/16
 *       becomes plain records ({@link Run#plain}), one between the two becomes records compressed
 *       one by one ({@link Run#weak}).
 * </ul>
 * Compression runs in the calling thread (an import's workers compress in parallel; a
 * recompression's runs go to a pool through {@link #runs}). Thread-safe: zstd contexts come from
 * pools.
 */
public final class PackEncoder {
    private final Pool<ZstdCompressCtx> compressors;
    private final Pool<ZstdCompressCtx> segmentCompressors;

    public PackEncoder(int zstdLevel, int segmentLevel) {
        this.compressors = new Pool<>(() -> {
            ZstdCompressCtx c = new ZstdCompressCtx();
            c.setLevel(zstdLevel);
            return c;
        });
        this.segmentCompressors = new Pool<>(() -> {
            ZstdCompressCtx c = new ZstdCompressCtx();
            c.setLevel(segmentLevel);
            return c;
        });
    }

    /** The record of chunk {@code id}, {@code data[off, off+len)}: compressed when that saves 1/16. */
    public byte[] record(ChunkId id, byte[] data, int off, int len) {
        return encode(id, data, off, len).bytes();
    }

    /**
     * A record as two parts, its header and {@code body[off, off+len)}, the payload where it
     * already is: the caller's plain bytes, or the array compression wrote. A writer with its own
     * buffer (a local pack) appends both parts and saves a copy and an allocation of the record's
     * size per chunk; {@link #bytes} joins them.
     */
    public record Encoded(byte[] header, byte[] body, int off, int len) {
        /** The record's length in the pack. */
        public int length() {
            return header.length + len;
        }

        /** The record in one array. */
        public byte[] bytes() {
            byte[] out = new byte[length()];
            System.arraycopy(header, 0, out, 0, header.length);
            System.arraycopy(body, off, out, header.length, len);
            return out;
        }
    }

    /** {@link #record(ChunkId, byte[], int, int)} as {@link Encoded} parts. */
    public Encoded encode(ChunkId id, byte[] data, int off, int len) {
        if (len >= 64) {
            byte[] dst = new byte[(int) Zstd.compressBound(len)];
            tried.add(len);
            int n = compressors.with(c -> c.compressByteArray(dst, 0, dst.length, data, off, len));
            if (n < len - len / 16) return new Encoded(PackFormat.recordHeader(id, PackFormat.CODEC_ZSTD, len, dst, 0, n), dst, 0, n);
        }
        return plain(id, data, off, len);
    }

    /** What {@link #segment} made of a run: a segment, or which kind of single records to store instead. */
    public record Run(byte[] segment, boolean plain, boolean weak) {}

    /** A run stored as plain records, uncompressed. */
    private static final Run PLAIN = new Run(null, true, false);

    /**
     * What the runs of one batch said about compression so far, for
     * {@link #segment(ChunkId[], byte[], int[], int, Probe)}. A batch of a checkpoint is
     * consecutive blocks a VM wrote, and data that does not compress comes in long stretches (a
     * guest's compressed or encrypted files, a database of random keys). zstd gives up on such a
     * run only after trying all of it, and that costs as much as compressing (level 1: 12-20 us
     * per 16 KiB run here, about 2 s of the 9 s of CPU a checkpoint of 1 GiB of unique data took,
     * as much as its SHA-256). So after {@link #AFTER} runs in a row that did not compress, a run
     * is first probed: its first chunk alone is compressed (4 us against 12 us for the run, on
     * random bytes) and only if that saves 1/16 is the whole run tried. A run the probe calls
     * incompressible is stored as plain records, as a failed try would have stored it; a run
     * whose first chunk does not compress but the rest does is the price. Measured (session 31):
     * a checkpoint of 1 GiB of unique data spent 0.9 s of CPU in zstd instead of 2.0 (perf), and
     * a sustained write of it ran 15 % faster (bench/results/write-bench-2026-12-06T002440.txt);
     * on three fixture images cut as a checkpoint cuts them (1 MiB batches of 16 KiB runs), 0.26 %
     * more bytes stored and 12 % less handed to zstd (probing every run, without the streak:
     * 0.9 % more bytes). One per batch; not thread-safe.
     */
    public static final class Probe {
        /** Runs in a row that did not compress before the next is probed. */
        static final int AFTER = 2;
        private int incompressible;
        private int probed;
        private int skipped;

        /** Runs probed so far. */
        public int probed() {
            return probed;
        }

        /** Runs the probe stored as plain records without trying them whole. */
        public int skipped() {
            return skipped;
        }
    }

    /** Plain bytes handed to zstd since this encoder was made (every try, also those that did not pay). */
    private final java.util.concurrent.atomic.LongAdder tried = new java.util.concurrent.atomic.LongAdder();

    /** {@link #tried}: what compression cost, in bytes compressed (tests and probes). */
    long triedBytes() {
        return tried.sum();
    }

    /**
     * As {@link #segment(ChunkId[], byte[], int[], int, boolean)} for a checkpoint ({@code fast}),
     * learning from the batch's earlier runs through {@code probe} (see {@link Probe}).
     */
    public Run segment(ChunkId[] ids, byte[] data, int[] offs, int length, Probe probe) {
        if (probe.incompressible >= Probe.AFTER) {
            probe.probed++;
            if (!saves(data, offs[0], length)) {
                probe.skipped++;
                probe.incompressible++;
                return PLAIN;
            }
        }
        Run run = segment(ids, data, offs, length, true);
        probe.incompressible = run.plain() ? probe.incompressible + 1 : 0;
        return run;
    }

    /** Whether zstd at the records' level saves at least 1/16 of {@code data[off, off+len)}. */
    private boolean saves(byte[] data, int off, int len) {
        if (len < 64) return false;
        int bound = (int) Zstd.compressBound(len);
        byte[] dst = dev.cask.common.ByteArrays.take(bound);
        try {
            tried.add(len);
            int n = compressors.with(c -> c.compressByteArray(dst, 0, bound, data, off, len));
            return n < len - len / 16;
        } finally {
            dev.cask.common.ByteArrays.give(dst);
        }
    }

    /**
     * The run of chunks {@code ids}, each {@code length} bytes at {@code data[offs[k]...]}, as one
     * segment if that pays. A segment makes a random read of one chunk decompress all of them
     * (some 100 µs for 64 KiB instead of 10 µs for 4 KiB): worth it for the text and code that
     * compress two to three times, not for data such as a guest's already-compressed files, which
     * barely compresses either way.
     */
    public Run segment(ChunkId[] ids, byte[] data, int[] offs, int length) {
        return segment(ids, data, offs, length, false);
    }

    /**
     * As {@link #segment(ChunkId[], byte[], int[], int)}; with {@code fast}, at the single records'
     * level ({@code zstdLevel}, 1 by default) instead of {@code segmentLevel}: for a checkpoint's
     * short segments (at most 16 KiB), written while a VM waits for room in its journal. On the
     * unique blocks of the fixture images in 64 KiB runs, level 1 compresses 38 % faster than level
     * 3 (417 against 303 MB/s, zstd -b) for 2.6 % more bytes (227.4 against 221.7 MB).
     */
    public Run segment(ChunkId[] ids, byte[] data, int[] offs, int length, boolean fast) {
        Pool<ZstdCompressCtx> pool = fast ? compressors : segmentCompressors;
        int n = ids.length;
        int plainLength = n * length;
        int bound = (int) Zstd.compressBound(plainLength);
        // chunks that sit back to back in data (a checkpoint's or an import's batch, mostly) are
        // compressed where they are; others are first copied together
        boolean together = true;
        for (int k = 1; k < n && together; k++) together = offs[k] == offs[0] + k * length;
        // recycled arrays (old bytes in them; only the lengths asked for are used): zeroing two fresh
        // mebibytes per segment was a quarter of an import's CPU
        byte[] plainBytes = together ? data : dev.cask.common.ByteArrays.take(plainLength);
        int from = together ? offs[0] : 0;
        byte[] dst = dev.cask.common.ByteArrays.take(bound);
        try {
            if (!together) for (int k = 0; k < n; k++) System.arraycopy(data, offs[k], plainBytes, k * length, length);
            tried.add(plainLength);
            int z = pool.with(c -> c.compressByteArray(dst, 0, bound, plainBytes, from, plainLength));
            if (z >= plainLength - plainLength / 16) return new Run(null, true, false);
            if (z > plainLength - plainLength / 4) return new Run(null, false, true);
            // the table's CRCs only for a run that becomes a segment (single records get their own)
            int[] lengths = new int[n];
            int[] crcs = new int[n];
            for (int k = 0; k < n; k++) {
                lengths[k] = length;
                crcs[k] = PackFormat.crc32c(plainBytes, from + k * length, length);
            }
            return new Run(PackFormat.encodeSegment(ids, lengths, crcs, dst, 0, z), false, false);
        } finally {
            if (!together) dev.cask.common.ByteArrays.give(plainBytes);
            dev.cask.common.ByteArrays.give(dst);
        }
    }

    /**
     * The record of chunk {@code id} of a run that {@link #segment} did not make a segment: plain
     * when the run did not save 1/16 ({@link Run#plain}), else compressed alone ({@link #record}).
     */
    public byte[] record(Run run, ChunkId id, byte[] data, int off, int len) {
        return encode(run, id, data, off, len).bytes();
    }

    /** {@link #record(Run, ChunkId, byte[], int, int)} as {@link Encoded} parts. */
    public Encoded encode(Run run, ChunkId id, byte[] data, int off, int len) {
        return run.plain() ? plain(id, data, off, len) : encode(id, data, off, len);
    }

    /**
     * Copies of stored chunks ({@code plains}, their verified plain bytes) as pack pieces, for
     * {@code LocalChunkStore.appendCopies} and {@link Recompressor}: the chunks in their order, cut
     * into runs of equal length of up to {@code segmentBytes} plain bytes each (at least one chunk,
     * at most {@link PackFormat#MAX_SEGMENT_CHUNKS}), each run one segment if {@link #segment}
     * makes one, else its single records (a run of one: its record compressed alone, as a put
     * stores it). The encoding of each run is handed to {@code schedule} ({@code Supplier::get} to
     * do it now, or a pool's submit); its answers, in run order.
     */
    <T> List<T> runs(List<ChunkId> ids, List<byte[]> plains, int segmentBytes, Function<Supplier<List<LocalChunkStore.Verbatim>>, T> schedule) {
        List<T> out = new ArrayList<>();
        for (int i = 0, j; i < ids.size(); i = j) {
            int len = plains.get(i).length;
            int per = len == 0 ? 1 : Math.max(1, Math.min(PackFormat.MAX_SEGMENT_CHUNKS, segmentBytes / len));
            j = i;
            while (j < ids.size() && j - i < per && plains.get(j).length == len) j++;
            List<ChunkId> runIds = ids.subList(i, j);
            List<byte[]> runPlains = plains.subList(i, j);
            out.add(schedule.apply(() -> encodeRun(runIds, runPlains, len)));
        }
        return out;
    }

    /** One run of {@link #runs}: {@code ids}, each {@code len} bytes, as a segment (slots 0, 1, ...) or single records (slot -1). */
    private List<LocalChunkStore.Verbatim> encodeRun(List<ChunkId> ids, List<byte[]> plains, int len) {
        int n = ids.size();
        Run run = null; // a run of one: its record compressed alone
        if (n >= 2) {
            ChunkId[] gids = ids.toArray(ChunkId[]::new);
            byte[] data = new byte[n * len];
            int[] offs = new int[n];
            for (int k = 0; k < n; k++) {
                offs[k] = k * len;
                System.arraycopy(plains.get(k), 0, data, k * len, len);
            }
            run = segment(gids, data, offs, len);
            if (run.segment() != null) {
                int[] slots = new int[n];
                for (int k = 0; k < n; k++) slots[k] = k;
                return List.of(new LocalChunkStore.Verbatim(run.segment(), gids, slots));
            }
        }
        List<LocalChunkStore.Verbatim> out = new ArrayList<>(n);
        for (int k = 0; k < n; k++) {
            byte[] r = run == null ? record(ids.get(k), plains.get(k), 0, len) : record(run, ids.get(k), plains.get(k), 0, len);
            out.add(new LocalChunkStore.Verbatim(r, new ChunkId[]{ids.get(k)}, new int[]{ChunkLocation.SINGLE}));
        }
        return out;
    }

    /** A plain record as {@link Encoded} parts: its body is {@code data} itself. */
    public static Encoded plain(ChunkId id, byte[] data, int off, int len) {
        return new Encoded(PackFormat.recordHeader(id, PackFormat.CODEC_NONE, len, data, off, len), data, off, len);
    }
}
