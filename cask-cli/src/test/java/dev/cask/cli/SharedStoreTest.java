package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.store.s3.S3Server;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The command line on a shared store: packs in a real S3 server (s3proxy, a separate process),
 * catalog and chunk index in a real PostgreSQL (initdb, pg_ctl), this node's journals in a state
 * directory. Every command runs as a real cask process, with the AWS SDK's environment variables
 * pointing it at the S3 server, as an operator's shell would.
 */
class SharedStoreTest {
    private static final String BUCKET = "cask-cli-shared";

    @TempDir
    Path dir;

    /** A Cli on a fresh shared store (its own prefix and database) and state directory. */
    private Cli shared(String name) {
        PostgresServer pg = PostgresServer.shared();
        S3Server s3 = S3Server.shared();
        s3.createBucket(BUCKET);
        String database = pg.createDatabase("cli_" + name);
        return new Cli(List.of("--store", "s3://" + BUCKET + "/" + name, "--catalog", pg.url(database), "--state", dir.resolve("state").toString()),
                s3.environment());
    }

    /** An 8 MiB raw disk: random data in places, a repeated block, zeros elsewhere (holes). */
    private Path disk() throws Exception {
        byte[] b = new byte[8 << 20];
        Random rnd = new Random(14);
        for (int at : new int[]{0, 3 << 20, (8 << 20) - (256 << 10)}) {
            byte[] run = new byte[256 << 10];
            rnd.nextBytes(run);
            System.arraycopy(run, 0, b, at, run.length);
        }
        for (int i = 0; i < 16; i++) System.arraycopy(b, 0, b, (5 << 20) + i * 4096, 4096); // dedups against the first block
        Path p = dir.resolve("disk.raw");
        Files.write(p, b);
        return p;
    }

    private static Cli.Result must(Cli cli, String... args) throws Exception {
        Cli.Result r = cli.process(null, args);
        assertEquals(0, r.code(), "cask " + String.join(" ", args) + ": " + r);
        return r;
    }

    @Test
    void importListLogExportCloneRemoveAndServeOnS3AndPostgres() throws Exception {
        Cli cli = shared("lifecycle");
        Path src = disk();
        byte[] want = Files.readAllBytes(src);

        assertTrue(must(cli, "init").out().contains("is ready"));
        must(cli, "import", src.toString(), "team/vm-1");
        try (var s3 = S3Server.shared().client()) { // the chunks are packs in the bucket, under the store's prefix
            var packs = s3.listObjectsV2(b -> b.bucket(BUCKET).prefix("lifecycle/packs/")).contents();
            assertFalse(packs.isEmpty(), "no pack objects under s3://" + BUCKET + "/lifecycle/packs/");
        }

        JsonNode ls = new ObjectMapper().readTree(must(cli, "ls", "--json").out());
        List<String> names = new ArrayList<>();
        ls.forEach(n -> names.add(n.get("name").asText()));
        assertEquals(List.of("team/vm-1"), names, ls.toString());
        assertTrue(must(cli, "log", "team/vm-1").out().contains("import disk.raw"));

        Path back = dir.resolve("back.raw");
        must(cli, "export", "team/vm-1", back.toString());
        assertArrayEquals(want, Files.readAllBytes(back), "export of what was imported");

        must(cli, "clone", "team/vm-1", "team/vm-2");
        Path cloned = dir.resolve("clone.raw");
        must(cli, "export", "team/vm-2", cloned.toString());
        assertArrayEquals(want, Files.readAllBytes(cloned), "export of the clone");
        must(cli, "rm", "team/vm-2");
        assertFalse(must(cli, "ls").out().contains("team/vm-2"));

        // served from the shared store: reads are the image; a write and FLUSH land in a version when the server stops
        byte[] patch = new byte[4096];
        new Random(7).nextBytes(patch);
        try (Server server = new Server(cli, "--gc-interval", "0")) {
            try (NbdClient nbd = new NbdClient(server.port, "team/vm-1")) {
                assertEquals(want.length, nbd.size);
                for (int at = 0; at < want.length; at += 1 << 20) {
                    assertArrayEquals(java.util.Arrays.copyOfRange(want, at, at + (1 << 20)), nbd.read(at, 1 << 20), "NBD read at " + at);
                }
                nbd.write(1 << 20, patch);
                nbd.flush();
                assertArrayEquals(patch, nbd.read(1 << 20, patch.length));
            }
        }
        System.arraycopy(patch, 0, want, 1 << 20, patch.length);
        must(cli, "export", "team/vm-1", back.toString());
        assertArrayEquals(want, Files.readAllBytes(back), "export after the served write");
        assertTrue(Files.isDirectory(dir.resolve("state").resolve("journals")), "this node's journals live in its state directory");
        assertTrue(must(cli, "log", "team/vm-1").out().lines().count() >= 2, "the server's checkpoint made a version");
    }

