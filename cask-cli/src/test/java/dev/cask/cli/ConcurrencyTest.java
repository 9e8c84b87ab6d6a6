package dev.cask.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Several cask processes on one store at once: all succeed and the store stays whole. */
class ConcurrencyTest {
    @TempDir
    Path dir;

    @Test
    void parallelImportsFromSeparateProcesses() throws Exception {
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("create", "warmup", "1M").code());
        Random rnd = new Random(1);
        byte[] shared = new byte[1 << 20];
        rnd.nextBytes(shared);
        List<Path> files = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            byte[] disk = new byte[4 << 20];
            System.arraycopy(shared, 0, disk, 0, shared.length); // a common first MiB
            byte[] own = new byte[1 << 20];
            rnd.nextBytes(own);
            System.arraycopy(own, 0, disk, 2 << 20, own.length);
            Path p = dir.resolve("d" + i + ".raw");
            Files.write(p, disk);
            files.add(p);
        }
        List<Process> procs = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) procs.add(cli.start("import", files.get(i).toString(), "vm-" + i));
        for (Process p : procs) {
            byte[] err = p.getErrorStream().readAllBytes();
            assertEquals(0, p.waitFor(), new String(err));
        }
        assertEquals(5, new ObjectMapper().readTree(cli.run("ls", "--json").out()).size());
        Cli.Result check = cli.run("check", "--deep");
        assertEquals(0, check.code(), check.toString());
        for (int i = 0; i < files.size(); i++) {
            Path out = dir.resolve("o" + i + ".raw");
            assertEquals(0, cli.run("export", "vm-" + i, out.toString()).code());
            Cli.mustTool("cmp", files.get(i).toString(), out.toString());
        }
    }
}
