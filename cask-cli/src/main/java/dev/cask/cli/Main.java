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
 * to stderr as {@code cask: ...}), 2 usage error, 130 interrupted by SIGINT (one line,
 * {@code cask: interrupted}; the JVM's own exit status for SIGINT, 143 for SIGTERM).
 *
 * <p>Start-up: picocli builds a subcommand's model by reflection over its class (and loads what
 * its fields name), and its own classes are too old (Java 5 class files) for the JVM's AOT cache.
 * So {@link #run} registers only the subcommand the command line names, when it names one of
 * {@link #SUBCOMMANDS}; anything else (no command, {@code help}, an unknown word, {@code --help})
 * gets them all, so usage, help and error messages are exactly those of the full command.
 */
@Command(name = "cask", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Content-addressed storage for virtual machine disks.",
        footer = {"", "The store is --store PATH, else $CASK_STORE, else ${XDG_DATA_HOME:-~/.local/share}/cask.",
                "A shared store: --store s3://BUCKET[/PREFIX] --catalog postgresql://HOST/DB (S3 endpoint, region",
                "and keys from the AWS SDK's environment variables and files, e.g. AWS_ENDPOINT_URL).",
                "Exit status: 0 ok, 1 failed, 2 usage error, 130 interrupted (Ctrl-C)."})
public final class Main implements Callable<Integer> {
    /** The subcommands, in the order help lists them (names as in their {@code @Command}). */
    private static final java.util.Map<String, Class<?>> SUBCOMMANDS = subcommands();

    private static java.util.Map<String, Class<?>> subcommands() {
        java.util.Map<String, Class<?>> m = new java.util.LinkedHashMap<>();
        m.put("init", InitCommand.class);
        m.put("import", ImageCommands.Import.class);
        m.put("export", ImageCommands.Export.class);
        m.put("create", ImageCommands.Create.class);
        m.put("clone", ImageCommands.Clone.class);
        m.put("snapshot", ImageCommands.Snapshot.class);
        m.put("rollback", ImageCommands.Rollback.class);
        m.put("ls", ListCommands.Ls.class);
        m.put("log", ListCommands.Log.class);
        m.put("info", ListCommands.Info.class);
        m.put("rm", ImageCommands.Rm.class);
        m.put("protect", LifecycleCommands.Protect.class);
        m.put("unprotect", LifecycleCommands.Unprotect.class);
        m.put("prune", LifecycleCommands.Prune.class);
        m.put("retention", LifecycleCommands.Retention.class);
        m.put("mv", AdminCommands.Mv.class);
        m.put("resize", AdminCommands.Resize.class);
        m.put("tag", AdminCommands.Tag.class);
        m.put("diff", AdminCommands.Diff.class);
        m.put("du", AdminCommands.Du.class);
        m.put("stats", ListCommands.StatsCommand.class);
        m.put("check", CheckCommand.class);
        m.put("gc", GcCommand.class);
        m.put("serve", ServeCommand.class);
        m.put("analyze", AnalyzeCommand.class);
        m.put("help", CommandLine.HelpCommand.class);
        return java.util.Collections.unmodifiableMap(m);
    }

    /** The class of subcommand {@code name} (tests build its model). */
    static Class<?> subcommand(String name) {
        return SUBCOMMANDS.get(name);
    }

    /**
     * The subcommand the arguments name: the first argument that is not an option of cask itself
     * (or the value of {@code --store}, {@code --catalog}, {@code --state}), if it is a subcommand
     * other than help; else null.
     */
    static String invoked(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (GLOBAL_WITH_VALUE.contains(a)) {
                i++;
            } else if (GLOBAL_WITH_VALUE.stream().noneMatch(o -> a.startsWith(o + "="))) {
                return SUBCOMMANDS.containsKey(a) && !a.equals("help") ? a : null;
            }
        }
        return null;
    }

    private static final java.util.List<String> GLOBAL_WITH_VALUE = java.util.List.of("--store", "--catalog", "--state", "--cache", "--cache-size");

    @Option(names = "--store", paramLabel = "PATH|URL", scope = CommandLine.ScopeType.INHERIT,
            description = {"Store directory; default: $CASK_STORE, else", "${XDG_DATA_HOME:-~/.local/share}/cask;",
                    "or a shared store: s3://BUCKET[/PREFIX]", "(with --catalog)."})
    String store;

    @Option(names = "--catalog", paramLabel = "URL", scope = CommandLine.ScopeType.INHERIT,
            description = {"Catalog of a shared store (default: $CASK_CATALOG):", "postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB"})
    String catalog;

    @Option(names = "--state", paramLabel = "DIR", scope = CommandLine.ScopeType.INHERIT,
            description = {"A shared store's state on this node (journals,", "leases, control socket); default: $CASK_STATE,",
                    "else /var/lib/cask/STORE as root, else", "${XDG_STATE_HOME:-~/.local/state}/cask/STORE."})
    Path state;

    @Option(names = "--cache", paramLabel = "DIR", scope = CommandLine.ScopeType.INHERIT,
            description = {"Shared store: keep a copy of every chunk read in", "DIR on this node, verified on every read",
                    "(default: no cache)."})
    Path cache;

    @Option(names = "--cache-size", paramLabel = "SIZE", scope = CommandLine.ScopeType.INHERIT,
            description = {"Bound of --cache DIR (default: " + NodeCache.DEFAULT_SIZE + "); the chunks", "read least recently and least often go first."})
    String cacheSize;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return 2;
    }

    /**
     * The store directory for a command that opens the store. An explicit one ({@code --store} or
     * {@code $CASK_STORE}) must exist, so that a typo is an error naming the path rather than a new,
     * empty store whose {@code ls} shows nothing; an existing empty directory becomes a store. The
     * default store is created on first use, so the first command on a fresh machine just works.
     */
    Path store() {
        if (choice() instanceof StoreChoice.Shared s) {
            throw new CaskException.Unsupported("store " + s.store() + ": a shared store; this command works on a local store directory only");
        }
        Path dir = storeDir();
        if (isExplicitStore() && !java.nio.file.Files.exists(dir)) {
            throw new CaskException.NotFound("store " + dir + " (" + (store != null ? "--store" : "$CASK_STORE")
                    + "): no such directory; 'cask init " + dir + "' creates a store there");
        }
        return dir;
    }

    /** What the global options name: a local store directory or a shared store ({@link StoreChoice#of}); Usage when they do not fit. */
    StoreChoice choice() {
        String cat = catalog != null ? catalog : blankToNull(System.getenv("CASK_CATALOG"));
        StoreChoice c = StoreChoice.of(store != null ? store : blankToNull(System.getenv("CASK_STORE")), cat, state, System.getenv(), defaultStoreDir());
        NodeCache.of(cache, cacheSize, c); // a usage error before anything opens
        return c;
    }

    /** This node's chunk cache ({@code --cache}, {@code --cache-size}), or null for none; Usage when the options do not fit. */
    NodeCache cache() {
        return NodeCache.of(cache, cacheSize, choice());
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s;
    }

    /** True when the user named the store ({@code --store} or {@code $CASK_STORE}) rather than taking the default. */
    boolean isExplicitStore() {
        if (store != null) return true;
        String env = System.getenv("CASK_STORE");
        return env != null && !env.isBlank();
    }

    /** The store directory the user chose (it may not exist yet; see {@link #store()}). */
    Path storeDir() {
        if (store != null) return Path.of(store);
        String env = System.getenv("CASK_STORE");
        if (env != null && !env.isBlank()) return Path.of(env);
        return defaultStoreDir();
    }

    private static Path defaultStoreDir() {
        String xdg = System.getenv("XDG_DATA_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".local", "share");
        return base.resolve("cask");
    }

    public static void main(String[] args) {
        NativeLibs.useDirectory(System.getProperty(NativeLibs.PROPERTY));
        java.util.concurrent.atomic.AtomicBoolean finished = new java.util.concurrent.atomic.AtomicBoolean();
        if (!"serve".equals(invoked(args))) { // serve stops on a signal by design, and says so itself
            // Ctrl-C (SIGINT) or SIGTERM before the command finished: the JVM exits 130 (143) after
            // this hook. Nothing half-done is visible: a command that makes a version commits it
            // last, and chunks it stored before that are reclaimable garbage (see cask check).
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                if (!finished.get()) {
                    System.err.println("cask: interrupted");
                    System.err.flush();
                }
            }, "cask-interrupted"));
        }
        int rc = run(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true));
        finished.set(true);
        System.exit(rc);
    }

    /** Runs one command line with the given streams; returns the exit code. */
    public static int run(String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new Main());
        String only = invoked(args);
        for (var e : SUBCOMMANDS.entrySet()) {
            if (only == null || only.equals(e.getKey())) cl.addSubcommand(e.getKey(), e.getValue());
        }
        cl.setOut(out);
        cl.setErr(err);
        if ("serve".equals(only)) {
            java.nio.file.Path config = ServeConfig.choose(args);
            if (config != null) {
                try {
                    ServeConfig.apply(cl, config);
                } catch (CaskException e) {
                    err.println("cask: " + e.getMessage());
                    err.flush();
                    return e instanceof CaskException.InvalidInput ? 2 : 1;
                }
            }
        }
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            Throwable t = ex;
            if (t instanceof CaskException.Usage) {
                err.println("cask: " + t.getMessage());
                err.println("Try '" + commandLine.getCommandSpec().qualifiedName() + " --help' for more information.");
                err.flush();
                return 2;
            }
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
            return new String[]{line()};
        }

        /** What {@code cask --version} prints: {@code cask} and the jar's implementation version. */
        static String line() {
            String v = Main.class.getPackage().getImplementationVersion();
            return "cask " + (v == null ? "0.1.0-SNAPSHOT" : v);
        }
    }
}
