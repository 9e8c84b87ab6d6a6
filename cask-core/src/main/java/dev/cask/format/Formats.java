package dev.cask.format;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.format.qcow2.Qcow2Device;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * Opens an image file as a {@link BlockDevice} by format name ({@code raw}, {@code qcow2}) or
 * by probing its first bytes ({@code auto}). Formats cask recognises but cannot read yet
 * (vmdk, vhdx, vdi) are refused by name rather than imported as raw bytes.
 */
public final class Formats {
    private Formats() {}

    public static BlockDevice open(Path path, String format, Consumer<String> warnings) {
        String f = format == null ? "auto" : format.toLowerCase(Locale.ROOT);
        if (!Files.exists(path)) throw new CaskException.NotFound(path + ": no such file");
        if (Files.isDirectory(path)) throw new CaskException.InvalidInput(path + ": is a directory, not a disk image");
        if (f.equals("auto")) f = probe(path);
        return switch (f) {
            case "raw" -> RawFileDevice.open(path);
            case "qcow2" -> Qcow2Device.open(path, warnings);
            default -> throw new CaskException.InvalidInput(path + ": unknown format '" + format + "' (known: auto, raw, qcow2)");
        };
    }

    /** "qcow2" or "raw", or an error naming a recognised but unsupported format. */
    public static String probe(Path path) {
        byte[] head = new byte[8];
        int n;
        try (InputStream in = Files.newInputStream(path)) {
            n = in.readNBytes(head, 0, 8);
        } catch (NoSuchFileException e) {
            throw new CaskException.NotFound(path + ": no such file");
        } catch (IOException e) {
            throw new CaskException.Io(path + ": cannot read: " + e.getMessage(), e);
        }
        if (n >= 4 && head[0] == 'Q' && head[1] == 'F' && head[2] == 'I' && (head[3] & 0xff) == 0xfb) return "qcow2";
        String unsupported = null;
        if (n >= 4 && head[0] == 'K' && head[1] == 'D' && head[2] == 'M' && head[3] == 'V') unsupported = "vmdk";
        if (n >= 8 && new String(head, 0, 8, java.nio.charset.StandardCharsets.US_ASCII).equals("vhdxfile")) unsupported = "vhdx";
        if (unsupported != null) {
            throw new CaskException.InvalidInput(path + ": looks like " + unsupported + ", which cask cannot import yet (convert it with qemu-img convert -O qcow2)");
        }
        return "raw";
    }
}
