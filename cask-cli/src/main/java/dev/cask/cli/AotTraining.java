package dev.cask.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The training run behind the launcher's AOT cache (JEP 483, 514, 515). {@code ./cask} runs this
 * class once per build, under {@code -XX:AOTCacheOutput}, and every later command starts from the
 * cache it leaves: the classes of the commands run here come loaded and linked, with the method
 * profiles of this run, instead of being read from the jar, verified and interpreted again.
 *
 * <p>With a second argument, it first {@linkplain NativeLibs#extract extracts} the native
 * libraries into that directory and loads them from there, so the run also proves they work.
 *
 * <p>The workload is the one users time: import of a small disk with an MBR partition table (raw,
 * then qcow2), export to raw and to qcow2, and the listing, clone, snapshot, check and help
 * commands, each through {@link Main#run} as the CLI runs it, then {@code cask serve}'s
 * {@linkplain dev.cask.server.Warmup warm-up} (an NBD server on loopback and a boot-like client). Everything happens in the scratch
 * directory given as the first argument (the launcher deletes it), nothing is printed, and the
 * exit status is 0 only when every command succeeded. It is not a subcommand: a failure here
 * costs the cache, never a user's command.
 */
public final class AotTraining {
    private AotTraining() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 1 && args.length != 2) {
            System.err.println("usage: AotTraining SCRATCH_DIR [NATIVE_DIR]");
            System.exit(2);
        }
        if (args.length == 2) {
            if (!NativeLibs.extract(Path.of(args[1]))) System.exit(1);
            NativeLibs.useDirectory(args[1]);
        }
        Path dir = Path.of(args[0]);
        String store = dir.resolve("store").toString();
        Path disk = dir.resolve("disk.raw");
        writeDisk(disk);
        String raw = disk.toString();
        String qcow2 = dir.resolve("disk.qcow2").toString();
        List<String[]> commands = new ArrayList<>();
        commands.add(new String[]{"--help"});
        commands.add(new String[]{"--version"});
        commands.add(new String[]{"import", "--help"});
        commands.add(new String[]{"init", store});
        commands.add(new String[]{"--store", store, "import", raw, "t/a"});
        commands.add(new String[]{"--store", store, "export", "t/a", dir.resolve("a.raw").toString()});
        commands.add(new String[]{"--store", store, "export", "t/a", qcow2, "--format", "qcow2"});
        commands.add(new String[]{"--store", store, "import", qcow2, "t/b"});
        commands.add(new String[]{"--store", store, "import", "--whole-disk", raw, "t/c"});
        commands.add(new String[]{"--store", store, "export", "t/b", dir.resolve("b.raw").toString()});
        commands.add(new String[]{"--store", store, "clone", "t/a", "t/d"});
        commands.add(new String[]{"--store", store, "create", "t/e", "1G"});
        commands.add(new String[]{"--store", store, "snapshot", "t/d", "-m", "training"});
        commands.add(new String[]{"--store", store, "ls"});
        commands.add(new String[]{"--store", store, "ls", "--json"});
        commands.add(new String[]{"--store", store, "log", "t/d"});
        commands.add(new String[]{"--store", store, "info", "t/a"});
        commands.add(new String[]{"--store", store, "stats"});
        commands.add(new String[]{"--store", store, "stats", "--json"});
        commands.add(new String[]{"--store", store, "check"});
        commands.add(new String[]{"--store", store, "rm", "t/e"});
        PrintWriter sink = new PrintWriter(Writer.nullWriter());
        int failed = 0;
        for (String[] c : commands) {
            if (Main.run(c, sink, sink) != 0) failed++;
        }
        // serving: the warm-up `cask serve` runs before it takes clients (an NBD server, a volume,
        // reads of a checkpointed version), so those classes and profiles are in the cache too
        if (dev.cask.server.Warmup.run(1L << 30) != null) failed++;
        System.exit(failed == 0 ? 0 : 1);
    }

    /**
     * A 48 MiB sparse disk: an MBR with one Linux partition from 1 MiB, in it 3 MiB of random
     * blocks, 2 MiB of blocks that repeat, and zeros (holes) elsewhere.
     */
    private static void writeDisk(Path disk) throws IOException {
        long size = 48L << 20;
        try (FileChannel ch = FileChannel.open(disk, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer mbr = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
            mbr.position(446 + 4);
            mbr.put((byte) 0x83);
            mbr.position(446 + 8);
            mbr.putInt(2048);
            mbr.putInt((int) ((size >> 9) - 2048));
            mbr.put(510, (byte) 0x55).put(511, (byte) 0xAA);
            mbr.clear();
            ch.write(mbr, 0);
            Random random = new Random(1);
            byte[] block = new byte[1 << 20];
            for (int i = 0; i < 3; i++) {
                random.nextBytes(block);
                ch.write(ByteBuffer.wrap(block), (2L + i) << 20);
            }
            byte[] text = "cask trains its start-up cache\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            for (int i = 0; i < block.length; i++) block[i] = text[i % text.length];
            ch.write(ByteBuffer.wrap(block), 8L << 20);
            ch.write(ByteBuffer.wrap(block), 20L << 20);
            ch.truncate(size);
            if (ch.size() < size) ch.write(ByteBuffer.wrap(new byte[1]), size - 1);
        }
    }
}
