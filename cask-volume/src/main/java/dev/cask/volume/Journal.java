package dev.cask.volume;

import dev.cask.common.CaskException;
import dev.cask.common.Pool;
import dev.cask.store.ChunkId;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * One generation of a volume's write-ahead log: the data of the blocks written since the last
 * checkpoint, so that a write costs one sequential append and no hashing. A checkpoint later
 * reads the blocks back, stores them as chunks and commits a version; then the generation is
 * deleted. Format 3, big-endian (docs/format.md; format 2, the same without base records, is
 * still read):
 * <pre>
 * header:  magic u32 0x636a6e6c ("cjnl") | format u32 = 3 | generation u64 | base version u32
 *          | name length u16 | name | crc32c u32 (of the header bytes before it)
 * record:  magic u32 0x636a7263 ("cjrc") | kind u8 (1 data, 2 zero, 3 base) | extent u32 | first block u64
 *          | count u32 | block size u32 | crc32c u32 (of the 25 record-header bytes before it)
 *          then, for a data record, count times: block data u8[block size] | crc32c u32 of that data
 * </pre>
 * A zero record says "these blocks are holes now" and carries no data.
 *
 * <p><b>Base version.</b> The header names the version the generation's writes were made on. A
 * checkpoint starts the next generation before it commits, so that header names the version
 * before the checkpoint; once the version is committed, a base record (kind 3, the version in
 * {@code first block}, extent, count and block size 0) is appended and synced before the sealed
 * generations are deleted. {@link Replayed#baseVersion} is the last base record's version, else
 * the header's: the version that this generation and every later one replay onto when it is the
 * oldest one left ({@link JournalFiles}).
 *
 * <p><b>Appends</b> are serialised (one positional write per record, in file order), so the file
 * never has a gap: replay reads records in order and stops at the first header that is not whole
 * and valid (the torn tail of a crash). Within the last record, a block whose CRC fails was torn:
 * it is skipped and keeps its older content. Every block is therefore old or new, never torn.
 *
 * <p><b>Durability.</b> {@link #sync} fdatasyncs the file; a sync that finds no append completed
 * since the last one returns at once (group commit: FLUSHes that queued behind another cost no
 * second fsync). A new generation's header is fsynced, and its directory entry too, before the
 * first append, so a synced record is always found by replay.
 *
 * <p><b>Locations.</b> {@link #append} returns the file offset of the first block's data; block
 * {@code i} of the record sits at {@code offset + i * (blockSize + 4)}. {@link #readBlock} reads
 * a block and its CRC in one positional read and checks it: corrupt journal data is an error,
 * never wrong data. Thread-safe.
 */
final class Journal implements AutoCloseable {
    static final int MAGIC = 0x636a6e6c;
    static final int RECORD_MAGIC = 0x636a7263;
    static final int FORMAT = 3;
    /** The format before base records; read, never written. */
    static final int FORMAT_NO_BASE_RECORDS = 2;
    static final int RECORD_HEADER = 4 + 1 + 4 + 8 + 4 + 4 + 4;
    static final byte KIND_DATA = 1;
    static final byte KIND_ZERO = 2;
    static final byte KIND_BASE = 3;
    /** Largest data record written: longer writes become several records. */
    static final int MAX_RECORD_DATA = 1 << 20;
    /** Format 1 record length (legacy journals of block -> chunk id, read once for upgrade). */
    private static final int V1_RECORD = 4 + 8 + ChunkId.LENGTH + 4;

    /** Direct buffers records are built in (one write each): small ones for small writes, so many clients cost little. */
    private static final int SMALL_DATA = 64 << 10;
    private static final int SMALL_CAPACITY = RECORD_HEADER + SMALL_DATA + (SMALL_DATA / 512) * 4;
    private static final int LARGE_CAPACITY = RECORD_HEADER + MAX_RECORD_DATA + (MAX_RECORD_DATA / 512) * 4;
    private static final Pool<ByteBuffer> SMALL = new Pool<>(() -> ByteBuffer.allocateDirect(SMALL_CAPACITY));
    private static final Pool<ByteBuffer> LARGE = new Pool<>(() -> ByteBuffer.allocateDirect(LARGE_CAPACITY), 16);

    /** One replayed block: a data block at {@code offset}, or (offset of its record) a hole. */
    record Entry(int extent, long block, long offset, boolean zero) {}

    /** A legacy format 1 mapping: the block holds chunk {@code id} (the zero id: a hole). */
    record LegacyEntry(int extent, long block, ChunkId id) {}

    private final Path path;
    private final long generation;
    private final FileChannel channel;
    private long position;
    private long appends;
    private long syncedAppends;
    /** File position when the latest sync started: data before it may be durable, so it is never overwritten. */
    private volatile long overwriteFloor;
    private boolean closed;
    private final Object syncLock = new Object();
    /** Where synced bytes are copied for other nodes ({@link SharedJournal#NONE}: nowhere). */
    private volatile SharedJournal shared = SharedJournal.NONE;
    /** Bytes of the file the shared copy holds (written under {@link #syncLock}). */
    private volatile long sharedUpTo;
    /** Base records appended, and how many of them the shared copy holds. */
    private long bases;
    private long sharedBases;

    private Journal(Path path, long generation, FileChannel channel, long position) {
        this.path = path;
        this.generation = generation;
        this.channel = channel;
        this.position = position;
    }

    Path path() {
        return path;
    }

    long generation() {
        return generation;
    }

    /**
     * From now on, every {@link #sync} also makes the bytes it made durable durable in {@code to}
     * ({@link SharedJournal#synced}), before it returns; {@code holdsAll}: the shared copy holds the
     * file as it is (a generation replayed from it), else nothing of it yet (a new generation).
     */
    void share(SharedJournal to, boolean holdsAll) {
        synchronized (syncLock) {
            shared = to;
            sharedUpTo = holdsAll ? size() : 0;
        }
    }

    /** Bytes in the file (header and records). */
    synchronized long size() {
        return position;
    }

    /** Suffix of a generation being created ({@link #create}); recovery never reads such a file. */
    static final String CREATING = ".new";

    /**
     * Creates generation {@code generation} at {@code path}: the header is written and fsynced
     * under a temporary name ({@code path} + {@link #CREATING}, truncated if a crash left one),
     * then renamed into place and the directory fsynced. So a file under the real name always
     * has its whole header: a kill between creating the file and writing the header (seen in
     * CrashTest) leaves only a temporary file, which holds nothing acknowledged and is ignored
     * and overwritten later, never a journal that fails to open. An existing {@code path} is an
     * error, as before.
     */
    static Journal create(Path path, String image, long generation, int baseVersion) {
        Path creating = path.resolveSibling(path.getFileName() + CREATING);
        byte[] name = image.getBytes(StandardCharsets.UTF_8);
        ByteBuffer h = ByteBuffer.allocate(22 + name.length + 4);
        h.putInt(MAGIC).putInt(FORMAT).putLong(generation).putInt(baseVersion).putShort((short) name.length).put(name);
        CRC32C crc = new CRC32C();
        crc.update(h.array(), 0, h.position());
        h.putInt((int) crc.getValue());
        h.flip();
        FileChannel ch = null;
        try {
            if (Files.exists(path)) throw new java.nio.file.FileAlreadyExistsException(path.toString());
            ch = FileChannel.open(creating, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.READ, StandardOpenOption.WRITE);
            long pos = 0;
            while (h.hasRemaining()) pos += ch.write(h, pos);
            ch.force(true);
            Files.move(creating, path, java.nio.file.StandardCopyOption.ATOMIC_MOVE); // the open channel follows the file
            try (FileChannel d = FileChannel.open(path.getParent(), StandardOpenOption.READ)) {
                d.force(true);
            }
            return new Journal(path, generation, ch, pos);
        } catch (IOException e) {
            if (ch != null) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // already failing
                }
            }
            throw new CaskException.Io("journal " + path + ": cannot create generation " + generation + ": " + e.getMessage(), e);
        }
    }

    /** fsyncs a directory: a file created, renamed or deleted in it is durable only after this. */
    static void syncDirectory(Path dir) throws IOException {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        }
    }

    /**
     * The base version in a journal's header (at {@code offset}: 16 in formats 2 and 3, 8 in
     * format 1), after checking its magic; null when the file went away meanwhile (its volume
     * deleted it after a checkpoint). Corrupt for a short header or a bad magic.
     */
    static Integer headerBase(Path path, int offset) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(offset + 4);
            while (b.hasRemaining()) if (ch.read(b, b.position()) < 0) break;
            if (b.hasRemaining()) throw new CaskException.Corrupt("journal " + path + ": header truncated (" + b.position() + " bytes)");
            if (b.getInt(0) != MAGIC) {
                throw new CaskException.Corrupt("journal " + path + ": bad magic 0x" + Integer.toHexString(b.getInt(0)) + ", expected 0x"
                        + Integer.toHexString(MAGIC));
            }
            return b.getInt(offset);
        } catch (java.nio.file.NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": cannot read its header: " + e.getMessage(), e);
        }
    }

    /**
     * What {@link #open} found in an existing generation: its writes, and the version they (and
     * later generations' writes) replay onto: the last base record's, else the header's.
     */
    record Replayed(Journal journal, int baseVersion, List<Entry> entries) {}

    /**
     * Opens an existing generation left by a crash, for reading, and replays it. Throws Corrupt
     * when the header is damaged or names another image; a torn tail is not an error.
     */
    static Replayed open(Path path, String image) {
        FileChannel ch;
        try {
            ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": cannot open: " + e.getMessage(), e);
        }
        try {
            long size;
            try {
                size = ch.size();
            } catch (IOException e) {
                throw new CaskException.Io("journal " + path + ": cannot read its size: " + e.getMessage(), e);
            }
            byte[] head = readFully(ch, 0, (int) Math.min(size, 22 + 0xffff + 4), path);
            ByteBuffer b = ByteBuffer.wrap(head);
            if (head.length < 26) throw new CaskException.Corrupt("journal " + path + ": header truncated (" + head.length + " bytes)");
            int magic = b.getInt(0);
            int format = b.getInt(4);
            if (magic != MAGIC) throw new CaskException.Corrupt("journal " + path + ": bad magic 0x" + Integer.toHexString(magic) + ", expected 0x" + Integer.toHexString(MAGIC));
            if (format != FORMAT && format != FORMAT_NO_BASE_RECORDS) {
                throw new CaskException.Corrupt("journal " + path + ": format " + format + ", expected " + FORMAT_NO_BASE_RECORDS + " or " + FORMAT);
            }
            long gen = b.getLong(8);
            int base = b.getInt(16);
            int nameLen = b.getShort(20) & 0xffff;
            int headerLen = 22 + nameLen + 4;
            if (head.length < headerLen) throw new CaskException.Corrupt("journal " + path + ": header truncated (" + head.length + " bytes)");
            CRC32C crc = new CRC32C();
            crc.update(head, 0, headerLen - 4);
            if ((int) crc.getValue() != b.getInt(headerLen - 4)) throw new CaskException.Corrupt("journal " + path + ": header checksum mismatch");
            String name = new String(head, 22, nameLen, StandardCharsets.UTF_8);
            if (image != null && !name.equals(image)) throw new CaskException.Corrupt("journal " + path + ": belongs to image '" + name + "', not '" + image + "'");
            List<Entry> entries = new ArrayList<>();
            int[] lastBase = {base};
            long at = replayRecords(ch, headerLen, size, entries, format >= FORMAT ? lastBase : null);
            return new Replayed(new Journal(path, gen, ch, at), lastBase[0], entries);
        } catch (RuntimeException e) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // failing anyway
            }
            throw e;
        }
    }

    /**
     * Reads records from {@code at}; returns the offset just past the last whole record. Base
     * records set {@code base[0]} ({@code base} null: format 2, where there are none).
     */
    private static long replayRecords(FileChannel ch, long at, long size, List<Entry> out, int[] base) {
        ByteBuffer hb = ByteBuffer.allocate(RECORD_HEADER);
        CRC32C crc = new CRC32C();
        while (at + RECORD_HEADER <= size) {
            hb.clear();
            try {
                while (hb.hasRemaining()) if (ch.read(hb, at + hb.position()) < 0) return at;
            } catch (IOException e) {
                throw new CaskException.Io("journal: read failed at offset " + at + ": " + e.getMessage(), e);
            }
            crc.reset();
            crc.update(hb.array(), 0, RECORD_HEADER - 4);
            if (hb.getInt(0) != RECORD_MAGIC || (int) crc.getValue() != hb.getInt(RECORD_HEADER - 4)) return at; // torn tail
            byte kind = hb.get(4);
            int extent = hb.getInt(5);
            long first = hb.getLong(9);
            int count = hb.getInt(17);
            int bs = hb.getInt(21);
            if (kind == KIND_BASE && base != null && extent == 0 && count == 0 && bs == 0 && first > 0 && first <= Integer.MAX_VALUE) {
                base[0] = (int) first;
                at += RECORD_HEADER;
                continue;
            }
            // bs is at most 1 MiB (the largest block), so bs + 4 cannot overflow below (a header
            // whose CRC held but whose block size was near 2^31 threw NegativeArraySizeException)
            if (count <= 0 || bs <= 0 || bs > MAX_RECORD_DATA || (kind != KIND_DATA && kind != KIND_ZERO) || first < 0
                    || first > Long.MAX_VALUE - count) return at;
            long body = kind == KIND_DATA ? (long) count * (bs + 4) : 0;
            if (at + RECORD_HEADER + body > size) return at; // torn tail
            long data = at + RECORD_HEADER;
            if (kind == KIND_ZERO) {
                for (int i = 0; i < count; i++) out.add(new Entry(extent, first + i, at, true));
            } else {
                byte[] blk = new byte[bs + 4];
                ByteBuffer bb = ByteBuffer.wrap(blk);
                for (int i = 0; i < count; i++) {
                    long off = data + (long) i * (bs + 4);
                    bb.clear();
                    try {
                        while (bb.hasRemaining()) if (ch.read(bb, off + bb.position()) < 0) return at;
                    } catch (IOException e) {
                        throw new CaskException.Io("journal: read failed at offset " + off + ": " + e.getMessage(), e);
                    }
                    crc.reset();
                    crc.update(blk, 0, bs);
                    if ((int) crc.getValue() == bb.getInt(bs)) out.add(new Entry(extent, first + i, off, false)); // else torn: keeps its old content
                }
            }
            at += RECORD_HEADER + body;
        }
        return at;
    }

    /**
     * Reads a format 1 journal (block -> chunk id records) for an upgrade; null when there is none.
     * {@code image} null: any image's (garbage collection reads them all).
     */
    static List<LegacyEntry> replayLegacy(Path path, String image) {
        byte[] all;
        try {
            all = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": cannot read: " + e.getMessage(), e);
        }
        ByteBuffer b = ByteBuffer.wrap(all);
        if (all.length < 18) throw new CaskException.Corrupt("journal " + path + ": header truncated (" + all.length + " bytes)");
        if (b.getInt(0) != MAGIC) throw new CaskException.Corrupt("journal " + path + ": bad magic 0x" + Integer.toHexString(b.getInt(0)));
        if (b.getInt(4) != 1) throw new CaskException.Corrupt("journal " + path + ": format " + b.getInt(4) + " in a format 1 file name");
        int nameLen = b.getShort(12) & 0xffff;
        int len = 14 + nameLen + 4;
        if (all.length < len) throw new CaskException.Corrupt("journal " + path + ": header truncated (" + all.length + " bytes)");
        CRC32C crc = new CRC32C();
        crc.update(all, 0, len - 4);
        if ((int) crc.getValue() != b.getInt(len - 4)) throw new CaskException.Corrupt("journal " + path + ": header checksum mismatch");
        String name = new String(all, 14, nameLen, StandardCharsets.UTF_8);
        if (image != null && !name.equals(image)) throw new CaskException.Corrupt("journal " + path + ": belongs to image '" + name + "', not '" + image + "'");
        List<LegacyEntry> out = new ArrayList<>();
        for (int at = len; at + V1_RECORD <= all.length; at += V1_RECORD) {
            crc.reset();
            crc.update(all, at, V1_RECORD - 4);
            if ((int) crc.getValue() != b.getInt(at + V1_RECORD - 4)) break;
            out.add(new LegacyEntry(b.getInt(at), b.getLong(at + 4), ChunkId.fromBytes(all, at + 12)));
        }
        return out;
    }

    /**
     * Appends a data record: {@code count} blocks of {@code blockSize} bytes from {@code buf} at
     * {@code off} (count * blockSize at most {@link #MAX_RECORD_DATA}). Returns the offset of the
     * first block's data.
     */
    long append(int extent, long firstBlock, int blockSize, int count, byte[] buf, int off) {
        if ((long) count * blockSize > MAX_RECORD_DATA) throw new IllegalArgumentException("record of " + count + " blocks of " + blockSize);
        return ((long) count * blockSize <= SMALL_DATA ? SMALL : LARGE).with(bb -> {
            bb.clear();
            header(bb, KIND_DATA, extent, firstBlock, count, blockSize);
            putBlocks(bb, buf, off, count, blockSize);
            bb.flip();
            return write(bb) + RECORD_HEADER;
        });
    }

    /** Appends a zero record: the blocks are holes now. Returns the record's offset. */
    long appendZero(int extent, long firstBlock, int count, int blockSize) {
        return SMALL.with(bb -> {
            bb.clear();
            header(bb, KIND_ZERO, extent, firstBlock, count, blockSize);
            bb.flip();
            return write(bb);
        });
    }

    /**
     * Appends a base record: the generations before this one are in version {@code version} now,
     * so a replay that starts here starts from it. The caller syncs it before deleting them.
     */
    void appendBase(int version) {
        if (version < 1) throw new IllegalArgumentException("base version " + version);
        SMALL.with(bb -> {
            bb.clear();
            header(bb, KIND_BASE, 0, version, 0, 0);
            bb.flip();
            synchronized (this) {
                long at = write(bb);
                bases++;
                return at;
            }
        });
    }

    /** A cheap early answer for {@link #overwrite}: false when the block at {@code offset} may be durable already. */
    boolean mayOverwrite(long offset) {
        return offset >= overwriteFloor;
    }

    /** Waits for an append or overwrite in progress to finish (a reader that saw a block mid-overwrite retries after it). */
    synchronized void awaitWrite() {
        // taking the lock is the wait
    }

    /**
     * Overwrites, in place, {@code count} consecutive blocks of one data record, starting with the
     * block at {@code offset}, with new data and CRCs; returns false (writing nothing) when any of
     * them may already be durable, that is when it lies before the position at which the latest
     * {@link #sync} started. Then the caller appends instead.
     *
     * <p>Why this is safe: a block overwritten here was never covered by a completed sync, so no
     * FLUSH promised it. If a crash tears the overwrite, its CRC fails and replay skips it: the
     * block falls back to its previous entry, which is a flushed value or an older unflushed one
     * (old or new, never torn). The check and the write happen under the journal's lock, which
     * {@link #sync} takes to move the floor before it fsyncs: an overwrite either completes before
     * the fsync starts (and is covered by it) or sees the new floor and declines.
     */
    boolean overwrite(long offset, int blockSize, int count, byte[] buf, int off) {
        if ((long) count * blockSize > MAX_RECORD_DATA) throw new IllegalArgumentException("overwrite of " + count + " blocks of " + blockSize);
        return ((long) count * blockSize <= SMALL_DATA ? SMALL : LARGE).with(bb -> {
            bb.clear();
            putBlocks(bb, buf, off, count, blockSize);
            bb.flip();
            synchronized (this) {
                if (closed) throw new IllegalStateException("journal " + path + " is closed");
                if (offset < overwriteFloor || offset + bb.remaining() > position) return false;
                try {
                    long p = offset;
                    while (bb.hasRemaining()) p += channel.write(bb, p);
                } catch (IOException e) {
                    // the blocks may be torn now: their CRCs fail, and reads and replay treat them so
                    throw new CaskException.Io("journal " + path + ": overwrite at offset " + offset + " failed: " + e.getMessage(), e);
                }
                appends++;
                return true;
            }
        });
    }

    /** Puts {@code count} blocks of {@code buf} from {@code off}, each followed by its CRC32C: a data record's body. */
    private static void putBlocks(ByteBuffer bb, byte[] buf, int off, int count, int blockSize) {
        CRC32C crc = new CRC32C();
        for (int i = 0; i < count; i++) {
            int from = off + i * blockSize;
            bb.put(buf, from, blockSize);
            crc.reset();
            crc.update(buf, from, blockSize);
            bb.putInt((int) crc.getValue());
        }
    }

    private static void header(ByteBuffer bb, byte kind, int extent, long first, int count, int bs) {
        bb.putInt(RECORD_MAGIC).put(kind).putInt(extent).putLong(first).putInt(count).putInt(bs);
        CRC32C crc = new CRC32C();
        crc.update(bb.duplicate().flip());
        bb.putInt((int) crc.getValue());
    }

    private synchronized long write(ByteBuffer bb) {
        if (closed) throw new IllegalStateException("journal " + path + " is closed");
        long at = position;
        try {
            long p = at;
            while (bb.hasRemaining()) p += channel.write(bb, p);
            position = p;
            appends++;
            return at;
        } catch (IOException e) {
            // cut what may have been written: the next append starts on a clean record boundary
            try {
                channel.truncate(at);
            } catch (IOException ignored) {
                // the torn tail is ignored by replay anyway
            }
            throw new CaskException.Io("journal " + path + ": write failed: " + e.getMessage(), e);
        }
    }

    /** Reads block data at {@code offset} into {@code dst}, checking its CRC. */
    void readBlock(long offset, int blockSize, byte[] dst, int dstOff, int from, int length) {
        readBlock(offset, blockSize, dev.cask.device.ReadBuffer.of(dst), dstOff, from, length);
    }

    /** As {@link #readBlock(long, int, byte[], int, int, int)}, into any {@link dev.cask.device.ReadBuffer}. */
    void readBlock(long offset, int blockSize, dev.cask.device.ReadBuffer dst, int dstOff, int from, int length) {
        byte[] blk = new byte[blockSize + 4];
        ByteBuffer bb = ByteBuffer.wrap(blk);
        try {
            while (bb.hasRemaining()) {
                if (channel.read(bb, offset + bb.position()) < 0) {
                    throw new CaskException.Corrupt("journal " + path + ": block at offset " + offset + " is past the end of the file");
                }
            }
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": read at offset " + offset + " failed: " + e.getMessage(), e);
        }
        CRC32C crc = new CRC32C();
        crc.update(blk, 0, blockSize);
        if ((int) crc.getValue() != bb.getInt(blockSize)) {
            throw new CaskException.Corrupt("journal " + path + ": block at offset " + offset + " fails its checksum");
        }
        dst.put(dstOff, blk, from, length);
    }

    /**
     * Reads {@code count} consecutive blocks of one record, starting with the block at
     * {@code offset}, into {@code dst} (back to back), checking each CRC: one read for all.
     */
    void readBlocks(long offset, int blockSize, int count, byte[] dst, int dstOff) {
        readBlocks(offset, blockSize, count, dev.cask.device.ReadBuffer.of(dst), dstOff);
    }

    /** As {@link #readBlocks(long, int, int, byte[], int)}, into any {@link dev.cask.device.ReadBuffer}. */
    void readBlocks(long offset, int blockSize, int count, dev.cask.device.ReadBuffer dst, int dstOff) {
        int span = count * (blockSize + 4);
        if (span > LARGE_CAPACITY) throw new IllegalArgumentException("read of " + count + " blocks of " + blockSize);
        (span <= SMALL_CAPACITY ? SMALL : LARGE).with(bb -> {
            bb.clear().limit(span);
            try {
                while (bb.hasRemaining()) {
                    if (channel.read(bb, offset + bb.position()) < 0) {
                        throw new CaskException.Corrupt("journal " + path + ": blocks at offset " + offset + " run past the end of the file");
                    }
                }
            } catch (IOException e) {
                throw new CaskException.Io("journal " + path + ": read at offset " + offset + " failed: " + e.getMessage(), e);
            }
            CRC32C crc = new CRC32C();
            for (int i = 0; i < count; i++) {
                int at = i * (blockSize + 4);
                crc.reset();
                crc.update(bb.slice(at, blockSize));
                if ((int) crc.getValue() != bb.getInt(at + blockSize)) {
                    throw new CaskException.Corrupt("journal " + path + ": block at offset " + (offset + at) + " fails its checksum");
                }
                dst.put(dstOff + i * blockSize, bb, at, blockSize);
            }
            return null;
        });
    }

    /**
     * Makes every completed append durable. Appends go on while the fsync runs; flushes queue on
     * their own lock, and one that finds nothing appended since the last sync returns at once.
     */
    void sync() {
        synchronized (syncLock) {
            long target;
            long upTo;
            long basesNow;
            synchronized (this) {
                if (closed || appends == syncedAppends) return;
                target = appends;
                overwriteFloor = position;
                upTo = position; // nothing before it is overwritten from now on: a stable range to copy
                basesNow = bases;
            }
            try {
                channel.force(false);
            } catch (IOException e) {
                throw new CaskException.Io("journal " + path + ": sync failed: " + e.getMessage(), e);
            }
            if (shared.keeps() && upTo > sharedUpTo) {
                shared.synced(generation, sharedUpTo, upTo, (offset, length) -> readFully(channel, offset, length, path), basesNow > sharedBases);
                sharedUpTo = upTo;
                sharedBases = basesNow;
            }
            synchronized (this) {
                syncedAppends = Math.max(syncedAppends, target);
            }
        }
    }

    private static byte[] readFully(FileChannel ch, long at, int len, Path path) {
        ByteBuffer bb = ByteBuffer.allocate(len);
        try {
            while (bb.hasRemaining()) if (ch.read(bb, at + bb.position()) < 0) break;
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": cannot read: " + e.getMessage(), e);
        }
        return java.util.Arrays.copyOf(bb.array(), bb.position());
    }

    /** Closes and removes the file: its blocks are all in a committed version. */
    synchronized void delete() {
        closeQuietly();
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            throw new CaskException.Io("journal " + path + ": cannot delete: " + e.getMessage(), e);
        }
        if (shared.keeps() && sharedUpTo > 0) {
            try {
                shared.deleted(generation);
            } catch (CaskException e) { // harmless: a later base record's sync removes it (SharedJournal)
                System.getLogger("cask.volume").log(System.Logger.Level.WARNING, "journal " + path + ": deleted here, but not from its shared copy yet: " + e.getMessage());
            }
        }
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
        closeQuietly();
    }
}
