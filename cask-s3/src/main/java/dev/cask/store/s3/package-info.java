/**
 * A {@link dev.cask.store.ChunkStore} whose packs are immutable objects in S3-compatible storage
 * and whose index is in PostgreSQL ({@link dev.cask.store.s3.S3ChunkStore}), for many cask nodes
 * sharing one store: the store URL ({@code s3://BUCKET[/PREFIX]}), the endpoint, region and
 * credentials from the AWS SDK's environment, the object requests, and the pack encoding shared
 * with the local store. Depends on cask-core's {@code store} and {@code common}, and on
 * cask-postgres's chunk index; nothing depends on it yet (the CLI will, once the image layer takes
 * a {@code ChunkStore} instead of a {@code LocalChunkStore}).
 */
package dev.cask.store.s3;
