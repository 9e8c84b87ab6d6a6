package dev.cask.store.local;

import dev.cask.store.ChunkId;
import dev.cask.tree.Layout;
import dev.cask.tree.Root;
import org.junit.jupiter.api.Test;

import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Golden bytes of format 1 (pack header, plain and zstd records, layout), written by the first
 * release. Later versions must keep decoding them exactly; the encoders must keep producing the
 * plain ones byte for byte. Never edit these strings: add new ones for new formats.
 */
class GoldenFormatTest {
    private static final HexFormat HEX = HexFormat.of();
    static final String PACK_HEADER_7 = "6361736b000000010000000700000000";
    static final String HELLO_ID = "074e50f9f8180f3fb41ba84a3adbd631c2e07c981c77e8330f0890a923c8214d";
    static final String HELLO_RECORD = "63726563000000000000000c0000000c" + HELLO_ID + "cf3f39f968656c6c6f2c206361736b0a";
    static final String ZSTD_RECORD = "6372656301000000000000c800000012c2a908d98f5df987ade41b5fce213067efbcc21ef2240212a41e54b5e7c28ae5018d71c228b52ffd20c84d00001061610100430a6001";
    static final String LAYOUT = "636c61790100000002"
            + "0000000000000000" + "0000000000100000" + "00001000" + "02" + HELLO_ID
            + "0000000000100000" + "0000000000001000" + "00001000" + "00" + "00".repeat(32);

    @Test
    void packHeader() {
        assertEquals(PACK_HEADER_7, HEX.formatHex(PackFormat.encodePackHeader(7)));
        assertEquals(7, PackFormat.decodePackHeader("golden", HEX.parseHex(PACK_HEADER_7)));
    }

    @Test
    void plainRecord() {
        byte[] data = "hello, cask\n".getBytes();
        ChunkId id = ChunkId.parse(HELLO_ID);
        assertEquals(id, ChunkId.of(data));
        assertEquals(HELLO_RECORD, HEX.formatHex(PackFormat.encodeRecord(id, PackFormat.CODEC_NONE, data.length, data, 0, data.length)));
        byte[] rec = HEX.parseHex(HELLO_RECORD);
        PackFormat.Record r = PackFormat.decodeRecord("golden", rec, 0, rec.length);
        assertEquals(id, r.id());
        assertArrayEquals(data, LocalChunkStore.plainBytes("golden", r));
    }

    @Test
    void zstdRecord() {
        byte[] rec = HEX.parseHex(ZSTD_RECORD);
        PackFormat.Record r = PackFormat.decodeRecord("golden", rec, 0, rec.length);
        assertEquals(PackFormat.CODEC_ZSTD, r.codec());
        byte[] plain = LocalChunkStore.plainBytes("golden", r);
        assertArrayEquals("a".repeat(200).getBytes(), plain);
        assertEquals(r.id(), ChunkId.of(plain));
    }

    @Test
    void layout() {
        ChunkId id = ChunkId.parse(HELLO_ID);
        Layout l = new Layout(List.of(new Layout.Extent(0, new Root(1 << 20, 4096, 2, id)),
                new Layout.Extent(1 << 20, new Root(4096, 4096, 0, ChunkId.ZERO))));
        assertEquals(LAYOUT, HEX.formatHex(l.encode()));
        assertEquals(l, Layout.decode(HEX.parseHex(LAYOUT)));
    }
}
