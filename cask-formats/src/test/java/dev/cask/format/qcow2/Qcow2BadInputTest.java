package dev.cask.format.qcow2;

import dev.cask.common.CaskException;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One test per refusal: each starts from a real image made by qemu-img, breaks one thing, and
 * expects a one-line {@link CaskException} naming the file and the value.
 */
class Qcow2BadInputTest {
    @TempDir
    Path dir;

    /** A 1 MiB v3 image with 64 KiB clusters and one data cluster at guest offset 0. */
    private byte[] base;
    private long l1Offset, l2Offset, dataOffset;

    @BeforeEach
    void makeBase() throws IOException {
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
        Qemu.io(dir.resolve("base.qcow2"), "write -P 0xab 0 64k");
        base = Files.readAllBytes(dir.resolve("base.qcow2"));
        ByteBuffer b = ByteBuffer.wrap(base);
        l1Offset = b.getLong(40);
        l2Offset = b.getLong((int) l1Offset) & 0x00ff_ffff_ffff_fe00L;
        dataOffset = b.getLong((int) l2Offset) & 0x00ff_ffff_ffff_fe00L;
        assertTrue(l2Offset > 0 && dataOffset > 0, "base layout");
    }

    private Path variant(String name, byte[] original, Consumer<ByteBuffer> patch) throws IOException {
        byte[] bytes = original.clone();
        patch.accept(ByteBuffer.wrap(bytes));
        Path p = dir.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    private Path variant(String name, Consumer<ByteBuffer> patch) throws IOException {
        return variant(name, base, patch);
    }

    /** Opening and reading everything must fail with {@code type}, one line naming the file and each fragment. */
    private static CaskException assertRefused(Path image, Class<? extends CaskException> type, String... fragments) {
        CaskException e = assertThrows(CaskException.class, () -> {
            try (Qcow2Device dev = Qcow2Device.open(image, w -> {})) {
                Qemu.readAll(dev);
                dev.blockStatus(0, dev.size());
            }
        }, image + " should be refused");
        assertInstanceOf(type, e, e.toString());
        String msg = e.getMessage();
        assertTrue(msg.contains(image.getFileName().toString()), "message names the file: " + msg);
        assertFalse(msg.contains("\n"), "one line: " + msg);
        for (String f : fragments) assertTrue(msg.contains(f), "message contains '" + f + "': " + msg);
        return e;
    }

    private static CaskException assertInvalid(Path image, String... fragments) {
        return assertRefused(image, CaskException.InvalidInput.class, fragments);
    }

    @Test
    void badMagic() throws IOException {
        assertInvalid(variant("magic.qcow2", b -> b.putInt(0, 0)), "bad magic 0x0, expected 0x514649fb (not a qcow2 file)");
        assertInvalid(variant("raw.img", b -> b.putInt(0, 0xeb63_9010)), "bad magic 0xeb639010");
    }

    @Test
    void emptyAndTruncatedFiles() throws IOException {
        Path empty = dir.resolve("empty.qcow2");
        Files.write(empty, new byte[0]);
        assertInvalid(empty, "bad magic 0x0");
        Path shortFile = dir.resolve("short.qcow2");
        Files.write(shortFile, Arrays.copyOf(base, 50));
        assertInvalid(shortFile, "too short", "50 bytes");
        Path noTables = dir.resolve("cut.qcow2");
        Files.write(noTables, Arrays.copyOf(base, 4096));
        assertInvalid(noTables, "L1 table", "past the end of the file");
    }

    @Test
    void unknownVersion() throws IOException {
        assertInvalid(variant("v4.qcow2", b -> b.putInt(4, 4)), "unsupported qcow2 version 4");
        assertInvalid(variant("v1.qcow2", b -> b.putInt(4, 1)), "unsupported qcow2 version 1");
    }

    @Test
    void encryption() throws IOException {
        assertInvalid(variant("aes.qcow2", b -> b.putInt(32, 1)), "encrypted", "crypt_method 1 = AES");
        assertInvalid(variant("luks.qcow2", b -> b.putInt(32, 2)), "crypt_method 2 = LUKS");
    }

    @Test
    void externalDataFile() {
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", "data_file=data.raw", "external.qcow2", "1M");
        assertInvalid(dir.resolve("external.qcow2"), "external data file");
    }

    @Test
    void corruptBit() throws IOException {
        assertInvalid(variant("corrupt.qcow2", b -> b.putLong(72, b.getLong(72) | 2)), "marked corrupt");
    }

    @Test
    void unknownIncompatibleBits() throws IOException {
        assertInvalid(variant("bit5.qcow2", b -> b.putLong(72, 1L << 5)), "unknown incompatible feature bits 0x20");
        assertInvalid(variant("bit63.qcow2", b -> b.putLong(72, 1L << 63)), "0x8000000000000000");
    }

    @Test
    void clusterBitsOutOfRange() throws IOException {
        assertInvalid(variant("cb8.qcow2", b -> b.putInt(20, 8)), "cluster_bits 8 out of range 9..21");
        assertInvalid(variant("cb22.qcow2", b -> b.putInt(20, 22)), "cluster_bits 22");
        assertInvalid(variant("cbneg.qcow2", b -> b.putInt(20, -1)), "cluster_bits 4294967295");
    }

    @Test
    void extendedL2NeedsLargeClusters() throws IOException {
        assertInvalid(variant("ext13.qcow2", b -> {
            b.putLong(72, b.getLong(72) | Qcow2Header.INCOMPAT_EXTENDED_L2);
            b.putInt(20, 13);
        }), "extended L2 entries need cluster_bits >= 14, found 13");
    }

    @Test
    void badHeaderLength() throws IOException {
        assertInvalid(variant("hl100.qcow2", b -> b.putInt(100, 100)), "bad header_length 100");
        assertInvalid(variant("hlbig.qcow2", b -> b.putInt(100, 1 << 20)), "bad header_length 1048576");
    }

    @Test
    void headerExtensionOverrun() throws IOException {
        assertInvalid(variant("ext-overrun.qcow2", b -> {
            int hl = b.getInt(100);
            b.putInt(hl + 4, 0x7fff_0000);
        }), "header extension", "past the end of the header area");
    }

    @Test
    void compressionType() throws IOException {
        // qemu writes header_length 112, so byte 104 is present
        assertInvalid(variant("ct2.qcow2", b -> {
            b.put(104, (byte) 2);
            b.putLong(72, b.getLong(72) | Qcow2Header.INCOMPAT_COMPRESSION);
        }), "unknown compression_type 2");
        assertInvalid(variant("ct1.qcow2", b -> b.put(104, (byte) 1)), "compression_type 1 disagrees with incompatible feature bit 3");
        assertInvalid(variant("ct0.qcow2", b -> b.putLong(72, b.getLong(72) | Qcow2Header.INCOMPAT_COMPRESSION)),
                "compression_type 0 disagrees");
    }

    @Test
    void absurdVirtualSize() throws IOException {
        assertInvalid(variant("size57.qcow2", b -> b.putLong(24, (1L << 56) + 1)), "virtual size 72057594037927937 larger than 2^56");
        assertInvalid(variant("sizeneg.qcow2", b -> b.putLong(24, -1)), "larger than 2^56");
    }

    @Test
    void l1TableTooSmallForTheVirtualSize() throws IOException {
        assertInvalid(variant("l1small.qcow2", b -> b.putLong(24, 1L << 40)), "L1 table of 1 entries too small for virtual size 1099511627776",
                "needs 2048");
        assertInvalid(variant("l1zero.qcow2", b -> b.putInt(36, 0)), "L1 table of 0 entries too small");
    }

    @Test
    void l1TableAbsurdlyLarge() throws IOException {
        assertInvalid(variant("l1huge.qcow2", b -> b.putInt(36, 0x7fff_ffff)), "L1 table of 2147483647 entries is larger than 32 MiB");
        assertInvalid(variant("l1max.qcow2", b -> b.putInt(36, -1)), "4294967295 entries");
    }

    @Test
    void l1TablePastEndOfFileOrUnaligned() throws IOException {
        assertInvalid(variant("l1eof.qcow2", b -> b.putLong(40, 1L << 40)), "L1 table at offset 1099511627776", "past the end of the file");
        assertInvalid(variant("l1eof2.qcow2", b -> b.putInt(36, 100_000)), "past the end of the file");
        assertInvalid(variant("l1unaligned.qcow2", b -> b.putLong(40, l1Offset + 8)), "not a non-zero multiple of the cluster size 65536");
        assertInvalid(variant("l1atzero.qcow2", b -> b.putLong(40, 0)), "L1 table offset 0x0");
    }

    @Test
    void l2TablePastEndOfFileOrUnaligned() throws IOException {
        assertInvalid(variant("l2eof.qcow2", b -> b.putLong((int) l1Offset, (1L << 63) | (1L << 40))),
                "L1 entry 0: L2 table at offset 1099511627776 extends past the end of the file");
        assertInvalid(variant("l2unaligned.qcow2", b -> b.putLong((int) l1Offset, (1L << 63) | (l2Offset + 512))),
                "not aligned to the cluster size 65536");
        assertInvalid(variant("l1reserved.qcow2", b -> b.putLong((int) l1Offset, (1L << 63) | l2Offset | 1)), "reserved bits");
    }

    @Test
    void dataClusterPastEndOfFileOrUnaligned() throws IOException {
        assertInvalid(variant("dataeof.qcow2", b -> b.putLong((int) l2Offset, (1L << 63) | (1L << 40))),
                "data cluster at offset 1099511627776 past the end of the file", "guest offset 0");
        assertInvalid(variant("dataunaligned.qcow2", b -> b.putLong((int) l2Offset, (1L << 63) | (dataOffset + 4096))),
                "not aligned to the cluster size");
        assertInvalid(variant("l2reserved.qcow2", b -> b.putLong((int) l2Offset, (1L << 63) | dataOffset | (1L << 57))), "reserved bits");
    }

    @Test
    void zeroFlagInVersion2() throws IOException {
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "1M");
        Qemu.io(dir.resolve("v2.qcow2"), "write -P 1 0 64k");
        byte[] v2 = Files.readAllBytes(dir.resolve("v2.qcow2"));
        ByteBuffer b = ByteBuffer.wrap(v2);
        int l2 = (int) (b.getLong((int) b.getLong(40)) & 0x00ff_ffff_ffff_fe00L);
        assertInvalid(variant("v2zero.qcow2", v2, p -> p.putLong(l2, p.getLong(l2) | 1)), "zero flag in a version 2 image");
    }

