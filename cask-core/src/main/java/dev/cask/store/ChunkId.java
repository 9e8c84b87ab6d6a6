package dev.cask.store;

import dev.cask.common.CaskException;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * A chunk id: the SHA-256 of the chunk's plain bytes, 32 bytes. Shown as 64 hex characters,
 * 12 in logs. {@link #ZERO} (32 zero bytes) is not the hash of anything we store: trees use it
 * to mean "a hole" (a zero block or an all-zero subtree).
 *
 * <p>Immutable; equality and hash code are over the bytes.
 */
public final class ChunkId implements Comparable<ChunkId> {
    public static final int LENGTH = 32;
    public static final ChunkId ZERO = new ChunkId(new byte[LENGTH]);
    private static final HexFormat HEX = HexFormat.of();
    private static final dev.cask.common.Pool<MessageDigest> SHA256 = new dev.cask.common.Pool<>(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    });

    private final byte[] bytes;

    private ChunkId(byte[] bytes) {
        this.bytes = bytes;
    }

    /** The id of {@code data[off, off+len)}. */
    public static ChunkId of(byte[] data, int off, int len) {
        return SHA256.with(md -> {
            md.update(data, off, len);
            return new ChunkId(md.digest());
        });
    }

    public static ChunkId of(byte[] data) {
        return of(data, 0, data.length);
    }

    /** Wraps 32 bytes read from somewhere (copied). */
    public static ChunkId fromBytes(byte[] src, int off) {
        return new ChunkId(Arrays.copyOfRange(src, off, off + LENGTH));
    }

    public static ChunkId fromBytes(byte[] src) {
        if (src.length != LENGTH) throw new IllegalArgumentException("chunk id needs 32 bytes, got " + src.length);
        return fromBytes(src, 0);
    }

    /** Parses 64 hex characters. */
    public static ChunkId parse(String hex) {
        if (hex.length() != 2 * LENGTH) throw new CaskException.InvalidInput("chunk id '" + hex + "': expected 64 hex characters");
        try {
            return new ChunkId(HEX.parseHex(hex));
        } catch (IllegalArgumentException e) {
            throw new CaskException.InvalidInput("chunk id '" + hex + "': not hex");
        }
    }

    public boolean isZero() {
        return equals(ZERO);
    }

    /** A copy of the 32 bytes. */
    public byte[] toBytes() {
        return bytes.clone();
    }

    public void copyTo(byte[] dst, int off) {
        System.arraycopy(bytes, 0, dst, off, LENGTH);
    }

    /** True when {@code src[off, off+32)} holds this id. */
    public boolean matches(byte[] src, int off) {
        return Arrays.equals(bytes, 0, LENGTH, src, off, off + LENGTH);
    }

    public String hex() {
        return HEX.formatHex(bytes);
    }

    /** The 12-character form used in logs and messages. */
    public String shortHex() {
        return hex().substring(0, 12);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ChunkId other && Arrays.equals(bytes, other.bytes);
    }

    @Override
    public int hashCode() {
        // the bytes are a cryptographic hash: any 4 of them are a good hash code
        return (bytes[0] & 0xff) << 24 | (bytes[1] & 0xff) << 16 | (bytes[2] & 0xff) << 8 | (bytes[3] & 0xff);
    }

    @Override
    public int compareTo(ChunkId o) {
        return Arrays.compareUnsigned(bytes, o.bytes);
    }

    @Override
    public String toString() {
        return shortHex();
    }
}
