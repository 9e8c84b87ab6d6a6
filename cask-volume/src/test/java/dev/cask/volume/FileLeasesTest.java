package dev.cask.volume;

import java.nio.file.Path;

/** The leases contract on {@link FileLeases}: two objects on one directory are two processes of one host. */
class FileLeasesTest extends LeasesContract {
    @Override
    protected Leases newLeases(Path dir) {
        return new FileLeases(dir.resolve("journals"));
    }

    @Override
    protected boolean freeze(Leases node) {
        return false; // a file lock goes only with its process
    }

    @Override
    protected boolean epochsRise() {
        return false; // always 0: never taken over while held
    }
}
