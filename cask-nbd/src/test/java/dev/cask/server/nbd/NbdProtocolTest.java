package dev.cask.server.nbd;

import dev.cask.common.CaskException;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static dev.cask.server.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The server against the spec, byte by byte, with {@link RawClient}: handshake and every
 * option, the transmission flags, each command's success and error replies, simple and
 * structured. The real-tool tests ({@link NbdInteropTest}) show clients agree; these show why.
 */
class NbdProtocolTest {
    private static final long MiB = 1 << 20;

    private MemoryResolver resolver;
    private MemoryDevice disk;
    private MemoryDevice ro;
    private MemoryDevice slowZero;
    private MemoryDevice aligned;
    private NbdServer server;

    @BeforeEach
    void start() {
        disk = new MemoryDevice(8 * MiB);
        ro = new MemoryDevice(4 * MiB);
        byte[] pattern = new byte[64 << 10];
        Arrays.fill(pattern, (byte) 0x5a);
        ro.write(0, pattern, 0, pattern.length, false);
        slowZero = new MemoryDevice(4 * MiB, new Capabilities(true, true, true, true, true, false, true, false, 1, 4096, 32 << 20));
        aligned = new MemoryDevice(4 * MiB, new Capabilities(true, true, false, true, true, true, true, true, 512, 4096, 1 << 20));
        resolver = new MemoryResolver()
                .add("disk", disk, false, "test disk")
                .add("ro", ro, true, "read-only disk")
                .add("slow-zero", slowZero, false, "")
                .add("aligned", aligned, false, "");
        server = NbdServer.start(new InetSocketAddress("127.0.0.1", 0), resolver);
    }

    @AfterEach
    void stop() {
        server.close();
        assertEquals(0, resolver.held(), "every opened export was released");
    }

    private RawClient client() throws IOException {
        return new RawClient(server.port());
    }

    private static int infoType(RawClient.OptionReply r) {
        return ByteBuffer.wrap(r.data()).getShort() & 0xffff;
    }

    @Test
    void infoDescribesTheExportAndReleasesIt() throws IOException {
        try (RawClient c = client()) {
            c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            List<RawClient.OptionReply> replies = c.option(NBD_OPT_INFO,
                    RawClient.infoRequest("disk", NBD_INFO_NAME, NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE, 999));
            assertEquals(NBD_REP_ACK, replies.getLast().type());
            boolean export = false, name = false, description = false, blockSize = false;
            for (RawClient.OptionReply r : replies.subList(0, replies.size() - 1)) {
                assertEquals(NBD_REP_INFO, r.type());
                ByteBuffer b = ByteBuffer.wrap(r.data());
                switch (b.getShort()) {
                    case NBD_INFO_EXPORT -> {
                        export = true;
                        assertEquals(12, r.data().length);
                        assertEquals(8 * MiB, b.getLong());
                        int flags = b.getShort() & 0xffff;
                        int expected = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM
                                | NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO | NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN;
                        assertEquals(expected, flags, "transmission flags 0x" + Integer.toHexString(flags));
                    }
                    case NBD_INFO_NAME -> {
                        name = true;
                        assertEquals("disk", new String(r.data(), 2, r.data().length - 2, StandardCharsets.UTF_8));
                    }
                    case NBD_INFO_DESCRIPTION -> {
                        description = true;
                        assertEquals("test disk", new String(r.data(), 2, r.data().length - 2, StandardCharsets.UTF_8));
                    }
                    case NBD_INFO_BLOCK_SIZE -> {
                        blockSize = true;
                        assertEquals(14, r.data().length);
                        assertEquals(1, b.getInt());
                        assertEquals(4096, b.getInt());
                        assertEquals(32 << 20, b.getInt());
                    }
                    default -> throw new AssertionError("unrequested info type " + infoType(r));
                }
            }
            assertTrue(export && name && description && blockSize);
            assertEquals(0, resolver.held(), "NBD_OPT_INFO releases the export at once");
            // the same connection can go on to GO
            List<RawClient.OptionReply> go = c.option(NBD_OPT_GO, RawClient.infoRequest("disk"));
            assertEquals(NBD_REP_ACK, go.getLast().type());
            assertEquals(1, resolver.held());
            c.disconnect();
            assertTrue(c.closedByServer(5_000));
        }
    }

