/**
 * The vocabulary every layer shares: errors with a kind, sizes, durations, progress, pools,
 * POSIX calls through the FFM API, and the BlockDevice interface (with its filters) that the
 * formats, the trees and the NBD server meet at. Depends on nothing of cask.
 */
module dev.cask.common {
    requires transitive java.sql;

    exports dev.cask.common;
    exports dev.cask.device;
}
