package dev.cask.cli;

import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Sizes;
import dev.cask.image.Images;
import dev.cask.image.Pruner;
import dev.cask.image.RetentionPolicy;
import dev.cask.image.VersionRef;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.time.ZoneId;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * The commands of a version's life after its commit: {@code protect}, {@code unprotect},
 * {@code prune} and {@code retention} ({@code rm NAME@VER} is {@link ImageCommands.Rm}). The
 * work is {@link Pruner}'s and the catalog's; these parse, print and exit.
 */
final class LifecycleCommands {
    private LifecycleCommands() {}

    static final String GC_NOTE = "the space comes back when garbage collection (cask gc) runs";

    /**
     * A pruner that asks the store's running servers (on a shared store: every node) what they need kept, with periods cut in local time,
     * counting from {@link dev.cask.common.Clocks#system()}'s now (the system clock unless {@code cask.now} sets one).
     */
    static Pruner pruner(Images images) {
        return new Pruner(images, images.liveWriters()::inUse, dev.cask.common.Clocks.system(), ZoneId.systemDefault());
    }

    /** The version NAME@VER names (a number, label, time or latest); Usage error without {@code @}. */
    static Version version(Images images, String ref, String command) {
        if (!ref.contains("@") || ref.endsWith("@")) throw new CaskException.Usage(command + " '" + ref + "': expected NAME@VER (e.g. team/vm-1@3)");
        VersionRef.parse(ref);
        return images.resolve(ref);
    }

    /** The keep options shared by prune and retention. */
    static final class Keep {
        @Option(names = "--keep-last", paramLabel = "N", description = "Keep the N newest versions.")
        String last;
        @Option(names = "--keep-within", paramLabel = "DUR", description = "Keep every version newer than DUR before now (e.g. 2h, 7d, 1d12h, 2w, 1y).")
        String within;
        @Option(names = "--keep-hourly", paramLabel = "N", description = "Keep the newest version of each of the N newest hours that have one.")
        String hourly;
        @Option(names = "--keep-daily", paramLabel = "N", description = "The same for days.")
        String daily;
        @Option(names = "--keep-weekly", paramLabel = "N", description = "The same for ISO weeks (Monday to Sunday).")
        String weekly;
        @Option(names = "--keep-monthly", paramLabel = "N", description = "The same for months.")
        String monthly;
        @Option(names = "--keep-yearly", paramLabel = "N", description = "The same for years.")
        String yearly;
        @Option(names = "--include-user", description = "Apply the policy to user versions too (imports, snapshots); by default only automatic ones are pruned.")
        boolean includeUser;

        boolean given() {
            return last != null || within != null || hourly != null || daily != null || weekly != null || monthly != null
                    || yearly != null || includeUser;
        }

        /** The policy the options give; Usage errors for malformed counts and durations. */
        RetentionPolicy policy() {
            RetentionPolicy p = new RetentionPolicy(n("--keep-last", last),
                    within == null ? null : parseWithin(within), n("--keep-hourly", hourly), n("--keep-daily", daily),
                    n("--keep-weekly", weekly), n("--keep-monthly", monthly), n("--keep-yearly", yearly), includeUser);
            if (!p.keepsSomething()) {
                throw new CaskException.Usage("no --keep-... rule above 0 given: such a policy would keep everything; give at least one");
            }
            return p;
        }

        private static java.time.Duration parseWithin(String text) {
            try {
                return dev.cask.common.Durations.parse(text);
            } catch (CaskException.Usage e) {
                throw new CaskException.Usage("--keep-within: " + e.getMessage());
            }
        }

        private static int n(String option, String text) {
            return text == null ? 0 : RetentionPolicy.count(option, text);
        }
    }

