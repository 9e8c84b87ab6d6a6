package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.cask.catalog.postgres.PostgresServer;
import dev.cask.store.s3.S3Server;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link BootTest} on a shared store, through a second node: node A imports the Debian fixture
 * into S3 (s3proxy) and PostgreSQL; node B, with a state directory and a chunk cache of its own,
 * serves it, and the VM boots from B (qemu-system-x86_64, TCG), runs /sbin/bootcheck (reads much
 * of the disk, writes 16 MiB, prints BOOT-OK); what it wrote is a version afterwards, which node A
 * sees, and {@code cask check} from node A is clean.
 */
class SharedBootTest {
    private static final String BUCKET = "cask-cli-boot";

    @TempDir
    Path dir;

    @Test
    void aDebianVmBootsThroughASecondNodeOfASharedStore() throws Exception {
        Path f = BootTest.fixtures();
        PostgresServer pg = PostgresServer.shared();
        S3Server s3 = S3Server.shared();
        s3.createBucket(BUCKET);
        String database = pg.createDatabase("cli_boot");
        List<String> store = List.of("--store", "s3://" + BUCKET + "/boot", "--catalog", pg.url(database));
        Cli nodeA = new Cli(concat(store, "--state", dir.resolve("state-a").toString()), s3.environment());
        Cli nodeB = new Cli(concat(store, "--state", dir.resolve("state-b").toString(), "--cache", dir.resolve("cache-b").toString(),
                "--cache-size", "2G"), s3.environment());
        assertEquals(0, nodeA.process(null, "init").code());
        Cli.Result imported = nodeA.process(null, "import", f.resolve("bookworm-minbase.raw").toString(), "team/vm-1");
        assertEquals(0, imported.code(), imported.toString());
        String console;
        try (Server b = new Server(nodeB, "--checkpoint-interval", "0", "--gc-interval", "0", "--no-warmup")) {
            console = BootTest.boot(f, b.uri("team/vm-1"));
            assertEquals(0, b.stop("TERM"), b.log.toString());
        }
        assertTrue(console.contains("BOOT-OK"), "the guest must print BOOT-OK:\n" + console);
        JsonNode log = new ObjectMapper().readTree(nodeA.process(null, "log", "team/vm-1", "--json").out());
        assertTrue(log.size() >= 2, "a version after the boot, seen from node A: " + log);
        Cli.Result check = nodeA.process(null, "check");
        assertEquals(0, check.code(), check.toString());
    }

    private static List<String> concat(List<String> a, String... b) {
        List<String> out = new ArrayList<>(a);
        out.addAll(List.of(b));
        return out;
    }
}
