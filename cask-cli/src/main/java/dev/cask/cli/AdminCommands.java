package dev.cask.cli;

import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Sizes;
import dev.cask.image.ImageAdmin;
import dev.cask.image.ImageDiff;
import dev.cask.image.Images;
import dev.cask.image.Usage;
import dev.cask.tree.Layout;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** The commands that look after images: diff, du, resize, mv, tag. */
final class AdminCommands {
    private AdminCommands() {}

    @Command(name = "diff", mixinStandardHelpOptions = true,
            description = {"List the byte ranges in which two versions differ (as rbd diff does), by comparing their trees:"
                    + " no data is read, and only the pointer chunks on paths where the trees differ.",
                    "Ranges are whole blocks. Where the two layouts do not line up (another block size or partition"
                            + " table), a range is listed unless both sides are holes or hold the same chunk there."})
    static final class Diff extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME@A", description = "The older version (any NAME[@VER], even of another image).")
        String a;
        @Parameters(index = "1", paramLabel = "NAME@B", description = "The newer version.")
        String b;
        @Option(names = "--json", description = "A list of {\"offset\", \"length\"}.")
        boolean json;
        @Option(names = "--stats", description = "Say on stderr how many ranges and bytes differ and how many pointer chunks were read.")
        boolean stats;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                Version va = images.current(a, "diff").version();
                Version vb = images.current(b, "diff").version();
                ImageDiff d = new ImageDiff(images.store());
                List<ImageDiff.Range> ranges = d.diff(Layout.decode(va.content()), Layout.decode(vb.content()));
                long bytes = ranges.stream().mapToLong(ImageDiff.Range::length).sum();
                if (json) {
                    List<Map<String, Object>> rows = new ArrayList<>();
                    for (ImageDiff.Range r : ranges) {
                        Map<String, Object> m = new LinkedHashMap<>();
                        m.put("offset", r.offset());
                        m.put("length", r.length());
                        rows.add(m);
                    }
                    printJson(rows);
                } else {
                    if (!ranges.isEmpty()) out().printf("%-16s %-12s %s%n", "Offset", "Length", "Type");
                    for (ImageDiff.Range r : ranges) out().printf(Locale.ROOT, "%-16d %-12d data%n", r.offset(), r.length());
                }
                if (stats) {
                    err().printf(Locale.ROOT, "cask: %s and %s differ in %d ranges, %d bytes (%s); read %d pointer chunks, no data%n",
                            va.key(), vb.key(), ranges.size(), bytes, Sizes.human(bytes), d.pointerChunksRead());
                    err().flush();
                }
            }
            return 0;
        }
    }

    @Command(name = "du", mixinStandardHelpOptions = true,
            description = {"Stored bytes each image holds: 'exclusive' (only its versions reference them: what removing it frees"
                    + " after garbage collection) and, for NAME, 'shared' (it references them, and so does another image).",
                    "Bytes are stored bytes: a chunk's record in its pack (compressed), or its share of the segment it is in;"
                            + " data and pointer chunks count, holes do not. The last line is the store-wide shared and total bytes."})
    static final class Du extends Common implements Callable<Integer> {
        @Parameters(index = "0", arity = "0..1", paramLabel = "NAME")
        String name;
        @Option(names = "--versions", description = "Per version of NAME: bytes only that version references, and bytes it shares.")
        boolean versions;
        @Option(names = "--json", description = "Machine-readable output.")
        boolean json;

        @Override
        public Integer call() {
            if (versions && name == null) throw new CommandLine.ParameterException(spec.commandLine(), "--versions needs NAME");
            try (Images images = openImages()) {
                Usage.Report r = versions ? new Usage(images).versions(name) : new Usage(images).images(name);
                if (json) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    List<Map<String, Object>> rows = new ArrayList<>();
                    for (Usage.Row row : r.rows()) {
                        Map<String, Object> x = new LinkedHashMap<>();
                        x.put(versions ? "version" : "image", row.owner());
                        x.put("exclusive_bytes", row.exclusiveBytes());
                        if (row.sharedBytes() >= 0) x.put("shared_bytes", row.sharedBytes());
                        rows.add(x);
                    }
                    m.put(versions ? "versions" : "images", rows);
                    m.put("shared_bytes", r.sharedBytes());
                    m.put("total_bytes", r.totalBytes());
                    printJson(m);
                } else {
                    boolean detail = name != null;
                    out().printf("%-40s %12s%s%n", versions ? "VERSION" : "IMAGE", "EXCLUSIVE", detail ? String.format("%12s", "SHARED") : "");
                    for (Usage.Row row : r.rows()) {
                        out().printf("%-40s %12s%s%n", row.owner(), Sizes.human(row.exclusiveBytes()),
                                detail ? String.format("%12s", Sizes.human(row.sharedBytes())) : "");
                    }
                    out().printf(Locale.ROOT, "store: %s shared by more than one %s, %s referenced in all%n", Sizes.human(r.sharedBytes()),
                            versions ? "version" : "image", Sizes.human(r.totalBytes()));
                }
            }
            return 0;
        }
    }

    @Command(name = "resize", mixinStandardHelpOptions = true,
            description = {"Give an image a new disk size, as a new version: growing adds zeros at the end; shrinking needs"
                    + " --shrink and drops the data past the new end (older versions keep it).",
                    "Refused while the image is open read-write."})
    static final class Resize extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME")
        String name;
        @Parameters(index = "1", paramLabel = "SIZE", description = "New disk size in bytes, or with a suffix: 20G, 512M.")
        String size;
        @Option(names = "--shrink", description = "Allow a size smaller than the current one.")
        boolean shrink;

        @Override
        public Integer call() {
            long bytes = ImageCommands.diskSize(size); // a usage error (exit 2) unless a positive multiple of 512
            try (Images images = openImages()) {
                ImageAdmin.Resized r = new ImageAdmin(images).resize(name, bytes, shrink);
                if (r.changed()) {
                    out().printf("%s version %d: %s (was %s)%n", name, r.version().number(), Sizes.human(r.version().size()), Sizes.human(r.oldSize()));
                } else {
                    out().printf("%s is %s already: no version added%n", name, Sizes.human(r.oldSize()));
                }
            }
            return 0;
        }
    }

    @Command(name = "mv", mixinStandardHelpOptions = true,
            description = {"Rename an image: its versions, labels and clones follow. Refused when NEW exists or OLD is open read-write."})
    static final class Mv extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "OLD")
        String from;
        @Parameters(index = "1", paramLabel = "NEW")
        String to;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                new ImageAdmin(images).rename(from, to);
                out().printf("renamed %s to %s%n", from, to);
            }
            return 0;
        }
    }

    @Command(name = "tag", mixinStandardHelpOptions = true,
            description = {"Label a version: NAME@LABEL then names it wherever a version can be named (export, clone, info,"
                    + " diff, rollback, serve). A label starts with a letter (letters, digits, . _ -; not 'latest' or 'head')"
                    + " and is unique in its image. NAME alone labels the image's current content.",
                    "With --delete, removes the label: cask tag --delete NAME LABEL. With --list (or only NAME), lists them."})
    static final class Tag extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME[@VER]")
        String ref;
        @Parameters(index = "1", arity = "0..1", paramLabel = "LABEL")
        String label;
        @Option(names = "--delete", description = "Remove LABEL from NAME.")
        boolean delete;
        @Option(names = "--json", description = "Machine-readable list (without LABEL).")
        boolean json;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                ImageAdmin admin = new ImageAdmin(images);
                if (label == null) {
                    if (delete) throw new CommandLine.ParameterException(spec.commandLine(), "--delete needs NAME LABEL");
                    String image = dev.cask.image.VersionRef.parse(ref).image();
                    var tags = images.catalog().tags(image);
                    if (json) {
                        List<Map<String, Object>> rows = new ArrayList<>();
                        tags.forEach((l, n) -> rows.add(new LinkedHashMap<>(Map.of("label", l, "version", n))));
                        printJson(rows);
                    } else {
                        tags.forEach((l, n) -> out().printf("%-24s %d%n", l, n));
                    }
                } else if (delete) {
                    if (ref.contains("@")) throw new CommandLine.ParameterException(spec.commandLine(), "--delete takes NAME LABEL, not NAME@VER");
                    admin.untag(ref, label);
                    out().printf("removed label %s of %s%n", label, ref);
                } else {
                    Version v = admin.tag(ref, label);
                    out().printf("%s@%s is version %d%n", v.image(), label, v.number());
                }
            }
            return 0;
        }
    }
}
