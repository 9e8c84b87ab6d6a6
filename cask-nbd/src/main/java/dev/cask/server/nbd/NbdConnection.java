package dev.cask.server.nbd;

import dev.cask.common.ByteArrays;
import dev.cask.common.DirectBuffers;
import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import dev.cask.device.Devices;

import java.io.EOFException;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;

import static dev.cask.server.nbd.NbdProtocol.*;

/**
 * One client, from the first handshake byte to the closed socket: fixed newstyle option
 * haggling, then the transmission phase, on the connection's own (virtual) thread.
 *
 * <p><b>What it owns.</b> The socket, the negotiated state (structured replies, the selected
 * metadata context, the export) and the {@link Export} it opened, which it releases exactly
 * once when it ends, however it ends. Nothing here is shared with other connections, so a
 * misbehaving client can only break its own connection.
 *
 * <p><b>Outside input.</b> Everything the client sends is checked before it is used: client
 * flags, option magic and lengths ({@link NbdProtocol#MAX_OPTION_LENGTH} at most), strings
 * (UTF-8, at most {@link NbdProtocol#MAX_STRING_BYTES}), every option parsed so it consumes
 * exactly its declared length, request magic, command, flags, range, alignment and length.
 * A refused option gets an {@code NBD_REP_ERR_*} reply with a message; a refused request gets
 * its error code (a structured error chunk with a message when structured replies were
 * negotiated). A WRITE is judged on its header; a refused one's payload is skipped, so the
 * stream stays in sync; a WRITE whose declared payload is over twice
 * {@link NbdProtocol#MAX_PAYLOAD} is treated as an attack and the connection is closed, as is
 * anything after which the stream cannot be trusted (bad magic, truncated input).
 *
 * <p><b>Threads.</b> The connection's thread runs the handshake, then reads requests in order
 * and judges each; a good one is served on a virtual thread of its own, at most
 * {@link #MAX_IN_FLIGHT} at a time, so a guest's parallel I/O on one connection is parallel
 * here too (the device must be thread-safe, as multi-conn requires anyway). A WRITE of more
 * than {@link #PIECE} bytes is the exception: the reader writes it to the device piece by piece
 * as it arrives. Replies go out under one lock, in the order requests finish, as the spec allows
 * (a streamed READ takes the lock once per chunk). While the server is closing, new requests are
 * answered {@code NBD_ESHUTDOWN}; those already accepted finish. FLUSH calls the
 * device's flush, which covers every write the device has completed, so every write already
 * replied to. When the reader stops (DISC, end of stream, bad magic), the requests in flight
 * are finished and answered before the export is released; nothing after DISC is read. A reply
 * that cannot be sent closes the connection.
 *
 * <p><b>Replies.</b> With structured replies a READ streams: each data chunk of at most
 * {@link #PIECE} bytes is read and sent before the next, and a device error halfway ends the
 * reply with an error chunk, so the client sees the READ fail, never wrong data. Without them
 * (or with DF) the data is read whole before the first reply byte goes out, so a device error
 * still becomes a clean error reply, never a torn one. In reads
 * of at least {@link #MIN_SPARSE_READ} bytes, holes
 * of at least {@link #MIN_HOLE_CHUNK} bytes (per the device's allocation map) go out as
 * {@code NBD_REPLY_TYPE_OFFSET_HOLE} chunks and everything else as
 * {@code NBD_REPLY_TYPE_OFFSET_DATA}, so a reply has at most one chunk per 4 KiB of request
 * and no more than 1% overhead. BLOCK_STATUS answers {@code base:allocation} with at most
 * {@link #MAX_DESCRIPTORS} descriptors. Successful commands other than READ and BLOCK_STATUS
 * get simple replies (allowed with structured replies); errors get structured error chunks
 * with a message when structured replies were negotiated.
 *
 * <p><b>Memory.</b> Sized for a thousand connections on a small heap: 16 KiB of wire buffers
 * each way, and a buffer per request in flight. Buffers up to {@link #SMALL_BUFFER} bytes are
 * just allocated (at most 16 x 64 KiB = 1 MiB per connection); larger ones come from the
 * server's {@link BufferBudget}, within this connection's fair share and at most
 * {@link #CONNECTION_BUDGET}. A request takes one buffer and never waits for a second while it
 * holds it (no deadlock), and most take at most one {@link #PIECE}: a WRITE over 1 MiB streams
 * through one piece, a structured READ reads into one piece per chunk; only READs with simple
 * replies (or DF) over 1 MiB need their whole length, up to {@link NbdProtocol#MAX_PAYLOAD}. A
 * WRITE's buffer is taken only once its first {@link Wire#BUFFER} bytes have arrived, so a
 * client that announces 32 MiB and sends one byte holds nothing but its wire buffers; one that
 * sends a little more holds one piece until the request timeout closes it. At most 16 pieces
 * plus the reader's one are in use per connection; the budget bounds them all together.
 *
 * <p><b>Stalls.</b> The server's watchdog reads {@link #stalledNanos}: how long a read of a
 * request already begun (header, payload, handshake) or a write of a reply has been blocked
 * on this client. Past the request timeout it calls {@link #timedOut}, which logs one line
 * naming the client's address and what it stalled in, and closes the socket; the blocked
 * threads then fail and give back their buffers.
 *
 * <p><b>Logging.</b> One line per refused option or request, device error and connection
 * error, naming the client and the values; after {@link #MAX_LOGGED_REFUSALS} refusals a
 * connection stops logging them and reports the count when it closes.
 */
final class NbdConnection implements Runnable {
    static final System.Logger LOG = System.getLogger(NbdServer.class.getName());

    static final int MIN_HOLE_CHUNK = 4096;
    /** Shorter reads go out as one data chunk: asking the allocation map costs more than their zeros. */
    static final int MIN_SPARSE_READ = 64 << 10;
    static final int MAX_DESCRIPTORS = 1 << 16;
    /** Requests in flight per connection (QEMU's client sends up to 16). */
    static final int MAX_IN_FLIGHT = 16;
    /** Buffers up to this size are allocated freely; larger ones come from the budgets. */
    static final int SMALL_BUFFER = 64 << 10;
    /** Large-buffer bytes one connection may hold at once (two maximum payloads), whatever its share. */
    static final int CONNECTION_BUDGET = 2 * MAX_PAYLOAD;
    /**
     * Large WRITE payloads are received, and READ replies with structured replies are read and
     * sent, in pieces of at most this many bytes: the buffer a request holds, whatever its length.
     */
    static final int PIECE = Wire.SLICE;
    static final int MAX_OPTIONS = 1 << 16;
    static final int MAX_LOGGED_REFUSALS = 100;
    /** The context id this server gives {@code base:allocation} in NBD_OPT_SET_META_CONTEXT. */
    static final int BASE_ALLOCATION_ID = 1;

