package dev.cask.store.local;

import dev.cask.store.IndexMismatch;
import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntFunction;

/**
 * Reading records and segments out of pack files: positional reads through one read-only channel
 * per pack (opened on first use, shared by every thread: positional reads need no lock), and the
 * checks and decoding every read applies to what it read: an index entry's range
 * ({@link #checkEntry}), the slot of a segment ({@link #checkSlot}), decompression with the
 * length checked ({@link #plainBytes}, {@link #segmentPlain}). It knows nothing of the index, the
 * caches or the writer: {@link LocalChunkStore} decides what to read and makes sure bytes still in
 * its write buffer reach the file first. Every failure is a {@link CaskException.Corrupt} (an
 * {@link IndexMismatch} when the entry is at fault) or {@link CaskException.Io} naming the pack and
 * offset. Thread-safe.
 */
public final class PackReader implements AutoCloseable {
    /** Pooled zstd contexts: creating one per chunk costs more than decompressing it. */
    private static final dev.cask.common.Pool<com.github.luben.zstd.ZstdDecompressCtx> DECOMPRESSORS =
            new dev.cask.common.Pool<>(com.github.luben.zstd.ZstdDecompressCtx::new);

    private final IntFunction<Path> packPath;
    private final Map<Integer, FileChannel> channels = new ConcurrentHashMap<>();

    PackReader(IntFunction<Path> packPath) {
        this.packPath = packPath;
    }

    /** The {@code loc.length()} bytes of the record or segment at {@code loc}, in one positional read (more if the OS returns less). */
    byte[] read(ChunkLocation loc) {
        byte[] rec = new byte[loc.length()];
        readInto(loc, rec);
        return rec;
    }

    /** {@link #read} into {@code into[0, loc.length())} ({@code into} may be longer). */
    void readInto(ChunkLocation loc, byte[] into) {
        readFully(loc.pack(), loc.offset(), ByteBuffer.wrap(into, 0, loc.length()), () -> "record at offset " + loc.offset() + " is truncated");
    }

    /**
     * Fills {@code bb} from pack {@code pack} at {@code offset}; a pack that ends first is corrupt
     * ({@code truncated} says what was cut).
     */
    private void readFully(int pack, long offset, ByteBuffer bb, java.util.function.Supplier<String> truncated) {
        if (!fill(pack, offset, bb)) {
            throw new CaskException.Corrupt("pack " + pack + ": ends before offset " + (offset + bb.limit()) + " (" + truncated.get() + ")");
        }
    }

    /**
     * Reads pack {@code pack} from {@code offset} into {@code bb} until it is full (true) or the
     * file ends (false). A channel another thread closed ({@link #closeDeletedPacks}) is opened
     * again once: the pack is then either there or {@link PackGone}.
     */
    private boolean fill(int pack, long offset, ByteBuffer bb) {
        try {
            FileChannel ch = channel(pack);
            long pos = offset;
            boolean reopened = false;
            while (bb.hasRemaining()) {
                int n;
                try {
                    n = ch.read(bb, pos);
                } catch (java.nio.channels.ClosedChannelException closed) {
                    if (closed instanceof java.nio.channels.ClosedByInterruptException || reopened) throw closed;
                    reopened = true;
                    channels.remove(pack, ch);
                    ch = channel(pack);
                    continue;
                }
                if (n < 0) return false;
                pos += n;
            }
            return true;
        } catch (IOException e) {
            throw new CaskException.Io("pack " + pack + " at offset " + offset + ": read failed: " + e.getMessage(), e);
        }
    }

    /**
     * Whether the record or segment {@code rec} that index entry {@code loc} points at holds
     * chunk {@code id} as a read would find it: null when it does, else the error the read would
     * throw ({@link IndexMismatch} when the bytes are whole but hold another chunk,
     * {@link CaskException.Corrupt} when they fail their checks). A record is decompressed; a
     * segment's frame only with {@code deep} (its CRC32C covers the frame either way); with
     * {@code deep} the plain bytes are rehashed too. What {@code cask check}'s index pass asks of
     * every entry, wherever the pack lives.
     */
    public static CaskException entryFault(ChunkId id, ChunkLocation loc, byte[] rec, boolean deep) {
        String what = "chunk " + id.shortHex() + " (" + loc + ")";
        try {
            byte[] plain;
            if (loc.inSegment()) {
                PackFormat.Segment s = segmentHolding(what, id, loc, rec);
                if (!deep) return null;
                plain = PackFormat.chunkPlain(what, s, segmentPlain(what, s), loc.slot());
            } else {
                plain = plainBytes(what, recordHolding(() -> what, id, rec, 0, rec.length));
            }
            if (deep && !ChunkId.of(plain).equals(id)) {
                return new CaskException.Corrupt(what + ": bytes hash to " + ChunkId.of(plain).shortHex());
            }
            return null;
        } catch (CaskException e) {
            return e;
        }
    }

