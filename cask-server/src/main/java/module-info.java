/**
 * cask serve's core: images exported over NBD (shared volumes, read-only versions), the control
 * socket other processes and hosts ask, and the JIT warm-up. Above the image layer and the NBD
 * server.
 */
module dev.cask.server {
    requires java.management;
    requires transitive dev.cask.local;

    exports dev.cask.server;
}
