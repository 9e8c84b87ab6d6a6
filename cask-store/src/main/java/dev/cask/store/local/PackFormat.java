package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * The byte layout of pack files, format 2 (described in docs/format.md). All integers are
 * big-endian.
 *
 * <pre>
 * pack header (16 bytes):  magic u32 0x6361736b ("cask") | format u32 (1 or 2) | pack id u32 | reserved u32 = 0
 * record header (52 bytes): magic u32 0x63726563 ("crec") | codec u8 (0 none, 1 zstd) | reserved u8[3] = 0
 *                           | plain length u32 | stored length u32 | chunk id u8[32] | crc32c u32
 * record payload:           stored length bytes (the chunk, compressed when codec = 1)
 * segment header (20 bytes): magic u32 0x63736567 ("cseg") | codec u8 (1 zstd) | reserved u8[3] = 0
 *                           | count u32 | plain length u32 | stored length u32
 * segment table:            count times: chunk id u8[32] | plain length u32 | crc32c u32 of the plain bytes
 * segment crc32c u32:       of the header, the table and the frame
 * segment frame:            stored length bytes: one zstd frame of the count chunks' plain bytes back to back
 * </pre>
 *
 * A record holds one chunk; a <em>segment</em> holds several chunks (2 to {@link #MAX_SEGMENT_CHUNKS},
 * at most {@link #MAX_PAYLOAD} plain bytes together) compressed as one zstd frame, so that small
 * similar chunks compress against each other. Format 1 packs hold records only; format 2 packs
 * (written since segments exist) hold both, in any order.
 *
 * <p>The CRC32C of a record covers the first 48 bytes of its header and the payload; the CRC32C of
 * a segment covers its header, table and frame: a torn or flipped record or segment, or an index
 * entry pointing at the wrong place, is caught on every read without decompressing. A segment's
 * table also holds the CRC32C of each chunk's plain bytes, checked after decompressing, so a
 * chunk read out of a segment is verified on its own. Encoding and decoding are symmetric pairs
 * and check every field they read, and that they consumed exactly the bytes they were given.
 */
public final class PackFormat {
    public static final int PACK_MAGIC = 0x6361736b;
    /** The pack format this cask writes; it reads 1 (records only) and 2 (records and segments). */
    public static final int PACK_VERSION = 2;
    public static final int PACK_HEADER = dev.cask.store.ChunkLocation.PACK_HEADER;
    public static final int RECORD_MAGIC = 0x63726563;
    public static final int RECORD_HEADER = 52;
    public static final int CODEC_NONE = 0;
    public static final int CODEC_ZSTD = 1;
    /** Largest plain chunk and largest stored payload a record may claim; also the most plain bytes a segment holds. */
    public static final int MAX_PAYLOAD = (1 << 20) + 1024;
    public static final int SEGMENT_MAGIC = 0x63736567;
    /** Fixed part of a segment: magic, codec, reserved, count, plain length, stored length. */
    public static final int SEGMENT_HEADER = 20;
    /** One table entry: chunk id, plain length, crc32c of the plain bytes. */
    public static final int SEGMENT_SLOT = ChunkId.LENGTH + 8;
    public static final int MAX_SEGMENT_CHUNKS = 4096;
    /** The longest segment there can be: header, full table, crc, frame. */
    public static final int MAX_SEGMENT = SEGMENT_HEADER + MAX_SEGMENT_CHUNKS * SEGMENT_SLOT + 4 + MAX_PAYLOAD;

    private PackFormat() {}

    public static byte[] encodePackHeader(int packId) {
        return encodePackHeader(packId, PACK_VERSION);
    }

    /** A pack header of the given format (1 only for tests that need an old pack). */
    public static byte[] encodePackHeader(int packId, int format) {
        if (format != 1 && format != 2) throw new IllegalArgumentException("pack format " + format);
        ByteBuffer b = ByteBuffer.allocate(PACK_HEADER).order(ByteOrder.BIG_ENDIAN);
        b.putInt(PACK_MAGIC).putInt(format).putInt(packId).putInt(0);
        return b.array();
    }

    /** Checks a pack header and returns the pack id it names. */
    public static int decodePackHeader(String what, byte[] h) {
        checkPackHeader(what, h);
        return ByteBuffer.wrap(h).order(ByteOrder.BIG_ENDIAN).getInt(8);
    }

    /** Checks a pack header and returns its format (1 or 2). */
    public static int packFormat(String what, byte[] h) {
        checkPackHeader(what, h);
        return ByteBuffer.wrap(h).order(ByteOrder.BIG_ENDIAN).getInt(4);
    }

    private static void checkPackHeader(String what, byte[] h) {
        if (h.length < PACK_HEADER) throw new CaskException.Corrupt(what + ": header truncated (" + h.length + " bytes)");
        ByteBuffer b = ByteBuffer.wrap(h).order(ByteOrder.BIG_ENDIAN);
        int magic = b.getInt();
        if (magic != PACK_MAGIC) {
            throw new CaskException.Corrupt(what + ": bad magic 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(PACK_MAGIC));
        }
        int version = b.getInt();
        if (version != 1 && version != PACK_VERSION) {
            throw new CaskException.Corrupt(what + ": pack format " + version + ", this cask reads formats 1 and " + PACK_VERSION);
        }
    }

    /** A record as it sits in a pack: header fields plus the payload bytes. */
    public record Record(int codec, int plainLength, ChunkId id, byte[] payload, int payloadOffset, int payloadLength) {}

    /** Encodes header + payload into one array ready to append. */
    public static byte[] encodeRecord(ChunkId id, int codec, int plainLength, byte[] payload, int off, int len) {
        byte[] out = new byte[RECORD_HEADER + len];
        System.arraycopy(recordHeader(id, codec, plainLength, payload, off, len), 0, out, 0, RECORD_HEADER);
        System.arraycopy(payload, off, out, RECORD_HEADER, len);
        return out;
    }

    /**
     * The {@link #RECORD_HEADER} bytes that go before {@code payload[off, off+len)} in the record
     * of chunk {@code id} (its CRC covers both), for a writer that appends the payload from where
     * it is instead of copying it into one array first ({@link #encodeRecord}).
     */
    public static byte[] recordHeader(ChunkId id, int codec, int plainLength, byte[] payload, int off, int len) {
        byte[] out = new byte[RECORD_HEADER];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.BIG_ENDIAN);
        b.putInt(RECORD_MAGIC).put((byte) codec).put((byte) 0).put((byte) 0).put((byte) 0);
        b.putInt(plainLength).putInt(len);
        id.copyTo(out, 16);
        CRC32C crc = new CRC32C();
        crc.update(out, 0, 48);
        crc.update(payload, off, len);
        b.putInt(48, (int) crc.getValue());
        return out;
    }

    /** Length of the payload a record header announces, after checking the header's fixed fields. */
    public static int storedLength(String what, byte[] header, int off) {
        return storedLength(() -> what, header, off);
    }

    /** {@link #storedLength(String, byte[], int)}, the name asked for only on failure. */
    public static int storedLength(java.util.function.Supplier<String> what, byte[] header, int off) {
        ByteBuffer b = ByteBuffer.wrap(header, off, RECORD_HEADER).order(ByteOrder.BIG_ENDIAN);
        int magic = b.getInt(off);
        if (magic != RECORD_MAGIC) {
            throw new CaskException.Corrupt(what.get() + ": bad record magic 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(RECORD_MAGIC));
        }
        int codec = header[off + 4];
        if (codec != CODEC_NONE && codec != CODEC_ZSTD) throw new CaskException.Corrupt(what.get() + ": unknown codec " + codec);
        int plain = b.getInt(off + 8);
        int stored = b.getInt(off + 12);
        if (plain < 0 || plain > MAX_PAYLOAD || stored < 0 || stored > MAX_PAYLOAD) {
            throw new CaskException.Corrupt(what.get() + ": record lengths out of range (plain " + plain + ", stored " + stored + ")");
        }
        return stored;
    }

    /** Decodes and CRC-checks a whole record (header and payload) held in {@code buf[off, off+len)}. */
    public static Record decodeRecord(String what, byte[] buf, int off, int len) {
        return decodeRecord(() -> what, buf, off, len);
    }

    /** {@link #decodeRecord(String, byte[], int, int)}, the name asked for only on failure (bulk reads decode every record). */
    public static Record decodeRecord(java.util.function.Supplier<String> what, byte[] buf, int off, int len) {
        if (len < RECORD_HEADER) throw new CaskException.Corrupt(what.get() + ": record truncated (" + len + " bytes)");
        int stored = storedLength(what, buf, off);
        if (len != RECORD_HEADER + stored) {
            throw new CaskException.Corrupt(what.get() + ": record length " + len + " does not match its header (" + (RECORD_HEADER + stored) + ")");
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.BIG_ENDIAN);
        CRC32C crc = new CRC32C();
        crc.update(buf, off, 48);
        crc.update(buf, off + RECORD_HEADER, stored);
        int expected = b.getInt(off + 48);
        if ((int) crc.getValue() != expected) {
            throw new CaskException.Corrupt(what.get() + ": checksum mismatch (crc32c 0x" + Integer.toHexString((int) crc.getValue())
                    + ", record says 0x" + Integer.toHexString(expected) + ")");
        }
        return new Record(buf[off + 4], b.getInt(off + 8), ChunkId.fromBytes(buf, off + 16), buf, off + RECORD_HEADER, stored);
    }

    // ---------------------------------------------------------------- segments

    /**
     * A decoded segment: its table and where its frame is. {@code buf} is the caller's array
     * (not copied). The table has been checked against the segment CRC; the plain CRCs are
     * checked by {@link #chunkPlain} after decompressing.
     */
    public record Segment(int codec, ChunkId[] ids, int[] plainLengths, int[] plainCrcs,
                          byte[] buf, int frameOffset, int frameLength) {
        public int count() {
            return ids.length;
        }

        /** Sum of the chunks' plain lengths: what the frame decompresses to. */
        public int plainLength() {
            int sum = 0;
            for (int l : plainLengths) sum += l;
            return sum;
        }

        /** Where chunk {@code slot} starts in the decompressed frame. */
        public int plainOffset(int slot) {
            int sum = 0;
            for (int i = 0; i < slot; i++) sum += plainLengths[i];
            return sum;
        }
    }

    /** Length of a segment with {@code count} chunks and a frame of {@code frameLength} bytes. */
    public static int segmentLength(int count, int frameLength) {
        return SEGMENT_HEADER + count * SEGMENT_SLOT + 4 + frameLength;
    }

    /**
     * Encodes a segment of {@code ids.length} chunks whose plain bytes, back to back, are what
     * {@code frame[off, off+len)} decompresses to; {@code plainCrcs} are CRC32C of each chunk's plain bytes.
     */
    public static byte[] encodeSegment(ChunkId[] ids, int[] plainLengths, int[] plainCrcs, byte[] frame, int off, int len) {
        int n = ids.length;
        if (n < 2 || n > MAX_SEGMENT_CHUNKS || plainLengths.length != n || plainCrcs.length != n) {
            throw new IllegalArgumentException("segment of " + n + " chunks (" + plainLengths.length + " lengths, " + plainCrcs.length + " crcs)");
        }
        long plain = 0;
        for (int l : plainLengths) {
            if (l < 0 || l > MAX_PAYLOAD) throw new IllegalArgumentException("chunk of " + l + " bytes in a segment");
            plain += l;
        }
        if (plain > MAX_PAYLOAD || len < 0 || len > MAX_PAYLOAD) throw new IllegalArgumentException("segment of " + plain + " plain bytes in a frame of " + len);
        byte[] out = new byte[segmentLength(n, len)];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.BIG_ENDIAN);
        b.putInt(SEGMENT_MAGIC).put((byte) CODEC_ZSTD).put((byte) 0).put((byte) 0).put((byte) 0);
        b.putInt(n).putInt((int) plain).putInt(len);
        for (int i = 0; i < n; i++) {
            ids[i].copyTo(out, b.position());
            b.position(b.position() + ChunkId.LENGTH);
            b.putInt(plainLengths[i]).putInt(plainCrcs[i]);
        }
        int crcAt = b.position();
        System.arraycopy(frame, off, out, crcAt + 4, len);
        b.putInt(crcAt, segmentCrc(out, 0, crcAt, len));
        return out;
    }

    private static int segmentCrc(byte[] buf, int off, int crcAt, int frameLength) {
        CRC32C crc = new CRC32C();
        crc.update(buf, off, crcAt - off);
        crc.update(buf, crcAt + 4, frameLength);
        return (int) crc.getValue();
    }

    /**
     * Length of the segment whose 20-byte header starts at {@code buf[off]}, after checking the
     * header's fixed fields; the caller must have at least {@link #SEGMENT_HEADER} bytes there.
     */
    public static int segmentLength(String what, byte[] buf, int off) {
        return segmentLength(() -> what, buf, off);
    }

    /** {@link #segmentLength(String, byte[], int)}, the name asked for only on failure. */
    public static int segmentLength(java.util.function.Supplier<String> what, byte[] buf, int off) {
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.BIG_ENDIAN);
        int magic = b.getInt(off);
        if (magic != SEGMENT_MAGIC) {
            throw new CaskException.Corrupt(what.get() + ": bad segment magic 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(SEGMENT_MAGIC));
        }
        int codec = buf[off + 4];
        if (codec != CODEC_ZSTD) throw new CaskException.Corrupt(what.get() + ": unknown segment codec " + codec);
        if (buf[off + 5] != 0 || buf[off + 6] != 0 || buf[off + 7] != 0) throw new CaskException.Corrupt(what.get() + ": segment reserved bytes are not zero");
        int count = b.getInt(off + 8);
        int plain = b.getInt(off + 12);
        int stored = b.getInt(off + 16);
        if (count < 2 || count > MAX_SEGMENT_CHUNKS || plain < 0 || plain > MAX_PAYLOAD || stored < 0 || stored > MAX_PAYLOAD) {
            throw new CaskException.Corrupt(what.get() + ": segment fields out of range (count " + count + ", plain " + plain + ", stored " + stored + ")");
        }
        return segmentLength(count, stored);
    }

    /** Decodes and CRC-checks a whole segment held in {@code buf[off, off+len)}. */
    public static Segment decodeSegment(String what, byte[] buf, int off, int len) {
        return decodeSegment(() -> what, buf, off, len);
    }

    /** {@link #decodeSegment(String, byte[], int, int)}, the name asked for only on failure. */
    public static Segment decodeSegment(java.util.function.Supplier<String> what, byte[] buf, int off, int len) {
        if (len < SEGMENT_HEADER) throw new CaskException.Corrupt(what.get() + ": segment truncated (" + len + " bytes)");
        int expectedLength = segmentLength(what, buf, off);
        if (len != expectedLength) {
            throw new CaskException.Corrupt(what.get() + ": segment length " + len + " does not match its header (" + expectedLength + ")");
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.BIG_ENDIAN);
        int n = b.getInt(off + 8);
        int plain = b.getInt(off + 12);
        int stored = b.getInt(off + 16);
        int crcAt = off + SEGMENT_HEADER + n * SEGMENT_SLOT;
        int crc = segmentCrc(buf, off, crcAt, stored);
        int expected = b.getInt(crcAt);
        if (crc != expected) {
            throw new CaskException.Corrupt(what.get() + ": checksum mismatch (crc32c 0x" + Integer.toHexString(crc)
                    + ", segment says 0x" + Integer.toHexString(expected) + ")");
        }
        ChunkId[] ids = new ChunkId[n];
        int[] lengths = new int[n];
        int[] crcs = new int[n];
        long sum = 0;
        for (int i = 0; i < n; i++) {
            int at = off + SEGMENT_HEADER + i * SEGMENT_SLOT;
            ids[i] = ChunkId.fromBytes(buf, at);
            lengths[i] = b.getInt(at + ChunkId.LENGTH);
            crcs[i] = b.getInt(at + ChunkId.LENGTH + 4);
            if (lengths[i] < 0 || lengths[i] > MAX_PAYLOAD) throw new CaskException.Corrupt(what.get() + ": slot " + i + " has plain length " + lengths[i]);
            sum += lengths[i];
        }
        if (sum != plain) throw new CaskException.Corrupt(what.get() + ": table's plain lengths add up to " + sum + ", segment says " + plain);
        return new Segment(buf[off + 4], ids, lengths, crcs, buf, crcAt + 4, stored);
    }

    /**
     * The plain bytes of chunk {@code slot}, taken from {@code plain} (the segment's decompressed
     * frame) and checked against the CRC32C in the table; {@code what} names the chunk in the error.
     */
    public static byte[] chunkPlain(String what, Segment s, byte[] plain, int slot) {
        int from = s.plainOffset(slot);
        checkPlainCrc(s, plain, from, slot, () -> what);
        return java.util.Arrays.copyOfRange(plain, from, from + s.plainLengths()[slot]);
    }

    /**
     * Checks chunk {@code slot}'s bytes at {@code plain[from...]} against the CRC32C in the table,
     * or throws Corrupt naming the chunk by {@code what} (asked for only then: bulk reads check
     * every chunk, and building the name each time cost a tenth of an export).
     */
    public static void checkPlainCrc(Segment s, byte[] plain, int from, int slot, java.util.function.Supplier<String> what) {
        if (!plainCrcMatches(s, plain, from, slot)) {
            throw new CaskException.Corrupt(what.get() + ": plain bytes fail their crc32c (segment table says 0x"
                    + Integer.toHexString(s.plainCrcs()[slot]) + ")");
        }
    }

    /** Whether chunk {@code slot}'s bytes at {@code plain[from...]} match the CRC32C in the table. */
    public static boolean plainCrcMatches(Segment s, byte[] plain, int from, int slot) {
        return crc32c(plain, from, s.plainLengths()[slot]) == s.plainCrcs()[slot];
    }

    public static int crc32c(byte[] buf, int off, int len) {
        CRC32C c = new CRC32C();
        c.update(buf, off, len);
        return (int) c.getValue();
    }

    /** The magic of the record or segment at {@code buf[off]} (the caller checks there are 4 bytes). */
    /**
     * The chunk ids a segment's table names, read without any check (the CRC that would vouch for
     * them failed): for marking the chunks of a damaged segment, where a wrong id does no harm
     * (a mark counts only for an index entry that points at that very slot). Empty when the
     * count is out of range or the table is cut short.
     */
    public static ChunkId[] segmentTableIdsUnchecked(byte[] buf, int off, int len) {
        if (len < SEGMENT_HEADER) return new ChunkId[0];
        int count = ByteBuffer.wrap(buf, off + 8, 4).getInt();
        if (count < 2 || count > MAX_SEGMENT_CHUNKS || (long) SEGMENT_HEADER + (long) count * SEGMENT_SLOT > len) return new ChunkId[0];
        ChunkId[] ids = new ChunkId[count];
        for (int k = 0; k < count; k++) ids[k] = ChunkId.fromBytes(buf, off + SEGMENT_HEADER + k * SEGMENT_SLOT);
        return ids;
    }

    public static int magicAt(byte[] buf, int off) {
        return ByteBuffer.wrap(buf).order(ByteOrder.BIG_ENDIAN).getInt(off);
    }
}