    private final NbdServer server;
    /** Stamped at every request (see {@link NbdServer.Options#activity}). */
    private final dev.cask.common.ClientActivity activity;
    private final ExportResolver resolver;
    private final SocketChannel channel;
    private final Wire wire;
    private final String client;

    private boolean noZeroes;
    private boolean structured;
    private String metaContextExport; // export name base:allocation was selected for, or null
    private int options;

    private Export export;
    private String exportName;
    private ExportInfo info;
    private boolean metaContext;
    private final ReentrantLock sending = new ReentrantLock();
    private final Semaphore inFlight = new Semaphore(MAX_IN_FLIGHT);
    private final AtomicInteger serving = new AtomicInteger(); // requests accepted and not yet answered
    private volatile String receiving = "the handshake"; // what the reader is reading, for the stall log line
    private final AtomicInteger refusals = new AtomicInteger();
    private final AtomicBoolean broken = new AtomicBoolean(); // a reply could not be sent

    NbdConnection(NbdServer server, ExportResolver resolver, SocketChannel channel, String client) {
        this.server = server;
        this.activity = server.options().activity();
        this.resolver = resolver;
        this.channel = channel;
        this.wire = new Wire(channel);
        this.client = client;
    }

    String client() {
        return client;
    }

    SocketChannel channel() {
        return channel;
    }

    /** Requests accepted for service and not yet answered. */
    int serving() {
        return serving.get();
    }

    /** How long this connection's client has kept a read or a write of ours waiting (0: none is). */
    long stalledNanos(long now) {
        return wire.stalledNanos(now);
    }

    /** The watchdog found this client stalled past the request timeout: close the connection (its threads then give back what they hold). */
    void timedOut(long stalledNanos) {
        if (!broken.compareAndSet(false, true)) return;
        String r = receiving;
        long ms = stalledNanos / 1_000_000;
        long limit = server.options().requestTimeout().toMillis();
        String what = wire.reading() && r != null
                ? "no bytes from the client for " + ms + " ms (request timeout " + limit + " ms) in " + r
                : "the client took no reply bytes for " + ms + " ms (request timeout " + limit + " ms)";
        LOG.log(Level.WARNING, () -> where() + ": " + what + "; closing the connection");
        try {
            channel.close();
        } catch (IOException e) {
            // closing anyway
        }
    }

    @Override
    public void run() {
        try {
            if (handshake()) transmission();
        } catch (ClosedChannelException e) {
            if (!broken.get()) LOG.log(Level.DEBUG, () -> where() + ": connection closed by the server");
        } catch (EOFException e) {
            if (server.isClosing()) {
                LOG.log(Level.DEBUG, () -> where() + ": input shut by the server");
            } else {
                LOG.log(Level.WARNING, () -> where() + ": connection lost after " + wire.bytesIn() + " bytes: " + e.getMessage());
            }
        } catch (IOException e) {
            if (server.isClosing()) {
                LOG.log(Level.DEBUG, () -> where() + ": connection closed by the server: " + e);
            } else {
                LOG.log(Level.WARNING, () -> where() + ": connection error after " + wire.bytesIn() + " bytes: " + e);
            }
        } catch (RuntimeException | Error e) {
            LOG.log(Level.ERROR, where() + ": internal error, closing the connection: " + e, e);
        } finally {
            // requests still being served use the export: wait for them before releasing it
            inFlight.acquireUninterruptibly(MAX_IN_FLIGHT);
            inFlight.release(MAX_IN_FLIGHT);
            end();
        }
    }

