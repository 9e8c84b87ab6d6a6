package dev.cask.cli;

import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Sizes;
import dev.cask.image.Images;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** The commands that make or change images: import, export, create, clone, snapshot, rollback, rm. */
final class ImageCommands {
    private ImageCommands() {}

    /** A disk size from the command line: positive and a whole number of 512-byte sectors, as every disk is. */
    static long diskSize(String text) {
        long n = Sizes.parse(text);
        if (n <= 0 || n % 512 != 0) {
            throw new CaskException.Usage("disk size " + text + " (" + n + " bytes): must be a positive multiple of 512 bytes");
        }
        return n;
    }

    static int blockSize(String text) {
        long n = Sizes.parse(text);
        if (n > Integer.MAX_VALUE) throw new CaskException.Usage("block size " + text + ": must be a power of two from 4K to 1M");
        try {
            dev.cask.tree.Root.checkBlockSize((int) n);
        } catch (CaskException.InvalidInput e) {
            throw new CaskException.Usage(e.getMessage());
        }
        return (int) n;
    }

    /**
     * The (first, second) pairs of a command's positional arguments ({@code SRC NAME ...},
     * {@code NAME DEST ...}); an odd count is a usage error.
     */
    static java.util.List<String[]> pairs(CommandLine.Model.CommandSpec spec, java.util.List<String> args, String labels) {
        if (args.size() % 2 != 0) {
            throw new CommandLine.ParameterException(spec.commandLine(), "expected pairs of " + labels + ", got "
                    + args.size() + " argument" + (args.size() == 1 ? "" : "s") + " (last: '" + args.getLast() + "')");
        }
        java.util.List<String[]> out = new java.util.ArrayList<>();
        for (int i = 0; i < args.size(); i += 2) out.add(new String[]{args.get(i), args.get(i + 1)});
        return out;
    }

    /** How a version handed out for an image's current content was made, for the line a command prints ("" when it was there). */
    static String how(Images.Source source) {
        return switch (source) {
            case STORED -> "";
            case SERVER_CHECKPOINT -> " (checkpointed by the running server)";
            case JOURNAL_FOLDED -> " (with the writes of the journal a crash left)";
        };
    }

    @Command(name = "import", mixinStandardHelpOptions = true,
            description = {"Import disk images as new images: files in any format QEMU knows (raw and qcow2 read by cask;"
                    + " vmdk, vhdx, vpc/VHD, vdi, qed... read by QEMU through qemu-nbd), block devices, NBD exports,"
                    + " or '-' for raw bytes on stdin. NBD exports are named as",
                    "  nbd://HOST[:PORT]/EXPORT  nbd+unix:///EXPORT?socket=PATH",
                    "Several SRC NAME pairs import one after another in one process (faster than one command each: the"
                            + " JVM starts once). Every name is checked first; each image appears when its own import is done,"
                            + " and the first failure stops the rest (the images before it stay)."})
    static final class Import extends Common implements Callable<Integer> {
        @Parameters(arity = "1..*", paramLabel = "SRC NAME",
                description = "Image file, block device, NBD URI (or - for a raw stream on stdin) and the new image's name,"
                        + " e.g. team/web/vm-1; repeatable.")
        java.util.List<String> args;
        @Option(names = "--format", defaultValue = "auto", description = "auto (probe, as qemu-img info does), raw, qcow2,"
                + " or a format QEMU reads: vmdk, vhdx, vpc (vhd), vdi, qed, qcow, parallels, bochs, cloop, dmg (default: ${DEFAULT-VALUE}).")
        String format;
        @Option(names = "--block-size", defaultValue = "auto", paramLabel = "N",
                description = "Tree block size, a power of two from 4K to 1M, for every extent; auto (default): 4K, or the"
                        + " block size of a partition's ext2/3/4 file system.")
        String blockSize;
        @Option(names = "--whole-disk", description = "Store the disk as one extent instead of cutting it at partition boundaries.")
        boolean wholeDisk;
        @Option(names = "--fs-aware", description = "Store the blocks that ext2/3/4 block bitmaps mark free as holes: export then"
                + " returns zeros there (every file reads the same; e2fsck stays clean). Off by default, so that export gives back"
                + " the disk bit for bit. A file system that looks mounted or in use, or whose metadata does not hold"
                + " together, is stored whole with a warning.")
        boolean fsAware;
        @Option(names = "--as-version", description = "Add the file as a new version of the existing image NAME (a backup of the"
                + " same disk): only blocks the store does not have yet cost space. Refused while the image is open read-write.")
        boolean asVersion;
        @Option(names = {"-m", "--message"}, paramLabel = "MSG", description = "The new version's message (with --as-version).")
        String message;

