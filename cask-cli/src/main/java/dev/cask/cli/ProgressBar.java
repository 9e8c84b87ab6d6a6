package dev.cask.cli;

import dev.cask.common.Progress;
import dev.cask.common.Sizes;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A one-line progress bar on stderr: label, bar, percent, bytes done of total, rate. Redraws at
 * most ten times a second; thread-safe (workers advance it concurrently).
 */
final class ProgressBar implements Progress {
    private final PrintWriter err;
    private final AtomicLong done = new AtomicLong();
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
        this.started = System.nanoTime();
        draw(true);
    }

    @Override
    public void advance(long delta) {
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

    private synchronized void draw(boolean force) {
        long now = System.nanoTime();
        if (!force && now - lastDraw < 100_000_000L) return;
        lastDraw = now;
        long d = done.get();
        long t = total;
        double secs = Math.max(1e-3, (now - started) / 1e9);
        String rate = items ? String.format(Locale.ROOT, "%.0f/s", d / secs) : Sizes.human((long) (d / secs)) + "/s";
        StringBuilder sb = new StringBuilder("\r").append(label).append(' ');
        if (t > 0) {
            int width = 30;
            int fill = (int) Math.min(width, width * (double) d / t);
            sb.append('[').append("=".repeat(fill)).append(" ".repeat(width - fill)).append("] ");
            sb.append(String.format(Locale.ROOT, "%3.0f%% ", 100.0 * d / t));
            sb.append(amount(d)).append(" / ").append(amount(t));
        } else {
            sb.append(amount(d));
        }
        sb.append("  ").append(rate).append("   ");
        err.print(sb);
        err.flush();
    }
}
