package dev.cask.cli;

import dev.cask.local.LocalImages;
import dev.cask.image.Images;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kill -9 of a real {@code cask serve} in the middle of a write workload that flushes, at 20
 * random points: after each, every write a FLUSH acknowledged reads back exactly, every block
 * written since is the old or one of the new contents (never torn, never garbage), and
 * {@code cask check} is clean. Seeded: -Dcask.seed=N replays the workload (not the kill timing).
 */
class CrashTest {
    @TempDir
    Path dir;

    @Test
    void flushedWritesSurviveKillNine() throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        Cli cli = new Cli(dir.resolve("store"));
        int size = 16 << 20;
        int blocks = size / 4096;
        assertEquals(0, cli.run("create", "crash", String.valueOf(size)).code());
        byte[] durable = new byte[size]; // what every acknowledged flush guarantees
        for (int round = 0; round < 20; round++) {
            String at = "seed=" + seed + " round=" + round;
            Map<Integer, List<byte[]>> since = new HashMap<>(); // block -> contents written after the last flush
            byte[] current = durable.clone();
            Server server = new Server(cli, "--checkpoint-interval", rnd.nextBoolean() ? "1s" : "0");
            long killAfterMs = 100 + rnd.nextInt(900);
            Thread killer = Thread.ofPlatform().start(() -> {
                try {
                    Thread.sleep(killAfterMs);
                    server.kill();
                } catch (InterruptedException ignored) {
                    // test over
                }
            });
            try (NbdClient c = new NbdClient(server.port, "crash")) {
                while (true) {
                    int blk = rnd.nextInt(blocks);
                    int off = rnd.nextInt(4) == 0 ? rnd.nextInt(4096 - 100) : 0;
                    int len = off == 0 ? 4096 * (1 + rnd.nextInt(3)) : 100 + rnd.nextInt(3000);
                    if ((long) blk * 4096 + off + len > size) continue;
                    byte[] data = new byte[len];
                    rnd.nextBytes(data);
                    // recorded before it is sent: a write in flight when the server dies may or may not be in the journal
                    System.arraycopy(data, 0, current, blk * 4096 + off, len);
                    for (int b = blk; b * 4096L < (long) blk * 4096 + off + len; b++) {
                        since.computeIfAbsent(b, k -> new ArrayList<>()).add(Arrays.copyOfRange(current, b * 4096, b * 4096 + 4096));
                    }
                    c.write((long) blk * 4096 + off, data);
                    if (rnd.nextInt(4) == 0) {
                        c.flush();
                        durable = current.clone();
                        since.clear();
                    }
                }
            } catch (IOException expected) {
                // the server died under us
            }
            killer.join();
            // recover in-process, as the next server would: the journal replays
            try (Images images = LocalImages.open(dir.resolve("store"))) {
                Volume v = images.openVolume("crash");
                byte[] got = new byte[size];
                v.read(0, got, 0, size);
                for (int b = 0; b < blocks; b++) {
                    byte[] g = Arrays.copyOfRange(got, b * 4096, b * 4096 + 4096);
                    byte[] old = Arrays.copyOfRange(durable, b * 4096, b * 4096 + 4096);
                    if (Arrays.equals(g, old)) continue;
                    boolean isNew = false;
                    for (byte[] candidate : since.getOrDefault(b, List.of())) isNew |= Arrays.equals(g, candidate);
                    assertTrue(isNew, at + ": block " + b + " is neither its flushed content nor a later write (torn or lost)");
                    System.arraycopy(g, 0, durable, b * 4096, 4096); // the new content is now what the disk holds
                }
                v.close();
                assertTrue(images.check(false, dev.cask.common.Progress.NONE).ok(), at + ": check after recovery");
            }
        }
    }
}
