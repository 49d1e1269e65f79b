import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { InputError } from '@crawlfleet/core';
import { type BodyStore, bodyPath, type StoredBody } from './body-store.js';
import { openS3Client, parseS3Uri, s3Key, s3RequestError } from './s3-client.js';

/**
 * Bodies as objects in one S3 bucket: `s3://bucket/prefix/sha256/ab/<hex>`. A put of the same
 * bytes writes the same key again (S3 replaces an object whole, so a reader never sees half a
 * body). Loaded only when an `s3://` store is opened, so the SDK costs nothing to file stores.
 */
export class S3BodyStore implements BodyStore {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  private constructor(location: string, client: S3Client, bucket: string, prefix: string) {
    this.location = location;
    this.client = client;
    this.bucket = bucket;
    this.prefix = prefix;
  }

  /**
   * Opens the store at `s3://bucket/prefix`, with the client the AWS variables in `env` describe.
   * Nothing is sent yet: a reader may be allowed to get objects but not to look at the bucket.
   */
  static async open(uri: string, env: NodeJS.ProcessEnv = process.env): Promise<S3BodyStore> {
    const { bucket, prefix } = parseS3Uri(uri);
    return new S3BodyStore(uri, await openS3Client(env), bucket, prefix);
  }

  async put(bytes: Buffer): Promise<StoredBody> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const key = s3Key(this.prefix, bodyPath(sha256));
    const ref = `s3://${this.bucket}/${key}`;
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentType: 'application/octet-stream' }),
      );
    } catch (error) {
      throw s3RequestError(`put body ${ref}`, error);
    }
    return { ref, sha256 };
  }

  /** Reads the object a reference names, in whatever bucket: workers elsewhere may have put it. */
  async get(ref: string): Promise<Buffer> {
    const { bucket, prefix: key } = parseS3Uri(ref);
    if (key === '') throw new InputError('invalid_s3_uri', `body reference ${ref} names a bucket, not an object`);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      // A successful GetObject always has a body; its absence would be an SDK fault.
      const body = response.Body as NonNullable<typeof response.Body>;
      const bytes = await body.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (error) {
      throw s3RequestError(`get body ${ref}`, error);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