    /**
     * stats and du on a shared store answer from its index: the bytes and packs are the bucket's
     * objects, the counts are those of the same disk imported into a local store, everything one
     * import stored is live, and a clone shares it all; check --repair finds nothing to mend.
     */
    @Test
    void statsAndDuAnswerFromTheIndexAndRepairFindsNothingToMend() throws Exception {
        Cli cli = shared("accounting");
        Path src = disk();
        must(cli, "init");
        must(cli, "import", src.toString(), "team/vm-1");
        ObjectMapper json = new ObjectMapper();
        JsonNode stats = json.readTree(must(cli, "stats", "--json").out());
        S3Server.Objects packs = S3Server.shared().objects(BUCKET, "accounting/packs/");
        long objects = packs.bytes();
        int count = packs.count();
        assertEquals(objects, stats.get("stored_bytes").asLong(), "stored bytes are the pack objects' bytes: " + stats);
        assertEquals(count, stats.get("packs").asInt(), stats.toString());
        // one import: every stored chunk is live (up to the rounding of each chunk's share of its segment)
        assertTrue(stats.get("reclaimable_bytes").asLong() < 1024, stats.toString());
        assertTrue(stats.get("live_bytes").asLong() > objects - 16L * count - 1024, stats.toString());

        Cli local = new Cli(List.of("--store", dir.resolve("local").toString()), java.util.Map.of());
        local.run("init");
        assertEquals(0, local.run("import", src.toString(), "team/vm-1").code());
        JsonNode localStats = json.readTree(local.run("stats", "--json").out());
        for (String f : new String[]{"images", "versions", "logical_bytes", "allocated_bytes", "unique_chunks"}) {
            assertEquals(localStats.get(f).asLong(), stats.get(f).asLong(), f + ": shared " + stats + ", local " + localStats);
        }

        long live = stats.get("live_bytes").asLong();
        JsonNode one = json.readTree(must(cli, "du", "team/vm-1", "--json").out());
        assertEquals(live, one.get("images").get(0).get("exclusive_bytes").asLong(), one.toString());
        must(cli, "clone", "team/vm-1", "team/vm-2");
        JsonNode two = json.readTree(must(cli, "du", "--json").out());
        assertEquals(2, two.get("images").size(), two.toString());
        for (JsonNode row : two.get("images")) assertEquals(0, row.get("exclusive_bytes").asLong(), "a clone shares everything: " + two);
        assertEquals(live, two.get("shared_bytes").asLong(), two.toString());
        assertEquals(live, two.get("total_bytes").asLong(), two.toString());

        // prune's dry run says what removing a version would free, counted as du --versions counts
        byte[] changed = Files.readAllBytes(src);
        byte[] fresh = new byte[256 << 10];
        new Random(15).nextBytes(fresh);
        System.arraycopy(fresh, 0, changed, 1 << 20, fresh.length);
        Path src2 = dir.resolve("disk2.raw");
        Files.write(src2, changed);
        must(cli, "import", src2.toString(), "team/vm-3"); // version 1 holds the only copy of the fresh blocks
        must(cli, "import", "--as-version", src.toString(), "team/vm-3");
        long onlyFirst = -1;
        for (JsonNode row : json.readTree(must(cli, "du", "team/vm-3", "--versions", "--json").out()).get("versions")) {
            if (row.get("version").asText().equals("team/vm-3@1")) onlyFirst = row.get("exclusive_bytes").asLong();
        }
        assertTrue(onlyFirst >= fresh.length / 2, "version 1 alone holds the fresh blocks: " + onlyFirst);
        JsonNode pruned = json.readTree(must(cli, "prune", "team/vm-3", "--keep-last", "1", "--include-user", "--dry-run", "--json").out());
        assertEquals(1, pruned.get("removed_versions").asInt(), pruned.toString());
        assertEquals(onlyFirst, pruned.get("freed_bytes").asLong(), pruned.toString());

        Cli.Result repaired = must(cli, "check", "--repair"); // nothing to mend: the index agrees with the objects
        assertTrue(repaired.out().startsWith("index rebuilt from packs: "), repaired.out());
        assertTrue(repaired.out().contains("ok: "), repaired.out());
        assertEquals("", repaired.err(), "no change to report");
    }

