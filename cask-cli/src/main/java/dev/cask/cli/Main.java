package dev.cask.cli;

import dev.cask.common.CaskException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * The {@code cask} command: global options and the list of subcommands. Only the CLI prints and
 * exits. Exit codes: 0 ok, 1 failed (the message, one line naming the object and the values, goes
 * to stderr as {@code cask: ...}), 2 usage error.
 */
@Command(name = "cask", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Content-addressed storage for virtual machine disks.",
        subcommands = {
                ImageCommands.Import.class, ImageCommands.Export.class, ImageCommands.Create.class,
                ImageCommands.Clone.class, ImageCommands.Snapshot.class, ImageCommands.Rollback.class,
                ListCommands.Ls.class, ListCommands.Log.class, ListCommands.Info.class, ImageCommands.Rm.class,
                ListCommands.StatsCommand.class, CheckCommand.class, ServeCommand.class, AnalyzeCommand.class,
                CommandLine.HelpCommand.class
        },
        footer = {"", "The store is --store PATH, else $CASK_STORE, else ${XDG_DATA_HOME:-~/.local/share}/cask.",
                "Exit status: 0 ok, 1 failed, 2 usage error."})
public final class Main implements Callable<Integer> {

    @Option(names = "--store", paramLabel = "PATH", scope = CommandLine.ScopeType.INHERIT,
            description = "Store directory (default: $CASK_STORE, else ${XDG_DATA_HOME:-~/.local/share}/cask).")
    Path store;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return 2;
    }

    /** The store directory the user chose. */
    Path storeDir() {
        if (store != null) return store;
        String env = System.getenv("CASK_STORE");
        if (env != null && !env.isBlank()) return Path.of(env);
        String xdg = System.getenv("XDG_DATA_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".local", "share");
        return base.resolve("cask");
    }

    public static void main(String[] args) {
        System.exit(run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }

    /** Runs one command line with the given streams; returns the exit code. */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            Throwable t = ex;
            if (t instanceof CaskException || t instanceof IllegalArgumentException) {
                err.println("cask: " + t.getMessage());
            } else if (t instanceof java.io.UncheckedIOException u) {
                err.println("cask: " + u.getCause().getMessage());
            } else if (t instanceof OutOfMemoryError) {
                err.println("cask: out of memory (" + t.getMessage() + "); raise the heap with CASK_JAVA_OPTS=-Xmx4g");
            } else {
                err.println("cask: internal error: " + t);
                t.printStackTrace(err);
            }
            err.flush();
            return 1;
        });
        cl.setParameterExceptionHandler((ex, args1) -> {
            err.println("cask: " + ex.getMessage());
            err.println("Try '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help' for more information.");
            err.flush();
            return 2;
        });
        int rc = cl.execute(args);
        out.flush();
        err.flush();
        return rc;
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[]{"cask " + (v == null ? "0.1.0-SNAPSHOT" : v)};
        }
    }
}
