package dev.cask.store.s3;

import dev.cask.common.CaskException;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The endpoint from the SDK's environment variables: which one wins, and a bad one is a usage error naming it. */
class S3SettingsTest {
    @Test
    void theS3EndpointVariableWinsOverTheGeneralOne() {
        S3Settings s = S3Settings.fromEnvironment(Map.of("AWS_ENDPOINT_URL", "http://general:9000", "AWS_ENDPOINT_URL_S3", "http://s3-only:9000"));
        assertEquals(URI.create("http://s3-only:9000"), s.endpoint());
        assertEquals(URI.create("http://general:9000"), S3Settings.fromEnvironment(Map.of("AWS_ENDPOINT_URL", "http://general:9000")).endpoint());
        assertEquals("http://general:9000", S3Settings.fromEnvironment(Map.of("AWS_ENDPOINT_URL", " http://general:9000 ")).describe());
    }

    @Test
    void aBadEndpointIsAUsageErrorNamingIt() {
        CaskException.Usage e = assertThrows(CaskException.Usage.class, () -> S3Settings.fromEnvironment(Map.of("AWS_ENDPOINT_URL", "ftp://files:21")));
        assertTrue(e.getMessage().startsWith("S3 endpoint 'ftp://files:21' (AWS_ENDPOINT_URL...): not http(s)://HOST[:PORT]"), e.getMessage());
    }

    @Test
    void explicitSettingsAreWhatTheyAre() {
        S3Settings s = S3Settings.of(URI.create("http://127.0.0.1:9000"), "eu-west-1", "id", "secret");
        assertEquals("eu-west-1", s.region());
        assertEquals("id", s.credentials().resolveCredentials().accessKeyId());
        assertEquals("AWS (eu-west-1)", S3Settings.of(null, "eu-west-1", "id", "secret").describe());
    }
}
