/** Small things every layer uses: the user-facing exception, size parsing, progress reporting. No dependencies. */
package dev.cask.common;
