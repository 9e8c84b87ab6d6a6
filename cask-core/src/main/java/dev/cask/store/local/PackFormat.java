package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * The byte layout of pack files, version 1 (described in docs/format.md). All integers are
 * big-endian.
 *
 * <pre>
 * pack header (16 bytes):  magic u32 0x6361736b ("cask") | format u32 = 1 | pack id u32 | reserved u32 = 0
 * record header (52 bytes): magic u32 0x63726563 ("crec") | codec u8 (0 none, 1 zstd) | reserved u8[3] = 0
 *                           | plain length u32 | stored length u32 | chunk id u8[32] | crc32c u32
 * record payload:           stored length bytes (the chunk, compressed when codec = 1)
 * </pre>
 *
 * The CRC32C covers the first 48 bytes of the record header and the payload, so a torn or
 * flipped record, or an index entry pointing at the wrong place, is caught on every read.
 * Encoding and decoding are a symmetric pair and check every field they read.
 */
public final class PackFormat {
    public static final int PACK_MAGIC = 0x6361736b;
    public static final int PACK_VERSION = 1;
    public static final int PACK_HEADER = 16;
    public static final int RECORD_MAGIC = 0x63726563;
    public static final int RECORD_HEADER = 52;
    public static final int CODEC_NONE = 0;
    public static final int CODEC_ZSTD = 1;
    /** Largest plain chunk and largest stored payload a record may claim. */
    public static final int MAX_PAYLOAD = (1 << 20) + 1024;

    private PackFormat() {}

    public static byte[] encodePackHeader(int packId) {
        ByteBuffer b = ByteBuffer.allocate(PACK_HEADER).order(ByteOrder.BIG_ENDIAN);
        b.putInt(PACK_MAGIC).putInt(PACK_VERSION).putInt(packId).putInt(0);
        return b.array();
    }

    /** Checks a pack header and returns the pack id it names. */
    public static int decodePackHeader(String what, byte[] h) {
        if (h.length < PACK_HEADER) throw new CaskException.Corrupt(what + ": header truncated (" + h.length + " bytes)");
        ByteBuffer b = ByteBuffer.wrap(h).order(ByteOrder.BIG_ENDIAN);
        int magic = b.getInt();
        if (magic != PACK_MAGIC) {
            throw new CaskException.Corrupt(what + ": bad magic 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(PACK_MAGIC));
        }
        int version = b.getInt();
        if (version != PACK_VERSION) {
            throw new CaskException.Corrupt(what + ": pack format " + version + ", this cask reads format " + PACK_VERSION);
        }
        return b.getInt();
    }

    /** A record as it sits in a pack: header fields plus the payload bytes. */
    public record Record(int codec, int plainLength, ChunkId id, byte[] payload, int payloadOffset, int payloadLength) {}

    /** Encodes header + payload into one array ready to append. */
    public static byte[] encodeRecord(ChunkId id, int codec, int plainLength, byte[] payload, int off, int len) {
        byte[] out = new byte[RECORD_HEADER + len];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.BIG_ENDIAN);
        b.putInt(RECORD_MAGIC).put((byte) codec).put((byte) 0).put((byte) 0).put((byte) 0);
        b.putInt(plainLength).putInt(len);
        id.copyTo(out, 16);
        System.arraycopy(payload, off, out, RECORD_HEADER, len);
        CRC32C crc = new CRC32C();
        crc.update(out, 0, 48);
        crc.update(out, RECORD_HEADER, len);
        b.putInt(48, (int) crc.getValue());
        return out;
    }

    /** Length of the payload a record header announces, after checking the header's fixed fields. */
    public static int storedLength(String what, byte[] header, int off) {
        ByteBuffer b = ByteBuffer.wrap(header, off, RECORD_HEADER).order(ByteOrder.BIG_ENDIAN);
        int magic = b.getInt(off);
        if (magic != RECORD_MAGIC) {
            throw new CaskException.Corrupt(what + ": bad record magic 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(RECORD_MAGIC));
        }
        int codec = header[off + 4];
        if (codec != CODEC_NONE && codec != CODEC_ZSTD) throw new CaskException.Corrupt(what + ": unknown codec " + codec);
        int plain = b.getInt(off + 8);
        int stored = b.getInt(off + 12);
        if (plain < 0 || plain > MAX_PAYLOAD || stored < 0 || stored > MAX_PAYLOAD) {
            throw new CaskException.Corrupt(what + ": record lengths out of range (plain " + plain + ", stored " + stored + ")");
        }
        return stored;
    }

    /** Decodes and CRC-checks a whole record (header and payload) held in {@code buf[off, off+len)}. */
    public static Record decodeRecord(String what, byte[] buf, int off, int len) {
        if (len < RECORD_HEADER) throw new CaskException.Corrupt(what + ": record truncated (" + len + " bytes)");
        int stored = storedLength(what, buf, off);
        if (len != RECORD_HEADER + stored) {
            throw new CaskException.Corrupt(what + ": record length " + len + " does not match its header (" + (RECORD_HEADER + stored) + ")");
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.BIG_ENDIAN);
        CRC32C crc = new CRC32C();
        crc.update(buf, off, 48);
        crc.update(buf, off + RECORD_HEADER, stored);
        int expected = b.getInt(off + 48);
        if ((int) crc.getValue() != expected) {
            throw new CaskException.Corrupt(what + ": checksum mismatch (crc32c 0x" + Integer.toHexString((int) crc.getValue())
                    + ", record says 0x" + Integer.toHexString(expected) + ")");
        }
        return new Record(buf[off + 4], b.getInt(off + 8), ChunkId.fromBytes(buf, off + 16), buf, off + RECORD_HEADER, stored);
    }
}
