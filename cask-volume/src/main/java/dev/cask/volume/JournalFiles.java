package dev.cask.volume;

import dev.cask.common.CaskException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.TreeMap;

/**
 * The files one image has in a store's journal directory ({@code NAME} is the image name with
 * '/' spelled '+', which names never contain): generations {@code NAME.journal-G}, a generation
 * being created {@code NAME.journal-G.new}, a format 1 journal {@code NAME.journal}, and the
 * lease {@code NAME.lease} ({@link FileLeases}, when the leases are kept in the same directory). It
 * answers what commands need to know about them without opening the image: did a crash leave
 * writes that are in no version ({@link #hasLeftover}), and it deletes them when the image goes
 * ({@link #discard}).
 *
 * <p><b>Which version a leftover journal replays onto.</b> Always the version its writes were
 * made on, never whatever the head is now: {@link #replay} returns the base version of the oldest
 * generation left (the last base record in it, else its header's; see {@link Journal}), and every
 * later generation replays onto the same version, after it. Why the oldest one decides: a
 * checkpoint deletes the generations it sealed only after the next generation holds a synced base
 * record naming the committed version, so the oldest generation left always names a version that
 * holds every write of the generations already deleted and none of the ones left (or, between
 * the commit and the base record, the older version with the sealed generations still there:
 * the same content either way).
 *
 * <p>Stateless apart from the two names; safe to use from any thread.
 */
public final class JournalFiles {
    /** Generations past this number do not fit a journal location ({@link Volume#loc}). */
    static final long MAX_GENERATION = (1L << (63 - Volume.OFFSET_BITS)) - 1;

    private final Path dir;
    private final String image;

    public JournalFiles(Path dir, String image) {
        this.dir = dir;
        this.image = image;
    }

    /** Creates the directory and makes its entry durable, before a FLUSH promises a journal in it. */
    void prepare() {
        try {
            java.nio.file.Files.createDirectories(dir);
            // its entry in the parent must be durable before a FLUSH promises a journal in it
            // (always: another process may have created it a moment ago and not synced it yet)
            Journal.syncDirectory(dir.toAbsolutePath().getParent());
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot prepare its journal directory " + dir + ": " + e.getMessage(), e);
        }
    }

    Path dir() {
        return dir;
    }

    Path generation(long g) {
        return dir.resolve(prefix() + g);
    }

    Path legacy() {
        return dir.resolve(fileName() + ".journal");
    }

    private String fileName() {
        return image.replace('/', '+');
    }

    private String prefix() {
        return fileName() + ".journal-";
    }

    /**
     * True when journal generations (or a format 1 journal) are on disk: when the image is not
     * leased, a crash left them, and they may hold flushed writes that no version has yet.
     */
    public boolean hasLeftover() {
        return !generationsOnDisk().isEmpty() || Files.exists(legacy());
    }

    /**
     * Calls {@code sink} with every chunk id that a format 1 journal in the journal directory
     * {@code dir} names, whatever its image. Such a journal (left by an older cask's crashed
     * volume) holds no data, only the ids of the chunks its writes stored, which no version
     * references: until the image is opened and the journal upgraded (its blocks' data copied
     * into a generation, then the file deleted), garbage collection must keep them, as it keeps
     * the versions. A format 1 journal that cannot be read throws: what it needs is unknown, so a
     * collection must not sweep. A journal upgraded meanwhile is gone, and with it the need.
     */
    public static void forEachFormatOneChunk(Path dir, java.util.function.Consumer<dev.cask.store.ChunkId> sink) {
        if (!Files.isDirectory(dir)) return;
        List<Path> legacy = new ArrayList<>();
        try (var files = Files.list(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) if (p.getFileName().toString().endsWith(".journal")) legacy.add(p);
        } catch (IOException e) {
            throw new CaskException.Io("journals " + dir + ": cannot list: " + e.getMessage(), e);
        }
        for (Path p : legacy) {
            List<Journal.LegacyEntry> entries = Journal.replayLegacy(p, null);
            if (entries != null) for (Journal.LegacyEntry e : entries) sink.accept(e.id());
        }
    }

