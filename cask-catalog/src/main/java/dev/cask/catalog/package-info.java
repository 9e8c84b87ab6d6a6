/**
 * The catalog SPI: images with hierarchical names, immutable numbered versions, heads moved by
 * compare-and-swap, clones. Implementations: {@code catalog.sqlite} (the default). Depends on
 * {@code common} only; version content is opaque bytes here.
 */
package dev.cask.catalog;
