package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cask.catalog.NewVersion;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionKind;
import dev.cask.catalog.sqlite.SqliteCatalog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** rm NAME@VER, protect, prune and retention as a user sees them. */
class LifecycleTest {
    @TempDir
    Path dir;
    private final ObjectMapper json = new ObjectMapper();

    /** team/a: an import (user version 1) and {@code auto} automatic versions, each with one new random block. */
    private Cli store(int auto) throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        byte[] disk = new byte[1 << 20];
        new Random(1).nextBytes(disk);
        Path f = dir.resolve("a.raw");
        Files.write(f, disk);
        assertEquals(0, cli.run("import", f.toString(), "team/a").code());
        try (SqliteCatalog c = SqliteCatalog.open(dir.resolve("store").resolve("catalog.db"))) {
            for (int i = 0; i < auto; i++) {
                Version h = c.version("team/a", c.image("team/a").head());
                c.commit("team/a", h.number(), new NewVersion("automatic checkpoint", h.size(), h.content(), VersionKind.AUTO), h.key());
            }
        }
        return cli;
    }

    private List<Integer> versions(Cli cli) throws Exception {
        List<Integer> out = new ArrayList<>();
        for (JsonNode v : json.readTree(cli.run("log", "team/a", "--json").out())) out.add(v.get("version").asInt());
        return out;
    }

    @Test
    void logShowsKindAndProtection() throws Exception {
        Cli cli = store(2);
        assertEquals(0, cli.run("protect", "team/a@2").code());
        JsonNode log = json.readTree(cli.run("log", "team/a", "--json").out());
        assertEquals("user", log.get(0).get("kind").asText());
        assertEquals("auto", log.get(1).get("kind").asText());
        assertTrue(log.get(1).get("protected").asBoolean());
        assertFalse(log.get(2).get("protected").asBoolean());
        String text = cli.run("log", "team/a").out();
        assertTrue(text.contains("KIND") && text.contains("auto,protected") && text.contains("user"), text);
        assertEquals(0, cli.run("unprotect", "team/a@2").code());
        assertFalse(json.readTree(cli.run("log", "team/a", "--json").out()).get(1).get("protected").asBoolean());
    }

    @Test
    void rmOfOneVersionRefusesTheHeadAndProtectedOnes() throws Exception {
        Cli cli = store(2);
        Cli.Result head = cli.run("rm", "team/a@3");
        assertEquals(1, head.code(), head.toString());
        assertTrue(head.err().contains("team/a@3") && head.err().contains("the head"), head.err());
        assertEquals(1, cli.run("rm", "team/a@latest").code());
        assertEquals(0, cli.run("protect", "team/a@2").code());
        Cli.Result prot = cli.run("rm", "team/a@2");
        assertEquals(1, prot.code(), prot.toString());
        assertTrue(prot.err().contains("protected"), prot.err());
        assertEquals(0, cli.run("unprotect", "team/a@2").code());
        Cli.Result ok = cli.run("rm", "team/a@2");
        assertEquals(0, ok.code(), ok.toString());
        assertTrue(ok.out().contains("removed version team/a@2") && ok.out().contains("cask gc"), ok.out());
        assertEquals(List.of(1, 3), versions(cli));
        assertEquals("team/a@1", json.readTree(cli.run("info", "team/a@3", "--json").out()).get("parent").asText());
        Cli.Result gone = cli.run("rm", "team/a@2");
        assertEquals(1, gone.code());
        assertTrue(gone.err().contains("team/a") && gone.err().contains("2"), gone.err());
        assertEquals(2, cli.run("protect", "team/a").code(), "protect needs NAME@VER");
    }

    @Test
    void pruneDryRunChangesNothingThenPruneRemoves() throws Exception {
        Cli cli = store(4);
        Cli.Result dry = cli.run("prune", "team", "--keep-last", "2", "--dry-run", "--json");
        assertEquals(0, dry.code(), dry.toString());
        JsonNode d = json.readTree(dry.out());
        assertTrue(d.get("dry_run").asBoolean());
        assertEquals(2, d.get("removed_versions").asInt());
        assertEquals(0, d.get("freed_bytes").asLong(), "every version holds the same chunks: nothing only they hold");
        JsonNode img = d.get("images").get(0);
        assertEquals("team/a", img.get("image").asText());
        assertEquals("keep-last=2", img.get("policy").asText());
        assertEquals(2, img.get("removed").get(0).get("version").asInt());
        assertEquals(3, img.get("removed").get(1).get("version").asInt());
        assertEquals(List.of(1, 2, 3, 4, 5), versions(cli), "a dry run changes nothing");
        Cli.Result text = cli.run("prune", "--keep-last=2", "-n");
        assertTrue(text.out().contains("would remove 2 versions") && text.out().contains("nothing changed"), text.out());

        Cli.Result real = cli.run("prune", "team", "--keep-last", "2");
        assertEquals(0, real.code(), real.toString());
        assertTrue(real.out().contains("removed 2 versions from 1 image") && real.out().contains("cask gc"), real.out());
        assertEquals(List.of(1, 4, 5), versions(cli), "the user version 1 stays; the 2 newest automatic ones stay");
        assertEquals(List.of(1, 4, 5), versionsAfter(cli, "prune", "--keep-last", "1", "--include-user", "--dry-run"));
    }

    private List<Integer> versionsAfter(Cli cli, String... args) throws Exception {
        assertEquals(0, cli.run(args).code());
        return versions(cli);
    }

    @Test
    void retentionPoliciesAreStoredAndTheLongestPrefixWins() throws Exception {
        Cli cli = store(4);
        assertEquals(0, cli.run("retention", "team", "--keep-last", "1").code());
        assertEquals(0, cli.run("retention", "team/web", "--keep-daily", "7", "--keep-within", "1d12h").code());
        JsonNode all = json.readTree(cli.run("retention", "--json").out());
        assertEquals(2, all.size());
        assertEquals("team/web", all.get(1).get("prefix").asText());
        assertEquals("keep-within=1d12h keep-daily=7", all.get(1).get("policy").asText());
        assertTrue(cli.run("retention", "team/web/vm-1").out().contains("from team/web"));
        assertTrue(cli.run("retention", "other").out().contains("the default"));
        assertTrue(cli.run("retention").out().contains("(default)"));
        Cli.Result p = cli.run("prune", "--json");
        JsonNode r = json.readTree(p.out());
        assertEquals("team", r.get("images").get(0).get("policy_source").asText());
        assertEquals(List.of(1, 5), versions(cli));
        assertEquals(0, cli.run("retention", "team", "--remove").code());
        assertEquals(1, cli.run("retention", "team", "--remove").code(), "no policy left to remove");
    }

    @Test
    void malformedCountsAndDurationsAreUsageErrors() throws Exception {
        Cli cli = store(1);
        for (String[] args : new String[][] {{"prune", "--keep-within", "7x"}, {"prune", "--keep-last=-1"}, {"prune", "--keep-daily", "abc"},
                {"prune", "--keep-last", "0"}, {"retention", "team", "--keep-hourly", "1.5"}, {"retention", "--keep-last", "1"},
                {"rm", "team/a@"}, {"prune", "bad//prefix"}}) {
            Cli.Result r = cli.run(args);
            assertEquals(2, r.code(), String.join(" ", args) + ": " + r);
            assertTrue(r.err().startsWith("cask: ") || r.err().contains("Usage"), r.err());
        }
        Cli.Result r = cli.run("prune", "--keep-within", "7x");
        assertTrue(r.err().contains("--keep-within") && r.err().contains("7x"), r.err());
        assertEquals(List.of(1, 2), versions(cli));
        assertEquals(0, cli.run("prune", "--keep-within", "7d", "--dry-run").code());
    }

    @Test
    void serveAppliesTheStoredPolicyToTheImagesItHasOpen() throws Exception {
        Cli cli = store(4);
        assertEquals(0, cli.run("retention", "team", "--keep-last", "2").code());
        try (Server server = new Server(cli, "--prune-interval", "1s", "--checkpoint-interval", "0", "--no-warmup");
             NbdClient client = new NbdClient(server.port, "team/a")) {
            long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
            while (!server.log.toString().contains("pruned") && System.nanoTime() < deadline) Thread.sleep(100);
            String log = server.log.toString();
            assertTrue(log.contains("image 'team/a': pruned 2 versions [2, 3] by retention policy team (keep-last=2)"), log);
            assertEquals(List.of(1, 4, 5), versions(cli));
            assertEquals(1, cli.run("rm", "team/a@5").code(), "the head, the open volume's base");
            // a read-only export of version 4, served by another process: the server says it is in use
            try (NbdClient ro = new NbdClient(server.port, "team/a@4")) {
                Cli.Result kept = cli.run("prune", "team", "--keep-last", "1", "--json");
                assertEquals(0, kept.code(), kept.toString());
                JsonNode k = json.readTree(kept.out()).get("images").get(0).get("kept");
                assertTrue(k.toString().contains("in use"), k.toString());
                assertEquals(List.of(1, 4, 5), versions(cli));
                Cli.Result rm = cli.run("rm", "team/a@4");
                assertEquals(1, rm.code());
                assertTrue(rm.err().contains("in use"), rm.err());
            }
            long until = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(30);
            List<Integer> left = versions(cli);
            while (left.contains(4) && System.nanoTime() < until) { // the export goes when the server sees the disconnect
                cli.run("prune", "team", "--keep-last", "1");
                left = versions(cli);
                if (left.contains(4)) Thread.sleep(100);
            }
            assertEquals(List.of(1, 5), left);
            // through the server: cask snapshot makes a user version, an export of the head an automatic one
            byte[] block = new byte[4096];
            block[7] = 7;
            client.write(0, block);
            client.flush();
            assertEquals(0, cli.run("snapshot", "team/a", "-m", "before upgrade").code());
            block[7] = 8;
            client.write(0, block);
            client.flush();
            assertEquals(0, cli.run("export", "team/a", dir.resolve("out.raw").toString()).code());
            JsonNode kinds = json.readTree(cli.run("log", "team/a", "--json").out());
            assertEquals("before upgrade", kinds.get(2).get("message").asText());
            assertEquals("user", kinds.get(2).get("kind").asText());
            assertEquals("auto", kinds.get(3).get("kind").asText());
            Cli.Result again = cli.run("snapshot", "team/a", "-m", "keep this");
            int exported = kinds.get(3).get("version").asInt();
            assertTrue(again.out().contains("unchanged since version " + exported + ": no version added"), again.out());
            assertEquals("user", json.readTree(cli.run("info", "team/a@" + exported, "--json").out()).get("kind").asText(),
                    "a snapshot of unchanged content keeps the automatic version that holds it");
        }
    }
    /**
     * cask.now (@FILE) stamps versions and sets the now prune counts from: 72 hourly checkpoints over
     * three simulated days, then the default policy at the last one keeps the two within 2h and 48 hourly
     * ones, which cover all three days (daily keeps no more), and removes the 22 oldest.
     */
    @Test
    void simulatedTimeFromCaskNowStampsVersionsAndSetsPrunesNow() throws Exception {
        Path now = dir.resolve("now");
        java.time.Instant t0 = java.time.Instant.parse("2026-01-05T00:00:00Z");
        Files.writeString(now, t0.minusSeconds(3600).toString()); // the import too: a version is never older than the newest before it
        System.setProperty(dev.cask.common.Clocks.PROPERTY, "@" + now);
        java.util.TimeZone zone = java.util.TimeZone.getDefault();
        java.util.TimeZone.setDefault(java.util.TimeZone.getTimeZone("UTC")); // periods are cut in local time
        try {
            Cli cli = store(0);
            try (SqliteCatalog c = SqliteCatalog.open(dir.resolve("store").resolve("catalog.db"))) {
                for (int h = 0; h < 72; h++) {
                    Files.writeString(now, t0.plusSeconds(3600L * h).toString());
                    Version v = c.version("team/a", c.image("team/a").head());
                    c.commit("team/a", v.number(), new NewVersion("automatic checkpoint", v.size(), v.content(), VersionKind.AUTO), v.key());
                }
            }
            JsonNode log = json.readTree(cli.run("log", "team/a", "--json").out());
            assertEquals(t0.toString(), log.get(1).get("time").asText());
            assertEquals(t0.plusSeconds(3600L * 71).toString(), log.get(72).get("time").asText());
            Cli.Result r = cli.run("prune", "--json");
            assertEquals(0, r.code(), r.toString());
            assertEquals(22, json.readTree(r.out()).get("removed_versions").asInt(), r.out());
            List<Integer> expect = new ArrayList<>(List.of(1));
            for (int v = 24; v <= 73; v++) expect.add(v);
            assertEquals(expect, versions(cli));
        } finally {
            System.clearProperty(dev.cask.common.Clocks.PROPERTY);
            java.util.TimeZone.setDefault(zone);
        }
    }
}