    /**
     * Decodes the record at {@code buf[off, off+len)} that an index entry for {@code id} points at
     * and checks that it holds {@code id} ({@link IndexMismatch} when it holds another chunk);
     * {@code what} names the chunk and its location, asked for only on failure.
     */
    public static PackFormat.Record recordHolding(java.util.function.Supplier<String> what, ChunkId id, byte[] buf, int off, int len) {
        PackFormat.Record r = PackFormat.decodeRecord(what, buf, off, len);
        if (!r.id().equals(id)) throw new IndexMismatch(what.get() + ": record holds chunk " + r.id().shortHex() + " instead");
        return r;
    }

    /** Decodes the segment an index entry points at and checks that its slot holds {@code id}. */
    static PackFormat.Segment segmentHolding(String what, ChunkId id, ChunkLocation loc, byte[] rec) {
        PackFormat.Segment s = PackFormat.decodeSegment(what, rec, 0, rec.length);
        checkSlot(what, s, id, loc);
        return s;
    }

    /** Checks that slot {@code loc.slot()} of the decoded segment {@code s} exists and holds {@code id}. */
    static void checkSlot(String what, PackFormat.Segment s, ChunkId id, ChunkLocation loc) {
        if (loc.slot() >= s.count()) throw new IndexMismatch(what + ": segment has only " + s.count() + " chunks");
        if (!s.ids()[loc.slot()].equals(id)) {
            throw new IndexMismatch(what + ": segment slot holds chunk " + s.ids()[loc.slot()].shortHex() + " instead");
        }
    }

    /** Like {@link #segmentPlain}, into {@code out[0, plainLength)}. */
    static void segmentPlainInto(String what, PackFormat.Segment s, byte[] out) {
        segmentPlainInto(() -> what, s, out);
    }

    /** {@link #segmentPlainInto(String, PackFormat.Segment, byte[])}, the name asked for only on failure. */
    static void segmentPlainInto(java.util.function.Supplier<String> what, PackFormat.Segment s, byte[] out) {
        int want = s.plainLength();
        int n;
        try {
            n = DECOMPRESSORS.with(d -> d.decompressByteArray(out, 0, want, s.buf(), s.frameOffset(), s.frameLength()));
        } catch (com.github.luben.zstd.ZstdException e) {
            throw new CaskException.Corrupt(what.get() + ": segment frame does not decompress to " + want + " bytes (" + e.getMessage() + ")");
        }
        if (n != want) throw new CaskException.Corrupt(what.get() + ": segment frame decompresses to " + n + " bytes, segment says " + want);
    }

    /** A segment's frame, decompressed and length-checked (each chunk's CRC is checked by the caller). */
    public static byte[] segmentPlain(String what, PackFormat.Segment s) {
        byte[] out = new byte[s.plainLength()];
        segmentPlainInto(what, s, out);
        return out;
    }

    /** The plain bytes of a decoded record (decompressed, length checked). */
    public static byte[] plainBytes(String what, PackFormat.Record r) {
        return plainBytes(() -> what, r);
    }

    /** {@link #plainBytes(String, PackFormat.Record)}, the name asked for only on failure. */
    static byte[] plainBytes(java.util.function.Supplier<String> what, PackFormat.Record r) {
        if (storedPlain(what, r)) return java.util.Arrays.copyOfRange(r.payload(), r.payloadOffset(), r.payloadOffset() + r.payloadLength());
        byte[] out = new byte[r.plainLength()];
        decompress(what, r, out);
        return out;
    }

    /** Whether record {@code r} is stored uncompressed (its payload is its plain bytes); such a record of the wrong length is corrupt. */
    static boolean storedPlain(java.util.function.Supplier<String> what, PackFormat.Record r) {
        if (r.codec() != PackFormat.CODEC_NONE) return false;
        if (r.payloadLength() != r.plainLength()) throw new CaskException.Corrupt(what.get() + ": stored length " + r.payloadLength() + " != plain length " + r.plainLength());
        return true;
    }

    /** An index entry's length, slot and offset are ones a pack can hold, or it is corrupt (checked before any read). */
    public static void checkEntry(ChunkLocation loc) {
        boolean bad = loc.inSegment()
                ? loc.slot() < 0 || loc.slot() >= PackFormat.MAX_SEGMENT_CHUNKS || loc.length() < PackFormat.segmentLength(2, 0) || loc.length() > PackFormat.MAX_SEGMENT
                : loc.length() < PackFormat.RECORD_HEADER || loc.length() > PackFormat.RECORD_HEADER + PackFormat.MAX_PAYLOAD;
        if (bad || loc.offset() < PackFormat.PACK_HEADER) {
            throw new IndexMismatch(loc + ": index entry has bad length " + loc.length() + " or slot " + loc.slot());
        }
    }