    @Test
    void compressedClusterPastEndOfFileOrCorrupt() throws IOException {
        Path raw = dir.resolve("text.raw");
        Files.write(raw, "compress me please ".repeat(60_000).getBytes());
        Qemu.img(dir, "convert", "-c", "-O", "qcow2", raw.toString(), "comp.qcow2");
        byte[] comp = Files.readAllBytes(dir.resolve("comp.qcow2"));
        ByteBuffer b = ByteBuffer.wrap(comp);
        int l2 = (int) (b.getLong((int) b.getLong(40)) & 0x00ff_ffff_ffff_fe00L);
        long entry = b.getLong(l2);
        assertTrue((entry & (1L << 62)) != 0, "first cluster compressed");
        int offsetBits = 62 - (16 - 8);
        long offsetMask = (1L << offsetBits) - 1;
        long fileSize = comp.length;
        assertInvalid(variant("compeof.qcow2", comp, p -> p.putLong(l2, (entry & ~offsetMask) | (fileSize + 4096))),
                "compressed data at offset " + (fileSize + 4096) + " past the end of the file");
        // point it at the L2 table itself: not zlib
        assertInvalid(variant("compgarbage.qcow2", comp, p -> p.putLong(l2, (entry & ~offsetMask) | l2)),
                "does not decompress");
        assertInvalid(variant("compheader.qcow2", comp, p -> p.putLong(l2, (entry & ~offsetMask) | 100)),
                "inside the header cluster");
        // claim zstd: zlib data is no zstd frame
        assertInvalid(variant("compzstd.qcow2", comp, p -> {
            p.put(104, (byte) 1);
            p.putLong(72, p.getLong(72) | Qcow2Header.INCOMPAT_COMPRESSION);
        }), "zstd", "does not decompress");
    }

