package dev.cask.layout;

import dev.cask.common.CaskException;
import dev.cask.device.BlockDevice;
import dev.cask.device.BlockStatus;
import dev.cask.device.Capabilities;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Partition tables are outside input: seeded random damage to valid MBR, EBR-chain and GPT
 * tables must give a plan that covers the disk exactly (extents contiguous, inside the disk) or a
 * warning, never another exception. Replay a failure with -Dcask.seed=N.
 */
class PartitionTableFuzzTest {
    private static final int SIZE = 8 << 20;

    static final class Mem implements BlockDevice {
        final byte[] b;

        Mem(byte[] b) {
            this.b = b;
        }

        @Override public long size() { return b.length; }
        @Override public Capabilities capabilities() { return Capabilities.readOnly(4096); }
        @Override public void read(long off, byte[] dst, int o, int n) {
            BlockDevice.checkRange(this, off, n);
            System.arraycopy(b, (int) off, dst, o, n);
        }
        @Override public List<BlockStatus> blockStatus(long off, long n) { return List.of(new BlockStatus(off, n, false)); }
        @Override public void close() {}
    }

    private static void mbrEntry(byte[] d, int base, int i, int type, long start, long count) {
        ByteBuffer b = ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN);
        d[base + 446 + 16 * i + 4] = (byte) type;
        b.putInt(base + 446 + 16 * i + 8, (int) start);
        b.putInt(base + 446 + 16 * i + 12, (int) count);
        d[base + 510] = 0x55;
        d[base + 511] = (byte) 0xaa;
    }

    static byte[] mbr() {
        byte[] d = new byte[SIZE];
        mbrEntry(d, 0, 0, 0x83, 2048, 4096);
        mbrEntry(d, 0, 1, 0x05, 8192, 8192);
        mbrEntry(d, 8192 * 512, 0, 0x83, 2048, 2048);    // logical 1
        mbrEntry(d, 8192 * 512, 1, 0x05, 4096, 4096);    // link to the next EBR
        mbrEntry(d, 12288 * 512, 0, 0x83, 63, 1000);     // logical 2
        return d;
    }

    static byte[] gpt() {
        byte[] d = new byte[SIZE];
        mbrEntry(d, 0, 0, 0xee, 1, SIZE / 512 - 1);
        ByteBuffer e = ByteBuffer.wrap(d, 1024, 128 * 128).slice().order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 3; i++) {
            e.putLong(i * 128, 0x1234 + i);
            e.putLong(i * 128 + 8, 0x5678);
            e.putLong(i * 128 + 32, 2048 + i * 4096L);
            e.putLong(i * 128 + 40, 2048 + i * 4096L + 2047);
        }
        CRC32 c = new CRC32();
        c.update(d, 1024, 128 * 128);
        ByteBuffer h = ByteBuffer.wrap(d).order(ByteOrder.LITTLE_ENDIAN);
        System.arraycopy("EFI PART".getBytes(), 0, d, 512, 8);
        h.putInt(512 + 8, 0x00010000);
        h.putInt(512 + 12, 92);
        h.putLong(512 + 72, 2);
        h.putInt(512 + 80, 128);
        h.putInt(512 + 84, 128);
        h.putInt(512 + 88, (int) c.getValue());
        c.reset();
        c.update(d, 512, 92);
        h.putInt(512 + 16, (int) c.getValue());
        return d;
    }

    @Test
    void validTablesGiveTheirPartitions() {
        assertEquals(3, PartitionTable.read(new Mem(mbr())).size());
        assertEquals(3, PartitionTable.read(new Mem(gpt())).size());
    }

    @Test
    void damagedTablesNeverBreakThePlanner() {
        long seed = Long.getLong("cask.seed", new Random().nextLong());
        Random rnd = new Random(seed);
        byte[][] bases = {mbr(), gpt()};
        int[] hot = {446, 454, 458, 462, 510, 512 + 12, 512 + 16, 512 + 72, 512 + 80, 512 + 84, 512 + 88, 1024 + 32, 1024 + 40,
                8192 * 512 + 446 + 8, 8192 * 512 + 446 + 24, 12288 * 512 + 446 + 8};
        for (int iter = 0; iter < 4000; iter++) {
            byte[] d = bases[rnd.nextInt(2)].clone();
            int flips = 1 + rnd.nextInt(4);
            for (int f = 0; f < flips; f++) {
                int at = rnd.nextBoolean() ? hot[rnd.nextInt(hot.length)] + rnd.nextInt(8) : rnd.nextInt(16384);
                d[at] = rnd.nextInt(4) == 0 ? (byte) 0xff : (byte) rnd.nextInt(256);
            }
            String[] warning = {null};
            List<LayoutPlanner.ExtentPlan> plan;
            try {
                plan = LayoutPlanner.plan(new Mem(d), 0, "fuzz", w -> warning[0] = w);
            } catch (CaskException e) {
                fail("seed=" + seed + " iteration=" + iter + ": planner threw instead of falling back: " + e.getMessage());
                return;
            } catch (RuntimeException e) {
                throw new AssertionError("seed=" + seed + " iteration=" + iter + ": " + e, e);
            }
            long at = 0;
            for (LayoutPlanner.ExtentPlan e : plan) {
                assertEquals(at, e.offset(), "seed=" + seed + " iteration=" + iter + ": extents must be contiguous " + plan);
                assertTrue(e.length() > 0, "seed=" + seed + " iteration=" + iter + ": empty extent " + plan);
                at += e.length();
            }
            assertEquals(SIZE, at, "seed=" + seed + " iteration=" + iter + ": the plan must cover the disk " + plan);
        }
    }
}