    /** The generation numbers on disk, in order ({@code .new} files are not generations). */
    List<Long> generationsOnDisk() {
        List<Long> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) return out;
        String prefix = prefix();
        try (var files = Files.list(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String n = p.getFileName().toString();
                if (n.startsWith(prefix) && n.length() > prefix.length() && n.substring(prefix.length()).chars().allMatch(Character::isDigit)
                        && n.length() - prefix.length() < 18) {
                    out.add(Long.parseLong(n.substring(prefix.length())));
                }
            }
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot list its journals in " + dir + ": " + e.getMessage(), e);
        }
        Collections.sort(out);
        return out;
    }

    /**
     * The versions the image's journals on disk are based on: the base version in the header of
     * every generation (and of a format 1 journal). Retention keeps these, and the head.
     *
     * <p>Why headers are enough: replay needs the oldest generation's base, which is its last
     * base record's version, else its header's. A base record naming version X is appended to
     * generation G+1 only after X's commit made X the head; X stops being the head only through
     * the next checkpoint, which first creates generation G+2 whose header names X, and deletes
     * G+1 only after its own base record. So the version replay needs is always the head or in
     * a header, and reading only the headers (a few bytes each) never misses it. A header that
     * cannot be read is Corrupt: nothing may be removed on a guess.
     */
    public java.util.SortedSet<Integer> baseVersions() {
        java.util.SortedSet<Integer> out = new java.util.TreeSet<>();
        for (long g : generationsOnDisk()) {
            Integer base = Journal.headerBase(generation(g), 16);
            if (base != null) out.add(base);
        }
        if (Files.exists(legacy())) {
            Integer base = Journal.headerBase(legacy(), 8);
            if (base != null) out.add(base);
        }
        return out;
    }

    /** One replayed write: generation {@code generation}'s entry. */
    record Write(long generation, Journal.Entry entry) {}

    /**
     * What a crash left: every generation, open, in order; their writes in journal order; the
     * version they replay onto (the oldest generation's base, 0 when there is none); and the last
     * generation number (0: none).
     */
    record Leftover(TreeMap<Long, Journal> generations, List<Write> writes, int baseVersion, long last) {}

    /**
     * Opens and replays every generation on disk. On an error (a damaged header, another image's
     * journal) the generations opened so far are closed and the error is thrown: nothing changes.
     */
    Leftover replay() {
        TreeMap<Long, Journal> open = new TreeMap<>();
        List<Write> writes = new ArrayList<>();
        int base = 0;
        try {
            for (long g : generationsOnDisk()) {
                if (g > MAX_GENERATION) throw new CaskException.Corrupt("journal " + generation(g) + ": generation " + g + " is too large");
                Journal.Replayed r = Journal.open(generation(g), image);
                open.put(g, r.journal());
                if (open.size() == 1) base = r.baseVersion();
                for (Journal.Entry e : r.entries()) writes.add(new Write(g, e));
            }
        } catch (RuntimeException e) {
            for (Journal j : open.values()) j.close();
            throw e;
        }
        return new Leftover(open, writes, base, open.isEmpty() ? 0 : open.lastKey());
    }

    /**
     * Makes the image's generation files what the shared copy holds ({@link SharedJournal#read}):
     * the generations on disk and ones being created are deleted, then each generation of the
     * shared copy is written, fsynced, and the directory fsynced. The shared copy wins: a FLUSH
     * was acknowledged only once its bytes were there, so what only this node's files hold was
     * never acknowledged, and generations another node wrote since (after a take-over) are only
     * there. A format 1 journal is left alone. Only by the holder of the image's lease.
     */
    void restore(SharedJournal shared) {
        try {
            if (Files.isDirectory(dir)) {
                for (long g : generationsOnDisk()) Files.deleteIfExists(generation(g));
                deleteCreating();
            }
            java.nio.channels.FileChannel[] open = {null};
            long[] current = {-1};
            try {
                shared.read((g, offset, data) -> {
                    try {
                        if (g != current[0]) {
                            if (open[0] != null) {
                                open[0].force(false);
                                open[0].close();
                            }
                            if (g < 1 || g > MAX_GENERATION) throw new CaskException.Corrupt("image '" + image + "': shared journal has generation " + g);
                            open[0] = java.nio.channels.FileChannel.open(generation(g), java.nio.file.StandardOpenOption.CREATE,
                                    java.nio.file.StandardOpenOption.WRITE);
                            current[0] = g;
                        }
                        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(data);
                        long p = offset;
                        while (b.hasRemaining()) p += open[0].write(b, p);
                    } catch (IOException e) {
                        throw new CaskException.Io("image '" + image + "': cannot write journal generation " + g + " in " + dir + ": " + e.getMessage(), e);
                    }
                });
                if (open[0] != null) open[0].force(false);
            } finally {
                if (open[0] != null) open[0].close();
            }
            Journal.syncDirectory(dir);
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot restore its journal in " + dir + ": " + e.getMessage(), e);
        }
    }

    /** Deletes the image's generation files being created ({@code .new}). */
    private void deleteCreating() throws IOException {
        String prefix = prefix();
        try (var files = Files.list(dir)) {
            for (Path p : (Iterable<Path>) files::iterator) {
                String n = p.getFileName().toString();
                if (n.startsWith(prefix) && n.endsWith(Journal.CREATING) && n.length() > prefix.length() + Journal.CREATING.length()
                        && n.substring(prefix.length(), n.length() - Journal.CREATING.length()).chars().allMatch(Character::isDigit)) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    /**
     * Deletes every journal file of the image (generations, ones being created, a format 1
     * journal); the image must not be open anywhere. Used when the image is removed, so that a
     * new image of the same name never replays them.
     */
    public void discard() {
        if (!Files.isDirectory(dir)) return;
        try {
            for (long g : generationsOnDisk()) Files.deleteIfExists(generation(g));
            deleteCreating();
            Files.deleteIfExists(legacy());
            Journal.syncDirectory(dir); // durable before the caller goes on (a new image of the same name)
        } catch (IOException e) {
            throw new CaskException.Io("image '" + image + "': cannot delete its journals in " + dir + ": " + e.getMessage(), e);
        }
    }
}
