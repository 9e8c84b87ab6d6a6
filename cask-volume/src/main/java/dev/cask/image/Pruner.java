package dev.cask.image;

import dev.cask.catalog.Catalog;
import dev.cask.catalog.Image;
import dev.cask.catalog.Names;
import dev.cask.catalog.Version;
import dev.cask.catalog.VersionDeletion;
import dev.cask.catalog.VersionKey;
import dev.cask.catalog.VersionKind;
import dev.cask.common.CaskException;

import java.time.Clock;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Supplier;

/**
 * Removing versions: one ({@code cask rm NAME@VER}) or by retention policy ({@code cask prune},
 * and {@code cask serve} on a timer). It decides with {@link Retention} and removes through
 * {@link Catalog#deleteVersions}; it never deletes a chunk (that is garbage collection's, which
 * frees what no version references any more: only then does the space come back).
 *
 * <p><b>What is never removed</b>, and how each is known:
 * <ul>
 *   <li>the head: the catalog refuses it, checked in the same write transaction as the delete;
 *   <li>protected versions: not offered to the policy (so, as in PBS, they do not count for a
 *       period either); the catalog refuses them too;
 *   <li>labelled versions: not offered to a policy (a label is a user's name for a version);
 *       {@code rm NAME@VER} removes the label with the version;
 *   <li>the origin of a live clone: the catalog refuses it;
 *   <li>what an open volume or a running export needs: asked inside the catalog's write
 *       transaction (no commit can move a head meanwhile), as the union of the base versions
 *       in the image's journal headers ({@code JournalFiles#baseVersions}: an open volume's base
 *       and a crash's leftover journal; across processes, since they are files) and the answers
 *       of every running server ({@link InUse}: its volumes' bases, its read-only exports).
 * </ul>
 * A read-only export that starts while a removal runs: the export pins its version and then
 * looks it up again under the catalog's write lock ({@code Catalog#confirmVersion}), so either
 * the removal's transaction (which asks the servers inside it) comes after that lookup and sees
 * the pin, or it came before and the export is refused (NotFound). A served version therefore
 * stays in the catalog, and garbage collection, whose roots are the catalog's versions, keeps
 * its chunks. {@code rm NAME} of the whole image asks the same way ({@code Images#remove}).
 *
 * <p><b>Policies.</b> A policy given on the command line applies to every image under the
 * prefix; otherwise each image gets the stored policy with the longest prefix covering its
 * name, else {@link RetentionPolicy#DEFAULT}. Unless the policy says {@code include-user},
 * only automatic versions are candidates.
 */
public final class Pruner {
    /** The versions of an image that running servers need kept (empty when none runs). */
    @FunctionalInterface
    public interface InUse {
        InUse NONE = image -> Set.of();

        Set<Integer> versions(String image);
    }

    /** One image's result: the policy used and where it came from, the versions removed (or, dry, to remove), and why others stayed. */
    public record ImageResult(String image, String policySource, RetentionPolicy policy, List<Version> removed,
                              SortedMap<Integer, String> kept) {}

    /** Every image's result and the stored bytes only the removed versions referenced (-1: not computed). */
    public record Report(List<ImageResult> images, long freedBytes, boolean dryRun) {
        public int removedCount() {
            return images.stream().mapToInt(r -> r.removed().size()).sum();
        }
    }

    private final Images images;
    private final Catalog catalog;
    private final InUse servers;
    private final Clock clock;
    private final ZoneId zone;

    public Pruner(Images images, InUse servers, Clock clock, ZoneId zone) {
        this.images = images;
        this.catalog = images.catalog();
        this.servers = servers;
        this.clock = clock;
        this.zone = zone;
    }

    /**
     * Removes version {@code number} of {@code name}. NotFound when there is no such version;
     * Conflict naming the reason when it must stay (the head, protected, a clone's origin, in use).
     */
    public Version remove(String name, int number) {
        Version v = catalog.version(name, number);
        VersionDeletion d = catalog.deleteVersions(name, List.of(number), inUse(name));
        String why = d.kept().get(number);
        if (why == null) return v;
        if (why.equals("no such version")) throw new CaskException.NotFound("version " + v.key() + ": not found (removed meanwhile)");
        String hint = switch (why) {
            case "the head" -> ": the head is never removed (rm the image, or roll back and remove it later)";
            case "protected" -> ": unprotect it first (cask unprotect " + v.key() + ")";
            default -> why.startsWith("origin") ? ": remove the clone first" : ": try again when it is no longer served";
        };
        throw new CaskException.Conflict("cannot remove version " + v.key() + ": it is " + why + hint);
    }

    /**
     * Applies retention to every image named {@code prefix} or {@code prefix/...} (all when
     * empty): {@code override} when not null, else each image's stored or default policy.
     * {@code dryRun} changes nothing. {@code countBytes}: compute {@link Report#freedBytes}
     * (a walk of every tree in the store).
     */
    public Report prune(String prefix, RetentionPolicy override, boolean dryRun, boolean countBytes) {
        List<String> names = new ArrayList<>();
        for (Image img : catalog.listImages(prefix == null ? "" : prefix)) names.add(img.name());
        return prune(names, override, dryRun, countBytes);
    }

