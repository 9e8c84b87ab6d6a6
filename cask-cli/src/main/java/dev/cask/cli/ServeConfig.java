package dev.cask.cli;

import dev.cask.common.CaskException;
import picocli.CommandLine;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;

/**
 * The configuration file of {@code cask serve}: defaults for its options, one per line as Java
 * properties ({@code listen = 0.0.0.0:10809}, {@code checkpoint-interval = 1m}), keyed by the
 * option's long name without its dashes, plus the global {@code store}, {@code catalog}, {@code state}, {@code cache} and {@code cache-size}. Options on the command line win
 * over the file, the file over the built-in defaults (picocli's {@link
 * CommandLine.PropertiesDefaultProvider} does the merging).
 *
 * <p>Which file: {@code --config FILE}, else {@code $CASK_CONFIG}, else {@link #DEFAULT_PATH}
 * when it exists. A named file that is missing is an error; so is a key that is no option of
 * serve (a typo in a config file must not be silently ignored), with the file and the key named.
 */
final class ServeConfig {
    private ServeConfig() {}

    static final String DEFAULT_PATH = "/etc/cask/serve.conf";

    /** The file {@code args} (a serve command line) and the environment name, or null for none. */
    static Path choose(String[] args) {
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--config") && i + 1 < args.length) return Path.of(args[i + 1]);
            if (args[i].startsWith("--config=")) return Path.of(args[i].substring("--config=".length()));
        }
        String env = System.getenv("CASK_CONFIG");
        if (env != null && !env.isBlank()) return Path.of(env);
        Path def = Path.of(DEFAULT_PATH);
        return Files.isRegularFile(def) ? def : null;
    }

    /**
     * Applies {@code file} as the defaults of {@code root}'s serve command (and of the global
     * {@code store}). Throws NotFound or Io when it cannot be read, InvalidInput for a key that is
     * no option.
     */
    static void apply(CommandLine root, Path file) {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            p.load(r);
        } catch (NoSuchFileException e) {
            throw new CaskException.NotFound("config " + file + ": no such file");
        } catch (IOException | IllegalArgumentException e) {
            throw new CaskException.Io("config " + file + ": cannot read it: " + e.getMessage(), e instanceof IOException io ? io : null);
        }
        CommandLine serve = root.getSubcommands().get("serve");
        Set<String> known = new TreeSet<>();
        known.add("store");
        known.add("catalog");
        known.add("state");
        known.add("cache");
        known.add("cache-size");
        for (CommandLine.Model.OptionSpec o : serve.getCommandSpec().options()) {
            String n = o.longestName().replaceFirst("^-+", "");
            if (!n.equals("help") && !n.equals("version") && !n.equals("config")) known.add(n);
        }
        for (String key : p.stringPropertyNames()) {
            if (!known.contains(key)) {
                throw new CaskException.InvalidInput("config " + file + ": unknown setting '" + key + "' (known: " + String.join(", ", known) + ")");
            }
        }
        root.setDefaultValueProvider(new CommandLine.PropertiesDefaultProvider(p));
    }
}
