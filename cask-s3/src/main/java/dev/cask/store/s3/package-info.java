/**
 * A {@link dev.cask.store.ChunkStore} whose packs are immutable objects in S3-compatible storage
 * and whose index is in PostgreSQL ({@link dev.cask.store.s3.S3ChunkStore}), for many cask nodes
 * sharing one store: the store URL ({@code s3://BUCKET[/PREFIX]}), the endpoint, region and
 * credentials from the AWS SDK's environment, the object requests, and the pack encoding shared
 * with the local store. Module cask-s3: depends on the
 * store and volume layers and on cask-postgres (the chunk index, catalog and leases); only the CLI
 * depends on it, and composes it into {@code Images} with {@code SharedImages}.
 */
package dev.cask.store.s3;
