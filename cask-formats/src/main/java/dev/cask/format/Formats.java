package dev.cask.format;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.format.nbd.QemuFormats;
import dev.cask.format.qcow2.Qcow2Device;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * Opens an image file (or a block device) as a {@link BlockDevice} by format name or by probing
 * its first bytes ({@code auto}). raw and qcow2 are read natively; every other format QEMU
 * recognises is read by QEMU itself through qemu-nbd ({@link QemuFormats}).
 *
 * <p>The probe recognises what {@code qemu-img info} recognises, with the same tests as QEMU's
 * drivers (block/*.c {@code *_probe}): qcow2 and qcow ({@code QFI\xfb}, version 2-3 or 1), vmdk
 * ({@code KDMV}, {@code COWD}, or a text descriptor), vhdx ({@code vhdxfile}), vpc/VHD
 * ({@code conectix} at offset 0: a fixed VHD, footer only at the end, is raw to QEMU too), vdi
 * (signature {@code 0xbeda107f} at 0x40), qed ({@code QED\0}), parallels, bochs, cloop, LUKS
 * (refused: encrypted), and dmg (by its {@code .dmg} name, as QEMU does). Anything else is raw.
 */
public final class Formats {
    private Formats() {}

    public static BlockDevice open(Path path, String format, Consumer<String> warnings) {
        String f = QemuFormats.canonical(format == null ? "auto" : format.toLowerCase(Locale.ROOT));
        if (!Files.exists(path)) throw new CaskException.NotFound(path + ": no such file");
        if (Files.isDirectory(path)) throw new CaskException.InvalidInput(path + ": is a directory, not a disk image");
        if (f.equals("auto")) f = probe(path);
        if (f.equals("luks")) throw new CaskException.InvalidInput(path + ": is LUKS-encrypted; cask imports only unencrypted images");
        return switch (f) {
            case "raw" -> RawFileDevice.open(path);
            case "qcow2" -> Qcow2Device.open(path, warnings);
            default -> {
                if (!QemuFormats.READ.contains(f)) {
                    throw new CaskException.InvalidInput(path + ": unknown format '" + format + "' (known: " + String.join(", ", known()) + ")");
                }
                yield QemuFormats.open(path, f);
            }
        };
    }

    /** The format names {@code --format} takes on import. */
    public static java.util.List<String> known() {
        java.util.List<String> all = new java.util.ArrayList<>(java.util.List.of("auto", "raw", "qcow2"));
        all.addAll(QemuFormats.READ);
        all.add("vhd");
        return all;
    }

    /** The format of {@code path} by its first bytes, with qemu-img info's names ("raw" when nothing matches). */
    public static String probe(Path path) {
        byte[] h = new byte[512];
        int n;
        try (InputStream in = Files.newInputStream(path)) {
            n = in.readNBytes(h, 0, h.length);
        } catch (NoSuchFileException e) {
            throw new CaskException.NotFound(path + ": no such file");
        } catch (IOException e) {
            throw new CaskException.Io(path + ": cannot read: " + e.getMessage(), e);
        }
        if (starts(h, n, "QFI\u00fb") && n >= 8) {
            int version = be32(h, 4);
            if (version == 1) return "qcow";
            if (version >= 2) return "qcow2";
        }
        if (starts(h, n, "KDMV") || starts(h, n, "COWD") || starts(h, n, "# Disk DescriptorFile")) return "vmdk";
        if (starts(h, n, "vhdxfile")) return "vhdx";
        if (starts(h, n, "conectix")) return "vpc";
        if (n >= 0x44 && le32(h, 0x40) == 0xbeda107fL) return "vdi";
        if (starts(h, n, "QED\0")) return "qed";
        if (starts(h, n, "WithoutFreeSpace") || starts(h, n, "WithouFreSpacExt")) return "parallels";
        if (starts(h, n, "Bochs Virtual HD Image")) return "bochs";
        if (starts(h, n, "#!/bin/sh\n#V2.0 Format\n")) return "cloop";
        if (starts(h, n, "LUKS\u00ba\u00be")) return "luks";
        if (path.getFileName().toString().endsWith(".dmg") && Files.isRegularFile(path)) return "dmg";
        return "raw";
    }

    private static boolean starts(byte[] h, int n, String magic) {
        byte[] m = magic.getBytes(StandardCharsets.ISO_8859_1);
        if (n < m.length) return false;
        for (int i = 0; i < m.length; i++) if (h[i] != m[i]) return false;
        return true;
    }

    private static int be32(byte[] b, int at) {
        return (b[at] & 0xff) << 24 | (b[at + 1] & 0xff) << 16 | (b[at + 2] & 0xff) << 8 | (b[at + 3] & 0xff);
    }

    private static long le32(byte[] b, int at) {
        return (b[at] & 0xffL) | (b[at + 1] & 0xffL) << 8 | (b[at + 2] & 0xffL) << 16 | (b[at + 3] & 0xffL) << 24;
    }
}
