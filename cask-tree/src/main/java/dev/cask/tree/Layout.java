package dev.cask.tree;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * How a disk is cut into extents, each with its own tree: the content of a version.
 * Extents are contiguous from offset 0; the disk size is the sum of their lengths.
 *
 * <p>Encoding, version 1 (big-endian; docs/format.md):
 * <pre>
 * magic u32 0x636c6179 ("clay") | version u8 = 1 | extent count u32
 * per extent: offset u64 | length u64 | block size u32 | depth u8 | top chunk id u8[32]
 * </pre>
 * {@link #decode} checks every field and that it consumed exactly the bytes given.
 */
public record Layout(List<Extent> extents) {
    public static final int MAGIC = 0x636c6179;
    public static final int VERSION = 1;
    private static final int EXTENT_BYTES = 8 + 8 + 4 + 1 + 32;

    /** One piece of the layout: {@code root.size()} bytes at {@code offset}. */
    public record Extent(long offset, Root root) {
        public long length() {
            return root.size();
        }

        public long end() {
            return offset + root.size();
        }
    }

    public Layout {
        extents = List.copyOf(extents);
        long at = 0;
        for (Extent e : extents) {
            if (e.offset() != at) throw new CaskException.Corrupt("layout: extent at " + e.offset() + " should start at " + at);
            // each extent is at most 2^60 bytes, so this cannot overflow before the check stops it
            if (Root.MAX_SIZE - at < e.length()) throw new CaskException.Corrupt("layout: extents add up to more than 2^60 bytes");
            at = e.end();
        }
    }

    /** A layout with one tree for the whole disk. */
    public static Layout single(Root root) {
        return new Layout(List.of(new Extent(0, root)));
    }

    public long size() {
        return extents.isEmpty() ? 0 : extents.getLast().end();
    }

    /** Receives one extent's share of a byte range: {@code [from, to)} in disk offsets. */
    @FunctionalInterface
    public interface Piece {
        void accept(int index, Extent extent, long from, long to);
    }

    /** Calls {@code piece} for every extent that overlaps {@code [offset, offset+length)}, in order. */
    public void overlapping(long offset, long length, Piece piece) {
        long end = offset + length;
        for (int i = 0; i < extents.size(); i++) {
            Extent e = extents.get(i);
            long from = Math.max(offset, e.offset());
            long to = Math.min(end, e.end());
            if (from < to) piece.accept(i, e, from, to);
        }
    }

    public byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(9 + extents.size() * EXTENT_BYTES);
        b.putInt(MAGIC).put((byte) VERSION).putInt(extents.size());
        for (Extent e : extents) {
            b.putLong(e.offset()).putLong(e.length()).putInt(e.root().blockSize()).put((byte) e.root().depth());
            b.put(e.root().top().toBytes());
        }
        return b.array();
    }

    public static Layout decode(byte[] bytes) {
        try {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            int magic = b.getInt();
            if (magic != MAGIC) throw new CaskException.Corrupt("layout: bad magic 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(MAGIC));
            int version = b.get();
            if (version != VERSION) throw new CaskException.Corrupt("layout: format " + version + ", this cask reads format " + VERSION);
            int n = b.getInt();
            if (n < 0 || (long) n * EXTENT_BYTES != b.remaining()) {
                throw new CaskException.Corrupt("layout: " + n + " extents do not fit " + b.remaining() + " bytes");
            }
            Extent[] out = new Extent[n];
            byte[] id = new byte[ChunkId.LENGTH];
            for (int i = 0; i < n; i++) {
                long off = b.getLong();
                long len = b.getLong();
                int bs = b.getInt();
                int depth = b.get();
                b.get(id);
                try {
                    out[i] = new Extent(off, new Root(len, bs, depth, ChunkId.fromBytes(id)));
                } catch (CaskException.InvalidInput | CaskException.Corrupt e) {
                    // a bad size or block size in stored bytes is corruption, not bad user input; say which extent
                    throw new CaskException.Corrupt("layout: extent " + i + ": " + e.getMessage());
                }
            }
            return new Layout(List.of(out));
        } catch (java.nio.BufferUnderflowException e) {
            throw new CaskException.Corrupt("layout: truncated (" + bytes.length + " bytes)");
        }
    }
}
