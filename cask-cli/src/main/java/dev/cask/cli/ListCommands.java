package dev.cask.cli;

import dev.cask.catalog.Image;
import dev.cask.catalog.Version;
import dev.cask.common.Sizes;
import dev.cask.image.Images;
import dev.cask.image.Stats;
import dev.cask.tree.Layout;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** The listing commands: ls, log, info, stats. Each has --json. */
final class ListCommands {
    private ListCommands() {}

    static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());

    static Map<String, Object> versionJson(Version v, Image img) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("image", v.image());
        m.put("version", v.number());
        m.put("head", img != null && img.head() == v.number());
        m.put("time", v.time().toString());
        m.put("message", v.message());
        m.put("size", v.size());
        m.put("parent", v.parent() == null ? null : v.parent().toString());
        m.put("kind", v.kind().word());
        m.put("protected", v.isProtected());
        return m;
    }

    @Command(name = "ls", mixinStandardHelpOptions = true, description = "List images (under PREFIX, e.g. team or team/web).")
    static final class Ls extends Common implements Callable<Integer> {
        @Parameters(index = "0", arity = "0..1", paramLabel = "PREFIX")
        String prefix;
        @Option(names = "--json", description = "Machine-readable output.")
        boolean json;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                List<Image> list = images.list(prefix);
                List<Map<String, Object>> rows = new ArrayList<>();
                for (Image img : list) {
                    Version head = images.catalog().version(img.name(), img.head());
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("name", img.name());
                    m.put("head", img.head());
                    m.put("size", head.size());
                    m.put("allocated", images.allocatedBytes(head));
                    m.put("created", img.created().toString());
                    m.put("updated", head.time().toString());
                    m.put("origin", img.origin() == null ? null : img.origin().toString());
                    rows.add(m);
                }
                if (json) {
                    printJson(rows);
                } else {
                    Table t = new Table("NAME", ">VERSION", ">SIZE", ">ALLOCATED", "UPDATED", "ORIGIN");
                    for (Map<String, Object> r : rows) {
                        t.row(r.get("name"), r.get("head"), Sizes.human((Long) r.get("size")), Sizes.human((Long) r.get("allocated")),
                                TIME.format(java.time.Instant.parse((String) r.get("updated"))), r.get("origin"));
                    }
                    t.print(out());
                }
            }
            return 0;
        }
    }

    @Command(name = "log", mixinStandardHelpOptions = true, description = "List the versions of an image, oldest first.")
    static final class Log extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME")
        String name;
        @Option(names = "--json", description = "Machine-readable output.")
        boolean json;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                List<Version> versions = images.log(name);
                Image img = images.image(name);
                if (json) {
                    printJson(versions.stream().map(v -> versionJson(v, img)).toList());
                } else {
                    Table t = new Table(">VERSION", "TIME", ">SIZE", "KIND", "MESSAGE");
                    for (Version v : versions) {
                        t.row((v.number() == img.head() ? "*" : "") + v.number(), TIME.format(v.time()), Sizes.human(v.size()),
                                v.kind().word() + (v.isProtected() ? ",protected" : ""),
                                v.message() + (v.parent() == null ? "" : "  (from " + v.parent() + ")"));
                    }
                    t.print(out());
                }
            }
            return 0;
        }
    }

    @Command(name = "info", mixinStandardHelpOptions = true, description = "Show an image or one of its versions.")
    static final class Info extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME[@VER]")
        String ref;
        @Option(names = "--json", description = "Machine-readable output.")
        boolean json;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                Version v = images.resolve(ref);
                Image img = images.image(v.image());
                Layout layout = Layout.decode(v.content());
                long allocated = images.allocatedBytes(v);
                Map<String, Object> m = versionJson(v, img);
                m.put("allocated_bytes", allocated);
                m.put("versions", images.log(v.image()).size());
                m.put("created", img.created().toString());
                m.put("origin", img.origin() == null ? null : img.origin().toString());
                List<Map<String, Object>> ext = new ArrayList<>();
                for (Layout.Extent e : layout.extents()) {
                    Map<String, Object> x = new LinkedHashMap<>();
                    x.put("offset", e.offset());
                    x.put("length", e.length());
                    x.put("block_size", e.root().blockSize());
                    x.put("depth", e.root().depth());
                    x.put("top", e.root().top().hex());
                    ext.add(x);
                }
                m.put("layout", ext);
                if (json) {
                    printJson(m);
                } else {
                    out().printf("image:      %s%n", v.image());
                    out().printf("version:    %d%s (of %d)%n", v.number(), img.head() == v.number() ? " (head)" : "", m.get("versions"));
                    out().printf("time:       %s%n", TIME.format(v.time()));
                    out().printf("message:    %s%n", v.message());
                    out().printf(Locale.ROOT, "size:       %s (%d bytes)%n", Sizes.human(v.size()), v.size());
                    out().printf(Locale.ROOT, "allocated:  %s (%d bytes)%n", Sizes.human(allocated), allocated);
                    if (v.parent() != null) out().printf("parent:     %s%n", v.parent());
                    if (img.origin() != null) out().printf("cloned from: %s%n", img.origin());
                    for (Layout.Extent e : layout.extents()) {
                        out().printf(Locale.ROOT, "extent:     offset %d length %d block size %d depth %d top %s%n",
                                e.offset(), e.length(), e.root().blockSize(), e.root().depth(), e.root().top().shortHex());
                    }
                }
            }
            return 0;
        }
    }

    @Command(name = "stats", mixinStandardHelpOptions = true, description = "Space used by the store and saved by deduplication.")
    static final class StatsCommand extends Common implements Callable<Integer> {
        @Option(names = "--json", description = "Machine-readable output.")
        boolean json;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                Stats s = images.stats();
                // live: stored bytes of the chunks some version reaches (a walk of every tree, each
                // subtree once, as du); reclaimable: the rest of the packs but their headers, which
                // gc and compaction give back
                long live = new dev.cask.image.Usage(images).images(null).totalBytes();
                long overhead = images.capability(dev.cask.image.StoreCapabilities.Counts.class, "stats").fixedOverheadBytes();
                long reclaimable = Math.max(0, s.storedBytes() - live - overhead);
                if (json) {
                    Map<String, Object> m = new LinkedHashMap<>();
                    m.put("images", s.images());
                    m.put("versions", s.versions());
                    m.put("logical_bytes", s.logicalBytes());
                    m.put("allocated_bytes", s.allocatedBytes());
                    m.put("stored_bytes", s.storedBytes());
                    m.put("live_bytes", live);
                    m.put("reclaimable_bytes", reclaimable);
                    m.put("unique_chunks", s.uniqueChunks());
                    m.put("packs", s.packs());
                    m.put("dedup_ratio", Math.round(s.dedupRatio() * 1000) / 1000.0);
                    printJson(m);
                } else {
                    out().printf("images:          %d (%d versions)%n", s.images(), s.versions());
                    out().printf(Locale.ROOT, "logical:         %s (%d bytes, sum of head disk sizes)%n", Sizes.human(s.logicalBytes()), s.logicalBytes());
                    out().printf(Locale.ROOT, "allocated:       %s (%d bytes of non-zero blocks)%n", Sizes.human(s.allocatedBytes()), s.allocatedBytes());
                    out().printf(Locale.ROOT, "stored:          %s (%d bytes in %d packs)%n", Sizes.human(s.storedBytes()), s.storedBytes(), s.packs());
                    out().printf(Locale.ROOT, "live:            %s (%d bytes of chunks some version reaches)%n", Sizes.human(live), live);
                    out().printf(Locale.ROOT, "reclaimable:     %s (%d bytes: cask gc, then compaction)%n", Sizes.human(reclaimable), reclaimable);
                    out().printf("unique chunks:   %d%n", s.uniqueChunks());
                    out().printf(Locale.ROOT, "dedup ratio:     %.2f (allocated / stored)%n", s.dedupRatio());
                }
            }
            return 0;
        }
    }
}
