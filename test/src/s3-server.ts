import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { openS3Client } from '@crawlfleet/bodies';

/** What of s3rver (a CommonJS package without types) the fixture uses. */
interface S3rver {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: { address: string; port: number; directory: string; silent: boolean }) => S3rver;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

/** An S3-compatible server on 127.0.0.1 for one test file. */
export interface S3Server {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  /** The AWS variables that point the SDK at this server, for a store, a target or a child process. */
  env: Record<string, string>;
  createBucket(name: string): Promise<void>;
  /** Every key in `bucket` under `prefix`, sorted. */
  listKeys(bucket: string, prefix?: string): Promise<string[]>;
  readObject(bucket: string, key: string): Promise<Buffer>;
  /** Closes the server and removes everything it stored. */
  stop(): Promise<void>;
}

/**
 * Starts s3rver on a free port of 127.0.0.1, keeping its buckets in a temporary directory of its
 * own. It checks request signatures, so a test also proves the client signs correctly; its fixed
 * credentials are the S3RVER pair in `env`.
 */
export async function startS3Server(): Promise<S3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'crawlfleet-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const env = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
  };
  // The fixture talks to the server through the client the code under test builds.
  const client: S3Client = await openS3Client(env);
  return {
    endpoint,
    env,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async listKeys(bucket, prefix) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const object of page.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      return keys.sort();
    },
    async readObject(bucket, key) {
      const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await (response.Body as NonNullable<typeof response.Body>).transformToByteArray());
    },
    async stop() {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** A bucket name no other test uses (S3 names: lower case, 3-63 characters). */
export function uniqueBucket(label: string): string {
  return `t-${label}-${randomBytes(4).toString('hex')}`;
}
