package dev.cask.server.nbd;

import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/** Collects what the NBD server logs (through System.Logger, which is java.util.logging here) while open. */
final class LogCapture extends Handler implements AutoCloseable {
    private final Logger logger = Logger.getLogger(NbdServer.class.getName());
    private final List<String> lines = new ArrayList<>();
    private final Level oldLevel;

    LogCapture() {
        oldLevel = logger.getLevel();
        logger.setLevel(Level.INFO);
        setLevel(Level.INFO);
        logger.addHandler(this);
    }

    @Override
    public synchronized void publish(LogRecord r) {
        lines.add(r.getLevel() + " " + r.getMessage());
    }

    /** Lines logged so far, each as "LEVEL message". */
    synchronized List<String> lines() {
        return List.copyOf(lines);
    }

    /** The lines containing every one of {@code words}. */
    List<String> matching(String... words) {
        List<String> out = new ArrayList<>();
        for (String l : lines()) {
            boolean all = true;
            for (String w : words) all &= l.contains(w);
            if (all) out.add(l);
        }
        return out;
    }

    @Override
    public void flush() {}

    @Override
    public void close() {
        logger.removeHandler(this);
        logger.setLevel(oldLevel);
    }
}
