package dev.cask.analysis;

import java.util.Arrays;

/**
 * Cuts one disk at a time into chunks and hands them to a {@link ChunkSink}. The disk arrives as
 * a sequence of pieces in order: {@link #data} (bytes read) and {@link #zeros} (a hole, never
 * read). A chunk that spans pieces is gathered in a carry buffer of the strategy's largest chunk,
 * so the sink always sees a chunk as one contiguous range; a chunk inside one data piece is
 * passed straight from the read buffer without a copy. Holes cost no work per byte: whole zero
 * chunks inside a hole are counted in bulk ({@link ChunkSink#zeroChunks}); only the chunks that
 * straddle a hole's edge are filled with zeros.
 *
 * <p>The cuts are exactly those the strategy makes on the whole disk read as bytes: the tests
 * feed the same disk as one array and as data and hole pieces and compare.
 *
 * <p>Not thread-safe: one chunker per strategy, driven by one thread.
 */
abstract class Chunker {
    protected final ChunkSink sink;
    /** Read-only zeros, at least as long as the largest chunk. */
    protected final byte[] zeros;
    protected final byte[] carry;
    protected int carryLength;

    Chunker(ChunkSink sink, int maxChunk, byte[] zeros) {
        if (zeros.length < maxChunk) throw new IllegalArgumentException("zero buffer " + zeros.length + " < max chunk " + maxChunk);
        this.sink = sink;
        this.zeros = zeros;
        this.carry = new byte[maxChunk];
    }

    /** Starts a disk of {@code size} bytes; {@code cuts} are forced chunk boundaries (sorted, from 0 to size). */
    abstract void begin(long size, long[] cuts);

    abstract void data(byte[] b, int off, int len);

    abstract void zeros(long len);

    /** The disk is complete: delivers its last chunk. */
    abstract void end();

    protected final void append(byte[] b, int off, int len) {
        System.arraycopy(b, off, carry, carryLength, len);
        carryLength += len;
    }

    protected final void appendZeros(int len) {
        Arrays.fill(carry, carryLength, carryLength + len, (byte) 0);
        carryLength += len;
    }

    /**
     * {@code fixed-N} and {@code aligned-N}: chunks of N bytes from the start of each segment
     * between forced cuts ({@code {0, size}} for fixed; every partition start and end too for
     * aligned); a segment's last chunk may be shorter.
     */
    static final class Aligned extends Chunker {
        private final int n;
        private long[] cuts;
        private int segment;
        private long segmentEnd;
        private long chunkStart;
        private long position;
        private long size;

        Aligned(int n, ChunkSink sink, byte[] zeros) {
            super(sink, n, zeros);
            this.n = n;
        }

        @Override
        void begin(long size, long[] cuts) {
            if (cuts.length < 2 || cuts[0] != 0 || cuts[cuts.length - 1] != size) {
                throw new IllegalArgumentException("cuts " + Arrays.toString(cuts) + " do not span 0.." + size);
            }
            this.size = size;
            this.cuts = cuts;
            this.segment = 0;
            this.segmentEnd = cuts[1];
            this.position = 0;
            this.carryLength = 0;
            startChunk();
        }

        private void startChunk() {
            chunkStart = position;
            while (position >= segmentEnd && segment < cuts.length - 2) segmentEnd = cuts[++segment + 1];
        }

        private long chunkEnd() {
            return Math.min(chunkStart + n, segmentEnd);
        }

        @Override
        void data(byte[] b, int off, int len) {
            while (len > 0) {
                int need = (int) (chunkEnd() - position);
                if (need <= 0) throw new IllegalStateException("data past the end of a disk of " + size + " bytes");
                if (len < need) {
                    append(b, off, len);
                    position += len;
                    return;
                }
                if (carryLength == 0) {
                    sink.chunk(b, off, need, chunkStart);
                } else {
                    append(b, off, need);
                    sink.chunk(carry, 0, carryLength, chunkStart);
                    carryLength = 0;
                }
                off += need;
                len -= need;
                position += need;
                startChunk();
            }
        }