    @Test
    void checkReadsThePackObjectsNamesTheVersionABadObjectHurtsAndAnImportHealsIt() throws Exception {
        Cli cli = shared("checking");
        Path src = disk();
        must(cli, "init");
        must(cli, "import", src.toString(), "team/vm-1");
        ObjectMapper json = new ObjectMapper();
        S3Server.Objects packs = S3Server.shared().objects(BUCKET, "checking/packs/");
        for (String[] args : new String[][]{{"check", "--json"}, {"check", "--json", "--deep"}}) {
            JsonNode clean = json.readTree(must(cli, args).out());
            assertTrue(clean.get("ok").asBoolean(), clean.toString());
            assertEquals(packs.count(), clean.get("packs").asInt(), clean.toString());
            assertEquals(clean.get("index_entries").asLong(), clean.get("records").asLong(), "every entry's chunk found in the objects once: " + clean);
            assertEquals(1, clean.get("versions").asInt(), clean.toString());
            assertTrue(clean.get("reclaimable_bytes").asLong() < 1024, "one import: all of it is live: " + clean);
        }

        // bit rot in the largest pack object, in the middle of it (inside some record or segment of the import)
        String largest;
        try (var s3 = S3Server.shared().client()) {
            largest = s3.listObjectsV2(b -> b.bucket(BUCKET).prefix("checking/packs/")).contents().stream()
                    .max(java.util.Comparator.comparingLong(software.amazon.awssdk.services.s3.model.S3Object::size)).orElseThrow().key();
        }
        Path file = S3Server.shared().objectFile(BUCKET, largest);
        byte[] bytes = Files.readAllBytes(file);
        bytes[bytes.length / 2] ^= 0x5a;
        Files.write(file, bytes);

        Cli.Result bad = cli.process(null, "check");
        assertEquals(1, bad.code(), bad.toString());
        assertTrue(bad.out().contains("problem: image 'team/vm-1' version 1: offset "), "the version and the disk offset it hurts: " + bad.out());
        JsonNode report = json.readTree(cli.process(null, "check", "--json").out());
        assertFalse(report.get("ok").asBoolean(), report.toString());
        boolean named = false;
        for (JsonNode p : report.get("problems")) named |= "team/vm-1".equals(p.get("image").asText(null)) && p.get("version").asInt() == 1;
        assertTrue(named, report.toString());

        // the damaged copies are marked: the same data imported again is stored anew and the index moves to it
        must(cli, "import", src.toString(), "team/vm-2");
        JsonNode healed = json.readTree(must(cli, "check", "--json", "--deep").out());
        assertTrue(healed.get("ok").asBoolean(), healed.toString());
        assertTrue(healed.get("reclaimable_bytes").asLong() > 0, "the bad copy is garbage now: " + healed);
        Path out = dir.resolve("out.raw");
        must(cli, "export", "team/vm-1", out.toString());
        assertArrayEquals(Files.readAllBytes(src), Files.readAllBytes(out), "the first image reads back whole through the healed chunks");
    }

