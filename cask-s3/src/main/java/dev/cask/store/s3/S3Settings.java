package dev.cask.store.s3;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.profiles.ProfileFile;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;

import java.net.URI;
import java.util.Map;
import java.util.Optional;

/**
 * How to reach the object store: endpoint, region and credentials, taken where every AWS tool
 * takes them, so an operator configures cask like the {@code aws} CLI:
 * <ul>
 *   <li><b>endpoint</b>: {@code AWS_ENDPOINT_URL_S3}, else {@code AWS_ENDPOINT_URL} (or the system
 *       properties {@code aws.endpointUrlS3}, {@code aws.endpointUrl}), else {@code endpoint_url} in
 *       the profile ({@code AWS_PROFILE}, default {@code default}) of {@code ~/.aws/config}; none: AWS
 *       itself. With an endpoint, requests use <em>path-style</em> addressing
 *       ({@code http://HOST/BUCKET/KEY}), which s3proxy, MinIO and Ceph RGW need and AWS accepts.
 *   <li><b>region</b>: the SDK's chain ({@code AWS_REGION}, {@code aws.region}, the profile's
 *       {@code region}...); none, with an endpoint, is {@code us-east-1} (what S3-compatible
 *       servers expect when they care at all); none without an endpoint is an error.
 *   <li><b>credentials</b>: the SDK's default chain ({@code AWS_ACCESS_KEY_ID} and
 *       {@code AWS_SECRET_ACCESS_KEY}, {@code ~/.aws/credentials}, SSO, instance roles...).
 * </ul>
 * Tests (and callers that know better) give all three with {@link #of}. Immutable.
 */
@SuppressWarnings("exports") // the SDK's credentials type: only the CLI, which requires the SDK too, builds settings
public record S3Settings(URI endpoint, String region, AwsCredentialsProvider credentials) {
    /** The region assumed when an endpoint is given without one. */
    public static final String DEFAULT_REGION = "us-east-1";

    /** Explicit settings; {@code endpoint} may be null (AWS). */
    public static S3Settings of(URI endpoint, String region, String accessKeyId, String secretAccessKey) {
        return new S3Settings(endpoint, region, StaticCredentialsProvider.create(AwsBasicCredentials.create(accessKeyId, secretAccessKey)));
    }

    /** From this process's environment, system properties and AWS files (see the class comment). */
    public static S3Settings fromEnvironment() {
        return fromEnvironment(System.getenv());
    }

    static S3Settings fromEnvironment(Map<String, String> env) {
        URI endpoint = endpoint(env);
        String region;
        try {
            region = new DefaultAwsRegionProviderChain().getRegion().id();
        } catch (RuntimeException none) {
            region = endpoint != null ? DEFAULT_REGION : null;
        }
        return new S3Settings(endpoint, region, DefaultCredentialsProvider.builder().build());
    }

    private static URI endpoint(Map<String, String> env) {
        for (String value : new String[] {System.getProperty("aws.endpointUrlS3"), env.get("AWS_ENDPOINT_URL_S3"),
                System.getProperty("aws.endpointUrl"), env.get("AWS_ENDPOINT_URL")}) {
            if (value != null && !value.isBlank()) return parseEndpoint(value.strip());
        }
        try {
            String profile = Optional.ofNullable(System.getProperty("aws.profile")).or(() -> Optional.ofNullable(env.get("AWS_PROFILE"))).orElse("default");
            Optional<String> fromProfile = ProfileFile.defaultProfileFile().profile(profile).flatMap(p -> p.property("endpoint_url"));
            if (fromProfile.isPresent() && !fromProfile.get().isBlank()) return parseEndpoint(fromProfile.get().strip());
        } catch (RuntimeException unreadable) {
            // no or unreadable ~/.aws/config: no endpoint from there
        }
        return null;
    }

    private static URI parseEndpoint(String value) {
        try {
            URI uri = URI.create(value);
            if (uri.getScheme() == null || !(uri.getScheme().equals("http") || uri.getScheme().equals("https")) || uri.getHost() == null) {
                throw new IllegalArgumentException("not http(s)://HOST[:PORT]");
            }
            return uri;
        } catch (IllegalArgumentException e) {
            throw new dev.cask.common.CaskException.Usage("S3 endpoint '" + value + "' (AWS_ENDPOINT_URL...): " + e.getMessage());
        }
    }

    /** The endpoint as messages show it: the URL, or {@code AWS (REGION)}. */
    public String describe() {
        return endpoint != null ? endpoint.toString() : "AWS (" + (region == null ? "no region" : region) + ")";
    }
}
