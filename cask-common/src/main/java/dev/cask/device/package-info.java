/**
 * The {@link dev.cask.device.BlockDevice} interface: a disk as bytes, with capabilities and an
 * allocation map. The bottom of the format and serving layers; depends on nothing.
 */
package dev.cask.device;