    @Test
    void gcOnS3FreesWhatRmLeftDeletesDeadPackObjectsAndKeepsEveryOtherImageWhole() throws Exception {
        Cli cli = shared("collecting");
        Path src = disk();
        byte[] other = new byte[4 << 20];
        new Random(77).nextBytes(other); // nothing in common with the first image
        Path src2 = dir.resolve("other.raw");
        Files.write(src2, other);
        must(cli, "init");
        must(cli, "import", src.toString(), "team/vm-1");
        must(cli, "import", src2.toString(), "team/vm-2");
        ObjectMapper json = new ObjectMapper();
        S3Server.Objects before = S3Server.shared().objects(BUCKET, "collecting/packs/");

        JsonNode nothing = json.readTree(must(cli, "gc", "--json").out());
        assertEquals(0, nothing.get("chunks_freed").asLong(), "every chunk is some version's: " + nothing);
        assertEquals(before.count(), S3Server.shared().objects(BUCKET, "collecting/packs/").count());

        must(cli, "rm", "team/vm-2");
        JsonNode dry = json.readTree(must(cli, "gc", "--dry-run", "--json").out());
        assertTrue(dry.get("chunks_freed").asLong() > 0, dry.toString());
        JsonNode gc = json.readTree(must(cli, "gc", "--json").out());
        assertEquals(dry.get("chunks_freed").asLong(), gc.get("chunks_freed").asLong(), "the dry run said what gc frees: " + dry + " / " + gc);
        assertTrue(gc.get("bytes_freed").asLong() >= other.length, "the second image's random data: " + gc);
        assertTrue(gc.get("packs_deleted").asInt() >= 1, gc.toString());
        S3Server.Objects after = S3Server.shared().objects(BUCKET, "collecting/packs/");
        assertTrue(after.bytes() < before.bytes() - other.length / 2, "pack objects deleted: " + before + " -> " + after);

        JsonNode stats = json.readTree(must(cli, "stats", "--json").out());
        assertEquals(after.bytes(), stats.get("stored_bytes").asLong(), stats.toString());
        JsonNode check = json.readTree(must(cli, "check", "--json", "--deep").out());
        assertTrue(check.get("ok").asBoolean(), check.toString());
        Path out = dir.resolve("out.raw");
        must(cli, "export", "team/vm-1", out.toString());
        assertArrayEquals(Files.readAllBytes(src), Files.readAllBytes(out), "the image gc kept exports whole");
        // its chunks deleted, the second image's data can be imported again: stored anew
        must(cli, "import", src2.toString(), "team/vm-3");
        must(cli, "export", "team/vm-3", out.toString());
        assertArrayEquals(other, Files.readAllBytes(out));
    }

    @Test
    void gcOnS3KilledAtRandomPointsLosesNothingAndTheNextOneCompletes() throws Exception {
        Cli cli = shared("gc-kill");
        must(cli, "init");
        Random rnd = new Random(Long.getLong("cask.seed", System.nanoTime()));
        java.util.Map<String, byte[]> kept = new java.util.TreeMap<>();
        ObjectMapper json = new ObjectMapper();
        for (int round = 0; round < 3; round++) {
            // each round: an image that stays and one that becomes garbage
            for (int k = 0; k < 2; k++) {
                byte[] b = new byte[2 << 20];
                rnd.nextBytes(b);
                System.arraycopy(b, 0, b, 1 << 20, 256 << 10); // a shared run: segments live and dead at once
                Path src = dir.resolve("r" + round + "-" + k + ".raw");
                Files.write(src, b);
                String name = "team/r" + round + "-" + k;
                must(cli, "import", src.toString(), name);
                if (k == 0) kept.put(name, b);
                else must(cli, "rm", name);
            }
            Process gc = cli.start("gc");
            Thread.sleep(300 + rnd.nextInt(2500)); // somewhere in the start, the mark, the sweep, the compaction
            gc.destroyForcibly();
            gc.waitFor();
            JsonNode check = json.readTree(must(cli, "check", "--json").out());
            assertTrue(check.get("ok").asBoolean(), "after a gc killed at a random point: " + check);
        }
        must(cli, "gc");
        JsonNode deep = json.readTree(must(cli, "check", "--json", "--deep").out());
        assertTrue(deep.get("ok").asBoolean(), deep.toString());
        JsonNode stats = json.readTree(must(cli, "stats", "--json").out());
        assertTrue(stats.get("reclaimable_bytes").asLong() < stats.get("stored_bytes").asLong() / 5,
                "the last gc gave back what the killed ones left: " + stats);
        Path out = dir.resolve("out.raw");
        for (var e : kept.entrySet()) {
            must(cli, "export", e.getKey(), out.toString());
            assertArrayEquals(e.getValue(), Files.readAllBytes(out), e.getKey());
        }
    }

