/**
 * What {@code cask serve} runs: the NBD protocol ({@code server.nbd}, which knows only
 * {@link dev.cask.device.BlockDevice}), the mapping of export names to images and volumes
 * ({@link dev.cask.server.ImageExports}) and the control socket the CLI talks to while a server
 * runs. The top layer beside the CLI.
 */
package dev.cask.server;
