/**
 * Live volumes: an image opened for reads and writes ({@link dev.cask.volume.Volume}), with a
 * journal that makes FLUSH durable and checkpoints that commit versions. Depends on
 * {@code tree}, {@code store}, {@code catalog}, {@code device} and {@code common}.
 */
package dev.cask.volume;
