package dev.cask.store.s3;

import dev.cask.common.CaskException;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.ResponseBytes;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.S3ClientBuilder;
import software.amazon.awssdk.services.s3.model.GetObjectRequest;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.HeadBucketRequest;
import software.amazon.awssdk.services.s3.model.PutObjectRequest;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.Base64;

/**
 * The few object-store requests a store makes, on one bucket, through the AWS SDK for Java v2
 * (its small JDK {@code HttpURLConnection} client): put a whole object, read a byte range of one,
 * read a small one whole, check the bucket. Every failure becomes a one-line {@link CaskException}
 * naming the store or the object ({@code s3://BUCKET/KEY}), the endpoint when it matters, and what
 * the server or the connection said; the kind says what it was: {@link CaskException.NotFound} (no
 * such bucket), {@link CaskException.Corrupt} (an object the index names is missing or shorter
 * than the index says), {@link CaskException.Io} (the rest: network, permissions, throttling).
 *
 * <p><b>Integrity on the wire.</b> A put sends {@code Content-MD5}, which every S3-compatible
 * server checks before it stores the object: a body damaged on its way is refused, never stored.
 * The SDK's newer default (CRC trailers in aws-chunked bodies) is turned off, since not every
 * server speaks it. Reads are byte ranges, which carry no object checksum: the pack records' own
 * CRC32C checks them ({@code PackFormat}).
 *
 * <p><b>Retries</b> are the SDK's standard mode: up to 3 tries with jittered back-off for
 * connection failures, 5xx and throttling. Puts are idempotent here (a key is written only by the
 * writer that began its pack), so a retried put is safe. Thread-safe (the SDK client is).
 */
final class S3Objects implements AutoCloseable {
    private final S3StoreUrl store;
    private final S3Settings settings;
    private final S3Client s3;

    /**
     * Test hook: told how far an upload got, from the thread that reads its body. The SDK may read a
     * body more than once per request (to sign it, then to send it; again on a retry): {@code stream}
     * counts the reads of one {@link #put}'s body from 1.
     */
    @FunctionalInterface
    interface UploadProgress {
        void sent(int stream, long bytes);
    }

    volatile UploadProgress uploadProgress = (stream, bytes) -> {};

