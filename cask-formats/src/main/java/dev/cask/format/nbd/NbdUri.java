package dev.cask.format.nbd;

import dev.cask.common.CaskException;

import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * Where an NBD export is, from a URI in the form of the NBD URI specification (and QEMU):
 * {@code nbd://HOST[:PORT]/EXPORT} (TCP, port 10809 by default) or
 * {@code nbd+unix:///EXPORT?socket=PATH} (a Unix socket). The export name is the path without its
 * leading slash, percent-decoded; empty means the server's default export. TLS ({@code nbds})
 * is refused by name.
 *
 * @param host   TCP host, or null for a Unix socket
 * @param port   TCP port
 * @param socket Unix socket path, or null for TCP
 * @param export export name
 */
public record NbdUri(String host, int port, Path socket, String export) {
    public static final int DEFAULT_PORT = 10809;

    /** True when {@code text} is meant as an NBD URI (starts with {@code nbd:} or {@code nbd+} or {@code nbds}). */
    public static boolean looksLike(String text) {
        return text.startsWith("nbd://") || text.startsWith("nbd+") || text.startsWith("nbds://") || text.startsWith("nbds+");
    }

    public static NbdUri parse(String text) {
        URI u;
        try {
            u = new URI(text);
        } catch (URISyntaxException e) {
            throw new CaskException.InvalidInput("NBD URI '" + text + "': " + e.getMessage());
        }
        String scheme = u.getScheme() == null ? "" : u.getScheme();
        String path = u.getRawPath() == null ? "" : u.getRawPath();
        String export = URLDecoder.decode(path.startsWith("/") ? path.substring(1) : path, StandardCharsets.UTF_8);
        switch (scheme) {
            case "nbd", "nbd+tcp" -> {
                if (u.getHost() == null) throw new CaskException.InvalidInput("NBD URI '" + text + "': no host (nbd://HOST[:PORT]/EXPORT)");
                return new NbdUri(u.getHost(), u.getPort() < 0 ? DEFAULT_PORT : u.getPort(), null, export);
            }
            case "nbd+unix" -> {
                String q = u.getRawQuery() == null ? "" : u.getRawQuery();
                String socket = null;
                for (String kv : q.split("&")) {
                    if (kv.startsWith("socket=")) socket = URLDecoder.decode(kv.substring(7), StandardCharsets.UTF_8);
                }
                if (socket == null || socket.isEmpty()) {
                    throw new CaskException.InvalidInput("NBD URI '" + text + "': no socket (nbd+unix:///EXPORT?socket=PATH)");
                }
                return new NbdUri(null, 0, Path.of(socket), export);
            }
            default -> {
                if (scheme.startsWith("nbds")) throw new CaskException.InvalidInput("NBD URI '" + text + "': TLS (nbds) is not supported");
                throw new CaskException.InvalidInput("NBD URI '" + text + "': unknown scheme '" + scheme
                        + "' (known: nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH)");
            }
        }
    }

    @Override
    public String toString() {
        return socket != null ? "nbd+unix:///" + export + "?socket=" + socket
                : "nbd://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + port + "/" + export;
    }
}
