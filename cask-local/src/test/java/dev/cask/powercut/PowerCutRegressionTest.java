package dev.cask.powercut;

import dev.cask.local.LocalImages;
import dev.cask.common.Progress;
import dev.cask.image.Images;
import dev.cask.volume.Volume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Power cuts the random-point tests found to lose acknowledged data, each as one fixed scenario:
 * a child does something, acknowledges it, and stops at once (Runtime.halt, as kill -9 would);
 * the shim's image of the moment it stopped is what a power cut then leaves, and it must hold
 * what was acknowledged. Each failed before its fix.
 */
class PowerCutRegressionTest {
    @TempDir
    Path tmp;

    static byte[] pattern(int length, long seed) {
        byte[] b = new byte[length];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** The first volume of a new store: a FLUSH must not depend on a journals directory that a power cut takes away. */
    public static final class FirstFlush {
        public static void main(String[] args) {
            Images images = LocalImages.open(Path.of(args[0]));
            images.create("vm", 1 << 20, 4096);
            Volume v = images.openVolume("vm");
            v.write(0, pattern(16384, 1), 0, 16384, false);
            v.flush();
            PowerCut.say("flushed");
            Runtime.getRuntime().halt(0);
        }
    }

    @Test
    void aFlushOnTheFirstVolumeOfAStoreSurvives() throws Exception {
        Path image = cut(FirstFlush.class);
        try (Images images = LocalImages.open(image)) {
            Volume v = images.openVolume("vm");
            byte[] got = new byte[16384];
            v.read(0, got, 0, got.length);
            v.close();
            assertArrayEquals(pattern(16384, 1), got, "the flushed write (journals/ was created but its entry in the store directory never synced)");
        }
    }

    /** An import returned (its version is committed): its chunks must still be found after a power cut. */
    public static final class Import {
        public static void main(String[] args) throws Exception {
            Path src = Path.of(args[1]);
            Files.write(src, pattern(1 << 20, 2));
            Images images = LocalImages.open(Path.of(args[0]));
            images.importFile(src, "imported", "raw", 0, true, Progress.NONE, w -> { });
            PowerCut.say("imported");
            Runtime.getRuntime().halt(0);
        }
    }

    @Test
    void anImportThatReturnedSurvives() throws Exception {
        Path image = cut(Import.class, tmp.resolve("src.raw").toString());
        try (Images images = LocalImages.open(image)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            images.export("imported", out, Progress.NONE);
            assertArrayEquals(pattern(1 << 20, 2), out.toByteArray(), "the imported image");
            assertEquals(List.of(), images.check(false, Progress.NONE).problems(), "check");
        }
    }

    /** A volume flushed and closed, then rolled back: the old journal must not come back and undo the rollback. */
    public static final class RollbackAfterClose {
        public static void main(String[] args) {
            Images images = LocalImages.open(Path.of(args[0]));
            images.create("vm", 1 << 20, 4096);
            Volume v = images.openVolume("vm");
            v.write(0, pattern(8192, 3), 0, 8192, false);
            v.flush();
            v.close();
            images.rollback("vm", "1");
            PowerCut.say("rolled back");
            Runtime.getRuntime().halt(0);
        }
    }

    @Test
    void aRollbackAfterCloseIsNotUndoneByTheClosedJournal() throws Exception {
        Path image = cut(RollbackAfterClose.class);
        try (Images images = LocalImages.open(image)) {
            assertEquals(3, images.image("vm").head());
            Volume v = images.openVolume("vm");
            byte[] got = new byte[8192];
            v.read(0, got, 0, got.length);
            v.close();
            assertArrayEquals(new byte[8192], got, "version 3 (the rollback to the empty version 1), not the journal of the closed volume replayed over it");
        }
    }

    /**
     * A block written, made durable by a FUA write elsewhere, written again (appended: the old copy
     * may be durable), then checkpointed: the sealed generation holds the old copy durably and the
     * new one not, and its deletion after the commit must not be lost, or replay puts the old copy
     * back over the version that holds the new one.
     */
    public static final class CheckpointAfterRewrite {
        public static void main(String[] args) {
            Images images = LocalImages.open(Path.of(args[0]));
            images.create("vm", 1 << 20, 4096);
            Volume v = images.openVolume("vm");
            v.write(0, pattern(4096, 4), 0, 4096, false);
            v.write(65536, pattern(4096, 5), 0, 4096, true);
            v.write(0, pattern(4096, 6), 0, 4096, false);
            v.checkpoint("after the rewrite");
            PowerCut.say("checkpointed");
            Runtime.getRuntime().halt(0);
        }
    }

    @Test
    void aCheckpointedRewriteIsNotUndoneByItsSealedGeneration() throws Exception {
        Path image = cut(CheckpointAfterRewrite.class);
        try (Images images = LocalImages.open(image)) {
            Volume v = images.openVolume("vm");
            byte[] got = new byte[4096];
            v.read(0, got, 0, got.length);
            v.close();
            assertArrayEquals(pattern(4096, 6), got, "block 0 as the checkpoint committed it, not the older copy in the deleted generation");
        }
    }

    /** Runs {@code main} on an empty store under the shim; returns the image of the moment it stopped. */
    private Path cut(Class<?> main, String... extra) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("store"));
        String[] args = new String[extra.length + 1];
        args[0] = root.toRealPath().toString();
        System.arraycopy(extra, 0, args, 1, extra.length);
        PowerCut.Run run = PowerCut.run(root, tmp.resolve("out"), new PowerCut.Options(1, "*=0", "", false, true, 0), main, args);
        assertTrue(run.lines().size() == 1, "the child acknowledged: " + run.lines() + "\n" + run.stderr());
        assertNotNull(run.finalImage(), "no image at exit: " + run.stderr());
        return run.finalImage();
    }

    static boolean allZero(byte[] b) {
        return Arrays.equals(b, new byte[b.length]);
    }
}
