package dev.cask.server.nbd;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * fio's nbd engine (libnbd, many requests in flight) against the server: random 4 KiB writes
 * with crc32c verification, then two jobs on two connections at once, each verifying its half.
 * fio exits non-zero on any I/O or verify error.
 */
class NbdFioTest {
    private MemoryResolver resolver;
    private NbdServer server;

    @BeforeEach
    void start() {
        resolver = new MemoryResolver().add("fio", new MemoryDevice(32 << 20), false, "");
        server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), resolver);
    }

    @AfterEach
    void stop() {
        server.close();
        assertEquals(0, resolver.held(), "every opened export was released");
    }

    private void fio(String... extra) {
        String[] base = {"fio", "--name=cask", "--ioengine=nbd", "--uri=nbd://127.0.0.1:" + server.port() + "/fio",
                "--bs=4k", "--size=16m", "--iodepth=16", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1",
                "--randseed=42", "--verify_state_save=0", "--output-format=normal"};
        String[] cmd = new String[base.length + extra.length];
        System.arraycopy(base, 0, cmd, 0, base.length);
        System.arraycopy(extra, 0, cmd, base.length, extra.length);
        Tools.Result r = Tools.exec(cmd);
        String out = r.all();
        if (r.exit() != 0) fail("fio " + String.join(" ", extra) + " exited " + r.exit() + ":\n" + out);
        assertTrue(out.contains("err= 0"), out);
        assertTrue(!out.contains("verify: bad") && !out.contains("bad magic"), out);
    }

    @Test
    void randomWritesVerify() {
        fio("--rw=randwrite");
    }

    @Test
    void twoConnectionsVerifyTheirOwnHalves() {
        fio("--rw=randwrite", "--numjobs=2", "--offset_increment=16m", "--bs=16k", "--group_reporting");
    }
}
