package dev.cask.store.local;

import dev.cask.common.CaskException;
import dev.cask.common.Pacer;
import dev.cask.store.ChunkDeleter;
import dev.cask.store.ChunkStore;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * GC epochs and writer sessions: the safety rule of garbage collection on a local store.
 *
 * <p><b>The rule.</b> The index holds a store-wide GC epoch ({@code gc.epoch}, durable) and every
 * entry a stamp ({@code chunks.epoch}). Three things hold:
 * <ol>
 *   <li><em>Every put stamps.</em> A put that stores a new chunk inserts its entry stamped with the
 *       current epoch (read in the insert's own transaction); a put that finds the chunk in the
 *       index (a dedup hit) MUST have the index confirm it: if the entry's stamp is older than the
 *       current epoch, one write transaction raises it and checks that the entry still exists; if
 *       it is gone (swept), the put stores the chunk again. A put that finds the chunk in this
 *       process's pending chunks needs no stamp: the sync that indexes it inserts it later, stamped
 *       then; but it asks under the store's lock, never while a sync is between committing the
 *       chunk's entry (stamped at that time, maybe before the epoch was raised) and dropping it from
 *       the pending chunks (PendingHitRaceTest). No put trusts a cache of index answers. (One index
 *       write per chunk per epoch; an entry already stamped in the current epoch costs the read the
 *       dedup check made anyway.)
 *   <li><em>Writers register.</em> An operation that puts chunks and then commits a version that
 *       references them (import, {@code --as-version} import, checkpoint) runs inside a
 *       {@linkplain ChunkStore#session session}: a file {@code sessions/PID-N.session} it holds an
 *       exclusive {@code fcntl} lock on from before its first put until after its commit (or
 *       failure). It is created under a temporary name and renamed once locked, so a session file
 *       whose lock anyone can take belongs to a dead writer. A version made only from another
 *       version's chunks (clone, rollback, a settled journal's unchanged subtrees, a checkpoint's
 *       unchanged subtrees) needs no session: its catalog commit names that version as its parent
 *       and fails when the parent is gone, so at every instant one of the two is in the catalog.
 *   <li><em>GC sweeps only what it could see was unreachable.</em> A collection (1) raises the
 *       epoch to G durably; (2) waits until every session file present after that has been
 *       released; (3) reads the catalog and marks every chunk every version reaches (heads, the
 *       bases of open volumes and of crashed volumes' journals are versions); (4) deletes the
 *       entries that are unmarked AND still stamped before G, the stamp tested in the delete's own
 *       transaction.
 * </ol>
 *
 * <p><b>Why nothing referenced is lost.</b> Take a chunk c that a version V references, where V
 * is committed at any time. If V is in the catalog when step 3 reads it, c is marked. Otherwise V
 * is committed after step 3's read, by a session s or by a parent-linked commit. A parent-linked
 * commit after the read needs its parent in the catalog at commit time, hence at the read (the
 * parent was committed before, and was not yet deleted), so by induction on parent links c is
 * marked. For a session s: if s was registered before step 2 listed the sessions, step 2 waited
 * for it, so V (committed before s ended) was committed before step 3: contradiction. So s
 * registered after the epoch was G, and each of its puts happened after that: a put of c either
 * inserted c stamped G or more, or found c and raised its stamp to G or more in a transaction
 * that also saw that the entry existed, or found c pending with no sync indexing it, so that the
 * sync that indexed c did so later, stamped G or more (or stamping the entry another process
 * inserted first); step 4 tests the stamp in the delete's transaction, so
 * whichever of the two transactions came first, the entry survives (or was deleted first and the
 * put saw it gone and stored c again). No clock, atime or grace period is involved: only the
 * order of SQLite transactions on one file and of {@code fcntl} locks, which a killed process
 * cannot leave behind.
 *
 * <p><b>Incremental sweeps.</b> A full sweep scans the whole index: its cost follows the size of
 * the store, not what changed. A collection C that ran to its end leaves the next one, in the
 * index's {@code gc_state} row (stamped with C's epoch; {@link GcState}): the collector's memo (the
 * roots of every tree C marked: the versions V_C), the highest pack H_C and the packs O_C not
 * sealed when C's sweep began, for each P of O_C the end W_P of the furthest entry in P that C's
 * scan (or an earlier collection's) saw, the unreachable entries C could not delete (stamped at or
 * after its epoch: D_C), and the live bytes of every pack sealed then (and of each P of O_C below
 * W_P). The next collection's {@link #begin} takes the row out in the transaction that raises the
 * epoch, so a collection that dies or is stopped leaves none, and the one after it sweeps in full;
 * so do {@code cask check --repair} (which empties the row with the entries) and a row of another
 * epoch (a cask that does not know the row collected in between). Its candidates are: (a) what the
 * collector passes, every chunk in the trees of V_C's versions gone since, walked through unmarked
 * pointer chunks only; (b) every entry in a pack above H_C, or in a pack P of O_C at an offset at
 * or after W_P; (c) D_C. Each is deleted under the same rule as in a full sweep (unmarked now,
 * stamped before the epoch in the delete's own transaction), so an incremental sweep never deletes
 * what a full one would keep: <em>safety does not depend on the candidates</em>. Completeness (it
 * deletes all a full one would): after a complete C, every entry is (i) in a tree of V_C, or (ii)
 * in D_C, or (iii) in a pack above H_C or in a pack P of O_C at or after W_P. Proof: an entry C saw
 * unmarked and stamped before its epoch, it deleted; one stamped later is in D_C; a marked one is
 * in a tree of V_C; an entry indexed after C's scan points into a pack not sealed when the sweep
 * began (a sealed pack never gains an entry: only its creator appends to it, and a heal or
 * compaction copy goes to the writer's own pack, which is not sealed, or to a new one, numbered
 * above H_C), and within such a pack P at or after W_P, because a pack gains entries in the order
 * of their offsets: its creator appends under its store's lock, and a sync, holding that lock,
 * fsyncs and indexes every record appended before it in one transaction (or none: a failed one
 * leaves them all for the next), a heal's copy among them; compaction appends its copies after its
 * collection's scan and switches entries to them before that collection ends. So an entry indexed
 * after C's scan was appended after every entry of P that scan (or an earlier one: by induction,
 * W_P only grows) saw, and lies at or after their ends. (An open P's entries below W_P that C's
 * scan did not see were seen by an earlier collection's, which C's state carries on.) Between two
 * collections nothing deletes an entry, and a rebuild empties the row. So for the next collection
 * N, an entry unmarked by N is in case (ii) or (iii), a candidate, or in case (i) in the tree of a
 * version of V_C that N did not mark, i.e. one gone since, and the walk (a) reaches it: every
 * pointer chunk on its path is unmarked (a marked pointer chunk's subtree is all marked) and still
 * there (nothing deleted it). The same holds for N: its (i)-(iii) are built the same way. A pointer
 * chunk the walk cannot read turns the sweep into a full one. When every entry of N's region (b)
 * that C's (incremental) scan could see was in the index's recent table (in a pack P of O_C, C saw
 * none at or after W_P, so only the packs above H_C matter), and the count of changes to the
 * settled table ({@code gc.moved}: a merge, a compaction switch or a heal, the only ways into it)
 * that C read in its scan's snapshot is still the count in N's, they are all still there, and N
 * scans the recent table alone ({@link ChunkIndex#forEachStampedIn}): the same entries, so the same
 * candidates and live bytes. So a pack still written to costs each collection only what was written
 * to it since the last one (an open pack of 256 MiB grew an hourly collection's scan to 125,000
 * entries and both tables when every entry of it was looked at again). Live bytes: a pack written
 * since is counted from its entries (all of them are candidates, so the sweep sees them); a pack
 * sealed before keeps the previous figure less what this sweep deleted in it, a segment's bytes in
 * proportion to its chunks (an estimate: compaction only chooses by it, and recompresses a segment
 * with its live chunks only); a pack P open before keeps its figure below W_P less what this sweep
 * deleted there, plus its surviving entries at or after W_P.
 *
 * <p><b>Caches.</b> Processes keep index answers in memory. A read through a stale answer finds
 * the bytes in the pack (compaction deletes a pack only when no entry points into it, and a
 * reader holding the pack open keeps reading it), or, when the collection punched the chunk's
 * dead record out ({@link HolePuncher}: only records no entry points at, so only a chunk deleted
 * and maybe stored again since), zeros that fail the read's CRC, after which the reader asks the
 * index again (a live chunk never moves by punching). A dedup hit never
 * uses such an answer (rule 1), and {@code contains} asks the index. So a sweep's deletes do not
 * drop what they deleted from any cache, its own process's included (only the older
 * {@code delete} of a list of ids still does, for its callers): only a chunk no version reaches has
 * a stale answer, and nothing reads such a chunk (a chunk stored again since gets a new answer
 * in the process that stored it, and any other process finds the new copy through the index once
 * the old one fails its checks).
 *
 * <p><b>Costs.</b> A session costs a file create, a lock and a rename. A GC waits for writers
 * that were running when it started (an import may take minutes; servers' checkpoints are short).
 * Two collections never run at once: {@code gc.lock} is held for a whole collection (and names
 * its holder, pid and what it is, for the message of a second one that waits). The waits of a
 * collection (for another one, for writers) poll, so that a {@link Pacer} can stop them: a
 * server's background collection must not hold up its shutdown.
 *
 * <p>This class holds the rule, the sessions and the start of a collection; {@link LocalSweep}
 * carries one collection from its sweep to its punching and compaction.
 *
 * <p>Thread-safe.
 */
final class GcEpochs implements ChunkDeleter {
    /** Sessions of this JVM by file (an fcntl lock cannot be tested from the process that holds it). */
    private static final Map<Path, CountDownLatch> LOCAL_SESSIONS = new ConcurrentHashMap<>();
    /** Collections of this JVM by store (fcntl locks do not exclude threads of one process). */
    private static final Map<Path, ReentrantLock> LOCAL_GC = new ConcurrentHashMap<>();
    /** What the collection that holds (or last held) {@link #LOCAL_GC}'s lock of a store is, for the message of one that waits. */
    private static final Map<Path, String> LOCAL_WHO = new ConcurrentHashMap<>();
    private static final AtomicLong COUNTER = new AtomicLong();

    private final LocalChunkStore store;
    private final Path sessions;
    private final Path gcLock;

    GcEpochs(LocalChunkStore store) {
        this.store = store;
        this.sessions = store.dir().toAbsolutePath().resolve("sessions");
        this.gcLock = store.dir().toAbsolutePath().resolve("gc.lock");
    }

    // ---------------------------------------------------------------- sessions

    ChunkStore.Session open(String what) {
        try {
            Files.createDirectories(sessions);
            String base = ProcessHandle.current().pid() + "-" + COUNTER.incrementAndGet();
            Path tmp = sessions.resolve(base + ".new");
            Path file = sessions.resolve(base + ".session");
            FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
            FileLock lock;
            try {
                lock = ch.lock();
                ch.write(java.nio.ByteBuffer.wrap((what + "\n").getBytes(StandardCharsets.UTF_8)));
            } catch (IOException | RuntimeException e) {
                ch.close();
                Files.deleteIfExists(tmp);
                throw e;
            }
            CountDownLatch done = new CountDownLatch(1);
            LOCAL_SESSIONS.put(file, done);
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
            return new ChunkStore.Session() {
                private boolean closed;

                @Override
                public synchronized void close() {
                    if (closed) return;
                    closed = true;
                    try {
                        Files.deleteIfExists(file);
                        lock.release();
                        ch.close();
                    } catch (IOException ignored) {
                        // the lock dies with the channel; a file left is seen as dead and deleted by GC
                    } finally {
                        LOCAL_SESSIONS.remove(file);
                        done.countDown();
                    }
                }
            };
        } catch (IOException e) {
            throw new CaskException.Io("store " + store.dir() + ": cannot register a writer session: " + e.getMessage(), e);
        }
    }

    /** How often a wait for another gc or a writer looks again (and notices a stop). */
    static final long POLL_MILLIS = 100;

    /**
     * Waits until every session present now has ended; deletes the files of dead ones. Polls
     * (every {@link #POLL_MILLIS}) rather than blocking, so that {@code pacer} can stop the wait.
     */
    private void awaitSessions(Consumer<String> waiting, Pacer pacer) throws IOException, InterruptedException {
        if (!Files.isDirectory(sessions)) return;
        List<Path> present;
        try (Stream<Path> s = Files.list(sessions)) {
            present = s.filter(p -> p.getFileName().toString().endsWith(".session")).sorted().toList();
        }
        for (Path p : present) {
            CountDownLatch local = LOCAL_SESSIONS.get(p);
            if (local != null) {
                if (local.getCount() > 0) waiting.accept("waiting for a writer of this process (" + describe(p) + ")");
                while (!local.await(POLL_MILLIS, TimeUnit.MILLISECONDS)) pacer.check();
                continue;
            }
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                FileLock l = ch.tryLock(0, Long.MAX_VALUE, true);
                if (l == null) {
                    waiting.accept("waiting for writer " + p.getFileName() + " (" + describe(p) + ")");
                    while ((l = ch.tryLock(0, Long.MAX_VALUE, true)) == null) pacer.waitFor(POLL_MILLIS);
                }
                l.release();
                Files.deleteIfExists(p); // dead (or just ended): nobody will use the name again
            } catch (NoSuchFileException gone) {
                // ended meanwhile
            }
        }
    }

    private static String describe(Path p) {
        try {
            return Files.readString(p).strip();
        } catch (IOException e) {
            return "ended";
        }
    }

    // ---------------------------------------------------------------- collections

    @Override
    public Sweep begin(Consumer<String> waiting) {
        return begin("cask gc", waiting, Pacer.unpaced());
    }

    @Override
    public long gcEpoch() {
        return store.gcEpoch();
    }

    /**
     * As {@link #begin(Consumer)}; {@code who} is written into {@code gc.lock} while this
     * collection holds it (after the pid: what a second gc names when it says it waits), and
     * {@code pacer} can stop the waits (they poll every {@link #POLL_MILLIS}).
     */
    @Override
    public Sweep begin(String who, Consumer<String> waiting, Pacer pacer) {
        ReentrantLock local = LOCAL_GC.computeIfAbsent(gcLock, k -> new ReentrantLock());
        FileChannel ch = null;
        boolean held = false;
        boolean ok = false;
        try {
            if (!local.tryLock()) {
                String holder = LOCAL_WHO.getOrDefault(gcLock, "");
                waiting.accept("another gc is running in this process" + (holder.isEmpty() ? "" : " (" + holder + ")") + "; waiting for it");
                while (!local.tryLock(POLL_MILLIS, TimeUnit.MILLISECONDS)) pacer.check();
            }
            LOCAL_WHO.put(gcLock, who.replace('\n', ' '));
            ch = FileChannel.open(gcLock, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
            FileLock fl = ch.tryLock();
            if (fl == null) {
                String holder = holder(ch);
                waiting.accept("another gc is running on store " + store.dir() + (holder.isEmpty() ? "" : " (" + holder + ")") + "; waiting for it");
                while ((fl = ch.tryLock()) == null) pacer.waitFor(POLL_MILLIS);
            }
            held = true;
            ch.truncate(0);
            ch.write(java.nio.ByteBuffer.wrap(("pid " + ProcessHandle.current().pid() + ": " + who.replace('\n', ' ') + "\n")
                    .getBytes(StandardCharsets.UTF_8)), 0);
            ChunkIndex.Bumped b = store.index().bumpEpochTakingState();
            awaitSessions(waiting, pacer);
            ok = true;
            return new LocalSweep(store, b.epoch(), previous(b), ch, local);
        } catch (IOException e) {
            throw new CaskException.Io("store " + store.dir() + ": cannot start a gc: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CaskException.Io("store " + store.dir() + ": gc interrupted while waiting", null);
        } finally {
            if (!ok) release(ch, held, local);
        }
    }

    /** The state the previous collection left, or null (none, or one that does not decode: the index is a cache). */
    private static Previous previous(ChunkIndex.Bumped b) {
        if (b.memo() == null || b.state() == null) return null;
        try {
            return new Previous(b.memo(), GcState.decode(b.state()));
        } catch (CaskException.Corrupt e) {
            return null;
        }
    }

    /** What the previous collection left (see the class essay, "Incremental sweeps"). */
    record Previous(byte[] memo, GcState state) {}

    /** What the holder of {@code gc.lock} wrote into it (empty when nothing yet). */
    private static String holder(FileChannel ch) {
        try {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(512);
            ch.read(b, 0);
            return new String(b.array(), 0, b.position(), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            return "";
        }
    }

    /** Empties {@code gc.lock} when this process {@code held} it, and releases it and this process's lock. */
    static void release(FileChannel ch, boolean held, ReentrantLock local) {
        try {
            if (ch != null) {
                try {
                    if (held && ch.isOpen()) ch.truncate(0);
                } catch (IOException ignored) {
                    // the next holder overwrites it
                }
                ch.close();
            }
        } catch (IOException ignored) {
            // closing releases the lock
        } finally {
            if (local.isHeldByCurrentThread()) local.unlock();
        }
    }
}
