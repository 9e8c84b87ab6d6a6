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
 * <p>Immutable; equality and hash code are over the bytes. The first 8 bytes are also kept as a
 * {@code long} ({@code head}): hash code, equality and order look at it first, so the maps and
 * sorts of a checkpoint's or an import's ids (hundreds of thousands per sync) mostly decide
 * without following the reference to the byte array (a cache miss each, for ids spread over the heap).
 */
public final class ChunkId implements Comparable<ChunkId> {
    public static final int LENGTH = 32;
    /** Declared before {@link #ZERO}, whose constructor uses it. */
    private static final java.lang.invoke.VarHandle BIG_ENDIAN_LONG =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, java.nio.ByteOrder.BIG_ENDIAN);
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
    /** {@code bytes[0..8)} as a big-endian long: compared unsigned, it orders ids as their bytes do. */
    private final long head;

    private ChunkId(byte[] bytes) {
        this.bytes = bytes;
        this.head = (long) BIG_ENDIAN_LONG.get(bytes, 0);
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

    /** Bytes {@code [8i, 8i+8)} of the id as a big-endian long, {@code i} in 0..3 (a cache's key or bucket: the bytes are a hash). */
    public long word(int i) {
        return i == 0 ? head : (long) BIG_ENDIAN_LONG.get(bytes, 8 * i);
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
        return o instanceof ChunkId other && head == other.head && Arrays.equals(bytes, other.bytes);
    }

    @Override
    public int hashCode() {
        // the bytes are a cryptographic hash: any 4 of them are a good hash code (here the first 4, big-endian)
        return (int) (head >>> 32);
    }

    @Override
    public int compareTo(ChunkId o) {
        int c = Long.compareUnsigned(head, o.head);
        return c != 0 ? c : Arrays.compareUnsigned(bytes, o.bytes);
    }

    @Override
    public String toString() {
        return shortHex();
    }
}
