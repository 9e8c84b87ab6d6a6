package dev.cask.server.nbd;

/**
 * The numbers of the NBD protocol (doc/proto.md of NetworkBlockDevice/nbd), named as in the
 * spec. Magic numbers, flags, option and reply types, commands and error values; nothing else.
 * Wire layout, all big-endian:
 * <pre>
 * handshake   S: NBDMAGIC(8) IHAVEOPT(8) handshake-flags(2)   C: client-flags(4)
 * option      C: IHAVEOPT(8) option(4) length(4) data(length)
 * opt reply   S: NBD_REP_MAGIC(8) option(4) type(4) length(4) data(length)
 * request     C: NBD_REQUEST_MAGIC(4) flags(2) type(2) cookie(8) offset(8) length(4) [data]
 * simple      S: NBD_SIMPLE_REPLY_MAGIC(4) error(4) cookie(8) [data]
 * structured  S: NBD_STRUCTURED_REPLY_MAGIC(4) flags(2) type(2) cookie(8) length(4) payload
 * </pre>
 */
public final class NbdProtocol {
    private NbdProtocol() {}

    /** The IANA port for newstyle negotiation. */
    public static final int NBD_DEFAULT_PORT = 10809;

    public static final long NBDMAGIC = 0x4e42444d41474943L;
    public static final long IHAVEOPT = 0x49484156454F5054L;
    public static final long NBD_REP_MAGIC = 0x3e889045565a9L;
    public static final int NBD_REQUEST_MAGIC = 0x25609513;
    public static final int NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
    public static final int NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

    // handshake flags (server) and client flags
    public static final int NBD_FLAG_FIXED_NEWSTYLE = 1;
    public static final int NBD_FLAG_NO_ZEROES = 1 << 1;
    public static final int NBD_FLAG_C_FIXED_NEWSTYLE = 1;
    public static final int NBD_FLAG_C_NO_ZEROES = 1 << 1;

    // transmission flags
    public static final int NBD_FLAG_HAS_FLAGS = 1;
    public static final int NBD_FLAG_READ_ONLY = 1 << 1;
    public static final int NBD_FLAG_SEND_FLUSH = 1 << 2;
    public static final int NBD_FLAG_SEND_FUA = 1 << 3;
    public static final int NBD_FLAG_ROTATIONAL = 1 << 4;
    public static final int NBD_FLAG_SEND_TRIM = 1 << 5;
    public static final int NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
    public static final int NBD_FLAG_SEND_DF = 1 << 7;
    public static final int NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
    public static final int NBD_FLAG_SEND_CACHE = 1 << 10;
    public static final int NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

    // options
    public static final int NBD_OPT_EXPORT_NAME = 1;
    public static final int NBD_OPT_ABORT = 2;
    public static final int NBD_OPT_LIST = 3;
    public static final int NBD_OPT_STARTTLS = 5;
    public static final int NBD_OPT_INFO = 6;
    public static final int NBD_OPT_GO = 7;
    public static final int NBD_OPT_STRUCTURED_REPLY = 8;
    public static final int NBD_OPT_LIST_META_CONTEXT = 9;
    public static final int NBD_OPT_SET_META_CONTEXT = 10;
    public static final int NBD_OPT_EXTENDED_HEADERS = 11;

    // option replies
    public static final int NBD_REP_ACK = 1;
    public static final int NBD_REP_SERVER = 2;
    public static final int NBD_REP_INFO = 3;
    public static final int NBD_REP_META_CONTEXT = 4;
    public static final int NBD_REP_ERR_UNSUP = 0x80000001;
    public static final int NBD_REP_ERR_POLICY = 0x80000002;
    public static final int NBD_REP_ERR_INVALID = 0x80000003;
    public static final int NBD_REP_ERR_PLATFORM = 0x80000004;
    public static final int NBD_REP_ERR_TLS_REQD = 0x80000005;
    public static final int NBD_REP_ERR_UNKNOWN = 0x80000006;
    public static final int NBD_REP_ERR_SHUTDOWN = 0x80000007;
    public static final int NBD_REP_ERR_BLOCK_SIZE_REQD = 0x80000008;
    public static final int NBD_REP_ERR_TOO_BIG = 0x80000009;

