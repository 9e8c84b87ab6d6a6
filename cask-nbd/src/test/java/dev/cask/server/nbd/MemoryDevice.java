package dev.cask.server.nbd;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import dev.cask.device.Devices;

import java.io.IOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A writable, sparse, in-memory {@link BlockDevice} for the NBD tests: 4 KiB pages in a map,
 * absent pages are holes (read as zeros, reported as holes). Zero and trim drop whole pages and
 * clear partial ones, so both make holes. Thread-safe (every method synchronizes), so several
 * connections can share one, which makes multi-conn honest.
 *
 * <p>Counts writes, flushes and FUA writes for the tests, and can be told to fail reads of a
 * range with {@link CaskException.Io} to test the server's EIO path, or to hold reads of a range
 * until the test lets them go ({@link #holdReads}), to keep a request in flight.
 */
final class MemoryDevice implements BlockDevice {
    static final int PAGE = 4096;

    private final long size;
    private final Capabilities capabilities;
    private final TreeMap<Long, byte[]> pages = new TreeMap<>();
    final AtomicLong writes = new AtomicLong();
    final AtomicLong flushes = new AtomicLong();
    final AtomicLong fuaWrites = new AtomicLong();
    private long failFrom = -1;
    private long failTo = -1;

    MemoryDevice(long size) {
        this(size, new Capabilities(true, true, true, true, true, true, true, true, 1, 4096, 32 << 20));
    }

    MemoryDevice(long size, Capabilities capabilities) {
        this.size = size;
        this.capabilities = capabilities;
    }

    /** Makes reads overlapping {@code [from, to)} throw {@link CaskException.Io}; (-1, -1) heals. */
    synchronized void failReads(long from, long to) {
        failFrom = from;
        failTo = to;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public Capabilities capabilities() {
        return capabilities;
    }

    /** Reads held by {@link #holdReads}: {@code entered} counts down when one waits, {@code open} lets them go. */
    record Gate(long from, long to, java.util.concurrent.CountDownLatch entered, java.util.concurrent.CountDownLatch released) {
        void open() {
            released.countDown();
        }

        void awaitEntered() throws InterruptedException {
            if (!entered.await(60, java.util.concurrent.TimeUnit.SECONDS)) throw new AssertionError("no read of " + from + ".." + to + " arrived");
        }
    }

    private volatile Gate gate;

    /** Makes reads overlapping {@code [from, to)} wait (outside the device's lock) until the gate is opened. */
    Gate holdReads(long from, long to) {
        Gate g = new Gate(from, to, new java.util.concurrent.CountDownLatch(1), new java.util.concurrent.CountDownLatch(1));
        gate = g;
        return g;
    }

    @Override
    public void read(long offset, byte[] buffer, int bufferOffset, int length) {
        Gate g = gate;
        if (g != null && offset < g.to() && offset + length > g.from()) {
            g.entered().countDown();
            try {
                g.released().await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        readLocked(offset, buffer, bufferOffset, length);
    }

    private synchronized void readLocked(long offset, byte[] buffer, int bufferOffset, int length) {
        BlockDevice.checkRange(this, offset, length);
        if (failFrom >= 0 && offset < failTo && offset + length > failFrom) {
            throw new CaskException.Io("memory device: injected read error at " + offset + "+" + length, new IOException("injected"));
        }
        long pos = offset;
        long end = offset + length;
        while (pos < end) {
            long page = pos / PAGE;
            int in = (int) (pos % PAGE);
            int n = (int) Math.min(PAGE - in, end - pos);
            byte[] p = pages.get(page);
            int dst = bufferOffset + (int) (pos - offset);
            if (p == null) java.util.Arrays.fill(buffer, dst, dst + n, (byte) 0);
            else System.arraycopy(p, in, buffer, dst, n);
            pos += n;
        }
    }

    @Override
    public synchronized void write(long offset, byte[] buffer, int bufferOffset, int length, boolean fua) {
        BlockDevice.checkRange(this, offset, length);
        if (!capabilities.write()) throw new UnsupportedOperationException("device is read-only");
        writes.incrementAndGet();
        if (fua) fuaWrites.incrementAndGet();
        long pos = offset;
        long end = offset + length;
        while (pos < end) {
            long page = pos / PAGE;
            int in = (int) (pos % PAGE);
            int n = (int) Math.min(PAGE - in, end - pos);
            byte[] p = pages.computeIfAbsent(page, k -> new byte[PAGE]);
            System.arraycopy(buffer, bufferOffset + (int) (pos - offset), p, in, n);
            pos += n;
        }
    }

    @Override
    public synchronized void zero(long offset, long length, boolean fua) {
        BlockDevice.checkRange(this, offset, length);
        if (!capabilities.zero()) throw new UnsupportedOperationException("device cannot zero");
        clear(offset, length);
    }

    @Override
    public synchronized void trim(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        if (!capabilities.trim()) throw new UnsupportedOperationException("device cannot trim");
        clear(offset, length);
    }

    private void clear(long offset, long length) {
        long pos = offset;
        long end = offset + length;
        while (pos < end) {
            long page = pos / PAGE;
            int in = (int) (pos % PAGE);
            int n = (int) Math.min(PAGE - in, end - pos);
            if (n == PAGE) {
                // whole pages: drop the run in one go (zeroing 4 GiB must not walk a million pages)
                long last = (end / PAGE) - 1;
                pages.subMap(page, true, last, true).clear();
                pos = (last + 1) * PAGE;
                continue;
            }
            byte[] p = pages.get(page);
            if (p != null) {
                java.util.Arrays.fill(p, in, in + n, (byte) 0);
                if (Devices.isZero(p, 0, PAGE)) pages.remove(page);
            }
            pos += n;
        }
    }

    @Override
    public void flush() {
        flushes.incrementAndGet();
    }

    @Override
    public synchronized List<BlockStatus> blockStatus(long offset, long length) {
        BlockDevice.checkRange(this, offset, length);
        List<BlockStatus> out = new ArrayList<>();
        long pos = offset;
        long end = offset + length;
        while (pos < end) {
            long page = pos / PAGE;
            boolean hole = !pages.containsKey(page);
            long next;
            if (hole) {
                Long data = pages.ceilingKey(page);
                next = data == null ? end : Math.min(end, data * PAGE);
            } else {
                next = Math.min(end, (page + 1) * PAGE);
            }
            out.add(new BlockStatus(pos, next - pos, hole));
            pos = next;
        }
        return Devices.coalesce(out);
    }

    /** The whole content (the device must be small). */
    synchronized byte[] content() {
        byte[] b = new byte[Math.toIntExact(size)];
        read(0, b, 0, b.length);
        return b;
    }

    synchronized String sha256() {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 20];
            for (long pos = 0; pos < size; pos += buf.length) {
                int n = (int) Math.min(buf.length, size - pos);
                read(pos, buf, 0, n);
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    synchronized int allocatedPages() {
        return pages.size();
    }

    @Override
    public void close() {}
}