    @Test
    void readOnlyExportAdvertisesNoWriteFlags() throws IOException {
        try (RawClient c = client()) {
            RawClient.Negotiated n = c.go("ro", true, true);
            assertEquals(NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_SEND_CACHE | NBD_FLAG_SEND_DF | NBD_FLAG_CAN_MULTI_CONN, n.flags(),
                    "flags 0x" + Integer.toHexString(n.flags()));
            String before = ro.sha256();
            assertEquals(NBD_EPERM, c.write(1, 0, new byte[4096], 0).error());
            assertEquals(NBD_EPERM, c.command(NBD_CMD_TRIM, 0, 2, 0, 4096).error());
            assertEquals(NBD_EPERM, c.command(NBD_CMD_WRITE_ZEROES, 0, 3, 0, 4096).error());
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_FLUSH, 0, 4, 0, 0).error(), "FLUSH was not offered");
            RawClient.Reply r = c.read(5, 0, 8192);
            assertEquals(0, r.error());
            assertEquals(0x5a, r.data()[8191]);
            assertEquals(before, ro.sha256(), "refused writes changed nothing");
        }
    }

    @Test
    void unknownExportGetsErrUnknownWithTheResolverMessage() throws IOException {
        try (RawClient c = client()) {
            c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
            RawClient.OptionReply r = c.option(NBD_OPT_GO, RawClient.infoRequest("nope")).getLast();
            assertEquals(NBD_REP_ERR_UNKNOWN, r.type());
            assertTrue(r.text().contains("no image 'nope'"), r.text());
            // the connection is still good for another try
            assertEquals(NBD_REP_ACK, c.option(NBD_OPT_GO, RawClient.infoRequest("disk")).getLast().type());
        }
    }

    @Test
    void exportNameSendsZeroPaddingUnlessNoZeroes() throws IOException {
        for (boolean noZeroes : new boolean[] {true, false}) {
            try (RawClient c = client()) {
                c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0));
                c.sendOption(NBD_OPT_EXPORT_NAME, "disk".getBytes(StandardCharsets.UTF_8));
                assertEquals(8 * MiB, c.in.readLong());
                int flags = c.in.readUnsignedShort();
                assertEquals(0, flags & NBD_FLAG_SEND_DF, "no DF without structured replies");
                if (!noZeroes) {
                    byte[] zeros = new byte[124];
                    c.in.readFully(zeros);
                    assertArrayEquals(new byte[124], zeros);
                }
                RawClient.Reply r = c.read(7, 0, 512);
                assertEquals(0, r.error());
                assertEquals(7, r.cookie());
            }
        }
        try (RawClient c = client()) {
            c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.sendOption(NBD_OPT_EXPORT_NAME, "missing".getBytes(StandardCharsets.UTF_8));
            assertTrue(c.closedByServer(5_000), "an unknown NBD_OPT_EXPORT_NAME can only be answered by closing");
        }
    }

    @Test
    void listAbortAndUnknownOptions() throws IOException {
        try (RawClient c = client()) {
            c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
            List<RawClient.OptionReply> list = c.option(NBD_OPT_LIST, new byte[0]);
            assertEquals(NBD_REP_ACK, list.getLast().type());
            List<String> names = new ArrayList<>();
            for (RawClient.OptionReply r : list.subList(0, list.size() - 1)) {
                assertEquals(NBD_REP_SERVER, r.type());
                ByteBuffer b = ByteBuffer.wrap(r.data());
                int n = b.getInt();
                String name = new String(r.data(), 4, n, StandardCharsets.UTF_8);
                names.add(name);
                if (name.equals("disk")) assertEquals("test disk", new String(r.data(), 4 + n, r.data().length - 4 - n, StandardCharsets.UTF_8));
            }
            assertEquals(List.of("disk", "ro", "slow-zero", "aligned"), names);
            assertEquals(NBD_REP_ERR_INVALID, c.option(NBD_OPT_LIST, new byte[3]).getLast().type());
            assertEquals(NBD_REP_ERR_UNSUP, c.option(NBD_OPT_STARTTLS, new byte[0]).getLast().type());
            assertEquals(NBD_REP_ERR_UNSUP, c.option(NBD_OPT_EXTENDED_HEADERS, new byte[0]).getLast().type());
            assertEquals(NBD_REP_ERR_UNSUP, c.option(0x7777, new byte[100]).getLast().type());
            assertEquals(NBD_REP_ERR_INVALID, c.option(NBD_OPT_STRUCTURED_REPLY, new byte[1]).getLast().type());
            assertEquals(NBD_REP_ERR_INVALID, c.option(NBD_OPT_GO, new byte[5]).getLast().type());
            assertEquals(NBD_REP_ACK, c.option(NBD_OPT_ABORT, new byte[0]).getLast().type());
            assertTrue(c.closedByServer(5_000));
        }
    }

    @Test
    void metaContextsListAndSelectBaseAllocationOnly() throws IOException {
        try (RawClient c = client()) {
            c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
            assertEquals(NBD_REP_ERR_INVALID, c.option(NBD_OPT_SET_META_CONTEXT, RawClient.metaRequest("disk", BASE_ALLOCATION)).getLast().type(),
                    "before structured replies");
            c.option(NBD_OPT_STRUCTURED_REPLY, new byte[0]);
            c.structured = true;
            for (String[] queries : new String[][] {{}, {"base:"}, {BASE_ALLOCATION}, {"x-foo:bar", BASE_ALLOCATION}}) {
                List<RawClient.OptionReply> r = c.option(NBD_OPT_LIST_META_CONTEXT, RawClient.metaRequest("disk", queries));
                assertEquals(2, r.size(), Arrays.toString(queries));
                assertEquals(NBD_REP_META_CONTEXT, r.getFirst().type());
                assertEquals(BASE_ALLOCATION, new String(r.getFirst().data(), 4, r.getFirst().data().length - 4, StandardCharsets.UTF_8));
            }
            assertEquals(List.of(NBD_REP_ACK), types(c.option(NBD_OPT_LIST_META_CONTEXT, RawClient.metaRequest("disk", "x-foo:bar", "nonamespace", "base:other"))));
            assertEquals(List.of(NBD_REP_ACK), types(c.option(NBD_OPT_SET_META_CONTEXT, RawClient.metaRequest("disk", "base:"))), "base: selects nothing");
            // a query length past the end of the option
            byte[] bad = RawClient.metaRequest("disk", BASE_ALLOCATION);
            ByteBuffer.wrap(bad).putInt(4 + 4 + 4, 1000);
            assertEquals(NBD_REP_ERR_INVALID, c.option(NBD_OPT_SET_META_CONTEXT, bad).getLast().type());
            List<RawClient.OptionReply> set = c.option(NBD_OPT_SET_META_CONTEXT, RawClient.metaRequest("disk", "x-foo:bar", BASE_ALLOCATION));
            assertEquals(List.of(NBD_REP_META_CONTEXT, NBD_REP_ACK), types(set));
            // selected for "disk" but going to "ro": BLOCK_STATUS must be refused
            assertEquals(NBD_REP_ACK, c.option(NBD_OPT_GO, RawClient.infoRequest("ro")).getLast().type());
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_BLOCK_STATUS, 0, 1, 0, 4096).error());
        }
    }

    private static List<Integer> types(List<RawClient.OptionReply> replies) {
        return replies.stream().map(RawClient.OptionReply::type).toList();
    }

    @Test
    void structuredReadsSendHolesAsHoleChunks() throws IOException {
        byte[] a = random(1, 4096);
        byte[] b = random(2, 10000);
        disk.write(0, a, 0, a.length, false);
        disk.write(MiB + 100, b, 0, b.length, false);
        try (RawClient c = client()) {
            RawClient.Negotiated n = c.go("disk", true, true);
            assertTrue(n.has(NBD_FLAG_SEND_DF));
            RawClient.Reply r = c.read(1, 0, 2 << 20);
            assertEquals(0, r.error());
            assertArrayEquals(Arrays.copyOf(disk.content(), 2 << 20), r.data());
            long holes = r.chunks().stream().filter(ch -> ch.type() == NBD_REPLY_TYPE_OFFSET_HOLE).count();
            assertTrue(holes >= 2, "holes went out as hole chunks: " + holes);
            assertTrue((r.chunks().getLast().flags() & NBD_REPLY_FLAG_DONE) != 0);
            // unaligned read across data and hole
            RawClient.Reply u = c.read(2, MiB + 50, 20000);
            assertArrayEquals(Arrays.copyOfRange(disk.content(), (int) MiB + 50, (int) MiB + 20050), u.data());
            // DF: one content chunk
            c.request(NBD_CMD_FLAG_DF, NBD_CMD_READ, 3, 0, 1 << 20, null);
            RawClient.Reply df = c.reply(0, 1 << 20);
            assertEquals(1, df.chunks().size());
            assertEquals(NBD_REPLY_TYPE_OFFSET_DATA, df.chunks().getFirst().type());
            assertArrayEquals(Arrays.copyOf(disk.content(), 1 << 20), df.data());
            // zero-length read: a NONE chunk
            RawClient.Reply z = c.read(4, 0, 0);
            assertEquals(0, z.error());
            assertEquals(NBD_REPLY_TYPE_NONE, z.chunks().getFirst().type());
        }
    }

    @Test
    void simpleRepliesWriteReadFuaFlushTrimZero() throws IOException {
        try (RawClient c = client()) {
            RawClient.Negotiated n = c.go("disk", false, false);
            assertEquals(8 * MiB, n.size());
            byte[] data = random(3, 65536 + 17);
            assertEquals(0, c.write(1, 12345, data, NBD_CMD_FLAG_FUA).error());
            assertEquals(1, disk.fuaWrites.get());
            assertArrayEquals(data, c.read(2, 12345, data.length).data());
            assertEquals(0, c.command(NBD_CMD_FLUSH, 0, 3, 0, 0).error());
            assertEquals(1, disk.flushes.get());
            assertEquals(0, c.command(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 4, 12345, 100).error());
            assertArrayEquals(new byte[100], c.read(5, 12345, 100).data());
            assertEquals(0, c.command(NBD_CMD_TRIM, NBD_CMD_FLAG_FUA, 6, 0, 8 * MiB).error());
            assertEquals(2, disk.flushes.get(), "TRIM with FUA flushes");
            assertEquals(0, disk.allocatedPages());
            assertEquals(0, c.command(NBD_CMD_CACHE, 0, 7, 0, 8 * MiB).error());
            assertEquals(0, c.command(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 8, 0, 8 * MiB).error());
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_BLOCK_STATUS, 0, 9, 0, 4096).error(), "BLOCK_STATUS without a context");
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_READ, NBD_CMD_FLAG_DF, 10, 0, 0).error(), "DF without structured replies");
            c.disconnect();
            assertTrue(c.closedByServer(5_000));
        }
    }

    @Test
    void blockStatusReportsHolesAndHonoursReqOne() throws IOException {
        byte[] a = random(4, 8192);
        disk.write(64 << 10, a, 0, a.length, false);
        try (RawClient c = client()) {
            c.go("disk", true, true);
            RawClient.Reply r = c.command(NBD_CMD_BLOCK_STATUS, 0, 1, 0, 8 * MiB);
            assertEquals(0, r.error());
            assertArrayEquals(new int[] {64 << 10, NBD_STATE_HOLE | NBD_STATE_ZERO, 8192, 0,
                    (int) (8 * MiB) - (64 << 10) - 8192, NBD_STATE_HOLE | NBD_STATE_ZERO}, r.descriptors());
            RawClient.Reply one = c.command(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 2, 60 << 10, 1 << 20);
            assertArrayEquals(new int[] {4096, NBD_STATE_HOLE | NBD_STATE_ZERO}, one.descriptors());
            RawClient.Reply data = c.command(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 3, 64 << 10, 100);
            assertArrayEquals(new int[] {100, 0}, data.descriptors(), "REQ_ONE never exceeds the request");
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_BLOCK_STATUS, 0, 4, 8 * MiB - 4096, 8192).error());
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_BLOCK_STATUS, 0, 5, 0, 0).error());
        }
    }

    @Test
    void fastZeroOnASlowDeviceIsEnotsupAndChangesNothing() throws IOException {
        byte[] a = random(5, 4096);
        slowZero.write(0, a, 0, a.length, false);
        try (RawClient c = client()) {
            RawClient.Negotiated n = c.go("slow-zero", true, false);
            assertTrue(n.has(NBD_FLAG_SEND_FAST_ZERO));
            assertFalse(n.has(NBD_FLAG_CAN_MULTI_CONN), "multi-conn only when the device says so");
            RawClient.Reply r = c.command(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 1, 0, 4096);
            assertEquals(NBD_ENOTSUP, r.error());
            assertFalse(r.message().isEmpty(), "structured errors carry a message");
            assertArrayEquals(a, c.read(2, 0, 4096).data());
            assertEquals(0, c.command(NBD_CMD_WRITE_ZEROES, 0, 3, 0, 4096).error());
            assertArrayEquals(new byte[4096], c.read(4, 0, 4096).data());
        }
    }

    @Test
    void requestErrors() throws IOException {
        try (RawClient c = client()) {
            RawClient.Negotiated n = c.go("aligned", false, false);
            assertEquals(0, n.flags() & NBD_FLAG_SEND_FUA);
            assertEquals(NBD_EINVAL, c.read(1, 4 * MiB - 512, 1024).error(), "read past the end");
            assertEquals(NBD_EINVAL, c.read(2, -512, 512).error(), "offset 2^64-512");
            assertEquals(NBD_ENOSPC, c.write(3, 4 * MiB, new byte[512], 0).error(), "write past the end");
            assertEquals(NBD_EINVAL, c.read(4, 100, 512).error(), "misaligned offset");
            assertEquals(NBD_EINVAL, c.write(5, 512, new byte[100], 0).error(), "misaligned length");
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_TRIM, 0, 6, 512, 1).error());
            assertEquals(NBD_EINVAL, c.write(7, 0, new byte[512], NBD_CMD_FLAG_FUA).error(), "FUA not offered");
            assertEquals(NBD_EINVAL, c.read(8, 0, 2 << 20).error(), "read over the device's 1 MiB maximum");
            assertEquals(NBD_EINVAL, c.command(42, 0, 9, 0, 0).error(), "unknown command");
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_READ, 1 << 9, 10, 0, 512).error(), "unknown flag");
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_FLUSH, 0, 11, 1, 0).error(), "flush with an offset");
            assertEquals(NBD_EINVAL, c.command(NBD_CMD_READ, NBD_CMD_FLAG_NO_HOLE, 12, 0, 512).error(), "NO_HOLE on READ");
            // a write over the payload limit is skipped: the stream stays in sync
            assertEquals(NBD_EINVAL, c.write(13, 0, new byte[(1 << 20) + 512], 0).error());
            assertEquals(0, aligned.writes.get(), "nothing refused was written");
            assertEquals(0, c.write(14, 4 * MiB - 512, new byte[512], 0).error(), "still in sync");
            assertEquals(0, c.read(15, 0, 512).error());
        }
    }

    @Test
    void deviceErrorsBecomeEioAndTheConnectionGoesOn() throws IOException {
        byte[] a = random(6, 8192);
        disk.write(MiB - 4096, a, 0, a.length, false); // data, not a hole, so the read reaches the device
        disk.failReads(MiB, MiB + 1);
        try (RawClient c = client()) {
            c.go("disk", true, false);
            RawClient.Reply r = c.read(1, MiB - 4096, 8192);
            assertEquals(NBD_EIO, r.error());
            assertTrue(r.message().contains("injected read error"), r.message());
            assertEquals(0, c.read(2, 0, 4096).error());
        }
        try (RawClient c = client()) {
            c.go("disk", false, false);
            assertEquals(NBD_EIO, c.read(1, MiB, 1).error());
            assertEquals(0, c.read(2, 0, 4096).error());
        }
    }

    @Test
    void pipelinedRequestsAllGetTheirRepliesAndDiscFinishesThem() throws IOException {
        Random rnd = new Random(8);
        byte[] model = new byte[(int) (8 * MiB)];
        try (RawClient c = client()) {
            c.go("disk", rnd.nextBoolean(), false);
            java.util.Set<Long> cookies = new java.util.HashSet<>();
            for (int i = 0; i < 64; i++) {
                // in-flight writes may run in any order, so they do not overlap
                int len = 1 + rnd.nextInt(128 * 1024);
                int off = i * 128 * 1024;
                byte[] d = new byte[len];
                rnd.nextBytes(d);
                System.arraycopy(d, 0, model, off, len);
                c.request(i % 5 == 0 ? NBD_CMD_FLAG_FUA : 0, NBD_CMD_WRITE, 1000 + i, off, len, d);
                cookies.add(1000L + i);
            }
            c.request(0, NBD_CMD_DISC, 0, 0, 0, null); // straight after: the writes in flight must still be served
            for (int i = 0; i < 64; i++) {
                RawClient.Reply r = c.reply(0, 0);
                assertEquals(0, r.error());
                assertTrue(cookies.remove(r.cookie()), "unexpected or repeated cookie " + r.cookie());
            }
            assertTrue(cookies.isEmpty());
            assertTrue(c.closedByServer(5_000));
        }
        assertArrayEquals(model, disk.content());
    }

    @Test
    void closeReleasesEveryExportAndClosesConnections() throws IOException {
        List<RawClient> clients = new ArrayList<>();
        try {
            for (int i = 0; i < 3; i++) {
                RawClient c = client();
                c.go(i == 0 ? "ro" : "disk", true, false);
                clients.add(c);
            }
            RawClient idle = client(); // still in the handshake
            idle.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
            clients.add(idle);
            assertEquals(3, resolver.held());
            server.close();
            assertEquals(0, resolver.held());
            for (RawClient c : clients) assertTrue(c.closedByServer(5_000));
            assertEquals(0, server.connectionCount());
        } finally {
            clients.forEach(RawClient::close);
        }
    }

    @Test
    void badBlockSizesRefuseTheExport() throws IOException {
        resolver.add("odd", new MemoryDevice(MiB, new Capabilities(true, true, true, true, true, true, true, true, 3, 4096, 1 << 20)), false, "");
        try (RawClient c = client()) {
            c.handshake(NBD_FLAG_C_FIXED_NEWSTYLE);
            RawClient.OptionReply r = c.option(NBD_OPT_GO, RawClient.infoRequest("odd")).getLast();
            assertEquals(NBD_REP_ERR_UNKNOWN, r.type());
            assertTrue(r.text().contains("minimum block size 3"), r.text());
        }
    }

    @Test
    void unixSocket() throws Exception {
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("nbd");
        java.nio.file.Path sock = dir.resolve("s");
        try (NbdServer unix = NbdServer.start(UnixDomainSocketAddress.of(sock), resolver)) {
            assertEquals(UnixDomainSocketAddress.of(sock), unix.address());
            assertThrows(IllegalStateException.class, unix::port);
            CaskException e = assertThrows(CaskException.Io.class, () -> NbdServer.start(UnixDomainSocketAddress.of(sock), resolver));
            assertTrue(e.getMessage().contains(sock.toString()), e.getMessage());
        }
        assertFalse(java.nio.file.Files.exists(sock), "socket file removed on close");
        java.nio.file.Files.delete(dir);
    }

    @Test
    void parseAddress() {
        assertEquals(new InetSocketAddress("127.0.0.1", 10809), NbdServer.parseAddress("127.0.0.1"));
        assertEquals(new InetSocketAddress("127.0.0.1", 1234), NbdServer.parseAddress("127.0.0.1:1234"));
        assertEquals(new InetSocketAddress("127.0.0.1", 1234), NbdServer.parseAddress(":1234"));
        assertEquals(new InetSocketAddress("::1", 99), NbdServer.parseAddress("[::1]:99"));
        assertEquals(UnixDomainSocketAddress.of("/run/x.sock"), NbdServer.parseAddress("unix:/run/x.sock"));
        assertEquals(UnixDomainSocketAddress.of("/run/x.sock"), NbdServer.parseAddress("/run/x.sock"));
        for (String bad : new String[] {"", "host:port", "h:70000", "::1:5", "[::1", "unix:"}) {
            CaskException e = assertThrows(CaskException.InvalidInput.class, () -> NbdServer.parseAddress(bad), bad);
            assertTrue(e.getMessage().contains("listen address") || bad.isEmpty(), e.getMessage());
        }
        SocketAddress a = NbdServer.DEFAULT_ADDRESS;
        assertEquals(10809, ((InetSocketAddress) a).getPort());
    }

    @Test
    void segmentsFoldSmallHolesIntoData() {
        List<BlockStatus> map = List.of(new BlockStatus(0, 100, false), new BlockStatus(100, 512, true),
                new BlockStatus(612, 8192, true), new BlockStatus(8804, 10, false));
        // the 512-byte hole is not worth a chunk: it joins the data before it
        List<BlockStatus> s = NbdConnection.segments(0, 8814, map);
        assertEquals(List.of(new BlockStatus(0, 612, false), new BlockStatus(612, 8192, true), new BlockStatus(8804, 10, false)), s);
        assertThrows(IllegalStateException.class, () -> NbdConnection.segments(0, 8815, map));
        assertThrows(IllegalStateException.class, () -> NbdConnection.segments(1, 8813, map));
    }

    static byte[] random(long seed, int n) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    @Test
    void largeReadsAndWritesGoInPiecesAndAFailureHalfwayFailsTheRequest() throws IOException {
        MemoryDevice big = new MemoryDevice(64 * MiB);
        resolver.add("big", big, false, "");
        byte[] data = random(11, 32 * (int) MiB);
        try (RawClient c = client()) {
            c.go("big", true, false);
            assertEquals(0, c.write(1, 0, data, 0).error(), "32 MiB WRITE");
            RawClient.Reply r = c.read(2, 0, data.length);
            assertEquals(0, r.error(), r.message());
            assertArrayEquals(data, r.data());
            // the reply streams: no chunk larger than a piece, so the server never held the whole read
            assertEquals(32, r.chunks().size(), "one data chunk per MiB");
            for (RawClient.Chunk ch : r.chunks()) assertTrue(ch.payload().length <= NbdConnection.PIECE + 8, "chunk of " + ch.payload().length + " bytes");

            big.failReads(20 * MiB, 20 * MiB + 1);
            RawClient.Reply bad = c.read(3, 0, data.length);
            assertEquals(NBD_EIO, bad.error(), "a device error in the 21st MiB fails the READ");
            assertTrue(bad.message().contains("injected read error"), bad.message());
            long flushes = big.flushes.get();
            RawClient.Reply w = c.write(4, 16 * MiB, data, NBD_CMD_FLAG_FUA);
            assertEquals(0, w.error(), "the stream is still in sync after the failed READ");
            assertTrue(big.flushes.get() > flushes, "FUA on a WRITE written in pieces flushes the device");
            big.failReads(-1, -1);
            assertArrayEquals(Arrays.copyOf(data, 1 << 20), Arrays.copyOf(c.read(5, 16 * MiB, 1 << 20).data(), 1 << 20));
        }
    }

}