        @Override
        public Integer call() {
            java.util.List<String[]> jobs = pairs(spec, args, "SRC NAME");
            if (message != null && !asVersion) throw new CommandLine.ParameterException(spec.commandLine(), "-m needs --as-version");
            if (asVersion) return importVersions(jobs);
            int bs = blockSize.equalsIgnoreCase("auto") ? 0 : blockSize(blockSize);
            String f = format.toLowerCase(Locale.ROOT);
            if (!dev.cask.format.Formats.known().contains(f)) {
                throw new CaskException.Usage("unknown format '" + format + "' (known: " + String.join(", ", dev.cask.format.Formats.known()) + ")");
            }
            java.util.Set<String> names = new java.util.HashSet<>();
            for (String[] j : jobs) {
                if (!names.add(j[1])) throw new CaskException.Usage("image '" + j[1] + "' is named twice on the command line");
                if (j[0].equals("-") && jobs.size() > 1) throw new CaskException.Usage("stdin ('-') imports one image at a time");
            }
            try (Images images = openImagesForBulk()) {
                for (String[] j : jobs) images.checkNewName(j[1]); // before any work: a bad name costs nothing
                for (String[] j : jobs) importOne(images, j[0], j[1], f, bs);
            }
            return 0;
        }

        private int importVersions(java.util.List<String[]> jobs) {
            int bs = blockSize.equalsIgnoreCase("auto") ? 0 : blockSize(blockSize);
            String f = format.toLowerCase(Locale.ROOT);
            try (Images images = openImagesForBulk()) {
                for (String[] j : jobs) {
                    if (j[0].equals("-")) throw new CaskException.Usage("--as-version imports a file, not stdin");
                    images.image(j[1]); // every image must exist, before any work
                }
                dev.cask.image.ImageAdmin admin = new dev.cask.image.ImageAdmin(images);
                for (String[] j : jobs) {
                    long t0 = System.nanoTime();
                    var r = admin.importAsVersion(Path.of(j[0]), j[1], f, bs, wholeDisk, fsAware,
                            message == null ? null : message.replace('\n', ' '), progress(), this::warn);
                    out().printf(Locale.ROOT, "imported %s version %d: %s (%s of data, %s newly stored) in %.1f s%n", j[1], r.version().number(),
                            Sizes.human(r.version().size()), Sizes.human(r.allocatedBytes()),
                            r.storedBytesAdded() < 0 ? "?" : Sizes.human(r.storedBytesAdded()),
                            (System.nanoTime() - t0) / 1e9);
                    out().flush();
                }
            }
            return 0;
        }

        private void importOne(Images images, String src, String name, String f, int bs) {
            long t0 = System.nanoTime();
            Version v;
            long allocated;
            String free = "";
            if (src.equals("-")) {
                if (f.equals("qcow2")) throw new CaskException.Usage("stdin import reads raw only; give a qcow2 file by path");
                if (fsAware) throw new CaskException.Usage("--fs-aware needs a file (it reads the bitmaps before the blocks); stdin is a stream");
                v = images.importStream(new BufferedInputStream(System.in, 1 << 20), name, bs, progress());
                allocated = images.allocatedBytes(v);
            } else {
                Images.Imported r;
                if (dev.cask.format.nbd.NbdUri.looksLike(src)) {
                    if (!f.equals("auto") && !f.equals("raw")) {
                        throw new CaskException.Usage(src + ": an NBD export is raw bytes; --format " + f + " does not apply");
                    }
                    r = images.importNbd(src, name, bs, wholeDisk, fsAware, progress(), this::warn);
                } else {
                    r = images.importFile(Path.of(src), name, f, bs, wholeDisk, fsAware, progress(), this::warn);
                }
                v = r.version();
                allocated = r.allocatedBytes();
                if (fsAware) free = "; " + Sizes.human(r.freeBytes()) + " of free file system blocks stored as holes";
            }
            out().printf(Locale.ROOT, "imported %s version %d: %s (%s of data) in %.1f s%s%n", name, v.number(),
                    Sizes.human(v.size()), Sizes.human(allocated), (System.nanoTime() - t0) / 1e9, free);
            out().flush();
        }
    }

