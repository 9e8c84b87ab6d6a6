/**
 * The NBD server: the fixed newstyle handshake and the transmission phase of the Network Block
 * Device protocol (doc/proto.md of NetworkBlockDevice/nbd), over TCP or Unix sockets, so QEMU,
 * the kernel's nbd client, qemu-img, nbdcopy and fio can use cask disks directly.
 *
 * <p>It owns the wire and nothing else: {@link dev.cask.server.nbd.NbdServer} accepts
 * connections, {@code NbdConnection} speaks the protocol for one of them, and an
 * {@link dev.cask.server.nbd.ExportResolver} turns export names into
 * {@link dev.cask.server.nbd.Export}s, each a {@link dev.cask.device.BlockDevice}. What a
 * device stores, how it caches and when it makes versions is the volume layer's business.
 *
 * <p>Supported: {@code NBD_OPT_EXPORT_NAME}, {@code _GO}, {@code _INFO} (export, name,
 * description, block size), {@code _LIST}, {@code _ABORT}, {@code _STRUCTURED_REPLY},
 * {@code _LIST_META_CONTEXT} and {@code _SET_META_CONTEXT} ({@code base:allocation});
 * commands READ (simple or structured, with hole chunks), WRITE, FLUSH, TRIM, CACHE,
 * WRITE_ZEROES (NO_HOLE, FAST_ZERO), BLOCK_STATUS (REQ_ONE) and DISC. Not supported: oldstyle
 * and non-fixed newstyle handshakes, TLS, extended headers.
 *
 * <p>Depends on {@code device} and {@code common} only.
 */
package dev.cask.server.nbd;
