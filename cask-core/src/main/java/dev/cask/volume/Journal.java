package dev.cask.volume;

import dev.cask.common.CaskException;
import dev.cask.store.ChunkId;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * A volume's write-ahead log of block mappings: "block b of extent e now holds chunk id" (the
 * zero id: a hole). Format 1, big-endian (docs/format.md):
 * <pre>
 * header:  magic u32 0x636a6e6c ("cjnl") | format u32 = 1 | base version u32 | name length u16 | name | crc32c u32
 * record:  extent u32 | block u64 | chunk id u8[32] | crc32c u32 (of the 44 bytes before it)
 * </pre>
 * (The volume's lease is a separate lock file; the journal is replaced by rename at each
 * checkpoint, so it cannot carry a lock itself.)
 *
 * <p>Durability: {@link #sync} fsyncs the records written so far. The volume syncs the chunk
 * store first, so every synced record names a durable chunk. Records that reach the disk without
 * a sync may name chunks that never did; {@link #replay} returns them all and the volume drops
 * those whose chunk the store lacks (an unflushed write: the block stays old). Replay stops at a
 * torn or corrupt record. Thread-safe (appends are serialised).
 */
final class Journal implements AutoCloseable {
    static final int MAGIC = 0x636a6e6c;
    static final int FORMAT = 1;
    static final int RECORD = 4 + 8 + ChunkId.LENGTH + 4;

    /** One replayed mapping. */
    record Entry(int extent, long block, ChunkId id) {}

    /** What a journal file held. */
    record Contents(int baseVersion, List<Entry> entries) {}

    private final Path path;
    private final FileChannel channel;
    private boolean closed;
    private long position;
    private long syncedPosition = -1;
    private final ByteBuffer buffer = ByteBuffer.allocate(64 * RECORD);

    private Journal(Path path, FileChannel channel, long position) {
        this.path = path;
        this.channel = channel;
        this.position = position;
    }

    /** Reads a journal file, or returns null when there is none. */
    static Contents replay(Path path, String image) {
        byte[] all;
        try {
            all = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": cannot read: " + e.getMessage(), e);
        }
        ByteBuffer b = ByteBuffer.wrap(all);
        int headerLen = headerLength(all, path);
        int magic = b.getInt(0);
        int format = b.getInt(4);
        if (magic != MAGIC) throw new CaskException.Corrupt("journal " + path + ": bad magic 0x" + Integer.toHexString(magic));
        if (format != FORMAT) throw new CaskException.Corrupt("journal " + path + ": format " + format + ", this cask reads format " + FORMAT);
        int base = b.getInt(8);
        String name = new String(all, 14, b.getShort(12) & 0xffff, StandardCharsets.UTF_8);
        if (!name.equals(image)) throw new CaskException.Corrupt("journal " + path + ": belongs to image '" + name + "', not '" + image + "'");
        List<Entry> entries = new ArrayList<>();
        for (int at = headerLen; at + RECORD <= all.length; at += RECORD) {
            CRC32C crc = new CRC32C();
            crc.update(all, at, RECORD - 4);
            if ((int) crc.getValue() != b.getInt(at + RECORD - 4)) break; // torn tail
            entries.add(new Entry(b.getInt(at), b.getLong(at + 4), ChunkId.fromBytes(all, at + 12)));
        }
        return new Contents(base, entries);
    }

    private static int headerLength(byte[] all, Path path) {
        if (all.length < 18) throw new CaskException.Corrupt("journal " + path + ": header truncated (" + all.length + " bytes)");
        ByteBuffer b = ByteBuffer.wrap(all);
        int nameLen = b.getShort(12) & 0xffff;
        int len = 14 + nameLen + 4;
        if (all.length < len) throw new CaskException.Corrupt("journal " + path + ": header truncated (" + all.length + " bytes)");
        CRC32C crc = new CRC32C();
        crc.update(all, 0, len - 4);
        if ((int) crc.getValue() != b.getInt(len - 4)) throw new CaskException.Corrupt("journal " + path + ": header checksum mismatch");
        return len;
    }

    /**
     * Starts a new journal generation at {@code path}: writes header and {@code carried} entries
     * to a temporary file, fsyncs it and renames it into place, then closes {@code previous}.
     */
    static Journal create(Path path, String image, int baseVersion, List<Entry> carried, Journal previous) {
        Path tmp = path.resolveSibling(path.getFileName() + ".new");
        try {
            FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING);
            byte[] name = image.getBytes(StandardCharsets.UTF_8);
            ByteBuffer h = ByteBuffer.allocate(14 + name.length + 4);
            h.putInt(MAGIC).putInt(FORMAT).putInt(baseVersion).putShort((short) name.length).put(name);
            CRC32C crc = new CRC32C();
            crc.update(h.array(), 0, h.position());
            h.putInt((int) crc.getValue());
            h.flip();
            long pos = 0;
            while (h.hasRemaining()) pos += ch.write(h, pos);
            Journal j = new Journal(path, ch, pos);
            for (Entry e : carried) j.append(e.extent(), e.block(), e.id());
            j.flushBuffer();
            ch.force(true);
            Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            try (FileChannel d = FileChannel.open(path.getParent(), StandardOpenOption.READ)) {
                d.force(true);
            }
            if (previous != null) previous.closeQuietly();
            return j;
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": cannot write a new generation: " + e.getMessage(), e);
        }
    }

    synchronized void append(int extent, long block, ChunkId id) {
        if (buffer.remaining() < RECORD) flushBufferUnchecked();
        int start = buffer.position();
        buffer.putInt(extent).putLong(block).put(id.toBytes());
        CRC32C crc = new CRC32C();
        crc.update(buffer.array(), start, RECORD - 4);
        buffer.putInt((int) crc.getValue());
    }

    private void flushBufferUnchecked() {
        try {
            flushBuffer();
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": write failed: " + e.getMessage(), e);
        }
    }

    private void flushBuffer() throws IOException {
        buffer.flip();
        while (buffer.hasRemaining()) position += channel.write(buffer, position);
        buffer.clear();
    }

    /**
     * Makes every appended record durable. Flushes that queue behind another one find nothing
     * new and return without a second fsync (a simple group commit).
     */
    synchronized void sync() {
        if (buffer.position() == 0 && position == syncedPosition) return;
        try {
            flushBuffer();
            channel.force(false);
            syncedPosition = position;
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": sync failed: " + e.getMessage(), e);
        }
    }

    /** Removes the journal file: the volume's changes are all in a committed version. */
    synchronized void delete() {
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": cannot delete: " + e.getMessage(), e);
        }
        closeQuietly();
    }

    private void closeQuietly() {
        closed = true;
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing
        }
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        flushBufferUnchecked();
        closeQuietly();
    }
}
