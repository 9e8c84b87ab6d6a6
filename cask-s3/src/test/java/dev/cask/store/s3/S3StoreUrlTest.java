package dev.cask.store.s3;

import dev.cask.common.CaskException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --store s3://BUCKET[/PREFIX]}: what is accepted, the keys it gives, and one-line errors naming the URL. */
class S3StoreUrlTest {
    @Test
    void bucketAndPrefixGiveTheKeys() {
        S3StoreUrl u = S3StoreUrl.parse("s3://vm-disks/prod/eu-1/");
        assertEquals("vm-disks", u.bucket());
        assertEquals("prod/eu-1", u.prefix(), "a trailing slash is dropped");
        assertEquals("prod/eu-1/packs/00000007.pack", u.packKey(7));
        assertEquals("prod/eu-1/packs/123456789.pack", u.packKey(123_456_789));
        assertEquals("s3://vm-disks/prod/eu-1/packs/00000007.pack", u.objectUrl(u.packKey(7)));
        assertEquals("s3://vm-disks/prod/eu-1", u.toString());
        assertEquals(u, S3StoreUrl.parse("S3://vm-disks/prod/eu-1"));

        S3StoreUrl top = S3StoreUrl.parse("s3://a.b-c");
        assertEquals("", top.prefix());
        assertEquals("packs/00000001.pack", top.packKey(1));
        assertEquals("s3://a.b-c", top.toString());
        assertTrue(S3StoreUrl.isS3("s3://x") && !S3StoreUrl.isS3("/var/lib/cask") && !S3StoreUrl.isS3(null));
    }

    @Test
    void badUrlsAreUsageErrorsNamingTheUrlAndWhatIsWrong() {
        String[][] cases = {
                {"", "store URL is empty"},
                {"/var/lib/cask", "store URL '/var/lib/cask': not an S3 URL (expected s3://BUCKET[/PREFIX])"},
                {"s3://", "store URL 's3://': no bucket"},
                {"s3:///prefix", "store URL 's3:///prefix': no bucket"},
                {"s3://Upper/x", "store URL 's3://Upper/x': bad bucket name 'Upper'"},
                {"s3://ab", "bad bucket name 'ab'"},
                {"s3://a..b", "bad bucket name 'a..b'"},
                {"s3://-ab", "bad bucket name '-ab'"},
                {"s3://192.168.1.2", "bad bucket name '192.168.1.2'"},
                {"s3://b" + "x".repeat(63), "bad bucket name"},
                {"s3://bucket/a//b", "store URL 's3://bucket/a//b': bad prefix 'a//b' (an empty, '.' or '..' segment)"},
                {"s3://bucket/a/../b", "bad prefix 'a/../b'"},
                {"s3://bucket/a\tb", "bad prefix 'a\tb' (character 0x9 at 1)"},
        };
        for (String[] c : cases) {
            CaskException.Usage e = assertThrows(CaskException.Usage.class, () -> S3StoreUrl.parse(c[0]), c[0]);
            assertTrue(e.getMessage().startsWith(c[1]) || e.getMessage().contains(c[1]), c[0] + ": " + e.getMessage());
            assertFalse(e.getMessage().contains("\n"));
        }
    }
}
