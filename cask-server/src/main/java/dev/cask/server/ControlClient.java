package dev.cask.server;

import dev.cask.common.CaskException;
import dev.cask.image.LiveWriters;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import java.util.stream.Stream;

/**
 * The client side of the running servers' control sockets ({@link ControlServer}): how commands
 * reach an image a {@code cask serve} of the same store holds open. As {@link LiveWriters} it asks
 * for a checkpoint of an image (a snapshot, or the version export and clone of its head use).
 * A request goes to every server's socket in turn until one has the image open; sockets of servers
 * that died are removed. On a shared store it then asks the other hosts' nodes ({@link Remote}, over
 * TCP with each node's token), and {@link #inUse} asks every node. An error reply comes back as the
 * exception kind the server met.
 */
public final class ControlClient implements LiveWriters {
    /**
     * A server's control endpoint on another host (a shared store's node, {@link
     * ControlServer#listenTcp}): who it is (its lease holder name), where it listens, and the token
     * its connections must send first.
     */
    public record Remote(String holder, String host, int port, String token) {
        @Override
        public String toString() {
            return "node " + holder + " (" + host + ":" + port + ")";
        }
    }

    /** How long a remote node may take to answer (a checkpoint of a busy image included). */
    static final int REMOTE_TIMEOUT_MS = 120_000;
    /** How long a connection to a remote node may take to open. */
    static final int CONNECT_TIMEOUT_MS = 10_000;

    private final Path storeDir;
    private final java.util.function.Supplier<List<Remote>> remotes;
    private final java.util.function.Consumer<Remote> gone;

    public ControlClient(Path storeDir) {
        this(storeDir, List::of, r -> {});
    }

    /**
     * A client of this host's servers ({@code storeDir}'s sockets) and of the servers {@code
     * remotes} lists (a shared store's other nodes, asked after this host's); {@code gone} hears of
     * a remote that refused the connection (its server stopped: its entry can go).
     */
    public ControlClient(Path storeDir, java.util.function.Supplier<List<Remote>> remotes, java.util.function.Consumer<Remote> gone) {
        this.storeDir = storeDir;
        this.remotes = remotes;
        this.gone = gone;
    }

    @Override
    public OptionalInt checkpoint(String image, String message, boolean always) {
        return checkpoint(image, message, always, dev.cask.catalog.VersionKind.AUTO);
    }

    @Override
    public OptionalInt checkpoint(String image, String message, boolean always, dev.cask.catalog.VersionKind kind) {
        String msg = message == null ? "" : message.replace('\n', ' ').replace('\r', ' ');
        String verb = always ? "snapshot " : kind == dev.cask.catalog.VersionKind.USER ? "user-checkpoint " : "checkpoint ";
        String line = (verb + image + " " + msg).strip();
        String reply = request(storeDir, line);
        if (reply == null || reply.equals("not-open")) {
            for (Remote r : remotes.get()) {
                String answer = ask(r, line);
                if (answer != null && !answer.equals("not-open")) {
                    reply = answer;
                    break;
                }
            }
        }
        if (reply == null || reply.equals("not-open")) return OptionalInt.empty();
        if (reply.startsWith("ok ")) {
            try {
                return OptionalInt.of(Integer.parseInt(reply.substring(3).trim()));
            } catch (NumberFormatException e) {
                throw new CaskException.InvalidInput("image '" + image + "': a server answered '" + reply + "' to a checkpoint request");
            }
        }
        if (reply.startsWith("error ")) throw error(reply.substring(6));
        throw new CaskException.InvalidInput("image '" + image + "': a server answered '" + reply + "' to a checkpoint request");
    }

    /** What this host's servers and every remote node need kept of {@code image} (see {@link #inUse(Path, String)}). */
    @Override
    public java.util.Set<Integer> inUse(String image) {
        java.util.Set<Integer> out = new java.util.TreeSet<>(inUse(storeDir, image));
        for (Remote r : remotes.get()) {
            String reply = ask(r, "in-use " + image);
            if (reply == null) continue; // stopped: it needs nothing
            out.addAll(versions(image, r.toString(), reply));
        }
        return out;
    }