    // NBD_REP_INFO types
    public static final int NBD_INFO_EXPORT = 0;
    public static final int NBD_INFO_NAME = 1;
    public static final int NBD_INFO_DESCRIPTION = 2;
    public static final int NBD_INFO_BLOCK_SIZE = 3;

    // commands
    public static final int NBD_CMD_READ = 0;
    public static final int NBD_CMD_WRITE = 1;
    public static final int NBD_CMD_DISC = 2;
    public static final int NBD_CMD_FLUSH = 3;
    public static final int NBD_CMD_TRIM = 4;
    public static final int NBD_CMD_CACHE = 5;
    public static final int NBD_CMD_WRITE_ZEROES = 6;
    public static final int NBD_CMD_BLOCK_STATUS = 7;

    // command flags
    public static final int NBD_CMD_FLAG_FUA = 1;
    public static final int NBD_CMD_FLAG_NO_HOLE = 1 << 1;
    public static final int NBD_CMD_FLAG_DF = 1 << 2;
    public static final int NBD_CMD_FLAG_REQ_ONE = 1 << 3;
    public static final int NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

    // structured replies
    public static final int NBD_REPLY_FLAG_DONE = 1;
    public static final int NBD_REPLY_TYPE_NONE = 0;
    public static final int NBD_REPLY_TYPE_OFFSET_DATA = 1;
    public static final int NBD_REPLY_TYPE_OFFSET_HOLE = 2;
    public static final int NBD_REPLY_TYPE_BLOCK_STATUS = 5;
    public static final int NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
    public static final int NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

    // base:allocation
    public static final String BASE_ALLOCATION = "base:allocation";
    public static final int NBD_STATE_HOLE = 1;
    public static final int NBD_STATE_ZERO = 1 << 1;

    // errors
    public static final int NBD_EPERM = 1;
    public static final int NBD_EIO = 5;
    public static final int NBD_ENOMEM = 12;
    public static final int NBD_EINVAL = 22;
    public static final int NBD_ENOSPC = 28;
    public static final int NBD_EOVERFLOW = 75;
    public static final int NBD_ENOTSUP = 95;
    public static final int NBD_ESHUTDOWN = 108;

    /** Longest string (export name, description, message) the spec allows, in bytes. */
    public static final int MAX_STRING_BYTES = 4096;

    /** Largest payload of one READ or WRITE this server accepts (2^25, the spec's interoperable maximum). */
    public static final int MAX_PAYLOAD = 32 << 20;

    /** Largest option data this server reads; longer options are refused and the connection closed. */
    public static final int MAX_OPTION_LENGTH = 64 << 10;

    public static String commandName(int type) {
        return switch (type) {
            case NBD_CMD_READ -> "READ";
            case NBD_CMD_WRITE -> "WRITE";
            case NBD_CMD_DISC -> "DISC";
            case NBD_CMD_FLUSH -> "FLUSH";
            case NBD_CMD_TRIM -> "TRIM";
            case NBD_CMD_CACHE -> "CACHE";
            case NBD_CMD_WRITE_ZEROES -> "WRITE_ZEROES";
            case NBD_CMD_BLOCK_STATUS -> "BLOCK_STATUS";
            default -> "command " + type;
        };
    }

    static String optionName(int option) {
        return switch (option) {
            case NBD_OPT_EXPORT_NAME -> "NBD_OPT_EXPORT_NAME";
            case NBD_OPT_ABORT -> "NBD_OPT_ABORT";
            case NBD_OPT_LIST -> "NBD_OPT_LIST";
            case NBD_OPT_STARTTLS -> "NBD_OPT_STARTTLS";
            case NBD_OPT_INFO -> "NBD_OPT_INFO";
            case NBD_OPT_GO -> "NBD_OPT_GO";
            case NBD_OPT_STRUCTURED_REPLY -> "NBD_OPT_STRUCTURED_REPLY";
            case NBD_OPT_LIST_META_CONTEXT -> "NBD_OPT_LIST_META_CONTEXT";
            case NBD_OPT_SET_META_CONTEXT -> "NBD_OPT_SET_META_CONTEXT";
            case NBD_OPT_EXTENDED_HEADERS -> "NBD_OPT_EXTENDED_HEADERS";
            default -> "option " + Integer.toUnsignedString(option);
        };
    }
}