    @Test
    void backingFileNameOutOfBounds() throws IOException {
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-u", "-b", "backing.raw", "-F", "raw", "named.qcow2", "1M");
        byte[] named = Files.readAllBytes(dir.resolve("named.qcow2"));
        assertInvalid(variant("namelong.qcow2", named, b -> b.putInt(16, 2000)), "backing file name of 2000 bytes is longer than 1023");
        assertInvalid(variant("nameout.qcow2", named, b -> b.putLong(8, 65530)), "backing file name at offset 65530", "outside the header cluster");
    }

    @Test
    void backingFileMissingOrNotLocalOrUnsupported() {
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-u", "-b", "missing.raw", "-F", "raw", "missing.qcow2", "1M");
        assertRefused(dir.resolve("missing.qcow2"), CaskException.NotFound.class, "backing file 'missing.raw'", "no such file");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-u", "-b", "nbd://localhost:10809/x", "-F", "raw", "remote.qcow2", "1M");
        assertInvalid(dir.resolve("remote.qcow2"), "backing file 'nbd://localhost:10809/x' is not a local file");
        Qemu.img(dir, "create", "-q", "-f", "raw", "disk.vmdk", "1M");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-u", "-b", "disk.vmdk", "-F", "vmdk", "vmdkback.qcow2", "1M");
        assertInvalid(dir.resolve("vmdkback.qcow2"), "backing format 'vmdk' is not supported");
    }