    @Command(name = "export", mixinStandardHelpOptions = true,
            description = {"Write an image or version to a file (raw sparse, qcow2, or vmdk, vhdx, vpc/vhd, vdi, qed, qcow, parallels"
                    + " written by QEMU through qemu-nbd), into a block device or an NBD export in place, or raw to stdout"
                    + " with DEST '-'. NBD exports are named as",
                    "  nbd://HOST[:PORT]/EXPORT  nbd+unix:///EXPORT?socket=PATH",
                    "Several NAME DEST pairs export one after another in one process. Every name is resolved first;"
                            + " the first failure stops the rest.",
                    "NAME (or NAME@latest) is the image's current content: of an image a running server has open, a"
                            + " checkpoint it makes first; after a crash, its journal folded into a version first."})
    static final class Export extends Common implements Callable<Integer> {
        @Parameters(arity = "1..*", paramLabel = "NAME[@VER] DEST",
                description = "Image, optionally @version number, @latest or @TIME (2026-11-25T10:00), and the output file"
                        + " (or a block device, an NBD URI, or - for raw bytes on stdout); repeatable.")
        java.util.List<String> args;
        @Option(names = "--format", defaultValue = "raw", description = "raw, qcow2, vmdk, vhdx, vpc (vhd), vdi, qed, qcow or"
                + " parallels (default: ${DEFAULT-VALUE}); block devices and NBD exports take raw.")
        String format;
        @Option(names = "--fsync", description = "Flush the file to disk before it appears (like qemu-img convert, the default leaves it to the page cache).")
        boolean fsync;

