/**
 * Disk image formats as BlockDevices: raw files and block devices, qcow2, an NBD client, and
 * every other format QEMU reads (through qemu-nbd). Knows nothing of the store.
 */
module dev.cask.formats {
    requires transitive dev.cask.nbd;
    requires com.github.luben.zstd_jni;

    exports dev.cask.format;
    exports dev.cask.format.nbd;
    exports dev.cask.format.qcow2;
}