    S3Objects(S3StoreUrl store, S3Settings settings) {
        this.store = store;
        this.settings = settings;
        if (settings.region() == null) {
            throw new CaskException.InvalidInput("store " + store + ": no AWS region: set AWS_REGION (or region in ~/.aws/config),"
                    + " or AWS_ENDPOINT_URL for an S3-compatible server");
        }
        S3ClientBuilder b = S3Client.builder()
                .httpClient(UrlConnectionHttpClient.builder().connectionTimeout(Duration.ofSeconds(5)).socketTimeout(Duration.ofSeconds(60)).build())
                .region(Region.of(settings.region()))
                .credentialsProvider(settings.credentials())
                .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
                .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED);
        if (settings.endpoint() != null) b.endpointOverride(settings.endpoint()).forcePathStyle(true);
        try {
            this.s3 = b.build();
        } catch (RuntimeException e) {
            throw new CaskException.InvalidInput("store " + store + ": cannot make an S3 client for " + settings.describe() + ": " + oneLine(e));
        }
    }

    S3StoreUrl store() {
        return store;
    }

    /** Checks that the bucket exists and these credentials may use it: a clear error now rather than at the first upload. */
    void checkBucket() {
        try {
            s3.headBucket(HeadBucketRequest.builder().bucket(store.bucket()).build());
        } catch (AwsServiceException e) {
            int status = e.statusCode();
            if (status == 404) {
                throw new CaskException.NotFound("store " + store + ": bucket '" + store.bucket() + "' does not exist at " + settings.describe()
                        + " (create it first, or check the bucket name and AWS_ENDPOINT_URL)");
            }
            if (status == 403 || status == 401) {
                throw new CaskException.Io("store " + store + ": access to bucket '" + store.bucket() + "' at " + settings.describe()
                        + " denied (HTTP " + status + "; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the bucket's policy)", e);
            }
            throw new CaskException.Io("store " + store + ": checking bucket '" + store.bucket() + "' at " + settings.describe() + " failed: " + describe(e), e);
        } catch (SdkException e) {
            throw new CaskException.Io("store " + store + ": cannot reach " + settings.describe() + ": " + oneLine(e), e);
        }
    }

    /** Writes {@code buf[0, length)} as the whole object {@code key}; returns when the server has stored it. */
    void put(String key, byte[] buf, int length) {
        byte[] md5;
        try {
            MessageDigest md = MessageDigest.getInstance("MD5");
            md.update(buf, 0, length);
            md5 = md.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has MD5", e);
        }
        PutObjectRequest req = PutObjectRequest.builder().bucket(store.bucket()).key(key).contentLength((long) length)
                .contentMD5(Base64.getEncoder().encodeToString(md5)).contentType("application/octet-stream").build();
        UploadProgress progress = uploadProgress;
        java.util.concurrent.atomic.AtomicInteger streams = new java.util.concurrent.atomic.AtomicInteger();
        try {
            s3.putObject(req, RequestBody.fromContentProvider(
                    () -> new Counting(new ByteArrayInputStream(buf, 0, length), streams.incrementAndGet(), progress),
                    length, "application/octet-stream"));
        } catch (SdkException e) {
            throw new CaskException.Io("store " + store + ": uploading " + store.objectUrl(key) + " (" + length + " bytes) to "
                    + settings.describe() + " failed: " + describe(e), e);
        }
    }

    /**
     * Bytes {@code [offset, offset + length)} of object {@code key}, exactly; {@code what} names the
     * chunk or pack being read in errors. A missing object, or one that ends before, is corrupt.
     */
    byte[] getRange(String key, long offset, int length, java.util.function.Supplier<String> what) {
        GetObjectRequest req = GetObjectRequest.builder().bucket(store.bucket()).key(key)
                .range("bytes=" + offset + "-" + (offset + length - 1)).build();
        byte[] got;
        try {
            ResponseBytes<GetObjectResponse> r = s3.getObjectAsBytes(req);
            got = r.asByteArrayUnsafe();
        } catch (AwsServiceException e) {
            if (e.statusCode() == 416) {
                throw new CaskException.Corrupt(what.get() + ": object " + store.objectUrl(key) + " ends before offset " + offset);
            }
            throw readFailure(key, " bytes " + offset + "-" + (offset + length - 1), what, e);
        } catch (SdkException e) {
            throw readFailure(key, "", what, e);
        }
        if (got.length != length) {
            throw new CaskException.Corrupt(what.get() + ": object " + store.objectUrl(key) + " ends before offset " + (offset + length)
                    + " (read " + got.length + " of " + length + " bytes from offset " + offset + ")");
        }
        return got;
    }

    /** The whole of object {@code key}; a missing object is corrupt ({@code what} names the pack read). */
    byte[] get(String key, java.util.function.Supplier<String> what) {
        try {
            return s3.getObjectAsBytes(b -> b.bucket(store.bucket()).key(key)).asByteArrayUnsafe();
        } catch (SdkException e) {
            throw readFailure(key, "", what, e);
        }
    }

    /**
     * What a failed GET of object {@code key} ({@code range}: the bytes asked for, or empty for all
     * of it) throws: a missing object is Corrupt (something named it); anything else the server
     * said, or a connection that failed, is Io.
     */
    private CaskException readFailure(String key, String range, java.util.function.Supplier<String> what, SdkException e) {
        if (e instanceof AwsServiceException a) {
            if (a.statusCode() == 404) return new CaskException.Corrupt(what.get() + ": object " + store.objectUrl(key) + " is missing (" + describe(a) + ")");
            return new CaskException.Io(what.get() + ": reading " + store.objectUrl(key) + range + " failed: " + describe(a), e);
        }
        return new CaskException.Io(what.get() + ": reading " + store.objectUrl(key) + " from " + settings.describe() + " failed: " + oneLine(e), e);
    }

    /** Deletes object {@code key} (an object already gone is no error: S3's DELETE is idempotent). */
    void delete(String key) {
        try {
            s3.deleteObject(b -> b.bucket(store.bucket()).key(key));
        } catch (SdkException e) {
            throw new CaskException.Io("store " + store + ": deleting " + store.objectUrl(key) + " failed: " + describe(e), e);
        }
    }

    /** Every object whose key starts with {@code prefix}: key -> size, in key order (one LIST request per 1,000). */
    java.util.SortedMap<String, Long> list(String prefix) {
        try {
            java.util.SortedMap<String, Long> out = new java.util.TreeMap<>();
            for (var o : s3.listObjectsV2Paginator(b -> b.bucket(store.bucket()).prefix(prefix)).contents()) out.put(o.key(), o.size());
            return out;
        } catch (SdkException e) {
            throw new CaskException.Io("store " + store + ": listing " + store.objectUrl(prefix) + " failed: " + describe(e), e);
        }
    }

    /** The size of object {@code key}, or -1 when there is none. */
    long size(String key) {
        try {
            return s3.headObject(b -> b.bucket(store.bucket()).key(key)).contentLength();
        } catch (AwsServiceException e) {
            if (e.statusCode() == 404) return -1;
            throw new CaskException.Io("store " + store + ": looking at " + store.objectUrl(key) + " failed: " + describe(e), e);
        } catch (SdkException e) {
            throw new CaskException.Io("store " + store + ": looking at " + store.objectUrl(key) + " at " + settings.describe() + " failed: " + oneLine(e), e);
        }
    }

    /** What the server said (its error code, HTTP status and message), or what the connection said, on one line. */
    static String describe(SdkException e) {
        if (e instanceof AwsServiceException a && a.awsErrorDetails() != null) {
            String code = a.awsErrorDetails().errorCode();
            String message = a.awsErrorDetails().errorMessage();
            return (code == null ? "" : code + " ") + "(HTTP " + a.statusCode() + ")" + (message == null ? "" : ": " + oneLine(message));
        }
        return oneLine(e);
    }

    static String oneLine(String s) {
        return s.strip().replaceAll("\\s*\\R\\s*", "; ");
    }

    /** The message of {@code e} and of its deepest cause when that says more (e.g. "Connection refused"), on one line. */
    static String oneLine(Throwable e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) root = root.getCause();
        if (root != e && root.getMessage() != null && !m.contains(root.getMessage())) m = m + " (" + root.getMessage() + ")";
        return oneLine(m);
    }

    /** An upload's body, telling {@link #uploadProgress} how far it got. */
    private static final class Counting extends java.io.FilterInputStream {
        private final int stream;
        private final UploadProgress progress;
        private long sent;

        Counting(InputStream in, int stream, UploadProgress progress) {
            super(in);
            this.stream = stream;
            this.progress = progress;
        }

        @Override
        public int read() throws java.io.IOException {
            int b = super.read();
            if (b >= 0) progress.sent(stream, ++sent);
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws java.io.IOException {
            int n = super.read(b, off, len);
            if (n > 0) progress.sent(stream, sent += n);
            return n;
        }
    }

    @Override
    public void close() {
        s3.close();
    }
}
