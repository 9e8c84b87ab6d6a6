/**
 * Operations on images over a store and a catalog: import, export, create, clone, snapshot,
 * rollback, stats and check ({@link dev.cask.image.Images}). The layer the CLI (and later the
 * server) calls; it throws, never prints.
 */
package dev.cask.image;