    /** Decompresses a zstd record into {@code out[0, plainLength)}, checking the length. */
    static void decompress(String what, PackFormat.Record r, byte[] out) {
        decompress(() -> what, r, out);
    }

    /** {@link #decompress(String, PackFormat.Record, byte[])}, the name asked for only on failure. */
    static void decompress(java.util.function.Supplier<String> what, PackFormat.Record r, byte[] out) {
        int want = r.plainLength();
        int n;
        try {
            n = DECOMPRESSORS.with(d -> d.decompressByteArray(out, 0, want, r.payload(), r.payloadOffset(), r.payloadLength()));
        } catch (com.github.luben.zstd.ZstdException e) {
            throw new CaskException.Corrupt(what.get() + ": zstd payload does not decompress to " + want + " bytes (" + e.getMessage() + ")");
        }
        if (n != want) throw new CaskException.Corrupt(what.get() + ": zstd payload decompresses to " + n + " bytes, record says " + want);
    }

    /**
     * {@code length} bytes of a pack from {@code offset}, in one positional read (more if the OS
     * returns less), at the start of a recycled array ({@link dev.cask.common.ByteArrays}) that
     * may be longer: the caller gives it back.
     */
    byte[] readSpan(int pack, long offset, int length) {
        byte[] buf = dev.cask.common.ByteArrays.take(length); // maybe longer: only [0, length) is read
        try {
            readFully(pack, offset, ByteBuffer.wrap(buf, 0, length), () -> "a record before there is truncated");
        } catch (CaskException e) {
            dev.cask.common.ByteArrays.give(buf);
            throw e;
        }
        return buf;
    }

    /**
     * Up to {@code length} bytes of a pack from {@code offset} into {@code buf[0, length)}, in one
     * positional read (more if the OS returns less), stopping early only at the end of the file;
     * returns how many bytes were read. For reading ahead of what an index entry vouches for.
     */
    int readUpTo(int pack, long offset, byte[] buf, int length) {
        ByteBuffer bb = ByteBuffer.wrap(buf, 0, length);
        fill(pack, offset, bb);
        return bb.position();
    }

    /** When {@link #closeDeletedPacks} last ran (System.nanoTime). */
    private volatile long deletedPacksChecked = System.nanoTime();

    /**
     * Closes the channels of packs compaction has deleted, so that a long-running process (a
     * server) does not keep their disk space: at most every 10 s, on a read. A read racing with it
     * opens the pack again and, finding it gone, throws {@link PackGone} (the store then asks the
     * index where the chunk is now).
     */
    private void closeDeletedPacks() {
        long now = System.nanoTime();
        if (now - deletedPacksChecked < 10_000_000_000L) return;
        deletedPacksChecked = now;
        for (var e : channels.entrySet()) {
            if (Files.exists(packPath.apply(e.getKey()))) continue;
            if (channels.remove(e.getKey(), e.getValue())) {
                try {
                    e.getValue().close();
                } catch (IOException ignored) {
                    // read-only
                }
            }
        }
    }

    /** Runs {@link #closeDeletedPacks} at the next read (tests). */
    void checkDeletedPacksSoon() {
        deletedPacksChecked = System.nanoTime() - 20_000_000_000L;
    }

    /** A pack a location pointed at is missing: compaction may have moved its chunks (the index knows where). */
    static final class PackGone extends CaskException.Corrupt {
        PackGone(String message) {
            super(message);
        }
    }

    private FileChannel channel(int pack) throws IOException {
        closeDeletedPacks();
        FileChannel ch = channels.get(pack);
        if (ch != null) return ch;
        Path p = packPath.apply(pack);
        if (!Files.exists(p)) throw new PackGone("pack " + pack + ": file " + p + " is missing");
        synchronized (channels) {
            ch = channels.get(pack);
            if (ch == null) {
                ch = FileChannel.open(p, StandardOpenOption.READ);
                channels.put(pack, ch);
            }
        }
        return ch;
    }

    /** Closes the channel of a pack that was deleted (a failed sync gives its packs back; compaction deleted it). */
    void forget(int pack) {
        FileChannel ch = channels.remove(pack);
        try {
            if (ch != null) ch.close();
        } catch (IOException ignored) {
            // read-only
        }
    }

    @Override
    public void close() {
        for (FileChannel ch : channels.values()) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // read-only
            }
        }
    }
}
