package dev.cask.store.local;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Which packs a compaction rewrites ({@link Compactor#withinAllowance}): what a user sees as the
 * time a gc takes and the bytes it leaves. Sizes in MiB for reading; a pack's header is 16 bytes.
 */
class CompactorPolicyTest {
    private static final long M = 1 << 20;

    private static Compactor.Candidate pack(int id, long sizeMiB, long garbageMiB) {
        return new Compactor.Candidate(id, sizeMiB * M + PackFormat.PACK_HEADER, garbageMiB * M);
    }

    @Test
    void aStoreWithLittleGarbageIsLeftAlone() {
        // 1000 MiB of packs, 40 MiB of garbage (4 %, under 0.8 of the 10 % threshold): a pack with 12 % garbage waits
        List<Compactor.Candidate> chosen = Compactor.withinAllowance(List.of(pack(1, 250, 30)), 0.10, 1000 * M, 40 * M);
        assertEquals(List.of(), chosen);
    }

    @Test
    void aStoreUnderEightPercentGarbageIsLeftAlone() {
        // 70 MiB of 1000 (7 %): within 1.10 x live with room to spare; a pack with 28 % garbage waits until
        // it holds more (with half the threshold as the allowance it was copied out at 2.6 bytes per byte freed)
        assertEquals(List.of(), Compactor.withinAllowance(List.of(pack(1, 250, 70)), 0.10, 1000 * M, 70 * M));
        Compactor.Candidate p = pack(1, 250, 90);
        assertEquals(List.of(p), Compactor.withinAllowance(List.of(p), 0.10, 1000 * M, 90 * M), "9 % is over the allowance");
    }

    @Test
    void emptyPacksGoEvenWhenTheStoreHoldsLittleGarbage() {
        Compactor.Candidate empty = new Compactor.Candidate(2, 20 * M + PackFormat.PACK_HEADER, 20 * M);
        List<Compactor.Candidate> chosen = Compactor.withinAllowance(List.of(empty, pack(1, 250, 30)), 0.10, 1000 * M, 50 * M);
        assertEquals(List.of(empty), chosen);
    }

    @Test
    void theWorstPacksAreRewrittenUntilTheStoreIsUnderTheAllowance() {
        // 1000 MiB, 200 MiB garbage (20 %): the two worst packs take it to 40 MiB (4.5 % of what is left), the third waits
        List<Compactor.Candidate> worstFirst = List.of(pack(1, 100, 90), pack(2, 200, 70), pack(3, 200, 25));
        List<Compactor.Candidate> chosen = Compactor.withinAllowance(worstFirst, 0.10, 1000 * M, 200 * M);
        assertEquals(List.of(worstFirst.get(0), worstFirst.get(1)), chosen);
    }

    @Test
    void aThresholdOfZeroRewritesEveryPackWithGarbage() {
        List<Compactor.Candidate> worstFirst = List.of(pack(1, 100, 2), pack(2, 200, 1));
        assertEquals(worstFirst, Compactor.withinAllowance(worstFirst, 0.0, 1000 * M, 3 * M));
    }
}
