package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import dev.cask.store.ChunkLocation;
import dev.cask.store.ScanSink;
import dev.cask.store.ScanSink.Damage;
import dev.cask.store.ScanSink.PackProblem;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A scan of one pack file from its header to its end, record by record and segment by segment,
 * trusting nothing but the bytes: what {@code cask check} reads, what {@code check --repair}
 * rebuilds the index from, and how {@link PackRecovery} finds a torn tail. It reads the whole
 * file into memory (a pack is at most the pack limit, 256 MiB by default), checks each record's
 * or segment's magic, lengths and CRC32C (without decompressing: the CRC covers the stored
 * bytes) and hands every chunk of a good one to a {@link ScanSink}, with a supplier of its plain
 * bytes for a deep check (a segment is decompressed once, when its first chunk asks). Bytes that
 * are no good record or segment are reported as one {@link Damage} per stretch, and the scan goes
 * on at the next offset where a whole, valid record or segment starts ({@link #resync}), so one bad
 * byte never hides the records behind it. The stretches the pack's holes file lists (dead units a
 * collection punched out, see {@link PackHoles}) are skipped: they are not damage, and no chunk
 * in them may come back. Stateless; each call owns its buffers.
 */
public final class PackScan {
    private PackScan() {}

    /** Decompresses a scanned segment the first time one of its chunks asks, then hands out each chunk. */
    private static final class ScannedSegment {
        private final PackFormat.Segment segment;
        private byte[] all;
        private CaskException failure;

        ScannedSegment(PackFormat.Segment segment) {
            this.segment = segment;
        }

        byte[] chunk(String what, int slot) {
            if (all == null && failure == null) {
                try {
                    all = PackReader.segmentPlain(what, segment);
                } catch (CaskException e) {
                    failure = e;
                }
            }
            if (failure != null) throw new CaskException.Corrupt(what + ": " + failure.getMessage());
            return PackFormat.chunkPlain(what, segment, all, slot);
        }
    }

    /**
     * Reads every record and segment of pack {@code id}, checking magic, lengths and CRC. A bad
     * one is reported and the scan resynchronises at the next record or segment magic that
     * decodes; a torn tail is reported.
     */
    public static void scan(Path p, int id, ScanSink sink, Progress progress) {
        byte[] all;
        try {
            all = Files.readAllBytes(p);
        } catch (IOException e) {
            sink.packProblem(PackProblem.UNREADABLE, "pack " + id + ": cannot read " + p + ": " + e.getMessage());
            return;
        }
        PackHoles holes;
        try {
            holes = PackHoles.read(PackHoles.besidePack(p, id), id);
        } catch (CaskException e) {
            sink.problem(e.getMessage() + "; the pack is read as if nothing in it was punched");
            holes = PackHoles.NONE;
        }
        scan(all, id, holes, sink, progress);
    }

    /**
     * {@link #scan(Path, int, ScanSink, Progress)} of a pack whose bytes are {@code all} and in
     * which nothing was punched (a pack object in an object store: nothing deletes from it).
     */
    public static void scan(byte[] all, int id, ScanSink sink, Progress progress) {
        scan(all, id, PackHoles.NONE, sink, progress);
    }

    private static void scan(byte[] all, int id, PackHoles holes, ScanSink sink, Progress progress) {
        progress.advance(0);
        int format;
        try {
            int named = PackFormat.decodePackHeader("pack " + id, all);
            if (named != id) sink.packProblem(PackProblem.MISNAMED, "pack " + id + ": header names pack " + named);
            format = PackFormat.packFormat("pack " + id, all);
        } catch (CaskException e) {
            sink.damage(new Damage(id, 0, all.length, Damage.Kind.HEADER, e.getMessage()));
            return;
        }
        if (holes.count() > 0 && holes.end(holes.count() - 1) > all.length) {
            sink.problem("pack " + id + ": its holes file lists a stretch up to offset " + holes.end(holes.count() - 1)
                    + ", past the end of the pack (" + all.length + " bytes); the pack is read as if nothing in it was punched");
            holes = PackHoles.NONE;
        }
        int pos = PackFormat.PACK_HEADER;
        while (pos < all.length) {
            long skip = holes.skip(pos);
            if (skip > 0) { // a punched stretch of dead units (see PackHoles): the next unit starts at its end
                progress.advance(skip - pos - PackHoles.punchedLength(pos, skip)); // the progress counts stored bytes
                pos = (int) skip;
                continue;
            }
            String what = "pack " + id + " at offset " + pos;
            try {
                int len;
                if (all.length - pos >= 4 && PackFormat.magicAt(all, pos) == PackFormat.SEGMENT_MAGIC) {
                    if (format < 2) throw new CaskException.Corrupt(what + ": segment in a format 1 pack");
                    if (all.length - pos < PackFormat.SEGMENT_HEADER) throw new CaskException.Corrupt(what + ": truncated segment header (" + (all.length - pos) + " bytes at the end)");
                    len = PackFormat.segmentLength(what, all, pos);
                    if (len > all.length - pos) throw new CaskException.Corrupt(what + ": segment of " + len + " bytes runs past the end of the pack (" + all.length + " bytes)");
                    PackFormat.Segment s = PackFormat.decodeSegment(what, all, pos, len);
                    ScannedSegment scanned = new ScannedSegment(s);
                    for (int k = 0; k < s.count(); k++) {
                        int slot = k;
                        ChunkLocation loc = new ChunkLocation(id, pos, len, slot);
                        String chunkWhat = "chunk " + s.ids()[k].shortHex() + " (" + loc + ")";
                        sink.chunk(s.ids()[k], loc, () -> scanned.chunk(chunkWhat, slot));
                    }
                } else {
                    if (all.length - pos < PackFormat.RECORD_HEADER) throw new CaskException.Corrupt(what + ": truncated record header (" + (all.length - pos) + " bytes at the end)");
                    int stored = PackFormat.storedLength(what, all, pos);
                    len = PackFormat.RECORD_HEADER + stored;
                    if (len > all.length - pos) throw new CaskException.Corrupt(what + ": record of " + len + " bytes runs past the end of the pack (" + all.length + " bytes)");
                    PackFormat.Record r = PackFormat.decodeRecord(what, all, pos, len);
                    ChunkLocation loc = new ChunkLocation(id, pos, len);
                    String chunkWhat = "chunk " + r.id().shortHex() + " (" + loc + ")";
                    sink.chunk(r.id(), loc, () -> PackReader.plainBytes(chunkWhat, r));
                }
                progress.advance(len);
                pos += len;
            } catch (CaskException e) {
                int next = (int) Math.min(resync(all, pos + 1), holes.nextStart(pos)); // a stretch starts at a unit boundary
                sink.damage(new Damage(id, pos, next - pos, next == all.length ? Damage.Kind.TAIL : Damage.Kind.RECORD, e.getMessage()));
                progress.advance(next - pos);
                pos = next;
            }
        }
    }

    private static int resync(byte[] all, int from) {
        for (int i = from; i + PackFormat.SEGMENT_HEADER <= all.length; i++) {
            if (all[i] != 0x63) continue; // both magics start with 'c'
            int magic = PackFormat.magicAt(all, i);
            try {
                if (magic == PackFormat.RECORD_MAGIC && i + PackFormat.RECORD_HEADER <= all.length) {
                    int len = PackFormat.RECORD_HEADER + PackFormat.storedLength("", all, i);
                    if (len <= all.length - i) {
                        PackFormat.decodeRecord("", all, i, len);
                        return i;
                    }
                } else if (magic == PackFormat.SEGMENT_MAGIC) {
                    int len = PackFormat.segmentLength("", all, i);
                    if (len <= all.length - i) {
                        PackFormat.decodeSegment("", all, i, len);
                        return i;
                    }
                }
            } catch (CaskException ignored) {
                // not a record or segment: keep looking
            }
        }
        return all.length;
    }
}
