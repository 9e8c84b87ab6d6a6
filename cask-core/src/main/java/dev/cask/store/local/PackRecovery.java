package dev.cask.store.local;

import java.nio.file.Path;

/** Placeholder (filled in below). */
final class PackRecovery {
    private PackRecovery() {}

    static Path markerPath(Path packDir, int pack) {
        return packDir.resolve(String.format("%08d.open", pack));
    }
}
