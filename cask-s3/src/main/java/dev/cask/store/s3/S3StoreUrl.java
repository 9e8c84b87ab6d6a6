package dev.cask.store.s3;

import dev.cask.common.CaskException;

import java.util.regex.Pattern;

/**
 * Where a store's packs live in an object store, as a user writes it ({@code --store s3://BUCKET[/PREFIX]}):
 * the bucket, and a key prefix so that several stores can share one bucket. Every object of the
 * store has a key under {@code PREFIX/} (or at the bucket's top without a prefix), e.g. pack 7 is
 * {@code PREFIX/packs/00000007.pack}.
 *
 * <p>Checked here, with a one-line error naming the URL: the bucket name follows S3's rules (3 to
 * 63 characters of lower-case letters, digits, dots and hyphens, starting and ending with a letter
 * or digit, not an IP address), so a typo fails before any request; the prefix is one or more
 * segments of printable characters without empty, {@code .} or {@code ..} segments (a trailing
 * slash is dropped). Endpoint, region and keys are not part of it: they come from the AWS SDK's
 * standard environment variables and files ({@link S3Settings}). Immutable.
 */
public final class S3StoreUrl {
    private static final Pattern BUCKET = Pattern.compile("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]");
    private static final Pattern IP = Pattern.compile("\\d+\\.\\d+\\.\\d+\\.\\d+");
    private static final String USAGE = "s3://BUCKET[/PREFIX]";

    private final String bucket;
    private final String prefix;

    private S3StoreUrl(String bucket, String prefix) {
        this.bucket = bucket;
        this.prefix = prefix;
    }

    /** True when {@code store} names an object store ({@code s3://...}) rather than a directory. */
    public static boolean isS3(String store) {
        return store != null && store.regionMatches(true, 0, "s3://", 0, 5);
    }

    /** Parses {@code s3://BUCKET[/PREFIX]}. */
    public static S3StoreUrl parse(String url) {
        if (url == null || url.isBlank()) throw new CaskException.Usage("store URL is empty (expected " + USAGE + ")");
        if (!isS3(url)) throw new CaskException.Usage("store URL '" + url + "': not an S3 URL (expected " + USAGE + ")");
        String rest = url.substring(5);
        int slash = rest.indexOf('/');
        String bucket = slash < 0 ? rest : rest.substring(0, slash);
        String prefix = slash < 0 ? "" : rest.substring(slash + 1);
        if (bucket.isEmpty()) throw new CaskException.Usage("store URL '" + url + "': no bucket (expected " + USAGE + ")");
        if (!BUCKET.matcher(bucket).matches() || bucket.contains("..") || IP.matcher(bucket).matches()) {
            throw new CaskException.Usage("store URL '" + url + "': bad bucket name '" + bucket
                    + "' (3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit)");
        }
        if (prefix.endsWith("/")) prefix = prefix.substring(0, prefix.length() - 1);
        if (!prefix.isEmpty()) {
            for (String segment : prefix.split("/", -1)) {
                if (segment.isEmpty() || segment.equals(".") || segment.equals("..")) {
                    throw new CaskException.Usage("store URL '" + url + "': bad prefix '" + prefix + "' (an empty, '.' or '..' segment)");
                }
            }
            for (int i = 0; i < prefix.length(); i++) {
                char ch = prefix.charAt(i);
                if (ch < 0x20 || ch == 0x7f || ch == '\\') {
                    throw new CaskException.Usage("store URL '" + url + "': bad prefix '" + prefix + "' (character 0x"
                            + Integer.toHexString(ch) + " at " + i + ")");
                }
            }
            if (prefix.length() > 512) throw new CaskException.Usage("store URL '" + url + "': prefix of " + prefix.length() + " characters (at most 512)");
        }
        return new S3StoreUrl(bucket, prefix);
    }

    public String bucket() {
        return bucket;
    }

    /** The key prefix without a trailing slash; empty for the bucket's top. */
    public String prefix() {
        return prefix;
    }

    /** The key of {@code name} under the prefix ({@code PREFIX/name}). */
    public String key(String name) {
        return prefix.isEmpty() ? name : prefix + "/" + name;
    }

    /** The key of pack {@code id}: {@code PREFIX/packs/NNNNNNNN.pack} (eight digits or more, as a local store's pack files). */
    public String packKey(int id) {
        return key(String.format("packs/%08d.pack", id));
    }

    /** {@code s3://BUCKET/KEY}: how messages name an object. */
    public String objectUrl(String key) {
        return "s3://" + bucket + "/" + key;
    }

    /** {@code s3://BUCKET[/PREFIX]}: how messages name the store. */
    @Override
    public String toString() {
        return prefix.isEmpty() ? "s3://" + bucket : "s3://" + bucket + "/" + prefix;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof S3StoreUrl u && u.bucket.equals(bucket) && u.prefix.equals(prefix);
    }

    @Override
    public int hashCode() {
        return bucket.hashCode() * 31 + prefix.hashCode();
    }
}