    @Command(name = "protect", mixinStandardHelpOptions = true,
            description = "Protect a version: rm NAME@VER and prune keep it until it is unprotected.")
    static final class Protect extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME@VER")
        String ref;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                Version v = version(images, ref, "protect");
                images.catalog().setProtected(v.image(), v.number(), true);
                out().printf("protected %s%n", v.key());
            }
            return 0;
        }
    }

    @Command(name = "unprotect", mixinStandardHelpOptions = true, description = "Remove a version's protection.")
    static final class Unprotect extends Common implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "NAME@VER")
        String ref;

        @Override
        public Integer call() {
            try (Images images = openImages()) {
                Version v = version(images, ref, "unprotect");
                images.catalog().setProtected(v.image(), v.number(), false);
                out().printf("unprotected %s%n", v.key());
            }
            return 0;
        }
    }

    @Command(name = "prune", mixinStandardHelpOptions = true,
            description = {"Remove versions by a retention policy, as Proxmox Backup Server and restic do: the newest version of each",
                    "period (hour, day, ISO week, month, year; local time) is kept, counting back from now and only periods that have",
                    "a version; --keep-within keeps every version newer than DUR before now. Rules run in the order within, last,",
                    "hourly, daily, weekly, monthly, yearly, and a period an earlier rule kept a version of is not counted again.",
                    "Without --keep-... options each image gets its stored policy (cask retention; the longest prefix wins) or the",
                    "default (--keep-within 2h --keep-hourly 48 --keep-daily 30 --keep-weekly 8 --keep-monthly 12).",
                    "Only automatic versions (checkpoints of cask serve) are pruned, unless --include-user. Never removed: the head,",
                    "protected and labelled versions, the origin of a clone, versions an open image or a running export needs.",
                    "Removing versions frees no space by itself: " + GC_NOTE + "."})
    static final class Prune extends Common implements Callable<Integer> {
        @Parameters(index = "0", arity = "0..1", paramLabel = "PREFIX", description = "Images named PREFIX or PREFIX/... (default: all).")
        String prefix;
        @CommandLine.Mixin
        Keep keep;
        @Option(names = {"-n", "--dry-run"}, description = "Print what would be removed and the bytes it would free; change nothing.")
        boolean dryRun;
        @Option(names = "--json", description = "Machine-readable output.")
        boolean json;

        @Override
        public Integer call() {
            RetentionPolicy override = keep.given() ? keep.policy() : null;
            if (prefix != null) dev.cask.catalog.Names.check(prefix);
            try (Images images = openImages()) {
                Pruner.Report r = pruner(images).prune(prefix, override, dryRun, true);
                if (json) {
                    printJson(json(r));
                    return 0;
                }
                for (Pruner.ImageResult i : r.images()) {
                    if (i.removed().isEmpty()) continue;
                    out().printf("%s (policy %s: %s): %s %d version%s%n", i.image(), i.policySource(), i.policy(),
                            dryRun ? "would remove" : "removed", i.removed().size(), i.removed().size() == 1 ? "" : "s");
                    for (Version v : i.removed()) {
                        out().printf("  %s  %s  %s  %s%n", v.key(), ListCommands.TIME.format(v.time()), v.kind().word(), v.message());
                    }
                }
                int n = r.removedCount();
                if (dryRun) {
                    out().printf("dry run: %d version%s would be removed, freeing %s of stored bytes (once cask gc runs); nothing changed%n",
                            n, n == 1 ? "" : "s", Sizes.human(r.freedBytes()));
                } else {
                    out().printf("removed %d version%s from %d image%s: %s free; %s%n", n, n == 1 ? "" : "s",
                            r.images().stream().filter(i -> !i.removed().isEmpty()).count(),
                            r.images().stream().filter(i -> !i.removed().isEmpty()).count() == 1 ? "" : "s",
                            Sizes.human(r.freedBytes()) + " become", GC_NOTE);
                }
            }
            return 0;
        }

        private Map<String, Object> json(Pruner.Report r) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("dry_run", r.dryRun());
            m.put("removed_versions", r.removedCount());
            m.put("freed_bytes", r.freedBytes());
            List<Map<String, Object>> imgs = new ArrayList<>();
            for (Pruner.ImageResult i : r.images()) {
                Map<String, Object> x = new LinkedHashMap<>();
                x.put("image", i.image());
                x.put("policy", i.policy().format());
                x.put("policy_source", i.policySource());
                x.put("removed", i.removed().stream().map(v -> ListCommands.versionJson(v, null)).toList());
                List<Map<String, Object>> kept = new ArrayList<>();
                for (var e : i.kept().entrySet()) {
                    Map<String, Object> k = new LinkedHashMap<>();
                    k.put("version", e.getKey());
                    k.put("reason", e.getValue());
                    kept.add(k);
                }
                x.put("kept", kept);
                imgs.add(x);
            }
            m.put("images", imgs);
            return m;
        }
    }

    @Command(name = "retention", mixinStandardHelpOptions = true,
            description = {"Store the retention policy of the images named PREFIX or PREFIX/... (prune without options and cask serve",
                    "apply it; the longest matching prefix wins). Without --keep-... options: show the policy that applies to PREFIX.",
                    "Without PREFIX: list the stored policies."})
    static final class Retention extends Common implements Callable<Integer> {
        @Parameters(index = "0", arity = "0..1", paramLabel = "PREFIX")
        String prefix;
        @CommandLine.Mixin
        Keep keep;
        @Option(names = "--remove", description = "Remove PREFIX's stored policy (its images fall back to a shorter prefix's, or the default).")
        boolean remove;
        @Option(names = "--json", description = "Machine-readable output.")
        boolean json;

        @Override
        public Integer call() {
            if (prefix == null && (keep.given() || remove)) throw new CaskException.Usage("retention: which images? give PREFIX");
            if (remove && keep.given()) throw new CaskException.Usage("retention: --remove takes no --keep-... options");
            if (prefix != null) dev.cask.catalog.Names.check(prefix);
            RetentionPolicy p = keep.given() ? keep.policy() : null;
            try (Images images = openImages()) {
                var catalog = images.catalog();
                if (remove) {
                    catalog.setRetention(prefix, null);
                    out().printf("removed the retention policy of %s%n", prefix);
                } else if (p != null) {
                    catalog.setRetention(prefix, p.format());
                    out().printf("%s: %s%n", prefix, p.format());
                } else if (prefix != null) {
                    var e = Pruner.policyFor(prefix, catalog.retentionPolicies());
                    if (json) printJson(Map.of("prefix", prefix, "policy", e.getValue().format(), "policy_source", e.getKey()));
                    else out().printf("%s: %s (%s)%n", prefix, e.getValue().format(), e.getKey().equals("default") ? "the default" : "from " + e.getKey());
                } else {
                    var all = catalog.retentionPolicies();
                    if (json) {
                        List<Map<String, Object>> rows = new ArrayList<>();
                        for (var e : all.entrySet()) rows.add(Map.of("prefix", e.getKey(), "policy", e.getValue()));
                        printJson(rows);
                    } else {
                        Table t = new Table("PREFIX", "POLICY");
                        for (var e : all.entrySet()) t.row(e.getKey(), e.getValue());
                        t.row("(default)", RetentionPolicy.DEFAULT.format());
                        t.print(out());
                    }
                }
            }
            return 0;
        }
    }
}
