package dev.cask.cli;

import dev.cask.image.GarbageCollector;
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
 */
@Command(name = "gc", mixinStandardHelpOptions = true,
        description = {"Free every chunk no version reaches, while servers and other commands keep running.",
                "Waits for another gc, and for imports and checkpoints running when it starts (it says so on stderr).",
                "Runs at a lower CPU priority (nice 10, shortest scheduler slice): full speed on an idle machine, servers' clients first on a busy one."})
final class GcCommand extends Common implements Callable<Integer> {
    @Option(names = "--dry-run", description = "Count what would be freed; change nothing.")
    boolean dryRun;
    @Option(names = "--json", description = "Machine-readable output.")
    boolean json;

    @Override
    public Integer call() {
        ServeGc.lowerThisThread(); // maintenance: a server's clients on this machine go first
        if (ServeGc.SHORT_SLICE) dev.cask.common.Background.shortSliceAll(); // the JVM's own threads too (the launcher set nice 10 for all)
        try (Images images = openImagesForBulk()) { // it scans the whole index: reads through a memory map
            GarbageCollector.Result r = images.collector().run(dryRun, m -> err().println("cask: gc: " + m), progress());
            if (json) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("dry_run", r.dryRun());
                m.put("epoch", r.epoch());
                m.put("versions", r.versions());
                m.put("chunks_marked", r.chunksMarked());
                m.put("pointer_chunks_read", r.pointerReads());
                m.put("chunks_freed", r.chunksFreed());
                m.put("bytes_freed", r.bytesFreed());
                m.put("packs_rewritten", r.compacted().packsRewritten());
                m.put("packs_deleted", r.compacted().packsDeleted());
                m.put("chunks_copied", r.compacted().chunksCopied());
                m.put("pack_bytes_before", r.compacted().bytesBefore());
                m.put("pack_bytes_after", r.compacted().bytesAfter());
                m.put("packs_damaged", r.compacted().packsDamaged());
                m.put("seconds", Math.round(r.seconds() * 1000) / 1000.0);
                m.put("wait_seconds", Math.round(r.phases().waitSeconds() * 1000) / 1000.0);
                m.put("mark_seconds", Math.round(r.phases().markSeconds() * 1000) / 1000.0);
                m.put("sweep_seconds", Math.round(r.phases().sweepSeconds() * 1000) / 1000.0);
                m.put("compact_seconds", Math.round(r.phases().compactSeconds() * 1000) / 1000.0);
                printJson(m);
            } else {
                out().printf(Locale.ROOT, "%s %d chunks (%s of pack records no index entry points at now); %d chunks marked from %d versions in %.2f s%n",
                        r.dryRun() ? "would free" : "freed", r.chunksFreed(), dev.cask.common.Sizes.human(r.bytesFreed()),
                        r.chunksMarked(), r.versions(), r.seconds());
                if (!r.dryRun()) {
                    out().printf("compacted: %d packs rewritten, %d deleted whole, %s of packs became %s%n", r.compacted().packsRewritten(),
                            r.compacted().packsDeleted(), dev.cask.common.Sizes.human(r.compacted().bytesBefore()),
                            dev.cask.common.Sizes.human(r.compacted().bytesAfter()));
                }
            }
            if (r.compacted().packsDamaged() > 0) {
                err().println("cask: gc: " + r.compacted().packsDamaged() + " pack(s) left uncompacted: a live chunk in each is damaged (cask check names it)");
            }
            return 0;
        }
    }
}
