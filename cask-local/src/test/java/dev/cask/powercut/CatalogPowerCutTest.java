package dev.cask.powercut;

import dev.cask.local.LocalImages;
import dev.cask.catalog.Version;
import dev.cask.common.Progress;
import dev.cask.image.Images;
import dev.cask.tree.Layout;
import dev.cask.tree.Root;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Power cuts under catalog changes: a child creates, clones, snapshots (of images without writes:
 * no version is added), rolls back and removes
 * images (five names, so names come back after a removal) in a new store, printing each change
 * that returned with the operation count. The catalog is SQLite in WAL mode; its commits, the
 * WAL's growth, its checkpoints into catalog.db and the WAL's removal when the last connection
 * closes are all crash points.
 *
 * <p>At every crash point (120 on catalog files) the store must open, and its images and
 * versions (number, message, size, content) must be exactly the model after every change that
 * returned, or after one more (the change in flight is all there or not at all); {@code cask
 * check} must be clean. Seeded: -Dcask.seed=N.
 */
class CatalogPowerCutTest {
    static final int CHANGES = 80;
    static final List<String> NAMES = List.of("a", "b", "team/c", "team/d", "e");

    @TempDir
    Path tmp;

    /** One change to the catalog. */
    record Change(String kind, String name, String other, long size, int version) {}

    /** A version as the model sees it. */
    record V(String message, long size, byte[] content) {
        boolean same(Version v) {
            return v.size() == size && Arrays.equals(v.content(), content) && (message == null || message.equals(v.message()));
        }
    }

    /** The model: image name -> versions, oldest first. */
    static Map<String, List<V>> apply(Map<String, List<V>> state, Change c) {
        Map<String, List<V>> s = new TreeMap<>();
        state.forEach((k, v) -> s.put(k, new ArrayList<>(v)));
        switch (c.kind()) {
            case "create" -> s.put(c.name(), new ArrayList<>(List.of(new V("create", c.size(), Layout.single(Root.empty(c.size(), 4096)).encode()))));
            case "clone" -> {
                List<V> src = s.get(c.other());
                V head = src.getLast();
                s.put(c.name(), new ArrayList<>(List.of(new V(null, head.size(), head.content()))));
            }
            case "snapshot" -> { } // an image without writes is unchanged: a snapshot adds no version
            case "rollback" -> {
                V to = s.get(c.name()).get(c.version() - 1);
                s.get(c.name()).add(new V("rollback to version " + c.version(), to.size(), to.content()));
            }
            case "remove" -> s.remove(c.name());
            default -> throw new IllegalArgumentException(c.kind());
        }
        return s;
    }

    /** The changes of a run, valid in order (each against the model so far). */
    static List<Change> plan(long seed) {
        Random rnd = new Random(seed);
        Map<String, List<V>> state = new TreeMap<>();
        List<Change> out = new ArrayList<>();
        while (out.size() < CHANGES) {
            String name = NAMES.get(rnd.nextInt(NAMES.size()));
            boolean exists = state.containsKey(name);
            Change c;
            int r = rnd.nextInt(10);
            if (!exists) {
                List<String> existing = new ArrayList<>(state.keySet());
                c = existing.isEmpty() || r < 5 ? new Change("create", name, null, (1 + rnd.nextInt(64)) << 20, 0)
                        : new Change("clone", name, existing.get(rnd.nextInt(existing.size())), 0, 0);
            } else if (r < 2) {
                c = new Change("snapshot", name, "s" + out.size(), 0, 0);
            } else if (r < 8) {
                c = new Change("rollback", name, null, 0, 1 + rnd.nextInt(state.get(name).size()));
            } else {
                c = new Change("remove", name, null, 0, 0);
            }
            state = apply(state, c);
            out.add(c);
        }
        return out;
    }