    /**
     * Sends {@code line} to remote node {@code r} and returns its reply line; null when it refused
     * the connection (its server stopped; {@code gone} hears of it). A node that does not answer
     * in time, or refuses the token, is an error naming it: nothing may be decided on a guess.
     */
    private String ask(Remote r, String line) {
        try (java.net.Socket s = new java.net.Socket()) {
            try {
                s.connect(new java.net.InetSocketAddress(r.host(), r.port()), CONNECT_TIMEOUT_MS);
            } catch (java.net.SocketTimeoutException e) {
                throw new CaskException.Io(r + ": no connection within " + CONNECT_TIMEOUT_MS / 1000 + " s", e);
            }
            s.setSoTimeout(REMOTE_TIMEOUT_MS);
            s.getOutputStream().write(("auth " + r.token() + "\n" + line + "\n").getBytes(StandardCharsets.UTF_8));
            s.shutdownOutput();
            String reply = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8)).readLine();
            if (reply == null) throw new CaskException.Io(r + " closed the connection without an answer to '" + line.split(" ")[0] + "'", null);
            if (reply.equals("error invalid-input not authorized")) throw new CaskException.Io(r + " refused this node's token", null);
            return reply;
        } catch (java.net.ConnectException e) {
            gone.accept(r);
            return null;
        } catch (java.net.SocketTimeoutException e) {
            throw new CaskException.Io(r + " did not answer '" + line.split(" ")[0] + "' in " + REMOTE_TIMEOUT_MS / 1000 + " s", e);
        } catch (IOException e) {
            throw new CaskException.Io(r + ": " + e.getMessage(), e);
        }
    }

    /** The version numbers of an in-use reply; an error reply throws the exception it names. */
    private static java.util.Set<Integer> versions(String image, String who, String reply) {
        if (reply.startsWith("error ")) throw error(reply.substring(6));
        if (!reply.equals("ok") && !reply.startsWith("ok ")) {
            throw new CaskException.InvalidInput("image '" + image + "': " + who + " answered '" + reply + "' to in-use");
        }
        java.util.Set<Integer> out = new java.util.TreeSet<>();
        for (String w : reply.substring(2).trim().split(" ")) {
            if (w.isEmpty()) continue;
            try {
                out.add(Integer.parseInt(w));
            } catch (NumberFormatException e) {
                throw new CaskException.InvalidInput("image '" + image + "': " + who + " answered '" + reply + "' to in-use");
            }
        }
        return out;
    }

    /**
     * The versions of {@code image} that the running servers of {@code storeDir} need kept (an
     * open volume's base, a read-only export's version): every server is asked, and the answers
     * are joined. A server that answers with an error makes this throw (nothing may be removed
     * on a guess); a dead server's socket is removed and it needs nothing.
     */
    public static java.util.Set<Integer> inUse(Path storeDir, String image) {
        java.util.Set<Integer> out = new java.util.TreeSet<>();
        for (Path p : sockets(storeDir)) {
            String reply = ask(p, "in-use " + image);
            if (reply == null) continue;
            out.addAll(versions(image, "server " + p, reply));
        }
        return out;
    }

    private static List<Path> sockets(Path storeDir) {
        try (Stream<Path> s = Files.list(storeDir)) {
            return s.filter(p -> p.getFileName().toString().startsWith(ControlServer.PREFIX)
                    && p.getFileName().toString().endsWith(ControlServer.SUFFIX)).toList();
        } catch (IOException e) {
            throw new CaskException.Io("store " + storeDir + ": cannot list control sockets: " + e.getMessage(), e);
        }
    }

    /** The word an error reply names {@code e}'s kind with. */
    static String kindOf(CaskException e) {
        return switch (e) {
            case CaskException.Conflict c -> "conflict";
            case CaskException.NotFound n -> "not-found";
            case CaskException.Corrupt c -> "corrupt";
            case CaskException.InvalidInput i -> "invalid-input";
            case CaskException.Io i -> "io";
            case CaskException.Unsupported u -> "unsupported";
            default -> "error";
        };
    }

    /** The exception an error reply's {@code KIND MESSAGE} stands for (a reply without a known kind: a plain CaskException). */
    static CaskException error(String kindAndMessage) {
        int sp = kindAndMessage.indexOf(' ');
        String kind = sp < 0 ? kindAndMessage : kindAndMessage.substring(0, sp);
        String message = sp < 0 ? "" : kindAndMessage.substring(sp + 1);
        return switch (kind) {
            case "conflict" -> new CaskException.Conflict(message);
            case "not-found" -> new CaskException.NotFound(message);
            case "corrupt" -> new CaskException.Corrupt(message);
            case "invalid-input" -> new CaskException.InvalidInput(message);
            case "io" -> new CaskException.Io(message, null);
            case "unsupported" -> new CaskException.Unsupported(message);
            case "error" -> new CaskException(message);
            default -> new CaskException(kindAndMessage); // a server that sends no kind
        };
    }

    /**
     * Sends a request to every server running on {@code storeDir} and returns the first reply
     * other than {@code not-open} (or {@code not-open}); null when no server answers. Sockets
     * of servers that died are removed.
     */
    public static String request(Path storeDir, String line) {
        List<Path> sockets;
        try {
            sockets = sockets(storeDir);
        } catch (CaskException.Io e) {
            return null;
        }
        String answer = null;
        for (Path p : sockets) {
            String reply = ask(p, line);
            if (reply == null) continue;
            if (!reply.equals("not-open")) return reply;
            answer = reply;
        }
        return answer;
    }

    /** What a server answered to a {@code gc} request: the server's pid and the result's fields. */
    public record Collected(long serverPid, java.util.Map<String, Object> fields) {}

    /**
     * Runs a collection in a running server of {@code storeDir} (the first whose socket answers;
     * see {@link ControlServer}'s gc request), showing its waits on {@code waiting} and its
     * phases on {@code progress}; {@code paced}: at the pace of the server's background gc; empty
     * when no server runs. An error reply throws the exception
     * it names; a server that dies or closes the connection mid-way throws Io.
     */
    public static java.util.Optional<Collected> gc(Path storeDir, boolean dryRun, boolean full, boolean paced,
                                                   java.util.function.Consumer<String> waiting, dev.cask.common.Progress progress) {
        List<Path> all;
        try {
            all = sockets(storeDir);
        } catch (CaskException.Io e) {
            return java.util.Optional.empty(); // no state directory: no server
        }
        for (Path p : all) {
            SocketChannel ch = connect(p);
            if (ch == null) continue;
            try (ch) {
                String request = "gc" + (dryRun ? " dry-run" : "") + (full ? " full" : "") + (paced ? " paced" : "");
                ch.write(java.nio.ByteBuffer.wrap((request + "\n").getBytes(StandardCharsets.UTF_8)));
                ch.shutdownOutput();
                BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
                for (String line; (line = in.readLine()) != null; ) {
                    if (line.equals(".")) continue;
                    if (line.startsWith("wait ")) waiting.accept(line.substring(5));
                    else if (line.startsWith("start ")) {
                        String[] w = line.split(" ", 4);
                        long total = Long.parseLong(w[2]);
                        String label = w.length > 3 ? w[3] : "";
                        if (w[1].equals("ITEMS")) progress.startItems(label, total);
                        else progress.start(label, total);
                    } else if (line.startsWith("advance ")) progress.advance(Long.parseLong(line.substring(8)));
                    else if (line.equals("done")) progress.done();
                    else if (line.equals("ok") || line.startsWith("ok ")) return java.util.Optional.of(new Collected(pidOf(p), fields(line.substring(2).trim())));
                    else if (line.startsWith("error ")) throw error(line.substring(6));
                    else throw new CaskException.InvalidInput("server " + p + " answered '" + line + "' to gc");
                }
                throw new CaskException.Io("server " + p + " closed the connection before its gc ended (did it stop?); run cask gc again", null);
            } catch (NumberFormatException e) {
                throw new CaskException.InvalidInput("server " + p + " sent a malformed gc event: " + e.getMessage());
            } catch (IOException e) {
                throw new CaskException.Io("server " + p + ": gc request failed: " + e.getMessage(), e);
            }
        }
        return java.util.Optional.empty();
    }

    private static long pidOf(Path socket) {
        String n = socket.getFileName().toString();
        try {
            return Long.parseLong(n.substring(ControlServer.PREFIX.length(), n.length() - ControlServer.SUFFIX.length()));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** {@code KEY=VALUE ...} as a map: true/false as booleans, numbers as Long or Double. */
    static java.util.Map<String, Object> fields(String words) {
        java.util.Map<String, Object> m = new java.util.LinkedHashMap<>();
        for (String w : words.split(" ")) {
            if (w.isEmpty()) continue;
            int eq = w.indexOf('=');
            if (eq <= 0) throw new NumberFormatException("'" + w + "' is not KEY=VALUE");
            String k = w.substring(0, eq), v = w.substring(eq + 1);
            boolean number = !v.isEmpty() && (Character.isDigit(v.charAt(0)) || v.charAt(0) == '-');
            m.put(k, v.equals("true") || v.equals("false") ? (Object) Boolean.valueOf(v)
                    : !number ? v // a word (the sweep's kind)
                    : v.contains(".") || v.contains("E") ? (Object) Double.valueOf(v) : (Object) Long.valueOf(v));
        }
        return m;
    }

    private static String ask(Path p, String line) {
        SocketChannel ch = connect(p);
        if (ch == null) return null;
        try (ch) {
            ch.write(java.nio.ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
            ch.shutdownOutput();
            return new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8)).readLine();
        } catch (IOException e) {
            return null;
        }
    }

    /** A connection to the server behind socket {@code p}; null when none answers (a socket nobody listens on is removed: its server died). */
    private static SocketChannel connect(Path p) {
        try {
            return SocketChannel.open(UnixDomainSocketAddress.of(p));
        } catch (java.net.ConnectException e) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException ignored) {
                // another process removed it
            }
            return null;
        } catch (IOException e) {
            return null;
        }
    }
}
