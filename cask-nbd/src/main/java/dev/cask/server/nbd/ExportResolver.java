package dev.cask.server.nbd;

import java.util.List;

/**
 * Maps the names clients ask for to {@link Export}s: the server's only view of what it serves.
 * The volume layer implements it (an image name to an open volume, {@code image@version} to a
 * read-only tree); tests implement it over in-memory devices.
 *
 * <p>Implementations must be thread-safe: every connection calls them from its own thread.
 */
public interface ExportResolver {
    /**
     * Opens the export called {@code name} for one connection ({@code ""} is the default
     * export). Throws {@link dev.cask.common.CaskException.NotFound} when there is no such
     * export; its message reaches the client ({@code NBD_REP_ERR_UNKNOWN}), so it should name
     * the export. Other {@link dev.cask.common.CaskException}s are refused the same way
     * ({@code Conflict} as {@code NBD_REP_ERR_POLICY}, {@code InvalidInput} as
     * {@code NBD_REP_ERR_INVALID}).
     */
    Export open(String name);

    /**
     * Describes the export called {@code name} for {@code NBD_OPT_INFO}, without opening it for
     * I/O: the export returned MUST report the same size, capabilities and read-only flag that
     * {@link #open} would (the spec wants INFO and a following GO to agree), MUST NOT take
     * anything an open takes for writing (a lease, a journal), and is released at once; its device
     * is never read. Throws as {@link #open} does. The default opens the export.
     */
    default Export describe(String name) {
        return open(name);
    }

    /** The names {@code NBD_OPT_LIST} shows, in the order to show them. */
    List<String> list();

    /** The description {@code NBD_OPT_LIST} shows next to {@code name}; empty for none. */
    default String description(String name) {
        return "";
    }
}
