package dev.cask.analysis;

import dev.cask.catalog.Version;
import dev.cask.common.CaskException;
import dev.cask.common.Progress;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.format.Formats;
import dev.cask.format.qcow2.Qcow2Device;
import dev.cask.image.Images;
import dev.cask.layout.PartitionTable;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * The block-level duplication analysis: reads a list of images once and measures every
 * {@link Strategy} on them at the same time (definitions of the numbers: {@link BlockReport}).
 *
 * <p><b>One pass.</b> The calling thread is the reader. For each image in turn it walks the
 * device's allocation map ({@link BlockDevice#blockStatus}, 1 GiB at a time): data ranges (and
 * holes shorter than 64 KiB, cheaper to read than to split on) are read in sequential reads into
 * 8 MiB buffers; longer holes are never read and become zero pieces. A buffer and the run of
 * pieces it covers form a batch, which goes to every strategy group. Nothing is read twice.
 *
 * <p><b>Threads.</b> Strategies are grouped: {@code fixed-N} with {@code aligned-N} (which reuses
 * the fixed results of chunks with the same range, see {@link ChunkTally}), and {@code cdc-N} on
 * its own. Each group has one thread that takes the batches from its queue in order and feeds
 * them to its strategies' {@link Chunker}s, which cut chunks into their {@link ChunkTally}s. The
 * groups run concurrently on all cores; a batch's buffer returns to the pool when the last group
 * is done with it, and progress advances then. So the reader is at most {@code buffers} batches
 * ahead of the slowest group, and each tally is touched by one thread only. The first error in any
 * thread stops the reader, the groups drain their queues, and it is rethrown here.
 *
 * <p><b>Memory.</b> {@value #BUFFERS} buffers of 8 MiB; per strategy a carry buffer of its largest
 * chunk and a zstd context (about 1 MiB native at level 1); and the {@link FingerprintSet}s, which
 * dominate: 16 bytes per slot for up to 64 images, 1.33 to 2 slots per distinct non-zero chunk
 * (about 1 GiB for all three 4 KiB strategies over 50 GiB of distinct data; see there). Plus
 * {@code 8 * images^2} bytes per strategy for the pairwise shared bytes.
 *
 * <p>Images are opened (and their partition tables read) before anything is analysed, so a bad
 * argument fails at once. A partition table that cannot be parsed is reported through
 * {@code warnings}; {@code aligned-N} then cuts that disk like {@code fixed-N}.
 */
public final class BlockAnalysis {
    static final int BUFFER_BYTES = 8 << 20;
    static final int BUFFERS = 6;
    static final long MIN_HOLE = 64 << 10;
    static final long STATUS_WINDOW = 1L << 30;
    static final int MAX_PIECES = 4096;

    /** An image to analyse: its name in the report, where it came from, and how to open it. */
    public static final class Input {
        private final String arg;
        private final Opener opener;

        private Input(String arg, Opener opener) {
            this.arg = arg;
            this.opener = opener;
        }

        @Override
        public String toString() {
            return arg;
        }
    }

    @FunctionalInterface
    private interface Opener {
        Opened open(Consumer<String> warnings);
    }

    /** A raw or qcow2 file (probed). */
    public static Input file(Path path) {
        return new Input(path.toString(), warnings -> {
            BlockDevice dev = Formats.open(path, "auto", warnings);
            String format = dev instanceof Qcow2Device ? "qcow2" : "raw";
            Path name = path.getFileName();
            return new Opened(name == null ? path.toString() : name.toString(), path.toAbsolutePath().toString(), format, dev);
        });
    }

    /** A stored version, {@code NAME} (its head) or {@code NAME@VER}, read through {@code images}. */
    public static Input stored(Images images, String ref) {
        return new Input("cask:" + ref, warnings -> {
            Version v = images.resolve(ref);
            String name = v.image() + "@" + v.number();
            return new Opened(name, "cask:" + name, "cask", images.open(v));
        });
    }

    /** Any device (tests): analysed under {@code name}; closed by the analysis. */
    static Input device(String name, String format, BlockDevice device) {
        return new Input(name, warnings -> new Opened(name, name, format, device));
    }

    private record Opened(String name, String source, String format, BlockDevice device) {}

    private record Image(BlockReport.ImageInfo info, BlockDevice device, long[] cuts) {}

    private BlockAnalysis() {}

    /** Analyses {@code inputs} with every strategy; progress counts logical bytes of all images. */
    public static BlockReport run(List<Input> inputs, List<Strategy> strategies, Progress progress, Consumer<String> warnings) {
        if (inputs.isEmpty()) throw new CaskException.InvalidInput("no images to analyse");
        if (strategies.isEmpty()) throw new CaskException.InvalidInput("no strategies to measure");
        long t0 = System.nanoTime();
        List<Image> images = new ArrayList<>();
        try {
            openAll(inputs, warnings, images);
            return new Run(images, strategies, progress).execute(t0);
        } finally {
            for (Image i : images) i.device().close();
        }
    }

    private static void openAll(List<Input> inputs, Consumer<String> warnings, List<Image> out) {
        Map<String, Integer> seen = new HashMap<>();
        for (Input in : inputs) {
            Opened o = in.opener.open(warnings);
            BlockDevice dev = o.device();
            try {
                String name = o.name();
                int n = seen.merge(name, 1, Integer::sum);
                if (n > 1) name = name + "#" + n;
                List<BlockReport.Partition> parts = new ArrayList<>();
                String error = null;
                try {
                    for (PartitionTable.Partition p : PartitionTable.read(dev)) {
                        String kind = p.kind();
                        int space = kind.indexOf(' ');
                        parts.add(new BlockReport.Partition(p.offset(), p.length(),
                                space < 0 ? kind : kind.substring(0, space), space < 0 ? "" : kind.substring(space + 1)));
                    }
                } catch (CaskException.InvalidInput e) {
                    error = e.getMessage();
                    parts.clear();
                    warnings.accept(name + ": partition table unreadable (" + error + "); aligned strategies cut the whole disk");
                }
                long size = dev.size();
                TreeSet<Long> cuts = new TreeSet<>(List.of(0L, size));
                for (BlockReport.Partition p : parts) {
                    cuts.add(Math.min(size, p.offset()));
                    cuts.add(Math.min(size, p.offset() + p.length()));
                }
                long[] c = cuts.stream().mapToLong(Long::longValue).toArray();
                if (size == 0) c = new long[]{0, 0};
                out.add(new Image(new BlockReport.ImageInfo(name, o.source(), o.format(), size, List.copyOf(parts), error), dev, c));
            } catch (RuntimeException e) {
                dev.close();
                throw e;
            }
        }
    }

    // ------------------------------------------------------------------ batches

    /** A read piece: {@code length} bytes at disk {@code offset}, in the batch buffer at {@code bufferOffset}, or zeros when -1. */
    private record Piece(long offset, long length, int bufferOffset) {
        boolean zeros() {
            return bufferOffset < 0;
        }
    }

    private enum BatchKind { START, DATA, END, STOP }

    private static final class Batch {
        final BatchKind kind;
        final int image;
        byte[] buffer;
        int fill;
        long logical;
        final List<Piece> pieces = new ArrayList<>();
        final AtomicInteger pending = new AtomicInteger();

        Batch(BatchKind kind, int image) {
            this.kind = kind;
            this.image = image;
        }

        void addData(long offset, int length) {
            if (!pieces.isEmpty()) {
                Piece last = pieces.getLast();
                if (!last.zeros() && last.offset() + last.length() == offset && last.bufferOffset() + last.length() == fill) {
                    pieces.set(pieces.size() - 1, new Piece(last.offset(), last.length() + length, last.bufferOffset()));
                    fill += length;
                    logical += length;
                    return;
                }
            }
            pieces.add(new Piece(offset, length, fill));
            fill += length;
            logical += length;
        }

        void addZeros(long offset, long length) {
            if (!pieces.isEmpty()) {
                Piece last = pieces.getLast();
                if (last.zeros() && last.offset() + last.length() == offset) {
                    pieces.set(pieces.size() - 1, new Piece(last.offset(), last.length() + length, -1));
                    logical += length;
                    return;
                }
            }
            pieces.add(new Piece(offset, length, -1));
            logical += length;
        }
    }

    /** One strategy inside a group: its tally and its chunker. */
    private record Lane(ChunkTally tally, Chunker chunker) {}

    /** Strategies driven by one thread, in order (fixed before aligned, so the memo is filled first). */
    private static final class Group {
        final List<Lane> lanes = new ArrayList<>();
        ChunkTally.Memo memo;
        final BlockingQueue<Batch> queue = new LinkedBlockingQueue<>();
        Thread thread;
    }

    /** The state of one analysis. */
    private static final class Run {
        private final List<Image> images;
        private final List<Strategy> strategies;
        private final Progress progress;
        private final Map<Strategy, Lane> lanes = new HashMap<>();
        private final List<Group> groups = new ArrayList<>();
        private final BlockingQueue<byte[]> pool = new ArrayBlockingQueue<>(BUFFERS);
        private final AtomicReference<Throwable> failure = new AtomicReference<>();
        private int buffersMade;
        private Batch current;

        Run(List<Image> images, List<Strategy> strategies, Progress progress) {
            this.images = images;
            this.strategies = strategies;
            this.progress = progress;
        }

        BlockReport execute(long t0) {
            int maxChunk = 1 << 16;
            for (Strategy s : strategies) maxChunk = Math.max(maxChunk, s.maxChunk());
            byte[] zeros = new byte[maxChunk];
            TreeSet<Integer> sizes = new TreeSet<>();
            for (Strategy s : strategies) sizes.add(s.blockSize());
            try {
                for (int n : sizes) {
                    Strategy fixed = find(Strategy.Kind.FIXED, n);
                    Strategy aligned = find(Strategy.Kind.ALIGNED, n);
                    Strategy cdc = find(Strategy.Kind.CDC, n);
                    if (fixed != null || aligned != null) {
                        Group g = new Group();
                        Lane f = fixed == null ? null : lane(g, fixed, new ChunkTally(fixed, images.size()), zeros);
                        Lane a = aligned == null ? null : lane(g, aligned, new ChunkTally(aligned, images.size()), zeros);
                        if (f != null && a != null) {
                            g.memo = new ChunkTally.Memo(n);
                            f.tally().memoOut(g.memo);
                            a.tally().memoIn(g.memo);
                        }
                        groups.add(g);
                    }
                    if (cdc != null) {
                        Group g = new Group();
                        lane(g, cdc, new ChunkTally(cdc, images.size()), zeros);
                        groups.add(g);
                    }
                }
                long total = 0;
                for (Image i : images) total += i.device().size();
                progress.start("analyze " + images.size() + (images.size() == 1 ? " image" : " images"), total);
                try {
                    for (int k = 0; k < groups.size(); k++) {
                        Group g = groups.get(k);
                        g.thread = new Thread(() -> drive(g), "cask-analyze-" + k);
                        g.thread.setDaemon(true);
                        g.thread.start();
                    }
                    try {
                        read();
                    } catch (Throwable t) {
                        failure.compareAndSet(null, t);
                    }
                    stopGroups();
                } finally {
                    progress.done();
                }
                Throwable t = failure.get();
                if (t != null) {
                    if (t instanceof RuntimeException re) throw re;
                    if (t instanceof Error e) throw e;
                    throw new CaskException("analysis failed: " + t, t);
                }
                return report(sizes, (System.nanoTime() - t0) / 1e9);
            } finally {
                for (Lane l : lanes.values()) l.tally().close();
            }
        }

        private Strategy find(Strategy.Kind kind, int n) {
            for (Strategy s : strategies) if (s.kind() == kind && s.blockSize() == n) return s;
            return null;
        }

        private Lane lane(Group g, Strategy s, ChunkTally tally, byte[] zeros) {
            Chunker c = s.kind() == Strategy.Kind.CDC ? new Chunker.Cdc(s.blockSize(), tally, zeros)
                    : new Chunker.Aligned(s.blockSize(), tally, zeros);
            Lane l = new Lane(tally, c);
            g.lanes.add(l);
            lanes.put(s, l);
            return l;
        }

        // -------------------------------------------------------------- the group threads

        private void drive(Group g) {
            while (true) {
                Batch b;
                try {
                    b = g.queue.take();
                } catch (InterruptedException e) {
                    failure.compareAndSet(null, e);
                    return;
                }
                if (b.kind == BatchKind.STOP) return;
                try {
                    if (failure.get() == null) process(g, b);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                } finally {
                    release(b);
                }
            }
        }

        private void process(Group g, Batch b) {
            switch (b.kind) {
                case START -> {
                    Image img = images.get(b.image);
                    for (Lane l : g.lanes) {
                        l.tally().beginImage(b.image);
                        boolean aligned = l.tally().strategy.kind() == Strategy.Kind.ALIGNED;
                        l.chunker().begin(img.device().size(), aligned ? img.cuts() : new long[]{0, img.device().size()});
                    }
                }
                case END -> {
                    for (Lane l : g.lanes) {
                        l.chunker().end();
                        l.tally().endImage();
                    }
                }
                case DATA -> {
                    for (Piece p : b.pieces) {
                        if (p.zeros()) {
                            if (g.memo != null) g.memo.reset(p.offset(), 0);
                            for (Lane l : g.lanes) l.chunker().zeros(p.length());
                        } else {
                            if (g.memo != null) g.memo.reset(p.offset(), p.length());
                            for (Lane l : g.lanes) l.chunker().data(b.buffer, p.bufferOffset(), (int) p.length());
                        }
                    }
                }
                default -> throw new AssertionError(b.kind);
            }
        }

        private void release(Batch b) {
            if (b.pending.decrementAndGet() != 0) return;
            if (b.buffer != null) pool.offer(b.buffer);
            if (b.logical > 0) progress.advance(b.logical);
        }

        private void stopGroups() {
            for (Group g : groups) {
                Batch stop = new Batch(BatchKind.STOP, -1);
                g.queue.add(stop);
            }
            boolean interrupted = false;
            for (Group g : groups) {
                while (true) {
                    try {
                        g.thread.join();
                        break;
                    } catch (InterruptedException e) {
                        interrupted = true;
                    }
                }
            }
            if (interrupted) Thread.currentThread().interrupt();
        }

        // -------------------------------------------------------------- the reader

        private void read() throws InterruptedException {
            for (int i = 0; i < images.size(); i++) {
                Image img = images.get(i);
                BlockDevice dev = img.device();
                publish(new Batch(BatchKind.START, i));
                long size = dev.size();
                for (long pos = 0; pos < size; ) {
                    long window = Math.min(STATUS_WINDOW, size - pos);
                    for (BlockStatus s : dev.blockStatus(pos, window)) {
                        if (s.hole() && s.length() >= MIN_HOLE) zeros(i, s.offset(), s.length());
                        else data(i, dev, s.offset(), s.length());
                    }
                    pos += window;
                }
                if (current != null) publish(current);
                current = null;
                publish(new Batch(BatchKind.END, i));
            }
        }

        private void zeros(int image, long offset, long length) throws InterruptedException {
            if (current == null) current = new Batch(BatchKind.DATA, image);
            current.addZeros(offset, length);
            if (current.pieces.size() >= MAX_PIECES) {
                publish(current);
                current = null;
            }
        }

        private void data(int image, BlockDevice dev, long offset, long length) throws InterruptedException {
            while (length > 0) {
                if (current == null) current = new Batch(BatchKind.DATA, image);
                if (current.buffer == null) current.buffer = takeBuffer();
                int n = (int) Math.min(length, BUFFER_BYTES - current.fill);
                dev.read(offset, current.buffer, current.fill, n);
                current.addData(offset, n);
                offset += n;
                length -= n;
                if (current.fill == BUFFER_BYTES || current.pieces.size() >= MAX_PIECES) {
                    publish(current);
                    current = null;
                }
            }
        }

        private byte[] takeBuffer() throws InterruptedException {
            byte[] b = pool.poll();
            if (b != null) return b;
            if (buffersMade < BUFFERS) {
                buffersMade++;
                return new byte[BUFFER_BYTES];
            }
            while (true) {
                checkFailure();
                b = pool.poll(100, TimeUnit.MILLISECONDS);
                if (b != null) return b;
            }
        }

        private void checkFailure() {
            if (failure.get() != null) throw new Stopped();
        }

        private void publish(Batch b) {
            checkFailure();
            b.pending.set(groups.size());
            for (Group g : groups) g.queue.add(b);
        }

        // -------------------------------------------------------------- the result

        private BlockReport report(TreeSet<Integer> sizes, double seconds) {
            int n = images.size();
            List<BlockReport.ImageInfo> infos = images.stream().map(Image::info).toList();
            List<BlockReport.StrategyResult> results = new ArrayList<>();
            for (Strategy s : strategies) {
                ChunkTally t = lanes.get(s).tally();
                int min = s.blockSize(), max = s.blockSize(), zero = s.blockSize();
                if (s.kind() == Strategy.Kind.CDC) {
                    FastCdc cdc = ((Chunker.Cdc) lanes.get(s).chunker()).cdc();
                    min = cdc.min();
                    max = cdc.max();
                    zero = cdc.zeroChunkSize();
                }
                var collection = new BlockReport.Totals(t.logicalBytes, t.zeroBytes, t.uniqueBytes, t.compressedBytes,
                        t.chunks, t.zeroChunks, t.uniqueChunks);
                List<BlockReport.ImageTotals> per = new ArrayList<>();
                List<BlockReport.Growth> growth = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    String name = infos.get(i).name();
                    per.add(new BlockReport.ImageTotals(name, t.imageLogical[i], t.imageZero[i], t.imageUnique[i],
                            t.imageChunks[i], t.imageZeroChunks[i], t.imageUniqueChunks[i]));
                    growth.add(new BlockReport.Growth(name, t.growthUnique[i], t.growthCompressed[i]));
                }
                double[][] overlap = new double[n][n];
                for (int i = 0; i < n; i++) {
                    overlap[i][i] = 1.0;
                    for (int j = i + 1; j < n; j++) {
                        long both = t.shared[i][j];
                        long either = t.imageUnique[i] + t.imageUnique[j] - both;
                        double v = either == 0 ? 0.0 : (double) both / either;
                        overlap[i][j] = v;
                        overlap[j][i] = v;
                    }
                }
                results.add(new BlockReport.StrategyResult(s, min, max, zero, collection, List.copyOf(per), overlap,
                        List.copyOf(growth), t.set().heapBytes()));
            }
            return new BlockReport(infos, List.copyOf(sizes), List.copyOf(results), seconds);
        }
    }

    /** Thrown in the reader when a group failed: the group's error is the one reported. */
    private static final class Stopped extends RuntimeException {
        Stopped() {
            super("stopped", null, false, false);
        }
    }
}
