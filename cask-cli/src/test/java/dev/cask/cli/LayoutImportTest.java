package dev.cask.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Partition-aware import with real sfdisk and mkfs.ext4: layouts round-trip bit for bit, a file
 * system at sector 63 deduplicates against the same one at sector 2048, broken tables fall back
 * to the whole disk with a warning.
 */
class LayoutImportTest {
    @TempDir
    Path dir;
    private final ObjectMapper json = new ObjectMapper();

    /** A 24 MiB ext4 file system holding a few MiB of random files (deterministic). */
    private Path ext4() throws Exception {
        Path root = dir.resolve("rootfs");
        Files.createDirectories(root);
        Random rnd = new Random(5);
        for (int i = 0; i < 12; i++) {
            byte[] b = new byte[100_000 + rnd.nextInt(300_000)];
            rnd.nextBytes(b);
            Files.write(root.resolve("file" + i), b);
        }
        Path fs = dir.resolve("fs.img");
        Cli.mustTool("truncate", "-s", "24M", fs.toString());
        Cli.mustTool("mkfs.ext4", "-q", "-F", "-b", "4096", "-U", "clear",
                "-E", "hash_seed=00000000-0000-0000-0000-000000000000", "-d", root.toString(), fs.toString());
        return fs;
    }

    /** A disk of {@code size} with the sfdisk script, and {@code fs} copied to byte {@code at}. */
    private Path disk(String name, String size, String sfdiskScript, Path fs, long at) throws Exception {
        Path d = dir.resolve(name);
        Cli.mustTool("truncate", "-s", size, d.toString());
        Process p = new ProcessBuilder("sfdisk", "-q", d.toString()).redirectErrorStream(true).start();
        try (OutputStream in = p.getOutputStream()) {
            in.write(sfdiskScript.getBytes());
        }
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), "sfdisk: " + out);
        if (fs != null) {
            try (FileChannel src = FileChannel.open(fs); FileChannel dst = FileChannel.open(d, StandardOpenOption.WRITE)) {
                src.transferTo(0, src.size(), dst.position(at));
            }
        }
        return d;
    }

    private void roundTrip(Cli cli, String image, Path src) throws Exception {
        Path out = dir.resolve(image.replace('/', '_') + ".out");
        Cli.Result r = cli.run("export", image, out.toString());
        assertEquals(0, r.code(), r.toString());
        Cli.mustTool("cmp", src.toString(), out.toString());
    }

    private long stored(Cli cli) throws Exception {
        return json.readTree(cli.run("stats", "--json").out()).get("stored_bytes").asLong();
    }

    private JsonNode layout(Cli cli, String image) throws Exception {
        return json.readTree(cli.run("info", image, "--json").out()).get("layout");
    }

    @Test
    void sector63AndSector2048DeduplicateAndRoundTrip() throws Exception {
        Path fs = ext4();
        Path a = disk("a.raw", "40M", "start=2048, size=49152, type=83\n", fs, 2048L * 512);
        Path b = disk("b.raw", "40M", "start=63, size=49152, type=83\n", fs, 63L * 512);
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("import", a.toString(), "a").code());
        long afterA = stored(cli);
        assertEquals(0, cli.run("import", b.toString(), "b").code());
        long afterB = stored(cli);
        assertTrue(afterB - afterA < afterA / 10, "the same file system at sector 63 must dedup: " + afterA + " -> " + afterB);
        roundTrip(cli, "a", a);
        roundTrip(cli, "b", b);
        JsonNode lb = layout(cli, "b");
        assertEquals(3, lb.size(), lb.toString());
        assertEquals(63 * 512, lb.get(1).get("offset").asLong());
        assertEquals(49152L * 512, lb.get(1).get("length").asLong());

        // the whole-disk cut of the sector-63 disk does not line up with the file system blocks
        assertEquals(0, cli.run("import", "--whole-disk", b.toString(), "b-whole").code());
        assertTrue(stored(cli) - afterB > afterA / 2, "fixed 4K cuts from offset 0 store the shifted file system again");
        assertEquals(1, layout(cli, "b-whole").size());
        roundTrip(cli, "b-whole", b);
    }

    @Test
    void gptAndLogicalPartitionsRoundTrip() throws Exception {
        Path fs = ext4();
        Path g = disk("g.raw", "64M", "label: gpt\nstart=2048, size=49152\nstart=53248, size=8192\n", fs, 2048L * 512);
        Path m = disk("m.raw", "64M", "start=2048, size=8192, type=83\nstart=12288, size=100000, type=5\nstart=14336, size=49152, type=83\n",
                fs, 14336L * 512);
        Cli cli = new Cli(dir.resolve("store"));
        assertEquals(0, cli.run("import", g.toString(), "g").code());
        assertEquals(0, cli.run("import", m.toString(), "m").code());
        roundTrip(cli, "g", g);
        roundTrip(cli, "m", m);
        JsonNode lg = layout(cli, "g");
        assertEquals(2048 * 512, lg.get(1).get("offset").asLong(), lg.toString());
        assertEquals(53248L * 512, lg.get(3).get("offset").asLong(), lg.toString());
        JsonNode lm = layout(cli, "m");
        boolean logical = false;
        for (JsonNode e : lm) logical |= e.get("offset").asLong() == 14336L * 512;
        assertTrue(logical, "the logical partition is an extent of its own: " + lm);
    }

    @Test
    void brokenTablesFallBackToTheWholeDiskWithAWarning() throws Exception {
        Path g = disk("g.raw", "16M", "label: gpt\nstart=2048, size=8192\n", null, 0);
        try (FileChannel ch = FileChannel.open(g, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(new byte[]{0x42}), 512 + 40); // inside the GPT header: CRC now wrong
        }
        Cli cli = new Cli(dir.resolve("store"));
        Cli.Result r = cli.run("import", g.toString(), "g");
        assertEquals(0, r.code(), r.toString());
        assertTrue(r.err().contains("GPT header CRC mismatch") && r.err().contains("whole disk"), r.err());
        assertEquals(1, layout(cli, "g").size());
        roundTrip(cli, "g", g);

        // a partition that runs past the end of the disk is clipped
        Path m = disk("m.raw", "16M", "start=2048, size=8192, type=83\n", null, 0);
        try (FileChannel ch = FileChannel.open(m, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            // sfdisk will not write it, so patch the entry: 100000 sectors, far past the 16 MiB end
            ch.write(ByteBuffer.wrap(new byte[]{(byte) 0xa0, (byte) 0x86, 0x01, 0x00}), 446 + 12);
        }
        Cli.Result r2 = cli.run("import", m.toString(), "m");
        assertEquals(0, r2.code(), r2.toString());
        JsonNode lm = layout(cli, "m");
        assertEquals(2, lm.size(), lm.toString());
        assertEquals((16L << 20) - 2048 * 512, lm.get(1).get("length").asLong());
        roundTrip(cli, "m", m);
    }
}