    @Test
    void aStoreOnS3WithoutAPostgresCatalogIsAUsageError() {
        Cli cli = new Cli(List.of("--store", "s3://" + BUCKET + "/nocatalog"), java.util.Map.of());
        Cli.Result r = cli.run("ls");
        assertEquals(2, r.code(), r.toString());
        assertTrue(r.err().startsWith("cask: --store s3://" + BUCKET + "/nocatalog: a store on S3 needs --catalog postgresql://"), r.err());
        // and a catalog for a local store is refused, not ignored
        Cli local = new Cli(List.of("--store", dir.resolve("local").toString(), "--catalog", "postgresql://127.0.0.1/db"), java.util.Map.of());
        Cli.Result l = local.run("ls");
        assertEquals(2, l.code(), l.toString());
        assertTrue(l.err().contains("--catalog goes with --store s3://"), l.err());
    }

    @Test
    void anUnreachableCatalogIsOneLineNamingItsUrlWithoutThePassword() throws Exception {
        int port;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0)) {
            port = s.getLocalPort(); // closed again: nothing listens there
        }
        Cli cli = new Cli(List.of("--store", "s3://" + BUCKET + "/unreachable", "--catalog", "postgresql://cask:s3cr3t@127.0.0.1:" + port + "/cask"),
                S3Server.shared().environment());
        Cli.Result r = cli.process(null, "ls");
        assertEquals(1, r.code(), r.toString());
        assertEquals(1, r.err().lines().count(), "one line: " + r.err());
        assertTrue(r.err().startsWith("cask: catalog postgresql://cask@127.0.0.1:" + port + "/cask: cannot connect"), r.err());
        assertFalse(r.err().contains("s3cr3t"), r.err());
    }

    /**
     * A node's chunk cache: what a server (or an export) read through {@code --cache} is read
     * again from this node's disk. Once every pack object of the store is deleted from the bucket,
     * a node without the cache can no longer read the image, and a node with it serves and exports
     * the same bytes as before.
     */
    @Test
    void aNodeWithACacheReadsAgainWhatItReadEvenWhenThePacksAreGone() throws Exception {
        PostgresServer pg = PostgresServer.shared();
        S3Server.shared().createBucket(BUCKET);
        List<String> store = List.of("--store", "s3://" + BUCKET + "/cached", "--catalog", pg.url(pg.createDatabase("cli_cached")),
                "--state", dir.resolve("state").toString());
        Cli cli = new Cli(store, S3Server.shared().environment());
        Path src = disk();
        byte[] want = Files.readAllBytes(src);
        must(cli, "init");
        must(cli, "import", src.toString(), "team/vm-1");
        Path cache = dir.resolve("cache");

        // a server with the cache (options after the command) reads the whole disk once
        try (Server server = new Server(cli, "--gc-interval", "0", "--no-warmup", "--cache", cache.toString(), "--cache-size", "64M")) {
            try (NbdClient nbd = new NbdClient(server.port, "team/vm-1")) {
                for (int at = 0; at < want.length; at += 1 << 20) {
                    assertArrayEquals(java.util.Arrays.copyOfRange(want, at, at + (1 << 20)), nbd.read(at, 1 << 20), "NBD read at " + at);
                }
            }
        }
        try (var s3 = S3Server.shared().client()) {
            var packs = s3.listObjectsV2(b -> b.bucket(BUCKET).prefix("cached/packs/")).contents();
            assertFalse(packs.isEmpty());
            for (var o : packs) s3.deleteObject(b -> b.bucket(BUCKET).key(o.key()));
        }
        assertEquals(0, S3Server.shared().objects(BUCKET, "cached/packs/").count(), "every pack object is gone");
        Cli.Result without = cli.process(null, "export", "team/vm-1", dir.resolve("lost.raw").toString());
        assertEquals(1, without.code(), "without the cache the chunks cannot be read: " + without);

        List<String> withCache = new ArrayList<>(store);
        withCache.addAll(List.of("--cache", cache.toString(), "--cache-size", "64M"));
        Cli cached = new Cli(withCache, S3Server.shared().environment());
        Path back = dir.resolve("back.raw");
        must(cached, "export", "team/vm-1", back.toString());
        assertArrayEquals(want, Files.readAllBytes(back), "the export came from this node's cache");
        Server server = new Server(cached, "--gc-interval", "0", "--no-warmup", "--read-only");
        try (server) {
            try (NbdClient nbd = new NbdClient(server.port, "team/vm-1")) {
                for (int at = 0; at < want.length; at += 1 << 20) {
                    assertArrayEquals(java.util.Arrays.copyOfRange(want, at, at + (1 << 20)), nbd.read(at, 1 << 20), "NBD read from the cache at " + at);
                }
            }
            assertTrue(server.log.toString().contains("cache " + cache + ": "), server.log.toString());
            assertEquals(0, server.stop("TERM"), server.log.toString());
        }
        // its last line on the cache says every read came from it
        String log = server.log.toString();
        assertTrue(log.matches("(?s).*cache " + java.util.regex.Pattern.quote(cache.toString())
                + ": \\d+ chunks, .*; since the start [1-9]\\d* chunks read from the cache, 0 from the store, 0 damaged.*"), log);
    }

    @Test
    void cacheOptionsThatDoNotFitAreUsageErrors() throws Exception {
        Cli local = new Cli(dir.resolve("local"));
        Cli.Result l = local.run("--cache", dir.resolve("c").toString(), "ls");
        assertEquals(2, l.code(), l.toString());
        assertTrue(l.err().startsWith("cask: --cache " + dir.resolve("c") + ": a local store's packs are on this disk already; --cache goes with --store s3://"), l.err());

        String nowhere = "postgresql://cask@127.0.0.1:1/cask"; // never reached: the options are checked first
        Cli shared = new Cli(List.of("--store", "s3://" + BUCKET + "/usage", "--catalog", nowhere), java.util.Map.of());
        Cli.Result bad = shared.run("--cache", dir.resolve("c").toString(), "--cache-size", "20X", "ls");
        assertEquals(2, bad.code(), bad.toString());
        assertTrue(bad.err().startsWith("cask: --cache-size: size '20X': not a number"), bad.err());
        Cli.Result small = shared.run("--cache", dir.resolve("c").toString(), "--cache-size", "4K", "ls");
        assertEquals(2, small.code(), small.toString());
        assertTrue(small.err().startsWith("cask: --cache-size 4K: expected at least 1M"), small.err());
        Cli.Result alone = shared.run("--cache-size", "20G", "ls");
        assertEquals(2, alone.code(), alone.toString());
        assertTrue(alone.err().startsWith("cask: --cache-size 20G: goes with --cache DIR"), alone.err());
        // serve's config file names them as cache and cache-size, checked before its warm-up
        Path conf = dir.resolve("serve.conf");
        Files.writeString(conf, "store = s3://" + BUCKET + "/usage\ncatalog = " + nowhere + "\ncache = " + dir.resolve("c") + "\ncache-size = 20X\n");
        Cli bare = new Cli(List.of(), java.util.Map.of());
        Cli.Result fromConf = bare.process(null, "serve", "--config", conf.toString()); // a process: were the file ignored, it would serve until killed
        assertEquals(2, fromConf.code(), fromConf.toString());
        assertTrue(fromConf.err().startsWith("cask: --cache-size: size '20X': not a number"), fromConf.err());
        assertFalse(Files.exists(dir.resolve("c")), "nothing was created");
    }
}
