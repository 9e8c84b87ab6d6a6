package dev.cask.cli;

import dev.cask.common.CaskException;
import dev.cask.common.Sizes;
import dev.cask.server.ControlClient;
import dev.cask.image.Images;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code cask gc}: garbage collection while servers and other commands keep running (see
 * {@code GarbageCollector} and the safety rule in {@code GcEpochs}). A second gc waits for the
 * first, saying so on stderr (and naming it: a {@code cask serve}'s background gc, {@link ServeGc},
 * is one too).
 *
 * <p><b>Where it runs.</b> When a {@code cask serve} of the store runs on this host, the
 * collection runs in it, through its control socket ({@code ControlServer}'s gc request): in a
 * warm JVM, and without a second JVM starting up beside the server's clients (on a two-core host
 * a JVM's start alone raises their p99 latency several times). Its waits, progress and result
 * come back here; killing this command stops that collection at its next step. A server that
 * cannot collect (a read-only one) says so, and the collection runs here instead, as it does with
 * {@code --in-process} or when no server runs. {@code --recompress} (local stores only) always
 * runs here: it is a long, CPU-heavy pass an admin starts on purpose, and a server's control
 * request does not carry it.
 */
@Command(name = "gc", mixinStandardHelpOptions = true,
        description = {"Free every chunk no version reaches, while servers and other commands keep running.",
                "Waits for another gc, and for imports and checkpoints running when it starts (it says so on stderr).",
                "Runs in a cask serve of the store on this host when there is one (warm, no second JVM beside its clients);",
                "else here. Either way at a lower CPU priority (nice 10, shortest scheduler slice): full speed on an idle machine,",
                "servers' clients first on a busy one."})
final class GcCommand extends Common implements Callable<Integer> {
    @Option(names = "--dry-run", description = "Count what would be freed; change nothing.")
    boolean dryRun;
    @Option(names = "--json", description = "Machine-readable output.")
    boolean json;
    @Option(names = "--full", description = {"Mark from nothing and sweep the whole index. By default a collection after a complete one looks only at",
            "what changed since (chunks of versions removed since, chunks written since); the first one, and one after",
            "a collection that was stopped or killed, or after check --repair, sweeps in full anyway."})
    boolean full;
    @Option(names = "--in-process", description = "Collect in this process even when a cask serve of the store runs on this host.")
    boolean inProcess;
    @Option(names = "--paced", description = {"Collect at the pace of cask serve's background gc: rest three times as long as each step",
            "took (in a server, 199 times while its NBD clients are busy), so that served disks' latency stays closer to normal;",
            "takes about four times as long, or up to two hundred times beside busy clients."})
    boolean paced;
    @Option(names = "--recompress", description = {"After compaction, rewrite the cold packs (sealed packs no earlier --recompress wrote) with chunks",
            "that look alike next to each other, at a stronger zstd level: 12 % fewer stored bytes on the fixture OS images,",
            "for about two minutes of CPU per GiB of plain data. Crash-safe as compaction. Local stores only; runs in this",
            "process even when a cask serve runs."})
    boolean recompress;

    @Override
    public Integer call() {
        if (recompress && main.choice() instanceof StoreChoice.Shared) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--recompress works on a local store only (this store is " + main.choice().name() + ")");
        }
        Map<String, Object> m = null;
        if (!inProcess && !recompress) {
            try {
                var r = ControlClient.gc(controlDir(), dryRun, full, paced, msg -> err().println("cask: gc: " + msg), progress()).orElse(null);
                if (r != null) {
                    m = new LinkedHashMap<>(r.fields());
                    m.put("server_pid", r.serverPid());
                }
            } catch (CaskException.Unsupported e) {
                err().println("cask: gc: a running server does not collect (" + e.getMessage() + "); collecting here");
            }
        }
        if (m == null) m = collectHere();
        if (json) {
            printJson(m);
        } else {
            boolean dry = Boolean.TRUE.equals(m.get("dry_run"));
            out().printf(Locale.ROOT, "%s %d chunks (%s of pack records no index entry points at now); %d chunks marked from %d versions in %.2f s%s%n",
                    dry ? "would free" : "freed", num(m, "chunks_freed"), Sizes.human(num(m, "bytes_freed")),
                    num(m, "chunks_marked"), num(m, "versions"), ((Number) m.get("seconds")).doubleValue(),
                    m.containsKey("server_pid") ? " (in cask serve, pid " + m.get("server_pid") + ")" : "");
            if (!dry) {
                out().printf("punched: %s given back in place in %d packs%n", Sizes.human(num(m, "bytes_punched")), num(m, "packs_punched"));
                out().printf("compacted: %d packs rewritten, %d deleted whole, %s of packs became %s%n", num(m, "packs_rewritten"),
                        num(m, "packs_deleted"), Sizes.human(num(m, "pack_bytes_before")), Sizes.human(num(m, "pack_bytes_after")));
                if (recompress) {
                    out().printf("recompressed: %d packs (%d chunks), %s became %s%n", num(m, "packs_recompressed"), num(m, "chunks_recompressed"),
                            Sizes.human(num(m, "recompress_bytes_before")), Sizes.human(num(m, "recompress_bytes_after")));
                }
            }
        }
        if (num(m, "packs_damaged") > 0) {
            err().println("cask: gc: " + num(m, "packs_damaged") + " pack(s) left uncompacted: a live chunk in each is damaged (cask check names it)");
        }
        return 0;
    }

    /** The collection in this JVM: lowered like a server's gc thread, the index read through a memory map. */
    private Map<String, Object> collectHere() {
        ServeGc.lowerThisThread(); // maintenance: a server's clients on this machine go first
        if (ServeGc.SHORT_SLICE) dev.cask.common.Background.shortSliceAll(); // the JVM's own threads too (the launcher set nice 10 for all)
        try (Images images = openImagesForBulk()) { // it scans the whole index: reads through a memory map
            var collector = images.collector().full(full).recompress(recompress);
            if (paced) collector = collector.paced("cask gc --paced (pid " + ProcessHandle.current().pid() + ")", dev.cask.common.Pacer.background());
            return collector.run(dryRun, msg -> err().println("cask: gc: " + msg), progress()).fields();
        }
    }

    /** A count of the summary; 0 when absent (a server of an older cask answers without the newer ones). */
    private static long num(Map<String, Object> m, String key) {
        return m.get(key) instanceof Number n ? n.longValue() : 0;
    }
}
