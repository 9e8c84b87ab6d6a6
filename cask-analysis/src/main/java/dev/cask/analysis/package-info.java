/**
 * Duplication analysis: how much would cask save on a collection of images, and at which block
 * size. Block level ({@code fixed-N}, {@code aligned-N}, {@code cdc-N} strategies over raw, qcow2
 * and stored images, in one pass) and file level (SHA-256 per file over directories and tars),
 * with JSON and self-contained HTML reports. The top layer beside the CLI and the server: it
 * depends on cask-volume (and through it on the formats, layouts and images) and never the other way round.
 */
package dev.cask.analysis;
