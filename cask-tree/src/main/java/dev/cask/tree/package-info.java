/**
 * Merkle trees over fixed-size data blocks ({@link dev.cask.tree.Root}), layouts of trees
 * ({@link dev.cask.tree.Layout}), the streaming {@link dev.cask.tree.TreeWriter}, the
 * {@link dev.cask.tree.TreeReader} and a read-only device view. Depends on {@code store},
 * {@code device} and {@code common}.
 */
package dev.cask.tree;
