package dev.cask.server.nbd;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/** Test exports by name over in-memory devices; counts opens and releases so tests can check the server releases every export. */
final class MemoryResolver implements ExportResolver {
    record Entry(BlockDevice device, boolean readOnly, String description) {}

    private final Map<String, Entry> exports = new LinkedHashMap<>();
    final AtomicInteger opens = new AtomicInteger();
    final AtomicInteger releases = new AtomicInteger();

    synchronized MemoryResolver add(String name, BlockDevice device, boolean readOnly, String description) {
        exports.put(name, new Entry(device, readOnly, description));
        return this;
    }

    @Override
    public synchronized Export open(String name) {
        Entry e = exports.get(name);
        if (e == null) throw new CaskException.NotFound("no image '" + name + "' in this store (try one of " + exports.keySet() + ")");
        opens.incrementAndGet();
        return Export.of(e.device(), e.readOnly(), e.description(), releases::incrementAndGet);
    }

    @Override
    public synchronized List<String> list() {
        return new ArrayList<>(exports.keySet());
    }

    @Override
    public synchronized String description(String name) {
        Entry e = exports.get(name);
        return e == null ? "" : e.description();
    }

    /** Opens minus releases: exports some connection still holds. */
    int held() {
        return opens.get() - releases.get();
    }
}
