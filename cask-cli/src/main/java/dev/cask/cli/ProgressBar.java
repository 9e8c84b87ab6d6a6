package dev.cask.cli;

import dev.cask.common.Progress;
import dev.cask.common.Sizes;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A one-line progress bar on stderr: label, bar, percent, bytes done of total, the rate of data
 * and the time left. The rate counts only work that moved data ({@link #advance}), not holes
 * skipped ({@link #skip}), so a sparse 2 TiB disk does not claim terabytes a second; the time
 * left is the work left at the pace of all work so far (holes included), which is what finishes
 * it. Redraws at most ten times a second; thread-safe (workers advance it concurrently).
 */
final class ProgressBar implements Progress {
    private final PrintWriter err;
    private final AtomicLong done = new AtomicLong();
    private final AtomicLong data = new AtomicLong();
    private volatile long total;
    private volatile String label = "";
    private volatile long started;
    private volatile boolean items;
    private long lastDraw;

    ProgressBar(PrintWriter err) {
        this.err = err;
    }

    @Override
    public void start(String label, long total) {
        begin(label, total, false);
    }

    @Override
    public void startItems(String label, long total) {
        begin(label, total, true);
    }

    private void begin(String label, long total, boolean items) {
        this.items = items;
        this.label = label;
        this.total = total;
        this.done.set(0);
        this.data.set(0);
        this.started = System.nanoTime();
        draw(true);
    }

    @Override
    public void advance(long delta) {
        done.addAndGet(delta);
        data.addAndGet(delta);
        draw(false);
    }

    @Override
    public void skip(long delta) {
        done.addAndGet(delta);
        draw(false);
    }

    @Override
    public synchronized void done() {
        draw(true);
        err.print("\n");
        err.flush();
    }

    private String amount(long n) {
        return items ? Long.toString(n) : Sizes.human(n);
    }

    /** {@code h:mm:ss} or {@code m:ss}. */
    static String clock(long seconds) {
        long h = seconds / 3600, m = seconds / 60 % 60, s = seconds % 60;
        return h > 0 ? String.format(Locale.ROOT, "%d:%02d:%02d", h, m, s) : String.format(Locale.ROOT, "%d:%02d", m, s);
    }

    /** The line for {@code d} of {@code t} done, {@code moved} of it data, after {@code secs} seconds. */
    String line(long d, long moved, long t, double secs) {
        String rate = items ? String.format(Locale.ROOT, "%.0f/s", moved / secs) : Sizes.human((long) (moved / secs)) + "/s";
        StringBuilder sb = new StringBuilder(label).append(' ');
        if (t > 0) {
            int width = 30;
            int fill = (int) Math.min(width, width * (double) d / t);
            sb.append('[').append("=".repeat(fill)).append(" ".repeat(width - fill)).append("] ");
            sb.append(String.format(Locale.ROOT, "%3.0f%% ", 100.0 * Math.min(d, t) / t));
            sb.append(amount(d)).append(" / ").append(amount(t));
        } else {
            sb.append(amount(d));
        }
        sb.append("  ").append(rate);
        if (t > 0 && d > 0 && d < t && secs >= 1) sb.append("  ETA ").append(clock((long) Math.ceil((t - d) * secs / d)));
        return sb.toString();
    }

    private synchronized void draw(boolean force) {
        long now = System.nanoTime();
        if (!force && now - lastDraw < 100_000_000L) return;
        lastDraw = now;
        double secs = Math.max(1e-3, (now - started) / 1e9);
        err.print("\r" + line(done.get(), data.get(), total, secs) + "\u001b[K"); // erase what a longer line left
        err.flush();
    }
}
