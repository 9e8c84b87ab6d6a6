/**
 * NBD as the interchange for formats cask does not parse itself: an NBD client
 * {@link dev.cask.device.BlockDevice} ({@code NbdDevice}, for {@code nbd://} and
 * {@code nbd+unix://} URIs), the {@code qemu-nbd} process that serves an image file on a private
 * Unix socket ({@code QemuNbd}), and import/export of vmdk, vhdx, vpc, vdi, qed... through it
 * ({@code QemuFormats}). Depends on {@code device}, {@code common}, {@code format} and the protocol
 * numbers of {@code server.nbd.NbdProtocol} (constants only; the codec of the server is not shared).
 */
package dev.cask.format.nbd;
