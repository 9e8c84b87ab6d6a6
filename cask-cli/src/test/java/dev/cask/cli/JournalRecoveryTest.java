package dev.cask.cli;

import dev.cask.local.LocalImages;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKey;
import dev.cask.image.Images;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a crash's journal means to the commands that read or move a head: a real {@code cask
 * serve} is killed (-9) right after a FLUSH, so the flushed writes live only in the image's
 * journal; then rollback, snapshot, export, clone and rm must act on the image's real content,
 * and a later serve must never replay that journal onto another version. Also: export and clone
 * of an image a server has open give what its clients see now, not the last checkpoint.
 */
class JournalRecoveryTest {
    private static final int SIZE = 4 << 20;
    @TempDir
    Path dir;
    private final ObjectMapper json = new ObjectMapper();

    /** Imports a disk of random blocks as {@code name} version 1; returns its bytes. */
    private byte[] importRandom(Cli cli, String name, long seed) throws Exception {
        byte[] d = new byte[SIZE];
        new Random(seed).nextBytes(d);
        Path p = dir.resolve(name.replace('/', '_') + ".raw");
        Files.write(p, d);
        Cli.Result r = cli.run("import", p.toString(), name);
        assertEquals(0, r.code(), r.toString());
        return d;
    }

    private static byte[] fill(int value, int length) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) value);
        return b;
    }

    private static byte[] with(byte[] disk, long offset, byte[] data) {
        byte[] out = disk.clone();
        System.arraycopy(data, 0, out, (int) offset, data.length);
        return out;
    }

    private Server serve(Cli cli) throws Exception {
        return new Server(cli, "--no-warmup", "--checkpoint-interval", "0");
    }

    /** Serves the store, writes {@code data} at {@code offset} of {@code name}, FLUSHes, and kills the server with -9. */
    private void writeFlushAndKill(Cli cli, String name, long offset, byte[] data) throws Exception {
        try (Server s = serve(cli); NbdClient c = new NbdClient(s.port, name)) {
            c.write(offset, data);
            c.flush();
            s.kill();
        }
    }

    private byte[] export(Cli cli, String ref) throws Exception {
        Path out = dir.resolve("export-" + System.nanoTime() + ".raw");
        Cli.Result r = cli.run("export", ref, out.toString());
        assertEquals(0, r.code(), r.toString());
        return Files.readAllBytes(out);
    }

    /** What a fresh server gives a client of {@code name}: the whole disk. */
    private byte[] served(Cli cli, String name) throws Exception {
        try (Server s = serve(cli); NbdClient c = new NbdClient(s.port, name)) {
            return c.read(0, SIZE);
        }
    }

    private JsonNode log(Cli cli, String name) throws Exception {
        return json.readTree(cli.run("log", name, "--json").out());
    }

    private JsonNode head(JsonNode log) {
        for (JsonNode v : log) if (v.get("head").asBoolean()) return v;
        throw new AssertionError("no head in " + log);
    }

    private long journalFiles(String image) throws Exception {
        Path journals = dir.resolve("store").resolve("journals");
        if (!Files.isDirectory(journals)) return 0;
        try (var files = Files.list(journals)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(image.replace('/', '+') + ".journal")).count();
        }
    }

    @Test
    void rollbackAfterAKillNineGivesExactlyTheOldVersionAndKeepsTheFlushedWritesInHistory() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] v1 = importRandom(cli, "team/vm", 1);
        byte[] a = fill(0x5a, 8192);
        writeFlushAndKill(cli, "team/vm", 65536, a);

        Cli.Result rb = cli.run("rollback", "team/vm", "1");
        assertEquals(0, rb.code(), rb.toString());
        assertArrayEquals(v1, served(cli, "team/vm"), "after the rollback a server serves exactly version 1, no journal replayed onto it");
        assertEquals(0, journalFiles("team/vm"), "the journal was folded into a version before the rollback");
        assertArrayEquals(v1, export(cli, "team/vm"));

        // the flushed writes were not thrown away: the version before the rollback holds them
        JsonNode log = log(cli, "team/vm");
        JsonNode folded = log.get(log.size() - 2);
        assertTrue(folded.get("message").asText().contains("journal"), log.toString());
        assertArrayEquals(with(v1, 65536, a), export(cli, "team/vm@" + folded.get("version").asInt()));
    }

    @Test
    void snapshotAfterAKillNineHoldsTheFlushedWrites() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] v1 = importRandom(cli, "vm", 2);
        byte[] a = fill(0x6b, 4096 * 3);
        writeFlushAndKill(cli, "vm", 1 << 20, a);

        Cli.Result snap = cli.run("snapshot", "vm", "-m", "after the crash");
        assertEquals(0, snap.code(), snap.toString());
        JsonNode head = head(log(cli, "vm"));
        assertEquals("after the crash", head.get("message").asText());
        assertArrayEquals(with(v1, 1 << 20, a), export(cli, "vm@" + head.get("version").asInt()), "the snapshot holds the flushed writes");
        assertEquals(0, journalFiles("vm"));
        assertArrayEquals(with(v1, 1 << 20, a), served(cli, "vm"));
    }

    /**
     * A store left by an older cask: the server died with flushed writes in the journal, then that
     * cask's rollback moved the head without looking at the journal. The next serve replays the
     * journal onto the version it was written on and commits that as a new head; it never lays it
     * over the rolled-back content.
     */
    @Test
    void serveAfterARollbackByAnOlderCaskNeverMixesVersions() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] v1 = importRandom(cli, "vm", 3);
        byte[] a = fill(0x11, 8192);
        byte[] b = fill(0x22, 8192);
        try (Server s = serve(cli); NbdClient c = new NbdClient(s.port, "vm")) {
            c.write(0, a);
            c.flush();
            Cli.Result snap = cli.run("snapshot", "vm", "-m", "with a");
            assertEquals(0, snap.code(), snap.toString());
            c.write(2 << 20, b);
            c.flush();
            s.kill();
        }
        int withA = head(log(cli, "vm")).get("version").asInt();
        try (Images images = LocalImages.open(dir.resolve("store"))) { // what the older cask's rollback did: a commit, journal untouched
            Version one = images.catalog().version("vm", 1);
            images.catalog().commit("vm", withA, new NewVersion("rollback to version 1", one.size(), one.content()), new VersionKey("vm", withA));
        }
        byte[] expected = with(with(v1, 0, a), 2 << 20, b);
        byte[] got = served(cli, "vm");
        assertArrayEquals(Arrays.copyOfRange(expected, 0, 8192), Arrays.copyOfRange(got, 0, 8192),
                "the journal's own base (with a) is under its writes, not the rolled-back version 1");
        assertArrayEquals(expected, got);
        JsonNode log = log(cli, "vm");
        JsonNode recovered = log.get(withA + 1); // after the older cask's rollback
        assertTrue(recovered.get("message").asText().contains("recovered from a journal based on version " + withA), log.toString());
        assertArrayEquals(v1, export(cli, "vm@" + (withA + 1)), "the older rollback stays in the history");
        assertArrayEquals(expected, export(cli, "vm"));
    }

    @Test
    void exportAndCloneOfAServedImageGiveWhatItsClientsSeeNow() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] v1 = importRandom(cli, "vm", 4);
        byte[] a = fill(0x33, 4096);
        byte[] b = fill(0x44, 4096);
        try (Server s = serve(cli); NbdClient c = new NbdClient(s.port, "vm")) {
            c.write(4096, a); // not flushed, not checkpointed: the client sees it, so export must too
            assertArrayEquals(with(v1, 4096, a), export(cli, "vm"));
            Cli.Result clone = cli.run("clone", "vm", "copy");
            assertEquals(0, clone.code(), clone.toString());
            assertTrue(clone.out().contains("checkpointed by the running server"), clone.out());
            c.write(8192, b);
            assertArrayEquals(with(v1, 4096, a), export(cli, "copy"), "the clone holds the content at the time of the clone");
            assertArrayEquals(with(with(v1, 4096, a), 8192, b), export(cli, "vm"));
            assertArrayEquals(v1, export(cli, "vm@1"), "an explicit version is exported as it is");
        }
    }

    @Test
    void exportAndCloneAfterAKillNineFoldTheJournal() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] v1 = importRandom(cli, "vm", 5);
        byte[] a = fill(0x55, 4096 * 4);
        writeFlushAndKill(cli, "vm", 3 << 20, a);
        assertArrayEquals(v1, export(cli, "vm@1"), "an explicit old version needs no fold");
        assertNotEquals(0, journalFiles("vm"));

        Cli.Result clone = cli.run("clone", "vm", "copy");
        assertEquals(0, clone.code(), clone.toString());
        assertTrue(clone.out().contains("journal a crash left"), clone.out());
        assertArrayEquals(with(v1, 3 << 20, a), export(cli, "copy"), "the clone holds the flushed writes");
        assertEquals(0, journalFiles("vm"), "the journal became a version");
        assertArrayEquals(with(v1, 3 << 20, a), export(cli, "vm"));

        writeFlushAndKill(cli, "vm", 0, a);
        assertArrayEquals(with(with(v1, 3 << 20, a), 0, a), export(cli, "vm"), "export folds a leftover journal too");
        assertEquals(0, journalFiles("vm"));
        assertEquals(0, cli.run("check").code());
    }

    @Test
    void rmAfterAKillNineDiscardsTheJournalAndANewImageOfTheNameNeverReplaysIt() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        importRandom(cli, "vm", 6);
        writeFlushAndKill(cli, "vm", 0, fill(0x66, 4096));
        assertNotEquals(0, journalFiles("vm"));
        Cli.Result rm = cli.run("rm", "vm");
        assertEquals(0, rm.code(), rm.toString());
        assertEquals(0, journalFiles("vm"));
        assertEquals(0, cli.run("create", "vm", String.valueOf(SIZE)).code());
        assertArrayEquals(new byte[SIZE], served(cli, "vm"));
        assertFalse(log(cli, "vm").toString().contains("journal"));
    }
}
