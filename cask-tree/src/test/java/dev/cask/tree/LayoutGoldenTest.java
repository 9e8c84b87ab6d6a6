package dev.cask.tree;

import dev.cask.store.ChunkId;
import org.junit.jupiter.api.Test;

import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Golden bytes of the layout record, format 1, written by the first release. Later versions must
 * keep decoding them exactly, and the encoder must keep producing them byte for byte. Never edit
 * the string: add new ones for new formats. (The pack formats' golden bytes are in cask-store's
 * GoldenFormatTest.)
 */
class LayoutGoldenTest {
    private static final HexFormat HEX = HexFormat.of();
    static final String HELLO_ID = "074e50f9f8180f3fb41ba84a3adbd631c2e07c981c77e8330f0890a923c8214d";
    static final String LAYOUT = "636c61790100000002"
            + "0000000000000000" + "0000000000100000" + "00001000" + "02" + HELLO_ID
            + "0000000000100000" + "0000000000001000" + "00001000" + "00" + "00".repeat(32);

    @Test
    void layout() {
        ChunkId id = ChunkId.parse(HELLO_ID);
        Layout l = new Layout(List.of(new Layout.Extent(0, new Root(1 << 20, 4096, 2, id)),
                new Layout.Extent(1 << 20, new Root(4096, 4096, 0, ChunkId.ZERO))));
        assertEquals(LAYOUT, HEX.formatHex(l.encode()));
        assertEquals(l, Layout.decode(HEX.parseHex(LAYOUT)));
    }
}
