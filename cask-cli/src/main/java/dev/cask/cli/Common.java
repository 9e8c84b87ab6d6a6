package dev.cask.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.cask.common.Progress;
import dev.cask.image.Images;
import picocli.CommandLine;

import java.io.PrintWriter;

/**
 * What every subcommand shares: the parent (for --store), opening the store, printing JSON, and
 * the output habits: a progress bar on stderr when stderr is a terminal ({@code --progress} /
 * {@code --no-progress} decide otherwise), and {@code -q} for nothing on stdout but what was
 * asked for as data ({@code --json}); warnings and errors always go to stderr.
 */
abstract class Common {
    /** Made on first use: Jackson costs tens of milliseconds of start-up that only --json needs. */
    private static final class Json {
        static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    }

    static ObjectMapper json() {
        return Json.MAPPER;
    }

    @CommandLine.ParentCommand
    Main main;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @CommandLine.Option(names = "--progress", negatable = true,
            description = "Show a progress bar on stderr (default: when stderr is a terminal; --no-progress: never).")
    Boolean progressBar;

    @CommandLine.Option(names = {"-q", "--quiet"}, description = "Print nothing on stdout but --json data (errors and warnings still go to stderr).")
    boolean quiet;

    private static final PrintWriter NOWHERE = new PrintWriter(java.io.Writer.nullWriter());

    PrintWriter out() {
        return quiet ? NOWHERE : spec.commandLine().getOut();
    }

    PrintWriter err() {
        return spec.commandLine().getErr();
    }

    /** The store, with the running servers of it to ask for checkpoints of the images they have open. */
    Images openImages() {
        return openImages(dev.cask.store.local.LocalChunkStore.Options.defaults());
    }

    /**
     * The store the global options name ({@link Main#choice}), a local one opened with {@code
     * local}; with this node's running servers of it ({@link StoreChoice#controlDir}) to ask for
     * checkpoints of the images they have open.
     */
    Images openImages(dev.cask.store.local.LocalChunkStore.Options local) {
        StoreChoice c = main.choice();
        Images images = c instanceof StoreChoice.Shared s ? SharedImages.open(s, leaseTtl(), main.cache()) : dev.cask.local.LocalImages.open(main.store(), local);
        return reportCuts(images).withLiveWriters(c instanceof StoreChoice.Shared ? SharedImages.controlClient(images, c.controlDir())
                : new dev.cask.server.ControlClient(c.controlDir()));
    }

    /** The time to live of the leases this command takes on a shared store; null for the default (serve has --lease-ttl). */
    java.time.Duration leaseTtl() {
        return null;
    }

    /** Where this node's running servers of the store keep their control sockets. */
    java.nio.file.Path controlDir() {
        return main.choice().controlDir();
    }

    /** Says what opening the store cut off (torn pack tails left by a writer that died), one line each on stderr. */
    Images reportCuts(Images images) {
        for (String line : images.openNotices()) err().println("cask: " + line);
        err().flush();
        return images;
    }

    /**
     * The store for a command that looks up every block of a disk in the index (import,
     * export), scans the whole index (gc) or serves disks whose first reads each ask the index
     * (serve): index reads through a memory map of up to 1 GiB (see
     * {@link dev.cask.store.local.LocalChunkStore.Options#withIndexMapBytes}).
     */
    Images openImagesForBulk() {
        return openImages(dev.cask.store.local.LocalChunkStore.Options.defaults().withIndexMapBytes(1L << 30));
    }

    Progress progress() {
        boolean show = progressBar != null ? progressBar : !quiet && dev.cask.common.Posix.isatty(2);
        return show ? new ProgressBar(err()) : Progress.NONE;
    }

    void printJson(Object value) {
        try {
            spec.commandLine().getOut().println(Json.MAPPER.writeValueAsString(value));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("cannot encode JSON: " + e.getMessage(), e);
        }
    }

    void warn(String line) {
        err().println("cask: warning: " + line);
        err().flush();
    }
}