    /** As {@link #prune(String, RetentionPolicy, boolean, boolean)}, for the images named. */
    public Report prune(List<String> names, RetentionPolicy override, boolean dryRun, boolean countBytes) {
        SortedMap<String, String> stored = override == null ? catalog.retentionPolicies() : new TreeMap<>();
        Map<VersionKey, String> origins = new HashMap<>();
        for (Image img : catalog.listImages("")) if (img.origin() != null) origins.putIfAbsent(img.origin(), img.name());
        List<ImageResult> plans = new ArrayList<>();
        for (String name : names) {
            Map.Entry<String, RetentionPolicy> p = override != null ? Map.entry("command line", override) : policyFor(name, stored);
            plans.add(plan(name, p.getKey(), p.getValue(), origins));
        }
        long freed = -1;
        if (countBytes && images.findCapability(StoreCapabilities.StoredSizes.class).isPresent()) { // else -1: unknown
            Set<VersionKey> going = new HashSet<>();
            for (ImageResult r : plans) for (Version v : r.removed()) going.add(v.key());
            freed = new Usage(images).exclusiveOf(going);
        }
        if (dryRun) return new Report(plans, freed, true);
        List<ImageResult> done = new ArrayList<>();
        for (ImageResult plan : plans) {
            if (plan.removed().isEmpty()) {
                done.add(plan);
                continue;
            }
            List<Integer> numbers = plan.removed().stream().map(Version::number).toList();
            VersionDeletion d;
            try {
                // the plan was made outside this transaction: what became a user version or got a label since stays
                d = catalog.deleteVersionsByPolicy(plan.image(), numbers, inUse(plan.image()), plan.policy().includeUser());
            } catch (CaskException.NotFound gone) {
                continue; // the image was removed meanwhile
            }
            Set<Integer> deleted = new HashSet<>(d.deleted());
            SortedMap<Integer, String> kept = new TreeMap<>(plan.kept());
            kept.putAll(d.kept());
            done.add(new ImageResult(plan.image(), plan.policySource(), plan.policy(),
                    plan.removed().stream().filter(v -> deleted.contains(v.number())).toList(), kept));
        }
        return new Report(done, freed, false);
    }

    /** The stored policy with the longest prefix covering {@code image} (prefix to policy), else the default. */
    public static Map.Entry<String, RetentionPolicy> policyFor(String image, SortedMap<String, String> stored) {
        String best = null;
        for (String prefix : stored.keySet()) {
            if ((image.equals(prefix) || image.startsWith(prefix + "/")) && (best == null || prefix.length() > best.length())) best = prefix;
        }
        if (best == null) return Map.entry("default", RetentionPolicy.DEFAULT);
        return Map.entry(best, RetentionPolicy.parse(stored.get(best)));
    }

    /** What retention would remove from one image now, without asking anyone (a dry run's answer). */
    private ImageResult plan(String name, String source, RetentionPolicy policy, Map<VersionKey, String> origins) {
        Image img = catalog.image(name);
        Set<Integer> labelled = new HashSet<>(catalog.tags(name).values());
        List<Version> all = catalog.versions(name);
        Map<Integer, Version> byNumber = new HashMap<>();
        List<Retention.Candidate> candidates = new ArrayList<>();
        SortedMap<Integer, String> kept = new TreeMap<>();
        for (Version v : all) {
            byNumber.put(v.number(), v);
            if (v.isProtected()) kept.put(v.number(), "protected");
            else if (labelled.contains(v.number())) kept.put(v.number(), "labelled");
            else if (v.kind() == VersionKind.USER && !policy.includeUser()) kept.put(v.number(), "user version");
            else candidates.add(new Retention.Candidate(v.number(), v.time()));
        }
        Retention.Decision d = Retention.decide(policy, clock.instant(), zone, candidates);
        kept.putAll(d.keep());
        Set<Integer> used = null;
        List<Version> remove = new ArrayList<>();
        for (int n : d.remove()) {
            String clone = origins.get(new VersionKey(name, n));
            if (n == img.head()) {
                kept.put(n, "the head");
            } else if (clone != null) {
                kept.put(n, "origin of clone '" + clone + "'");
            } else {
                if (used == null) used = inUse(name).get();
                if (used.contains(n)) kept.put(n, "in use (a journal's base or a served export)");
                else remove.add(byNumber.get(n));
            }
        }
        remove.sort((a, b) -> Integer.compare(a.number(), b.number()));
        return new ImageResult(name, source, policy, remove, kept);
    }

    /** The versions of {@code name} its journals and the running servers need: asked when called. */
    private Supplier<Set<Integer>> inUse(String name) {
        Names.check(name);
        return () -> {
            SortedSet<Integer> out = new TreeSet<>(images.journals().baseVersions(name));
            out.addAll(servers.versions(name));
            return out;
        };
    }
}