        @Override
        void zeros(long len) {
            while (len > 0) {
                long end = chunkEnd();
                int need = (int) (end - position);
                if (need <= 0) throw new IllegalStateException("zeros past the end of a disk of " + size + " bytes");
                if (len < need) {
                    appendZeros((int) len);
                    position += len;
                    return;
                }
                if (carryLength > 0) {
                    appendZeros(need);
                    sink.chunk(carry, 0, carryLength, chunkStart);
                    carryLength = 0;
                    position += need;
                    len -= need;
                } else if (need == n) {
                    long count = Math.min(len, segmentEnd - position) / n;
                    sink.zeroChunks(count, n, position);
                    position += count * n;
                    len -= count * n;
                } else { // a short last chunk of its segment, all in the hole
                    sink.zeroChunks(1, need, position);
                    position += need;
                    len -= need;
                }
                startChunk();
            }
        }

        @Override
        void end() {
            if (position != size || carryLength != 0) {
                throw new IllegalStateException("disk of " + size + " bytes ended at " + position + " with " + carryLength + " bytes pending");
            }
        }
    }

    /** {@code cdc-N}: {@link FastCdc} cut points over the whole disk (forced cuts are ignored). */
    static final class Cdc extends Chunker {
        private final FastCdc cdc;
        private final int zeroChunk;
        private long chunkStart;
        private long position;
        private long size;

        Cdc(int avg, ChunkSink sink, byte[] zeros) {
            super(sink, FastCdc.maxSize(avg), zeros);
            this.cdc = new FastCdc(avg);
            this.zeroChunk = cdc.zeroChunkSize();
        }

        FastCdc cdc() {
            return cdc;
        }

        @Override
        void begin(long size, long[] cuts) {
            this.size = size;
            this.position = 0;
            this.chunkStart = 0;
            this.carryLength = 0;
            cdc.reset();
        }

        @Override
        void data(byte[] b, int off, int len) {
            int end = off + len;
            int start = off;
            position += len;
            while (start < end) {
                int cut = cdc.next(b, start, end);
                if (cut < 0) {
                    append(b, start, end - start);
                    return;
                }
                int length;
                if (carryLength == 0) {
                    length = cut - start;
                    sink.chunk(b, start, length, chunkStart);
                } else {
                    append(b, start, cut - start);
                    length = carryLength;
                    sink.chunk(carry, 0, length, chunkStart);
                    carryLength = 0;
                }
                chunkStart += length;
                start = cut;
            }
        }

        @Override
        void zeros(long len) {
            // 1. finish a chunk begun before the hole: it ends within max bytes whatever follows
            if (cdc.length() > 0) {
                int k = (int) Math.min(len, cdc.max() - cdc.length());
                data(zeros, 0, k);
                len -= k;
            }
            // 2. now any unfinished chunk is zeros only, shorter than zeroChunk: whole zero
            //    chunks follow back to back while the hole lasts
            int l = cdc.length();
            if (len > 0 && l + len >= zeroChunk) {
                long head = zeroChunk - l;
                sink.zeroChunks(1, zeroChunk, chunkStart);
                chunkStart += zeroChunk;
                position += head;
                len -= head;
                carryLength = 0;
                cdc.reset();
                long count = len / zeroChunk;
                if (count > 0) {
                    sink.zeroChunks(count, zeroChunk, chunkStart);
                    chunkStart += count * zeroChunk;
                    position += count * zeroChunk;
                    len -= count * zeroChunk;
                }
            }
            // 3. the rest (shorter than a zero chunk) begins the next chunk
            while (len > 0) {
                int k = (int) Math.min(len, zeros.length);
                data(zeros, 0, k);
                len -= k;
            }
        }

        @Override
        void end() {
            if (position != size) throw new IllegalStateException("disk of " + size + " bytes ended at " + position);
            if (carryLength > 0) {
                sink.chunk(carry, 0, carryLength, chunkStart);
                chunkStart += carryLength;
                carryLength = 0;
            }
            cdc.reset();
        }
    }
}
