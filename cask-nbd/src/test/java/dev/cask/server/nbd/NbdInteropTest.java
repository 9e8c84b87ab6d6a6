package dev.cask.server.nbd;

import dev.cask.device.Capabilities;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The server with the real clients, each a separate process: nbdinfo and nbdcopy (libnbd),
 * qemu-io and qemu-img (QEMU's own NBD client), over TCP and a Unix socket. A missing tool fails
 * the test. Content is always checked against the device's bytes (or a Java model), not only
 * against what the tool says.
 */
class NbdInteropTest {
    private static final int MiB = 1 << 20;
    private static final int SIZE = 8 * MiB;

    @TempDir
    Path dir;

    private MemoryResolver resolver;
    private MemoryDevice disk;
    private MemoryDevice ro;
    private NbdServer server;

    @BeforeEach
    void start() {
        disk = new MemoryDevice(SIZE);
        ro = new MemoryDevice(4 * MiB, new Capabilities(true, true, true, true, true, true, true, false, 512, 4096, MiB));
        byte[] data = new byte[64 << 10];
        Arrays.fill(data, (byte) 0x77);
        ro.write(MiB, data, 0, data.length, false);
        resolver = new MemoryResolver()
                .add("disk", disk, false, "test disk")
                .add("ro", ro, true, "read-only disk");
        server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), resolver);
    }

    @AfterEach
    void stop() {
        server.close();
        assertEquals(0, resolver.held(), "every opened export was released");
    }

    private String uri(String name) {
        return "nbd://127.0.0.1:" + server.port() + "/" + name;
    }

    private static void assertJson(String json, String key, String value) {
        Matcher m = Pattern.compile("\"" + Pattern.quote(key) + "\"\\s*:\\s*([^,\\n}]+)").matcher(json);
        if (!m.find()) fail("no \"" + key + "\" in nbdinfo output:\n" + json);
        assertEquals(value, m.group(1).trim(), key + " in\n" + json);
    }

    @Test
    void nbdinfoJsonShowsSizeFlagsBlockSizesAndContexts() {
        String json = Tools.run("nbdinfo", "--json", uri("disk"));
        assertJson(json, "export-size", String.valueOf(SIZE));
        assertJson(json, "is_read_only", "false");
        for (String flag : new String[] {"can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_multi_conn", "can_cache", "can_df"}) {
            assertJson(json, flag, "true");
        }
        assertJson(json, "block_size_minimum", "1");
        assertJson(json, "block_size_preferred", "4096");
        assertJson(json, "block_size_maximum", String.valueOf(32 * MiB));
        assertJson(json, "description", "\"test disk\"");
        assertTrue(json.contains("\"base:allocation\""), json);

        String roJson = Tools.run("nbdinfo", "--json", uri("ro"));
        assertJson(roJson, "export-size", String.valueOf(4 * MiB));
        assertJson(roJson, "is_read_only", "true");
        for (String flag : new String[] {"can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_multi_conn"}) {
            assertJson(roJson, flag, "false");
        }
        assertJson(roJson, "block_size_minimum", "512");
        assertJson(roJson, "block_size_maximum", String.valueOf(MiB));
    }

    @Test
    void nbdinfoListAndMap() {
        String list = Tools.run("nbdinfo", "--list", "--json", "nbd://127.0.0.1:" + server.port());
        assertTrue(list.contains("\"export-name\": \"disk\"") && list.contains("\"export-name\": \"ro\""), list);
        assertTrue(list.contains("test disk") && list.contains("read-only disk"), list);

        byte[] data = new byte[64 << 10];
        new Random(1).nextBytes(data);
        disk.write(MiB, data, 0, data.length, false);
        String map = Tools.run("nbdinfo", "--map", uri("disk"));
        String[] lines = map.strip().split("\n");
        assertEquals(3, lines.length, map);
        assertTrue(lines[0].trim().matches("0\\s+1048576\\s+3\\s+hole,zero"), map);
        assertTrue(lines[1].trim().matches("1048576\\s+65536\\s+0\\s+data"), map);
        assertTrue(lines[2].trim().matches("1114112\\s+" + (SIZE - MiB - 65536) + "\\s+3\\s+hole,zero"), map);
    }

    @Test
    void unknownExportFailsWithTheMessage() {
        // libnbd 1.14 shows a server's error message only in its debug output
        Tools.Result r = Tools.exec(Map.of("LIBNBD_DEBUG", "1"), "nbdinfo", uri("nope"));
        assertNotEquals(0, r.exit(), r.all());
        assertTrue(r.stderr().contains("server error message: no image 'nope'"), "the resolver's message reaches nbdinfo:\n" + r.all());
        Tools.Result q = Tools.exec("qemu-img", "info", uri("nope"));
        assertNotEquals(0, q.exit(), q.all());
        assertTrue(q.all().contains("no image 'nope'"), "the resolver's message reaches qemu-img:\n" + q.all());
        assertEquals(0, resolver.held());
    }

    @Test
    void qemuIoWritesAndReadsPatterns() {
        byte[] model = new byte[SIZE];
        String u = uri("disk");
        Tools.qemuIo(u,
                "write -P 0x11 0 64k",
                "write -P 0x22 4193304 3000",          // middle, unaligned
                "write -P 0x33 8384512 4096",          // the last 4 KiB
                "write -P 0x44 12345 777",             // unaligned, inside the first write
                "write -P 0x55 8388607 1",             // the very last byte
                "write -z 1M 512k",
                "write -P 0x66 2M 1M",
                "discard 2M 256k",
                "write -z 5000 100");
        fill(model, 0, 64 << 10, 0x11);
        fill(model, 4193304, 3000, 0x22);
        fill(model, 8384512, 4096, 0x33);
        fill(model, 12345, 777, 0x44);
        fill(model, 8388607, 1, 0x55);
        fill(model, MiB, 512 << 10, 0);
        fill(model, 2 * MiB, MiB, 0x66);
        fill(model, 2 * MiB, 256 << 10, 0); // this device's trim makes zeros
        fill(model, 5000, 100, 0);
        Tools.qemuIo(u,
                "read -P 0x11 0 5000",
                "read -P 0 5000 100",
                "read -P 0x11 5100 7245",
                "read -P 0x44 12345 777",
                "read -P 0x11 13122 52414",
                "read -P 0x22 4193304 3000",
                "read -P 0x33 8384512 4095",
                "read -P 0x55 8388607 1",
                "read -P 0 1M 512k",
                "read -P 0 2M 256k",
                "read -P 0x66 2359296 786432");
        assertArrayEquals(model, disk.content(), "device content matches the model");
    }

    private static void fill(byte[] b, int off, int len, int v) {
        Arrays.fill(b, off, off + len, (byte) v);
    }

    /** A local raw image: random 64 KiB runs with holes between them, and an unaligned tail. */
    private Path localImage(String name, long seed) throws IOException {
        byte[] b = new byte[SIZE];
        Random rnd = new Random(seed);
        for (int i = 0; i < 40; i++) {
            int off = rnd.nextInt(SIZE - 70_000);
            byte[] run = new byte[1 + rnd.nextInt(65536)];
            rnd.nextBytes(run);
            System.arraycopy(run, 0, b, off, run.length);
        }
        Path p = dir.resolve(name);
        Files.write(p, b);
        return p;
    }

    @Test
    void qemuImgInfoConvertCompare() throws IOException {
        String info = Tools.run("qemu-img", "info", uri("disk"));
        assertTrue(info.contains("virtual size: 8 MiB (8388608 bytes)"), info);

        byte[] old = new byte[4096];
        Arrays.fill(old, (byte) 0xee);
        for (int off = 0; off < SIZE; off += 512 * 1024) disk.write(off, old, 0, old.length, false); // stale data qemu-img must zero
        Path src = localImage("src.raw", 7);
        Tools.run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src.toString(), uri("disk"));
        assertArrayEquals(Files.readAllBytes(src), disk.content(), "convert into the export");
        String cmp = Tools.run("qemu-img", "compare", "-f", "raw", "-F", "raw", src.toString(), uri("disk"));
        assertTrue(cmp.contains("Images are identical"), cmp);

        Path back = dir.resolve("back.raw");
        Tools.run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri("disk"), back.toString());
        assertEquals(-1, Files.mismatch(src, back), "convert out of the export");

        Path ro4 = dir.resolve("ro.raw");
        Tools.run("qemu-img", "convert", "-f", "raw", "-O", "raw", uri("ro"), ro4.toString());
        assertArrayEquals(ro.content(), Files.readAllBytes(ro4));
        Tools.Result w = Tools.exec("qemu-io", "-f", "raw", "-c", "write -P 1 0 4k", uri("ro"));
        assertTrue(w.exit() != 0 || w.all().contains("failed") || w.all().contains("error"), "writing to a read-only export fails:\n" + w.all());
    }

    @Test
    void nbdcopyBothWays() throws IOException {
        Path src = localImage("src.raw", 11);
        Tools.run("nbdcopy", src.toString(), uri("disk"));
        assertArrayEquals(Files.readAllBytes(src), disk.content(), "nbdcopy into the export");
        Path back = dir.resolve("back.raw");
        Files.createFile(back);
        Tools.run("nbdcopy", uri("disk"), back.toString());
        assertEquals(-1, Files.mismatch(src, back), "nbdcopy out of the export");
        // export to export, several connections each way (the device allows multi-conn)
        MemoryDevice copy = new MemoryDevice(SIZE);
        resolver.add("copy", copy, false, "");
        Tools.run("nbdcopy", "--connections=4", "--requests=8", uri("disk"), uri("copy"));
        assertEquals(disk.sha256(), copy.sha256());
    }

    @Test
    void unixSocket() throws IOException {
        Path sock = dir.resolve("nbd.sock");
        try (NbdServer unix = NbdServer.start(UnixDomainSocketAddress.of(sock), resolver)) {
            String u = "nbd+unix:///disk?socket=" + sock;
            String json = Tools.run("nbdinfo", "--json", u);
            assertJson(json, "export-size", String.valueOf(SIZE));
            Tools.qemuIo(u, "write -P 0x5c 100k 300k", "write -z 200k 4k");
            Tools.qemuIo(u, "read -P 0x5c 100k 100k", "read -P 0 200k 4k", "read -P 0x5c 204k 196k");
            byte[] expected = new byte[SIZE];
            fill(expected, 100 << 10, 300 << 10, 0x5c);
            fill(expected, 200 << 10, 4 << 10, 0);
            assertArrayEquals(expected, disk.content());
            Path back = dir.resolve("back.raw");
            Tools.run("qemu-img", "convert", "-f", "raw", "-O", "raw", u, back.toString());
            assertArrayEquals(expected, Files.readAllBytes(back));
            assertEquals(sock, ((UnixDomainSocketAddress) unix.address()).getPath());
        }
        assertTrue(Files.notExists(sock));
    }
}