    /** The child: makes the changes in the store at args[0]. */
    public static final class Workload {
        public static void main(String[] args) {
            List<Change> changes = plan(Long.parseLong(args[1]));
            try (Images images = LocalImages.open(Path.of(args[0]))) {
                for (int i = 0; i < changes.size(); i++) {
                    Change c = changes.get(i);
                    PowerCut.say("start " + i + " " + PowerCut.ops());
                    switch (c.kind()) {
                        case "create" -> images.create(c.name(), c.size(), 4096);
                        case "clone" -> images.cloneImage(c.other(), c.name());
                        case "snapshot" -> images.snapshot(c.name(), "snapshot " + c.other());
                        case "rollback" -> images.rollback(c.name(), String.valueOf(c.version()));
                        case "remove" -> images.remove(c.name());
                        default -> throw new IllegalArgumentException(c.kind());
                    }
                    PowerCut.say("end " + i + " " + PowerCut.ops());
                }
            }
        }
    }

    @Test
    void everyCommittedChangeSurvivesAPowerCutAtEveryPoint() throws Exception {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        String at = "seed=" + seed + " (replay with -Dcask.seed=" + seed + ")";
        List<Change> changes = plan(seed);
        List<Map<String, List<V>>> states = new ArrayList<>(); // states.get(k): after the first k changes
        states.add(new TreeMap<>());
        for (Change c : changes) states.add(apply(states.getLast(), c));
        Path scratch = PowerCut.scratch(tmp);
        try {
            PowerCut.Run run = PowerCut.runPicked(scratch, seed, Map.of("catalog", 120, "other", 5), false, true, Workload.class,
                    root -> new String[] {root.toString(), String.valueOf(seed)});
            System.out.println(at + ": " + run.points().size() + " crash points " + PowerCut.byCategory(run.points()));
            assertEquals(CHANGES, run.lines("end").size(), at + ": the workload did not finish: " + run.stderr());
            long[] start = new long[CHANGES];
            long[] end = new long[CHANGES];
            for (String[] l : run.lines("start")) start[Integer.parseInt(l[1])] = Long.parseLong(l[2]);
            for (String[] l : run.lines("end")) end[Integer.parseInt(l[1])] = Long.parseLong(l[2]);
            for (PowerCut.Point p : run.points()) {
                String where = at + " point " + p.op() + " (" + p.operation() + " " + p.path() + ")";
                PowerCut.keepOnFailure(p.image(), () -> check(states, start, end, p.op(), p.image(), where));
                PowerCut.delete(p.image());
            }
            check(states, start, end, Long.MAX_VALUE, run.finalImage(), at + " after the process ended");
        } finally {
            PowerCut.delete(scratch);
        }
    }

    static void check(List<Map<String, List<V>>> states, long[] start, long[] end, long point, Path image, String at) {
        int done = 0;
        while (done < end.length && end[done] < point) done++;
        boolean inFlight = done < start.length && start[done] + 1 < point;
        try (Images images = LocalImages.open(image)) {
            Map<String, List<Version>> actual = new HashMap<>();
            for (var img : images.list("")) actual.put(img.name(), images.log(img.name()));
            boolean asDone = same(states.get(done), actual);
            boolean asNext = inFlight && same(states.get(done + 1), actual);
            assertTrue(asDone || asNext, at + ": the catalog after " + done + " changes" + (inFlight ? " (one more in flight)" : "")
                    + " should be " + describe(states.get(done)) + (inFlight ? " or " + describe(states.get(done + 1)) : "")
                    + ", is " + actual.entrySet().stream().map(e -> e.getKey() + ":" + e.getValue().size()).sorted().toList());
            assertEquals(List.of(), images.check(false, Progress.NONE).problems(), at + ": check");
        } catch (dev.cask.common.CaskException e) {
            throw new AssertionError(at + ": " + e, e);
        }
    }

    static boolean same(Map<String, List<V>> model, Map<String, List<Version>> actual) {
        if (!model.keySet().equals(actual.keySet())) return false;
        for (var e : model.entrySet()) {
            List<Version> vs = actual.get(e.getKey());
            if (vs.size() != e.getValue().size()) return false;
            for (int i = 0; i < vs.size(); i++) {
                if (vs.get(i).number() != i + 1 || !e.getValue().get(i).same(vs.get(i))) return false;
            }
        }
        return true;
    }

    static String describe(Map<String, List<V>> state) {
        return state.entrySet().stream().map(e -> e.getKey() + ":" + e.getValue().size()).toList().toString();
    }
}
