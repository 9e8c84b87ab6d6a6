/**
 * The shared store: pack objects in S3 with the index in PostgreSQL, the node cache, collection
 * on S3, and SharedImages, which composes it all into Images.
 */
@SuppressWarnings({"requires-automatic", "module"}) // the AWS SDK's jars are automatic modules; "s3" ends in a digit
module dev.cask.s3 {
    requires transitive dev.cask.postgres;
    requires software.amazon.awssdk.services.s3;
    requires software.amazon.awssdk.auth;
    requires software.amazon.awssdk.awscore;
    requires software.amazon.awssdk.core;
    requires software.amazon.awssdk.http;
    requires software.amazon.awssdk.http.urlconnection;
    requires software.amazon.awssdk.profiles;
    requires software.amazon.awssdk.regions;
    requires com.github.benmanes.caffeine;

    exports dev.cask.store.s3;
}
