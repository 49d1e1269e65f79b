import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { HeadBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { openS3Client, parseS3Uri, type S3Location, s3Key, s3RequestError } from '@crawlfleet/bodies';
import { InputError, oneLine } from '@crawlfleet/core';
import { checkSinkName } from '@crawlfleet/results';
import { lineOf, type SinkItem, type SinkTarget } from './sink-target.js';

const gzip = promisify(gzipCallback);

export interface S3TargetOptions {
  /** The sink's name: the folder its batches go to, so several sinks can share a prefix. */
  sinkName: string;
  /** Where the AWS variables are read from (see `s3ClientConfig`); `process.env` by default. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Results as gzipped JSON Lines objects in S3, one object per batch:
 * `prefix/sink/yyyy/mm/dd/<first entry id>_<last entry id>.jsonl.gz`. The date is the first
 * entry's, from its stream id (UTC), not the upload's: a batch written again after a crash lands
 * on the same key and replaces its first copy. A batch that comes again cut differently makes a
 * second object; each line carries its result's idempotency key so a reader can drop the repeats.
 */
export class S3Target implements SinkTarget {
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly root: string;

  private constructor(description: string, client: S3Client, bucket: string, root: string) {
    this.description = description;
    this.client = client;
    this.bucket = bucket;
    this.root = root;
  }

  /**
   * Opens `s3://bucket/prefix` and checks the bucket is there and ours to see (HeadBucket), so a
   * sink with a mistyped bucket or wrong credentials stops at once rather than at its first batch.
   * A bad URI, a missing bucket, refused or missing credentials are `invalid_sink`; no answer, or
   * an S3 failure such as a 500, is an `S3RequestError` (`unreachable`, `failed`).
   */
  static async open(uri: string, options: S3TargetOptions): Promise<S3Target> {
    const sinkName = checkSinkName(options.sinkName);
    let location: S3Location;
    try {
      location = parseS3Uri(uri);
    } catch (error) {
      throw new InputError('invalid_sink', `sink target ${oneLine(error)}`);
    }
    const { bucket, prefix } = location;
    // Bad AWS variables keep their own codes (`invalid_s3_endpoint`, ...): they name the variable.
    const client = await openS3Client(options.env);
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (cause) {
      client.destroy();
      const error = s3RequestError(`sink target ${uri}: bucket ${bucket}`, cause);
      if (error.code === 'unreachable' || error.code === 'failed') throw error;
      // HeadBucket answers a bare 404 with no code: say what it means.
      const message =
        error.code === 'not_found' ? `sink target ${uri}: bucket ${bucket} does not exist` : error.message;
      throw new InputError('invalid_sink', message);
    }
    return new S3Target(uri, client, bucket, s3Key(prefix, sinkName));
  }

  async write(entries: readonly SinkItem[]): Promise<void> {
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first === undefined || last === undefined) return;
    const key = `${this.root}/${datePath(first.entryId)}/${first.entryId}_${last.entryId}.jsonl.gz`;
    let lines = '';
    for (const entry of entries) lines += lineOf(entry);
    const body = await gzip(lines);
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/gzip' }),
      );
    } catch (error) {
      throw s3RequestError(`sink target ${this.description}: put ${key}`, error);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** `yyyy/mm/dd` (UTC) of the moment a stream entry id (`<ms>-<seq>`) was written. */
function datePath(entryId: string): string {
  const match = /^(\d+)-\d+$/.exec(entryId);
  if (match === null) throw new TypeError(`an outbox entry id looks like <ms>-<seq>, got ${JSON.stringify(entryId)}`);
  return new Date(Number(match[1])).toISOString().slice(0, 10).replaceAll('-', '/');
}