    private void end() {
        if (refusals.get() > MAX_LOGGED_REFUSALS) {
            int n = refusals.get() - MAX_LOGGED_REFUSALS;
            LOG.log(Level.INFO, () -> where() + ": " + n + " further refused requests were not logged");
        }
        if (export != null) {
            ExportInfo in = info;
            LOG.log(Level.INFO, () -> client + ": disconnected from export '" + exportName + "' (" + (in != null && in.readOnly() ? "read-only" : "read-write")
                    + "; " + wire.bytesIn() + " bytes in)");
            try {
                export.release();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, where() + ": releasing the export failed: " + e, e);
            }
            export = null;
        }
        try {
            channel.close();
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> where() + ": close: " + e);
        }
        server.ended(this);
    }

    private String where() {
        return exportName == null ? client : client + " export '" + exportName + "'";
    }

    // ------------------------------------------------------------------ handshake

    /** Runs option haggling; true when the client entered the transmission phase. */
    private boolean handshake() throws IOException {
        wire.putLong(NBDMAGIC).putLong(IHAVEOPT).putShort(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES).flush();
        int clientFlags = wire.readInt();
        int known = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;
        if ((clientFlags & ~known) != 0) {
            LOG.log(Level.WARNING, () -> client + ": unknown client flags 0x" + Integer.toHexString(clientFlags)
                    + " (known 0x" + Integer.toHexString(known) + "); closing");
            return false;
        }
        noZeroes = (clientFlags & NBD_FLAG_C_NO_ZEROES) != 0;
        while (true) {
            long magic = wire.readLong();
            if (magic != IHAVEOPT) {
                LOG.log(Level.WARNING, () -> client + ": bad option magic 0x" + Long.toHexString(magic)
                        + ", expected 0x" + Long.toHexString(IHAVEOPT) + " (after " + (wire.bytesIn() - 8) + " bytes); closing");
                return false;
            }
            int option = wire.readInt();
            long length = Integer.toUnsignedLong(wire.readInt());
            if (++options > MAX_OPTIONS) {
                LOG.log(Level.WARNING, () -> client + ": more than " + MAX_OPTIONS + " options; closing");
                return false;
            }
            if (length > MAX_OPTION_LENGTH) {
                String why = optionName(option) + " with " + length + " bytes of data, more than the " + MAX_OPTION_LENGTH + " this server accepts";
                if (option != NBD_OPT_EXPORT_NAME) optionError(option, NBD_REP_ERR_TOO_BIG, why);
                else LOG.log(Level.WARNING, () -> client + ": " + why);
                wire.flush();
                LOG.log(Level.WARNING, () -> client + ": closing after an oversize option");
                return false;
            }
            byte[] data = new byte[(int) length];
            wire.readFully(data, 0, data.length);
            switch (option) {
                case NBD_OPT_EXPORT_NAME -> {
                    return exportName(data);
                }
                case NBD_OPT_ABORT -> {
                    reply(option, NBD_REP_ACK, null);
                    wire.flush();
                    LOG.log(Level.DEBUG, () -> client + ": NBD_OPT_ABORT");
                    return false;
                }
                case NBD_OPT_LIST -> list(data);
                case NBD_OPT_INFO, NBD_OPT_GO -> {
                    if (infoOrGo(option, data)) return true;
                }
                case NBD_OPT_STRUCTURED_REPLY -> {
                    if (data.length != 0) {
                        optionError(option, NBD_REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data, got " + data.length + " bytes");
                    } else {
                        structured = true;
                        reply(option, NBD_REP_ACK, null);
                    }
                }
                case NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT -> metaContext(option, data);
                case NBD_OPT_STARTTLS -> optionError(option, NBD_REP_ERR_UNSUP, "this server does not support TLS");
                default -> optionError(option, NBD_REP_ERR_UNSUP, optionName(option) + " is not supported");
            }
            wire.flush();
        }
    }

    private void reply(int option, int type, byte[] data) throws IOException {
        wire.putLong(NBD_REP_MAGIC).putInt(option).putInt(type).putInt(data == null ? 0 : data.length);
        if (data != null) wire.put(data);
    }

    private void optionError(int option, int type, String message) throws IOException {
        if (refused()) {
            // clients probe for options (TLS, extended headers): an unsupported one is routine
            Level level = type == NBD_REP_ERR_UNSUP ? Level.DEBUG : Level.INFO;
            LOG.log(level, () -> client + ": " + optionName(option) + " refused with " + repName(type) + ": " + message);
        }
        reply(option, type, truncate(utf8(message)));
    }

    private boolean exportName(byte[] data) throws IOException {
        String name = string(data, 0, data.length, "export name");
        if (name == null) {
            LOG.log(Level.WARNING, () -> client + ": NBD_OPT_EXPORT_NAME with an invalid name of " + data.length + " bytes; closing");
            return false;
        }
        Opened opened = open(name);
        if (opened.error() != null) {
            LOG.log(Level.WARNING, () -> client + ": NBD_OPT_EXPORT_NAME '" + name + "' refused: " + opened.error() + "; closing");
            return false;
        }
        ExportInfo in = opened.info();
        wire.putLong(in.size()).putShort(in.flags());
        if (!noZeroes) wire.zeros(124);
        wire.flush();
        enter(name, opened.export(), in);
        return true;
    }

    private void list(byte[] data) throws IOException {
        if (data.length != 0) {
            optionError(NBD_OPT_LIST, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data, got " + data.length + " bytes");
            return;
        }
        List<String> names;
        try {
            names = resolver.list();
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, () -> client + ": NBD_OPT_LIST: listing exports failed: " + e);
            reply(NBD_OPT_LIST, NBD_REP_ERR_POLICY, truncate(utf8("cannot list exports: " + e.getMessage())));
            return;
        }
        for (String name : names) {
            byte[] n = utf8(name);
            if (n.length > MAX_STRING_BYTES) continue; // a client could not ask for it anyway
            String description;
            try {
                description = resolver.description(name);
            } catch (RuntimeException e) {
                description = "";
            }
            byte[] d = truncate(utf8(description == null ? "" : description));
            ByteBuffer b = ByteBuffer.allocate(4 + n.length + d.length);
            b.putInt(n.length).put(n).put(d);
            reply(NBD_OPT_LIST, NBD_REP_SERVER, b.array());
        }
        reply(NBD_OPT_LIST, NBD_REP_ACK, null);
    }

    /** NBD_OPT_INFO and NBD_OPT_GO; true when GO succeeded and transmission begins. */
    private boolean infoOrGo(int option, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(data);
        String opt = optionName(option);
        if (data.length < 6) {
            optionError(option, NBD_REP_ERR_INVALID, opt + " with " + data.length + " bytes of data, at least 6 needed");
            return false;
        }
        long nameLength = Integer.toUnsignedLong(b.getInt());
        if (nameLength > data.length - 6) {
            optionError(option, NBD_REP_ERR_INVALID, opt + ": export name length " + nameLength + " exceeds the option's " + data.length + " bytes");
            return false;
        }
        String name = string(data, 4, (int) nameLength, "export name");
        if (name == null) {
            optionError(option, NBD_REP_ERR_INVALID, opt + ": export name of " + nameLength + " bytes is not a valid string (UTF-8, no NUL, at most " + MAX_STRING_BYTES + " bytes)");
            return false;
        }
        b.position(4 + (int) nameLength);
        int requests = b.getShort() & 0xffff;
        if (b.remaining() != 2 * requests) {
            optionError(option, NBD_REP_ERR_INVALID, opt + ": " + requests + " information requests need " + 2 * requests
                    + " bytes, " + b.remaining() + " left in the option");
            return false;
        }
        boolean wantName = false;
        boolean wantDescription = false;
        for (int i = 0; i < requests; i++) {
            int type = b.getShort() & 0xffff;
            if (type == NBD_INFO_NAME) wantName = true;
            if (type == NBD_INFO_DESCRIPTION) wantDescription = true;
            // NBD_INFO_EXPORT and NBD_INFO_BLOCK_SIZE are always sent; unknown requests are ignored
        }
        assert !b.hasRemaining();

        boolean go = option == NBD_OPT_GO;
        // INFO only describes: the resolver answers without opening the export for I/O (an image
        // is not opened read-write, nor its journal touched, for nbdinfo --list)
        Opened opened = go ? open(name) : describe(name);
        if (opened.error() != null) {
            optionError(option, opened.errorType(), opened.error());
            return false;
        }
        Export e = opened.export();
        ExportInfo in = opened.info();
        try {
            info(option, ByteBuffer.allocate(12).putShort((short) NBD_INFO_EXPORT).putLong(in.size()).putShort((short) in.flags()));
            if (wantName) {
                byte[] n = utf8(in.canonicalName() == null ? name : in.canonicalName());
                info(option, ByteBuffer.allocate(2 + n.length).putShort((short) NBD_INFO_NAME).put(n));
            }
            if (wantDescription && !in.description().isEmpty()) {
                byte[] d = truncate(utf8(in.description()));
                info(option, ByteBuffer.allocate(2 + d.length).putShort((short) NBD_INFO_DESCRIPTION).put(d));
            }
            info(option, ByteBuffer.allocate(14).putShort((short) NBD_INFO_BLOCK_SIZE)
                    .putInt(in.minBlockSize()).putInt(in.preferredBlockSize()).putInt(in.maxPayload()));
            // INFO lets go of the export before its ACK: a client that sees the ACK finds it released
            if (!go) e.release();
            reply(option, NBD_REP_ACK, null);
            wire.flush();
        } catch (IOException | RuntimeException x) {
            if (go) e.release();
            throw x;
        }
        if (!go) return false;
        enter(name, e, in);
        return true;
    }

    private void info(int option, ByteBuffer b) throws IOException {
        reply(option, NBD_REP_INFO, b.array());
    }

    private void metaContext(int option, byte[] data) throws IOException {
        boolean set = option == NBD_OPT_SET_META_CONTEXT;
        String opt = optionName(option);
        if (set) metaContextExport = null; // replaced even when this request fails
        if (!structured) {
            optionError(option, NBD_REP_ERR_INVALID, opt + " before NBD_OPT_STRUCTURED_REPLY");
            return;
        }
        ByteBuffer b = ByteBuffer.wrap(data);
        if (b.remaining() < 8) {
            optionError(option, NBD_REP_ERR_INVALID, opt + " with " + data.length + " bytes of data, at least 8 needed");
            return;
        }
        long nameLength = Integer.toUnsignedLong(b.getInt());
        if (nameLength > b.remaining() - 4) {
            optionError(option, NBD_REP_ERR_INVALID, opt + ": export name length " + nameLength + " exceeds the option's " + data.length + " bytes");
            return;
        }
        String name = string(data, 4, (int) nameLength, "export name");
        if (name == null) {
            optionError(option, NBD_REP_ERR_INVALID, opt + ": export name of " + nameLength + " bytes is not a valid string");
            return;
        }
        b.position(4 + (int) nameLength);
        long queries = Integer.toUnsignedLong(b.getInt());
        if (queries > b.remaining() / 4) {
            optionError(option, NBD_REP_ERR_INVALID, opt + ": " + queries + " queries cannot fit in the " + b.remaining() + " bytes left");
            return;
        }
        boolean baseAllocation = !set && queries == 0;
        for (long i = 0; i < queries; i++) {
            if (b.remaining() < 4) {
                optionError(option, NBD_REP_ERR_INVALID, opt + ": query " + i + " of " + queries + " is missing");
                return;
            }
            long length = Integer.toUnsignedLong(b.getInt());
            if (length > b.remaining()) {
                optionError(option, NBD_REP_ERR_INVALID, opt + ": query " + i + " length " + length + " exceeds the " + b.remaining() + " bytes left");
                return;
            }
            String query = string(data, b.position(), (int) length, "query");
            if (query == null) {
                optionError(option, NBD_REP_ERR_INVALID, opt + ": query " + i + " of " + length + " bytes is not a valid string");
                return;
            }
            b.position(b.position() + (int) length);
            // unknown namespaces and leaf names are ignored, as the spec requires; "base:" is a
            // wildcard when listing and selects nothing when setting
            if (query.equals(BASE_ALLOCATION) || (!set && query.equals("base:"))) baseAllocation = true;
        }
        if (b.hasRemaining()) {
            optionError(option, NBD_REP_ERR_INVALID, opt + ": " + b.remaining() + " bytes after the last query");
            return;
        }
        if (baseAllocation) {
            byte[] n = utf8(BASE_ALLOCATION);
            reply(option, NBD_REP_META_CONTEXT, ByteBuffer.allocate(4 + n.length).putInt(set ? BASE_ALLOCATION_ID : 0).put(n).array());
        }
        if (set && baseAllocation) metaContextExport = name;
        reply(option, NBD_REP_ACK, null);
    }

    /** An export opened for a client, or why not. */
    private record Opened(Export export, ExportInfo info, int errorType, String error) {}

    private Opened open(String name) {
        return open(name, false);
    }

    /** As {@link #open(String)}, through {@link ExportResolver#describe}: for NBD_OPT_INFO. */
    private Opened describe(String name) {
        return open(name, true);
    }

    private Opened open(String name, boolean describeOnly) {
        Export e;
        try {
            e = describeOnly ? resolver.describe(name) : resolver.open(name);
        } catch (CaskException.NotFound x) {
            return new Opened(null, null, NBD_REP_ERR_UNKNOWN, x.getMessage());
        } catch (CaskException.InvalidInput x) {
            return new Opened(null, null, NBD_REP_ERR_INVALID, x.getMessage());
        } catch (CaskException.Conflict x) {
            return new Opened(null, null, NBD_REP_ERR_POLICY, x.getMessage());
        } catch (RuntimeException x) {
            LOG.log(Level.WARNING, () -> client + ": opening export '" + name + "' failed: " + x);
            return new Opened(null, null, NBD_REP_ERR_UNKNOWN, "export '" + name + "' cannot be opened: " + x.getMessage());
        }
        if (e == null) return new Opened(null, null, NBD_REP_ERR_UNKNOWN, "no export '" + name + "'");
        try {
            return new Opened(e, ExportInfo.of(e, structured), 0, null);
        } catch (RuntimeException x) {
            e.release();
            LOG.log(Level.WARNING, () -> client + ": export '" + name + "' cannot be served: " + x.getMessage());
            return new Opened(null, null, NBD_REP_ERR_UNKNOWN, "export '" + name + "' cannot be served: " + x.getMessage());
        }
    }

    private void enter(String name, Export e, ExportInfo in) {
        this.export = e;
        this.exportName = name;
        this.info = in;
        this.metaContext = structured && name.equals(metaContextExport);
        LOG.log(Level.INFO, () -> client + ": connected to export '" + name + "' (" + (in.readOnly() ? "read-only" : "read-write")
                + ", " + in.size() + " bytes)");
        LOG.log(Level.DEBUG, () -> where() + ": serving " + in.size() + " bytes, flags 0x" + Integer.toHexString(in.flags())
                + (structured ? ", structured replies" : "") + (metaContext ? ", base:allocation" : ""));
    }

    // ------------------------------------------------------------------ transmission

    private record Request(int flags, int type, long cookie, long offset, long length) {
        boolean has(int flag) {
            return (flags & flag) != 0;
        }

        @Override
        public String toString() {
            return commandName(type) + " of " + length + " bytes at offset " + Long.toUnsignedString(offset)
                    + (flags == 0 ? "" : " (flags 0x" + Integer.toHexString(flags) + ")");
        }
    }

    /** Why a request is refused: the NBD error, a message for the client and the log, and whether it was logged already. */
    private record Refusal(int error, String message, boolean logged) {
        Refusal(int error, String message) {
            this(error, message, false);
        }
    }

    /**
     * The reader: takes requests off the wire in order, refuses the bad ones at once, and hands
     * each good one to a virtual thread of its own (at most {@link #MAX_IN_FLIGHT} at a time).
     * A WRITE's header is judged before its payload is read; a refused one's payload is skipped,
     * so the stream stays in sync. A WRITE of more than one {@link #PIECE} is served here, on the
     * reader, piece by piece as its payload arrives (see {@link #streamWrite}). Replies go out
     * under {@link #sending}, in whatever order requests finish, as the spec allows; a client that
     * needs order waits for the reply. Once the server is closing, each new request is answered
     * {@code NBD_ESHUTDOWN}. Returns when the client disconnects or the stream cannot be
     * trusted; {@link #run()} then waits for the requests still in flight.
     */
    private void transmission() throws IOException {
        while (!broken.get()) {
            receiving = null;
            if (!wire.awaitMessage()) {
                LOG.log(Level.DEBUG, () -> where() + ": client closed the connection without NBD_CMD_DISC");
                return;
            }
            receiving = "a request header";
            int magic = wire.readInt();
            if (magic != NBD_REQUEST_MAGIC) {
                LOG.log(Level.WARNING, () -> where() + ": bad request magic 0x" + Integer.toHexString(magic) + ", expected 0x"
                        + Integer.toHexString(NBD_REQUEST_MAGIC) + " (after " + (wire.bytesIn() - 4) + " bytes); closing");
                return;
            }
            Request r = new Request(wire.readShort(), wire.readShort(), wire.readLong(), wire.readLong(),
                    Integer.toUnsignedLong(wire.readInt()));
            activity.request();
            if (r.type() == NBD_CMD_DISC) {
                LOG.log(Level.DEBUG, () -> where() + ": NBD_CMD_DISC");
                return; // run() serves what is in flight, then closes; nothing after DISC is read
            }
            boolean write = r.type() == NBD_CMD_WRITE;
            if (write) receiving = "the payload of " + r;
            if (write && r.length() > 2L * MAX_PAYLOAD) {
                LOG.log(Level.WARNING, () -> where() + ": " + r + ": payload over twice the maximum of " + MAX_PAYLOAD + " bytes; closing");
                return;
            }
            Refusal refusal;
            if (server.isClosing()) {
                refusal = new Refusal(NBD_ESHUTDOWN, r + ": the server is shutting down", true);
                server.refusedWhileClosing();
            } else if (write && r.length() > info.maxPayload()) {
                refusal = new Refusal(NBD_EINVAL, r + ": payload exceeds the maximum of " + info.maxPayload() + " bytes");
            } else {
                refusal = check(r);
            }
            if (refusal != null) {
                if (write) wire.skip(r.length()); // keeps the stream in sync
                send(r, refusal);
                continue;
            }
            if (write && r.length() > PIECE) {
                serving.incrementAndGet();
                try {
                    streamWrite(r);
                } finally {
                    answered();
                }
                continue;
            }
            byte[] payload = null;
            int borrowed = 0;
            if (write) {
                int length = (int) r.length();
                if (length > SMALL_BUFFER) wire.awaitBytes(length); // no buffer for a client that announces a payload and stops
                borrowed = borrow(length);
                try {
                    payload = ByteArrays.take(length); // may be longer; only r.length() bytes are used
                    wire.readFully(payload, 0, length);
                } catch (IOException | RuntimeException e) {
                    ByteArrays.give(payload);
                    giveBack(borrowed);
                    throw e;
                }
            }
            inFlight.acquireUninterruptibly();
            serving.incrementAndGet();
            byte[] data = payload;
            int held = borrowed;
            try {
                Thread.ofVirtual().name(client + " " + commandName(r.type())).start(() -> task(r, data, held));
            } catch (RuntimeException | Error e) {
                answered();
                inFlight.release();
                ByteArrays.give(data);
                giveBack(held);
                throw e;
            }
        }
    }

    /** A request accepted for service has been answered (or its connection lost). */
    private void answered() {
        if (server.isClosing()) server.finishedWhileClosing(); // counted before close() can see nothing in flight
        serving.decrementAndGet();
    }

    /** One request on its own thread: serve, reply, give back what it held. */
    private void task(Request r, byte[] payload, int borrowed) {
        try {
            serve(r, payload);
        } catch (IOException e) {
            lost(r, e);
        } catch (RuntimeException | Error e) {
            LOG.log(Level.ERROR, where() + ": " + r + ": internal error, closing the connection: " + e, e);
            lost(r, null);
        } finally {
            ByteArrays.give(payload); // the device copied what it keeps
            giveBack(borrowed);
            answered();
            inFlight.release();
        }
    }

    /**
     * A WRITE of more than one {@link #PIECE}, on the reader: each piece of the payload goes to
     * the device as soon as it has arrived, through one buffer of one piece, taken from the
     * budgets only once the payload has started to arrive. A device error is remembered, the rest
     * of the payload read and dropped (the stream stays in sync) and the error sent; a connection
     * lost halfway leaves the pieces written so far written, as a crash would (the client got no
     * reply, so it cannot count on either). With FUA the device is flushed after the last piece,
     * which makes every piece durable before the reply.
     */
    private void streamWrite(Request r) throws IOException {
        long length = r.length();
        wire.awaitBytes(PIECE); // nothing is set aside for a client that announces a payload and stops
        int borrowed = borrow(PIECE);
        byte[] buf = ByteArrays.take(PIECE);
        RuntimeException failed = null;
        try {
            BlockDevice device = export.device();
            for (long done = 0; done < length; ) {
                int n = (int) Math.min(PIECE, length - done);
                wire.readFully(buf, 0, n);
                if (failed == null) {
                    try {
                        device.write(r.offset() + done, buf, 0, n, false);
                    } catch (RuntimeException e) {
                        failed = e;
                    }
                }
                done += n;
            }
            receiving = null;
            if (failed == null && r.has(NBD_CMD_FLAG_FUA)) {
                try {
                    device.flush();
                } catch (RuntimeException e) {
                    failed = e;
                }
            }
        } finally {
            ByteArrays.give(buf);
            giveBack(borrowed);
        }
        if (failed != null) {
            send(r, deviceError(r, failed));
            return;
        }
        sending.lock();
        try {
            simpleReply(r.cookie(), 0);
            flushUnlessQueued();
        } finally {
            sending.unlock();
        }
    }

    /** A reply could not be sent (or was torn): the stream is lost, close it; the reader then stops. */
    private void lost(Request r, IOException e) {
        if (broken.compareAndSet(false, true) && e != null && !server.isClosing()) {
            LOG.log(Level.WARNING, () -> where() + ": connection lost while replying to " + r + ": " + e);
        }
        try {
            channel.close();
        } catch (IOException x) {
            // closing anyway
        }
    }

    /** Takes what a buffer of {@code length} bytes needs from the budget; returns what to give back. */
    private int borrow(int length) {
        if (length <= SMALL_BUFFER) return 0;
        server.budget().take(this, length);
        return length;
    }

    private void giveBack(int borrowed) {
        if (borrowed > 0) server.budget().give(this, borrowed);
    }

    private Refusal check(Request r) {
        Capabilities caps = info.capabilities();
        int tflags = info.flags();
        int type = r.type();
        switch (type) {
            case NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_TRIM, NBD_CMD_CACHE, NBD_CMD_WRITE_ZEROES, NBD_CMD_BLOCK_STATUS -> {}
            default -> {
                return new Refusal(NBD_EINVAL, r + ": unknown command");
            }
        }
        boolean writes = type == NBD_CMD_WRITE || type == NBD_CMD_TRIM || type == NBD_CMD_WRITE_ZEROES;
        if (writes && info.readOnly()) return new Refusal(NBD_EPERM, r + ": the export is read-only");
        int known = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF | NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO;
        if ((r.flags() & ~known) != 0) return new Refusal(NBD_EINVAL, r + ": unknown flags 0x" + Integer.toHexString(r.flags() & ~known));
        if (r.has(NBD_CMD_FLAG_FUA) && (tflags & NBD_FLAG_SEND_FUA) == 0) return new Refusal(NBD_EINVAL, r + ": FUA was not offered");
        if (r.has(NBD_CMD_FLAG_NO_HOLE) && type != NBD_CMD_WRITE_ZEROES) return new Refusal(NBD_EINVAL, r + ": NO_HOLE is only for WRITE_ZEROES");
        if (r.has(NBD_CMD_FLAG_FAST_ZERO) && type != NBD_CMD_WRITE_ZEROES) return new Refusal(NBD_EINVAL, r + ": FAST_ZERO is only for WRITE_ZEROES");
        if (r.has(NBD_CMD_FLAG_DF) && (type != NBD_CMD_READ || !structured)) return new Refusal(NBD_EINVAL, r + ": DF is only for READ with structured replies");
        if (r.has(NBD_CMD_FLAG_REQ_ONE) && type != NBD_CMD_BLOCK_STATUS) return new Refusal(NBD_EINVAL, r + ": REQ_ONE is only for BLOCK_STATUS");
        if (type == NBD_CMD_FLUSH && (tflags & NBD_FLAG_SEND_FLUSH) == 0) return new Refusal(NBD_EINVAL, r + ": FLUSH was not offered");
        if (type == NBD_CMD_TRIM && (tflags & NBD_FLAG_SEND_TRIM) == 0) return new Refusal(NBD_EINVAL, r + ": TRIM was not offered");
        if (type == NBD_CMD_WRITE_ZEROES && (tflags & NBD_FLAG_SEND_WRITE_ZEROES) == 0) return new Refusal(NBD_EINVAL, r + ": WRITE_ZEROES was not offered");
        if (type == NBD_CMD_BLOCK_STATUS && !metaContext) {
            return new Refusal(NBD_EINVAL, r + ": no metadata context was selected for this export");
        }
        if (type == NBD_CMD_FLUSH) {
            if (r.offset() != 0 || r.length() != 0) return new Refusal(NBD_EINVAL, r + ": offset and length must be zero");
            return null;
        }
        long size = info.size();
        if (r.offset() < 0 || r.offset() > size || r.length() > size - r.offset()) {
            boolean write = type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES;
            return new Refusal(write ? NBD_ENOSPC : NBD_EINVAL, r + ": beyond the end of the export (" + size + " bytes)");
        }
        long min = info.minBlockSize();
        if (min > 1 && (r.offset() % min != 0 || (r.length() % min != 0 && r.offset() + r.length() != size))) {
            return new Refusal(NBD_EINVAL, r + ": not aligned to the minimum block size of " + min + " bytes");
        }
        if (type == NBD_CMD_READ && r.length() > info.maxPayload()) {
            return new Refusal(NBD_EINVAL, r + ": exceeds the maximum payload of " + info.maxPayload() + " bytes");
        }
        if (type == NBD_CMD_BLOCK_STATUS && r.length() == 0) return new Refusal(NBD_EINVAL, r + ": zero length");
        if (type == NBD_CMD_WRITE_ZEROES && r.has(NBD_CMD_FLAG_FAST_ZERO) && !caps.fastZero()) {
            return new Refusal(NBD_ENOTSUP, r + ": the device cannot write zeroes faster than data");
        }
        return null;
    }

    private void serve(Request r, byte[] payload) throws IOException {
        BlockDevice device = export.device();
        Capabilities caps = info.capabilities();
        try {
            switch (r.type()) {
                case NBD_CMD_READ -> {
                    read(r, device, caps);
                    return;
                }
                case NBD_CMD_WRITE -> {
                    if (r.length() > 0) device.write(r.offset(), payload, 0, (int) r.length(), r.has(NBD_CMD_FLAG_FUA) && caps.fua());
                }
                case NBD_CMD_FLUSH -> device.flush();
                case NBD_CMD_TRIM -> {
                    if (r.length() > 0) {
                        device.trim(r.offset(), r.length());
                        if (r.has(NBD_CMD_FLAG_FUA)) device.flush();
                    }
                }
                case NBD_CMD_WRITE_ZEROES -> {
                    if (r.length() > 0) device.zero(r.offset(), r.length(), r.has(NBD_CMD_FLAG_FUA) && caps.fua());
                }
                case NBD_CMD_CACHE -> {
                    // a hint; the volume layer caches on read
                }
                case NBD_CMD_BLOCK_STATUS -> {
                    blockStatus(r, device, caps);
                    return;
                }
                default -> throw new AssertionError(r);
            }
        } catch (RuntimeException e) {
            send(r, deviceError(r, e));
            return;
        }
        sending.lock();
        try {
            simpleReply(r.cookie(), 0);
            flushUnlessQueued();
        } finally {
            sending.unlock();
        }
    }

    /**
     * Sends the queued replies, unless another request's reply is waiting for the sending lock:
     * that one will send ours with its own (the last in a burst always flushes; nothing cancels
     * a wait for the lock). At queue depth 32, one system call then carries several replies.
     * Caller holds {@link #sending}.
     */
    private void flushUnlessQueued() throws IOException {
        if (!sending.hasQueuedThreads()) wire.flush();
    }

    /** Maps a device exception to an NBD error, with one log line. */
    private Refusal deviceError(Request r, RuntimeException e) {
        int error;
        switch (e) {
            case CaskException.Io io when noSpace(io) -> error = NBD_ENOSPC;
            case CaskException.Corrupt x -> error = NBD_EIO;
            case CaskException.Io x -> error = NBD_EIO;
            case CaskException.InvalidInput x -> error = NBD_EINVAL;
            case IllegalArgumentException x -> error = NBD_EINVAL;
            case UnsupportedOperationException x -> error = NBD_EPERM;
            default -> error = NBD_EIO;
        }
        String message = r + ": " + errorName(error) + ": " + e.getMessage();
        if (e instanceof CaskException) {
            LOG.log(Level.WARNING, () -> where() + ": " + message);
        } else {
            LOG.log(Level.ERROR, where() + ": " + message, e); // a device broke its contract: keep the stack
        }
        return new Refusal(error, message, true);
    }

    private static boolean noSpace(CaskException e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m != null && m.contains("No space left on device")) return true;
        }
        return false;
    }

    /**
     * READ. With structured replies (and without DF) the reply streams: the range is cut into
     * holes (per the allocation map, for reads of at least {@link #MIN_SPARSE_READ} bytes) and
     * data parts of at most {@link #PIECE} bytes; each data part is read into one piece-sized
     * buffer and sent as its own chunk before the next is read, so a 32 MiB read holds 1 MiB, and
     * other replies may go out between its chunks (the spec allows interleaving). A device error
     * halfway becomes an error chunk that ends the reply: the client sees the READ fail, never
     * wrong data. Without structured replies (or with DF) the data must go out as one block after
     * a header that already says "no error", so it is read whole first, as before.
     */
    private void read(Request r, BlockDevice device, Capabilities caps) throws IOException {
        int len = (int) r.length();
        if (!structured || r.has(NBD_CMD_FLAG_DF) || len == 0) {
            readWhole(r, device);
            return;
        }
        List<BlockStatus> parts;
        try {
            parts = len < MIN_SPARSE_READ || !caps.extents()
                    ? List.of(new BlockStatus(r.offset(), len, false))
                    : segments(r.offset(), len, device.blockStatus(r.offset(), len));
        } catch (RuntimeException e) {
            send(r, deviceError(r, e));
            return;
        }
        parts = pieces(parts);
        int biggest = 0;
        for (BlockStatus p : parts) if (!p.hole()) biggest = Math.max(biggest, (int) p.length());
        int borrowed = biggest == 0 ? 0 : borrow(biggest);
        // pooled: every byte sent from it is read into it first. Large pieces are read into a direct
        // buffer, which the socket sends without the JDK's copy of a heap array into one of its own
        boolean direct = biggest >= DirectBuffers.MIN;
        byte[] buf = biggest == 0 || direct ? null : ByteArrays.take(biggest);
        java.nio.ByteBuffer dbuf = direct ? DirectBuffers.take(biggest) : null;
        try {
            for (int i = 0; i < parts.size(); i++) {
                BlockStatus p = parts.get(i);
                int flags = i == parts.size() - 1 ? NBD_REPLY_FLAG_DONE : 0;
                if (!p.hole()) {
                    try {
                        if (direct) device.read(p.offset(), dbuf, 0, (int) p.length());
                        else device.read(p.offset(), buf, 0, (int) p.length());
                    } catch (RuntimeException e) {
                        send(r, deviceError(r, e)); // ends the reply: the client discards the chunks before it
                        return;
                    }
                }
                sending.lock();
                try {
                    if (p.hole()) {
                        chunkHeader(flags, NBD_REPLY_TYPE_OFFSET_HOLE, r.cookie(), 12);
                        wire.putLong(p.offset()).putInt((int) p.length());
                    } else {
                        chunkHeader(flags, NBD_REPLY_TYPE_OFFSET_DATA, r.cookie(), 8 + (int) p.length());
                        wire.putLong(p.offset());
                        if (direct) wire.put(dbuf, (int) p.length());
                        else wire.put(buf, 0, (int) p.length());
                    }
                    flushUnlessQueued();
                } finally {
                    sending.unlock();
                }
            }
        } finally {
            ByteArrays.give(buf);
            DirectBuffers.give(dbuf);
            giveBack(borrowed);
        }
    }

    /** Cuts data segments into parts of at most {@link #PIECE} bytes; holes stay whole. */
    static List<BlockStatus> pieces(List<BlockStatus> segments) {
        List<BlockStatus> out = new ArrayList<>();
        for (BlockStatus s : segments) {
            if (s.hole() || s.length() <= PIECE) {
                out.add(s);
                continue;
            }
            for (long off = s.offset(); off < s.end(); off += PIECE) {
                out.add(new BlockStatus(off, Math.min(PIECE, s.end() - off), false));
            }
        }
        return out;
    }

    /** A READ whose data goes out as one block: read it all, then send it (nothing can fail in between). */
    private void readWhole(Request r, BlockDevice device) throws IOException {
        int len = (int) r.length();
        int borrowed = borrow(len);
        byte[] buf = null;
        try {
            try {
                buf = ByteArrays.take(len);
                if (len > 0) device.read(r.offset(), buf, 0, len);
            } catch (RuntimeException e) {
                send(r, deviceError(r, e));
                return;
            }
            sending.lock();
            try {
                if (!structured) {
                    simpleReply(r.cookie(), 0);
                    wire.put(buf, 0, len);
                } else if (len == 0) {
                    chunkHeader(NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, r.cookie(), 0);
                } else {
                    chunkHeader(NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA, r.cookie(), 8 + len);
                    wire.putLong(r.offset()).put(buf, 0, len);
                }
                flushUnlessQueued();
            } finally {
                sending.unlock();
            }
        } finally {
            ByteArrays.give(buf);
            giveBack(borrowed);
        }
    }

    /**
     * Turns a device's allocation map of {@code [offset, offset+length)} into read chunks:
     * holes shorter than {@link #MIN_HOLE_CHUNK} are folded into data, adjacent data merged.
     * Throws IllegalStateException if the map does not cover the range exactly.
     */
    static List<BlockStatus> segments(long offset, long length, List<BlockStatus> map) {
        checkMap(offset, length, map);
        List<BlockStatus> out = new ArrayList<>();
        for (BlockStatus s : map) {
            boolean hole = s.hole() && s.length() >= MIN_HOLE_CHUNK;
            BlockStatus seg = new BlockStatus(s.offset(), s.length(), hole);
            if (!out.isEmpty() && out.getLast().hole() == hole) {
                BlockStatus last = out.removeLast();
                seg = new BlockStatus(last.offset(), last.length() + seg.length(), hole);
            }
            out.add(seg);
        }
        return out;
    }

    private static void checkMap(long offset, long length, List<BlockStatus> map) {
        long pos = offset;
        for (BlockStatus s : map) {
            if (s.offset() != pos) {
                throw new IllegalStateException("allocation map of " + offset + "+" + length + " has an entry at " + s.offset() + ", expected " + pos);
            }
            pos = s.end();
        }
        if (pos != offset + length) {
            throw new IllegalStateException("allocation map of " + offset + "+" + length + " ends at " + pos);
        }
    }

    private void blockStatus(Request r, BlockDevice device, Capabilities caps) throws IOException {
        List<BlockStatus> map;
        try {
            if (caps.extents()) {
                map = Devices.coalesce(device.blockStatus(r.offset(), r.length()));
                checkMap(r.offset(), r.length(), map);
            } else {
                map = List.of(new BlockStatus(r.offset(), r.length(), false));
            }
        } catch (RuntimeException e) {
            send(r, deviceError(r, e));
            return;
        }
        int n = r.has(NBD_CMD_FLAG_REQ_ONE) ? 1 : Math.min(map.size(), MAX_DESCRIPTORS);
        sending.lock();
        try {
            chunkHeader(NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, r.cookie(), 4 + 8 * n);
            wire.putInt(BASE_ALLOCATION_ID);
            for (int i = 0; i < n; i++) {
                BlockStatus s = map.get(i);
                // each entry is inside the request, whose length fits in 32 bits
                wire.putInt((int) s.length()).putInt(s.hole() ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0);
            }
            flushUnlessQueued();
        } finally {
            sending.unlock();
        }
    }

    private void simpleReply(long cookie, int error) throws IOException {
        wire.putInt(NBD_SIMPLE_REPLY_MAGIC).putInt(error).putLong(cookie);
    }

    private void chunkHeader(int flags, int type, long cookie, int length) throws IOException {
        wire.putInt(NBD_STRUCTURED_REPLY_MAGIC).putShort(flags).putShort(type).putLong(cookie).putInt(length);
    }

    /** Sends a refusal: a structured error chunk with the message if negotiated, else a simple reply. */
    private void send(Request r, Refusal refusal) throws IOException {
        if (!refusal.logged() && refused()) {
            // a fast-zero request that cannot be fast is a probe the spec invites (qemu-img, nbdcopy)
            Level level = refusal.error() == NBD_ENOTSUP ? Level.DEBUG : Level.INFO;
            LOG.log(level, () -> where() + ": refused with " + errorName(refusal.error()) + ": " + refusal.message());
        }
        sending.lock();
        try {
            if (structured) {
                byte[] m = truncate(utf8(refusal.message()));
                chunkHeader(NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, r.cookie(), 6 + m.length);
                wire.putInt(refusal.error()).putShort(m.length).put(m);
            } else {
                simpleReply(r.cookie(), refusal.error());
            }
            wire.flush();
        } finally {
            sending.unlock();
        }
    }

    /** Counts a refusal; true while it should still be logged. */
    private boolean refused() {
        return refusals.incrementAndGet() <= MAX_LOGGED_REFUSALS;
    }

    // ------------------------------------------------------------------ strings

    /** Decodes a protocol string: strict UTF-8, no NUL, at most MAX_STRING_BYTES; null if it is not one. */
    static String string(byte[] data, int offset, int length, String what) {
        if (length > MAX_STRING_BYTES) return null;
        for (int i = offset; i < offset + length; i++) {
            if (data[i] == 0) return null;
        }
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(data, offset, length)).toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Cuts a message to the spec's string limit (at a UTF-8 character boundary). */
    static byte[] truncate(byte[] b) {
        if (b.length <= MAX_STRING_BYTES) return b;
        int n = MAX_STRING_BYTES;
        while (n > 0 && (b[n] & 0xc0) == 0x80) n--;
        return java.util.Arrays.copyOf(b, n);
    }

    static String errorName(int error) {
        return switch (error) {
            case NBD_EPERM -> "EPERM";
            case NBD_EIO -> "EIO";
            case NBD_ENOMEM -> "ENOMEM";
            case NBD_EINVAL -> "EINVAL";
            case NBD_ENOSPC -> "ENOSPC";
            case NBD_EOVERFLOW -> "EOVERFLOW";
            case NBD_ENOTSUP -> "ENOTSUP";
            case NBD_ESHUTDOWN -> "ESHUTDOWN";
            default -> "error " + error;
        };
    }

    static String repName(int type) {
        return switch (type) {
            case NBD_REP_ERR_UNSUP -> "NBD_REP_ERR_UNSUP";
            case NBD_REP_ERR_POLICY -> "NBD_REP_ERR_POLICY";
            case NBD_REP_ERR_INVALID -> "NBD_REP_ERR_INVALID";
            case NBD_REP_ERR_UNKNOWN -> "NBD_REP_ERR_UNKNOWN";
            case NBD_REP_ERR_TOO_BIG -> "NBD_REP_ERR_TOO_BIG";
            case NBD_REP_ERR_SHUTDOWN -> "NBD_REP_ERR_SHUTDOWN";
            default -> "reply type 0x" + Integer.toHexString(type);
        };
    }
}