        @Override
        public Integer call() {
            java.util.List<String[]> jobs = pairs(spec, args, "NAME DEST");
            String f = format.toLowerCase(Locale.ROOT);
            java.util.List<String> known = new java.util.ArrayList<>(java.util.List.of("raw", "qcow2"));
            known.addAll(dev.cask.format.nbd.QemuFormats.WRITE);
            known.add("vhd");
            if (!known.contains(f)) throw new CaskException.Usage("unknown format '" + format + "' (known: " + String.join(", ", known) + ")");
            java.util.Set<Path> dests = new java.util.HashSet<>();
            for (String[] j : jobs) {
                if (j[1].equals("-") && jobs.size() > 1) throw new CaskException.Usage("stdout ('-') takes one export at a time");
                if (dev.cask.format.nbd.NbdUri.looksLike(j[1])) {
                    dev.cask.format.nbd.NbdUri.parse(j[1]); // a bad URI fails before any work
                    if (!f.equals("raw")) throw new CaskException.Usage(j[1] + ": an NBD export takes raw bytes; --format " + f + " does not apply");
                } else if (!j[1].equals("-") && !dests.add(Path.of(j[1]).toAbsolutePath().normalize())) {
                    throw new CaskException.Usage("destination " + j[1] + " is named twice on the command line");
                }
            }
            try (Images images = openImagesForBulk()) {
                for (String[] j : jobs) images.resolve(j[0]); // every name, before any work
                for (String[] job : jobs) {
                    Images.Current c = images.current(job[0], "export"); // a head: its content now, not the last checkpoint
                    Version v = c.version();
                    String dest = job[1];
                    if (dest.equals("-")) {
                        if (!f.equals("raw")) throw new CaskException.Usage("stdout export writes raw only; give a file for qcow2");
                        OutputStream o = new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 20);
                        images.export(v, o, dev.cask.common.Progress.NONE);
                    } else if (dev.cask.format.nbd.NbdUri.looksLike(dest)) {
                        images.exportNbd(v, dest, progress());
                        out().printf("exported %s version %d to %s (raw)%n", v.image(), v.number(), dest);
                        out().flush();
                    } else {
                        images.export(v, Path.of(dest), f, fsync, progress());
                        out().printf("exported %s version %d%s to %s (%s)%n", v.image(), v.number(), how(c.source()), dest, f);
                        out().flush();
                    }
                }
            }
            return 0;
        }
    }

    @Command(name = "create", mixinStandardHelpOptions = true, description = "Create an empty (all-zero) image.")
    static final class Create extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME")
        String name;
        @Parameters(index = "1", paramLabel = "SIZE", description = "Disk size, e.g. 20G, 512M, 1T.")
        String size;
        @Option(names = "--block-size", defaultValue = "4K", paramLabel = "N", description = "Tree block size (default: ${DEFAULT-VALUE}).")
        String blockSize;

        @Override
        public Integer call() {
            long bytes = diskSize(size);
            int bs = blockSize(blockSize);
            try (Images images = openImages()) {
                Version v = images.create(name, bytes, bs);
                out().printf("created %s: %s%n", name, Sizes.human(v.size()));
            }
            return 0;
        }
    }

    @Command(name = "clone", mixinStandardHelpOptions = true,
            description = {"Make a new image that shares all data with SRC (instant, whatever the size).",
                    "SRC without @VER is the image's current content, as for export."})
    static final class Clone extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "SRC[@VER]")
        String src;
        @Parameters(index = "1", paramLabel = "NAME")
        String name;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                Images.Current c = images.cloneImage(src, name);
                out().printf("cloned %s%s to %s%n", c.version().parent(), how(c.source()), name);
            }
            return 0;
        }
    }

    @Command(name = "snapshot", mixinStandardHelpOptions = true,
            description = {"Record the image's current content as a new version: through the running server that has it open,"
                    + " or with the writes of a journal a crash left. An image unchanged since its last version gets no new"
                    + " version (it says so, and that version, if automatic, becomes a user version that retention keeps;"
                    + " label versions with 'cask tag')."})
    static final class Snapshot extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME")
        String name;
        @Option(names = {"-m", "--message"}, paramLabel = "MSG", description = "What this version is.")
        String message;

        @Override
        public Integer call() {
            dev.cask.catalog.Names.check(name);
            try (Images images = openImages()) {
                Images.Snapshot c = images.snapshot(name, message == null ? null : message.replace('\n', ' '));
                if (c.added()) {
                    out().printf("%s version %d%s%n", name, c.version().number(), how(c.current().source()));
                } else {
                    out().printf("%s is unchanged since version %d: no version added%n", name, c.version().number());
                }
            }
            return 0;
        }
    }

    @Command(name = "rollback", mixinStandardHelpOptions = true,
            description = "Make version VER the head again (as a new version; history is kept).")
    static final class Rollback extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME[@VER]", description = "The image, or NAME@VER (then VER is not given).")
        String name;
        @Parameters(index = "1", arity = "0..1", paramLabel = "VER", description = "Version number, label, latest, or a time (2026-11-25T10:00).")
        String version;

        @Override
        public Integer call() {
            String image = name;
            String ver = version;
            int at = name.indexOf('@');
            if (at >= 0) {
                if (version != null) throw new CommandLine.ParameterException(spec.commandLine(), "give NAME@VER or NAME VER, not both");
                image = name.substring(0, at);
                ver = name.substring(at + 1);
            }
            if (ver == null || ver.isEmpty()) throw new CommandLine.ParameterException(spec.commandLine(), "which version? give NAME@VER or NAME VER");
            try (Images images = openImages()) {
                Version v = images.rollback(image, ver);
                out().printf("%s version %d: %s%n", image, v.number(), v.message());
            }
            return 0;
        }
    }

    @Command(name = "rm", mixinStandardHelpOptions = true,
            description = {"Delete an image and its versions (its clones keep their data), or with NAME@VER one version.",
                    "A version is refused when it is the head, protected, the origin of a clone, or in use (an open image's base,",
                    "a running read-only export). Versions made from it name its parent from then on; its labels go with it.",
                    "Space comes back when garbage collection (cask gc) runs."})
    static final class Rm extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME[@VER]")
        String name;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                if (name.contains("@")) {
                    Version v = LifecycleCommands.version(images, name, "rm");
                    LifecycleCommands.pruner(images).remove(v.image(), v.number());
                    out().printf("removed version %s; %s%n", v.key(), LifecycleCommands.GC_NOTE);
                } else {
                    images.remove(name);
                    out().printf("removed %s%n", name);
                }
            }
            return 0;
        }
    }
}
