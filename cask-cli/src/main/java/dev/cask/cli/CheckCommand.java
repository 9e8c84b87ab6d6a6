package dev.cask.cli;

import dev.cask.image.CheckReport;
import dev.cask.image.Images;
import dev.cask.store.local.LocalChunkStore;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code cask check}: verifies packs, index and every version's trees; exit 1 when something a
 * version or the index needs is damaged. Damage nothing refers to (a torn tail a killed writer
 * left) is a note, and counts in the reclaimable bytes. {@code --json} gives each problem and note
 * as an object: {@code kind}, {@code pack}, {@code offset}, {@code chunk}, {@code image},
 * {@code version}, {@code byte_offset} (null where not applicable) and {@code message}.
 */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Verify packs, the index and every version's tree. Exit 1 when something a version or the index needs",
                "is damaged; damage nothing refers to is a note (reclaimable bytes), not a failure."})
final class CheckCommand extends Common implements Callable<Integer> {
    @Option(names = "--deep", description = "Also decompress and rehash every chunk.")
    boolean deep;
    @Option(names = "--repair", description = "First make the index agree with the packs: a local store's is rebuilt from them (needs the store to itself); a shared store's is mended beside running nodes (holding the gc lock).")
    boolean repair;
    @Option(names = "--json", description = "Machine-readable output.")
    boolean json;

    @Override
    public Integer call() {
        LocalChunkStore.Options opts = LocalChunkStore.Options.defaults().withExclusive(repair);
        long rebuilt = -1;
        try (Images images = openImages(opts)) {
            if (repair) {
                rebuilt = images.capability(dev.cask.image.StoreCapabilities.Repairs.class, "check --repair").rebuildIndex(line -> err().println("cask: repair: " + line), progress());
                if (!json) out().printf("index rebuilt from packs: %d chunks%n", rebuilt);
            }
            CheckReport r = images.check(deep, progress());
            if (json) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("ok", r.ok());
                m.put("packs", r.packs());
                m.put("records", r.records());
                m.put("index_entries", r.indexEntries());
                m.put("versions", r.versions());
                m.put("chunks_checked", r.chunksChecked());
                if (repair) m.put("index_rebuilt_chunks", rebuilt);
                m.put("reclaimable_bytes", r.reclaimableBytes());
                m.put("problems", r.problems().stream().map(CheckCommand::json).toList());
                m.put("notes", r.notes().stream().map(CheckCommand::json).toList());
                printJson(m);
            } else {
                for (CheckReport.Finding p : r.problems()) out().println("problem: " + p.message());
                for (CheckReport.Finding n : r.notes()) out().println("note: " + n.message());
                out().printf("%s: %d packs, %d records, %d index entries, %d versions, %d tree chunks checked%s; %s reclaimable%n",
                        r.ok() ? "ok" : r.problems().size() + " problem(s)", r.packs(), r.records(), r.indexEntries(),
                        r.versions(), r.chunksChecked(), deep ? " (deep)" : "", dev.cask.common.Sizes.human(r.reclaimableBytes()));
            }
            return r.ok() ? 0 : 1;
        }
    }

    /** A problem or note in {@code --json}: every field present, null where it does not apply. */
    private static Map<String, Object> json(CheckReport.Finding f) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", f.kind().json);
        m.put("pack", f.pack());
        m.put("offset", f.offset());
        m.put("chunk", f.chunk() == null ? null : f.chunk().hex());
        m.put("image", f.image());
        m.put("version", f.version());
        m.put("byte_offset", f.byteOffset());
        m.put("message", f.message());
        return m;
    }
}