    @Test
    void brokenBackingFileNamesBothFiles() throws IOException {
        Files.write(dir.resolve("broken.qcow2"), Arrays.copyOf(base, 50));
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-u", "-b", "broken.qcow2", "-F", "qcow2", "over.qcow2", "1M");
        assertInvalid(dir.resolve("over.qcow2"), "backing file 'broken.qcow2'", "broken.qcow2: file too short");
    }

    @Test
    void backingLoop() {
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "a.qcow2", "1M");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", "b.qcow2", "1M");
        Qemu.img(dir, "rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", "a.qcow2");
        assertInvalid(dir.resolve("a.qcow2"), "backing chain loops", "b.qcow2");
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "self.qcow2", "1M");
        Qemu.img(dir, "rebase", "-u", "-b", "self.qcow2", "-F", "qcow2", "self.qcow2");
        assertInvalid(dir.resolve("self.qcow2"), "backing chain loops");
    }

    @Test
    void backingChainTooDeep() {
        Qemu.img(dir, "create", "-q", "-f", "qcow2", "c0.qcow2", "1M");
        int depth = Qcow2Device.MAX_CHAIN_DEPTH + 1;
        for (int i = 1; i < depth; i++) {
            Qemu.img(dir, "create", "-q", "-f", "qcow2", "-u", "-b", "c" + (i - 1) + ".qcow2", "-F", "qcow2", "c" + i + ".qcow2", "1M");
        }
        assertInvalid(dir.resolve("c" + (depth - 1) + ".qcow2"), "backing chain deeper than 64 images");
        // exactly 64 images is fine
        try (Qcow2Device dev = Qcow2Device.open(dir.resolve("c" + (depth - 2) + ".qcow2"), w -> {})) {
            Qemu.readAll(dev);
        }
    }

    @Test
    void directoryIsRefused() throws IOException {
        Path d = Files.createDirectory(dir.resolve("adir.qcow2"));
        assertInvalid(d, "is a directory");
    }

    @Test
    void missingFile() {
        assertRefused(dir.resolve("nothere.qcow2"), CaskException.NotFound.class, "no such file");
    }
}
