package dev.cask.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Progress bars where users look for them (stderr, when it is a terminal), with a rate of data and the time left; -q. */
class ProgressTest {
    @TempDir
    Path dir;

    @Test
    void theRateCountsDataNotHolesAndTheTimeLeftIsShown() {
        ProgressBar bar = new ProgressBar(new PrintWriter(new StringWriter()));
        bar.start("import", 2L << 40);
        // 1 TiB of a sparse 2 TiB disk done in 10 s, of which 100 MiB were data
        String line = bar.line(1L << 40, 100L << 20, 2L << 40, 10);
        assertTrue(line.contains("10.0 MiB/s"), line);
        assertTrue(line.contains(" 50% "), line);
        assertTrue(line.endsWith("ETA 0:10"), line);
        assertEquals("1:01:01", ProgressBar.clock(3661));
    }

    private Path disk() throws Exception {
        byte[] d = new byte[4 << 20];
        new Random(3).nextBytes(d);
        Path p = dir.resolve("d.raw");
        Files.write(p, d);
        return p;
    }

    /** Runs a real cask under script(1), which gives it a terminal; {@code redirect} sends stdout or stderr elsewhere. */
    private String underTerminal(String redirect, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args));
        StringBuilder line = new StringBuilder();
        for (String c : cmd) line.append('\'').append(c.replace("'", "'\\''")).append("' ");
        line.append(redirect);
        Process p = new ProcessBuilder("script", "-q", "-e", "-c", line.toString(), "/dev/null").redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), out);
        return out;
    }

    @Test
    void aBarOnlyWhenStderrIsATerminalOrAsked() throws Exception {
        Path raw = disk();
        Path store = dir.resolve("store");
        Files.createDirectories(store);
        Path elsewhere = dir.resolve("elsewhere.txt");
        // stdout a terminal, stderr a file: no bar in the file (cask drew it when stdout was a terminal)
        underTerminal("2>" + elsewhere, "--store", store.toString(), "import", raw.toString(), "a");
        assertFalse(Files.readString(elsewhere).contains("import ["), Files.readString(elsewhere));
        // stderr the terminal, stdout a file: the bar, with a rate and 100%
        String term = underTerminal(">" + elsewhere, "--store", store.toString(), "import", raw.toString(), "b");
        assertTrue(term.contains("import [") && term.contains("100%") && term.contains("/s"), term);
        assertTrue(Files.readString(elsewhere).startsWith("imported b version 1"), Files.readString(elsewhere));
        // --no-progress and -q silence it; -q also the summary
        term = underTerminal(">" + elsewhere, "--store", store.toString(), "import", "--no-progress", raw.toString(), "c");
        assertFalse(term.contains("import ["), term);
        term = underTerminal(">" + elsewhere, "--store", store.toString(), "import", "-q", raw.toString(), "d");
        assertFalse(term.contains("import ["), term);
        assertEquals("", Files.readString(elsewhere));
        // --progress forces it where stderr is no terminal
        Cli.Result r = new Cli(store).run("export", "--progress", "a", dir.resolve("a.raw").toString());
        assertTrue(r.err().contains("export [") && r.err().contains("100%"), r.err());
        assertTrue(new Cli(store).run("export", "a", dir.resolve("a2.raw").toString()).err().isEmpty());
    }
}
