package dev.cask.store.s3;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import dev.cask.common.Pool;
import dev.cask.store.ChunkId;
import dev.cask.store.local.PackFormat;

/**
 * Chunks into pack records and segments, by the rules of a local store ({@code LocalChunkStore}'s
 * "Segments" essay), so a pack object holds exactly the bytes a local pack file would:
 * <ul>
 *   <li>a single chunk of 64 bytes or more is compressed with zstd (level {@code zstdLevel}) when
 *       that saves at least 1/16, else stored plain;
 *   <li>a run of new chunks of one batch is compressed together as one segment (level
 *       {@code segmentLevel}) when that saves at least a quarter; a run that saves less than 1/16
 *       becomes plain records ({@link Run#plain}), one between the two becomes records compressed
 *       one by one ({@link Run#weak}).
 * </ul>
 * Compression runs in the calling thread (an import's workers compress in parallel). Thread-safe:
 * zstd contexts come from pools.
 */
final class PackEncoder {
    private final Pool<ZstdCompressCtx> compressors;
    private final Pool<ZstdCompressCtx> segmentCompressors;

    PackEncoder(int zstdLevel, int segmentLevel) {
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
    byte[] record(ChunkId id, byte[] data, int off, int len) {
        if (len >= 64) {
            byte[] dst = new byte[(int) Zstd.compressBound(len)];
            int n = compressors.with(c -> c.compressByteArray(dst, 0, dst.length, data, off, len));
            if (n < len - len / 16) return PackFormat.encodeRecord(id, PackFormat.CODEC_ZSTD, len, dst, 0, n);
        }
        return PackFormat.encodeRecord(id, PackFormat.CODEC_NONE, len, data, off, len);
    }

    /** What {@link #segment} made of a run: a segment, or which kind of single records to store instead. */
    record Run(byte[] segment, boolean plain, boolean weak) {}

    /** The run of chunks {@code ids}, each {@code length} bytes at {@code data[offs[k]...]}, as one segment if that pays. */
    Run segment(ChunkId[] ids, byte[] data, int[] offs, int length) {
        int n = ids.length;
        int plainLength = n * length;
        int bound = (int) Zstd.compressBound(plainLength);
        byte[] plainBytes = dev.cask.common.ByteArrays.take(plainLength);
        byte[] dst = dev.cask.common.ByteArrays.take(bound);
        try {
            int[] lengths = new int[n];
            int[] crcs = new int[n];
            for (int k = 0; k < n; k++) {
                System.arraycopy(data, offs[k], plainBytes, k * length, length);
                lengths[k] = length;
                crcs[k] = PackFormat.crc32c(data, offs[k], length);
            }
            int z = segmentCompressors.with(c -> c.compressByteArray(dst, 0, bound, plainBytes, 0, plainLength));
            if (z >= plainLength - plainLength / 16) return new Run(null, true, false);
            if (z > plainLength - plainLength / 4) return new Run(null, false, true);
            return new Run(PackFormat.encodeSegment(ids, lengths, crcs, dst, 0, z), false, false);
        } finally {
            dev.cask.common.ByteArrays.give(plainBytes);
            dev.cask.common.ByteArrays.give(dst);
        }
    }

    /** A plain (uncompressed) record. */
    static byte[] plainRecord(ChunkId id, byte[] data, int off, int len) {
        return PackFormat.encodeRecord(id, PackFormat.CODEC_NONE, len, data, off, len);
    }
}
