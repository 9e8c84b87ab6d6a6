package dev.cask.store.local;

import dev.cask.store.ScanSink;
import dev.cask.store.ChunkLocation;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Pack records and segments read outside input (a pack file that rot, a half-copied store): a
 * pack holding both, damaged at random (flipped bytes, a cut tail, bytes inserted or removed, a
 * forged segment header), must only ever give problems and {@link CaskException.Corrupt}
 * errors, never an unexpected exception and never wrong bytes: every chunk a scan reports either
 * rehashes to its id or throws, and every get returns the chunk's bytes or throws. Seeded:
 * -Dcask.seed=N replays a run.
 */
class PackFuzzTest {
    @TempDir
    Path tmp;

    @Test
    void damagedPacksGiveProblemsNeverWrongBytes() throws IOException {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        Path good = tmp.resolve("good");
        Map<ChunkId, byte[]> chunks = new HashMap<>();
        try (LocalChunkStore s = LocalChunkStore.open(good, LocalChunkStore.Options.defaults())) {
            for (int batch = 0; batch < 3; batch++) {
                int n = 20 + rnd.nextInt(20);
                byte[] buf = new byte[n * 4096];
                int[] offs = new int[n];
                for (int i = 0; i < n; i++) {
                    offs[i] = i * 4096;
                    if (i % 9 == 8) {
                        byte[] noise = new byte[4096];
                        rnd.nextBytes(noise);
                        System.arraycopy(noise, 0, buf, i * 4096, 4096);
                    } else {
                        for (int j = 0; j < 4096; j++) buf[i * 4096 + j] = (byte) ("cask segment fuzz ".charAt((j + i * 7) % 18) + (j % 97 == i ? 1 : 0));
                    }
                }
                ChunkId[] ids = s.putAll(buf, offs, 4096);
                for (int i = 0; i < n; i++) chunks.put(ids[i], Arrays.copyOfRange(buf, i * 4096, (i + 1) * 4096));
                byte[] one = ("a pointer chunk, say " + batch).getBytes();
                chunks.put(s.put(one), one);
            }
        }
        Path pack = good.resolve("packs").resolve("00000001.pack");
        byte[] original = Files.readAllBytes(pack);
        for (int round = 0; round < 150; round++) {
            String at = "seed=" + seed + " round=" + round;
            byte[] bytes = mutate(rnd, original);
            Path dir = tmp.resolve("r" + round);
            Files.createDirectories(dir.resolve("packs"));
            Files.copy(good.resolve(LocalChunkStore.HEADER_FILE), dir.resolve(LocalChunkStore.HEADER_FILE));
            Files.write(dir.resolve("packs").resolve("00000001.pack"), bytes);
            try (LocalChunkStore s = LocalChunkStore.open(dir, LocalChunkStore.Options.defaults().withExclusive(true))) {
                List<String> problems = new ArrayList<>();
                try {
                    s.scanPack(1, new ScanSink() {
                        @Override
                        public void chunk(ChunkId id, ChunkLocation location, java.util.function.Supplier<byte[]> plain) {
                            try {
                                byte[] p = plain.get();
                                assertEquals(id, ChunkId.of(p), at + ": scan gave bytes that do not hash to " + id + " at " + location);
                            } catch (CaskException.Corrupt e) {
                                assertTrue(e.getMessage().contains(id.shortHex()), at + ": " + e.getMessage());
                            }
                        }

                        @Override
                        public void problem(String line) {
                            problems.add(line);
                        }
                    }, Progress.NONE);
                    s.rebuildIndex(problems::add, Progress.NONE);
                } catch (CaskException.Corrupt e) {
                    // a problem reported by throwing is fine too
                } catch (RuntimeException e) {
                    fail(at + ": scan threw " + e, e);
                }
                for (var e : chunks.entrySet()) {
                    try {
                        assertArrayEquals(e.getValue(), s.get(e.getKey()), at + ": chunk " + e.getKey());
                    } catch (CaskException.Corrupt | CaskException.NotFound ok) {
                        // damaged or gone: an error, which is right
                    } catch (RuntimeException ex) {
                        fail(at + ": get threw " + ex, ex);
                    }
                }
            }
        }
    }

    private static byte[] mutate(Random rnd, byte[] original) {
        byte[] b = original.clone();
        switch (rnd.nextInt(5)) {
            case 0 -> { // a few flipped bytes anywhere after the pack header
                for (int k = 1 + rnd.nextInt(4); k > 0; k--) b[16 + rnd.nextInt(b.length - 16)] ^= (byte) (1 + rnd.nextInt(255));
            }
            case 1 -> b = Arrays.copyOf(b, 16 + rnd.nextInt(b.length - 16)); // a cut tail
            case 2 -> { // bytes removed from the middle
                int from = 16 + rnd.nextInt(b.length - 16), n = 1 + rnd.nextInt(Math.min(200, b.length - from));
                byte[] c = new byte[b.length - n];
                System.arraycopy(b, 0, c, 0, from);
                System.arraycopy(b, from + n, c, from, b.length - from - n);
                b = c;
            }
            case 3 -> { // bytes inserted
                int from = 16 + rnd.nextInt(b.length - 16), n = 1 + rnd.nextInt(100);
                byte[] c = new byte[b.length + n];
                System.arraycopy(b, 0, c, 0, from);
                for (int i = 0; i < n; i++) c[from + i] = (byte) rnd.nextInt(256);
                System.arraycopy(b, from, c, from + n, b.length - from);
                b = c;
            }
            default -> { // a segment magic with random fields at a random place
                int from = 16 + rnd.nextInt(b.length - 40);
                byte[] h = {0x63, 0x73, 0x65, 0x67, 1, 0, 0, 0};
                System.arraycopy(h, 0, b, from, h.length);
                for (int i = 8; i < 20; i++) b[from + i] = (byte) (rnd.nextInt(4) == 0 ? rnd.nextInt(256) : 0);
            }
        }
        return b;
    }
}
