/**
 * The NBD protocol: the codec (bytes to messages and back) and a server of BlockDevices. Below
 * the formats (whose NBD client speaks the same codec) and the image server (which exports
 * volumes through it); knows nothing of trees or images.
 */
module dev.cask.nbd {
    requires jdk.net;
    requires transitive dev.cask.common;

    exports dev.cask.server.nbd;
}
