// Clone helper for bench/shared-bench.sh: makes COUNT clones of one image in ONE JVM, each through
// the CLI's own code path (dev.cask.cli.Main.run with the same arguments `cask clone` gets), so
// 1,000 clones cost 1,000 catalog transactions instead of 1,000 JVM starts (a JVM start plus the
// shared store's connection pool and S3 client is about a second, on 2 cores: 1,000 `cask clone`
// commands would take longer than the rest of the benchmark).
// Run: java -cp cask-cli/target/cask.jar bench/CloneMany.java SRC NAME_FORMAT FROM TO [GLOBAL OPTIONS...]
//   NAME_FORMAT: String.format pattern of the clone's name with the clone's number, e.g. m%d/vm%04d
//   takes two arguments: (i % GROUPS) and i, where GROUPS is $CLONE_GROUPS (default 1)
//   GLOBAL OPTIONS: --store ... [--catalog ... --state ...] as given to cask before the command
// Prints one line: "cloned N in S s". Fails (exit 1) at the first clone that fails.
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

public class CloneMany {
    public static void main(String[] a) {
        String src = a[0], format = a[1];
        int from = Integer.parseInt(a[2]), to = Integer.parseInt(a[3]);
        int groups = Integer.parseInt(System.getenv().getOrDefault("CLONE_GROUPS", "1"));
        String[] global = Arrays.copyOfRange(a, 4, a.length);
        long t0 = System.nanoTime();
        for (int i = from; i < to; i++) {
            List<String> args = new ArrayList<>(Arrays.asList(global));
            args.addAll(List.of("clone", "--quiet", src, String.format(format, i % groups, i)));
            StringWriter err = new StringWriter();
            int rc = dev.cask.cli.Main.run(args.toArray(String[]::new), new PrintWriter(new StringWriter(), true), new PrintWriter(err, true));
            if (rc != 0) {
                System.err.println("clone " + i + " failed (exit " + rc + "): " + err);
                System.exit(1);
            }
        }
        System.out.printf("cloned %d in %.1f s%n", to - from, (System.nanoTime() - t0) / 1e9);
        System.exit(0);
    }
}
