import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { InputError } from '@crawlfleet/core';

/** Where an `s3://bucket/prefix` URI points. */
export interface S3Location {
  bucket: string;
  /** The key prefix, without leading or trailing slash; `''` for the bucket's root. */
  prefix: string;
}

/** The region when neither AWS_REGION nor AWS_DEFAULT_REGION is set. */
export const DEFAULT_S3_REGION = 'us-east-1';

/**
 * S3's rules for general-purpose bucket names: 3-63 of a-z 0-9 . -, starting and ending with a
 * letter or digit, no `..`, not an IP address, none of the reserved prefixes and suffixes.
 */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const RESERVED_BUCKET_NAME = /\.\.|^\d+\.\d+\.\d+\.\d+$|^xn--|^sthree-|-s3alias$|--ol-s3$/;

/**
 * Parses `s3://bucket/prefix` (a store or sink location, or a body's reference, whose "prefix" is
 * then the object's key). Slashes around the prefix are dropped; an empty segment inside it, a
 * `?` or `#` (which `new URL` would cut off) or a control character is refused, as is a bucket
 * name S3 would refuse.
 */
export function parseS3Uri(uri: string): S3Location {
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(uri);
  if (match === null) throw invalidUri(uri, 'must look like s3://bucket/prefix');
  const bucket = match[1] as string;
  if (!BUCKET_NAME.test(bucket) || RESERVED_BUCKET_NAME.test(bucket)) {
    throw invalidUri(
      uri,
      `bucket ${JSON.stringify(bucket)} is not a valid name (3-63 of a-z 0-9 . -, a letter or digit at each end)`,
    );
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
  if (/\/\/|[?#\u0000-\u001f\u007f]/.test(prefix)) {
    throw invalidUri(uri, 'the prefix must not hold empty segments (//), ? or #, or control characters');
  }
  return { bucket, prefix };
}

function invalidUri(uri: string, problem: string): InputError {
  return new InputError('invalid_s3_uri', `S3 URI ${JSON.stringify(uri)}: ${problem}`);
}

/** `prefix/name`, or just `name` at the bucket's root. */
export function s3Key(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}/${name}`;
}

/**
 * The client configuration the standard AWS variables describe. Credentials are set only when
 * both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are; otherwise the SDK's own chain (shared
 * config and SSO profiles, web identity, container and instance roles) finds them. With
 * AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (an S3-compatible server: MinIO, R2, a test server),
 * buckets are addressed by path, since such servers rarely have a DNS name per bucket.
 */
export function s3ClientConfig(env: NodeJS.ProcessEnv = process.env): S3ClientConfig {
  const config: S3ClientConfig = {
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || DEFAULT_S3_REGION,
    // A sink reads bodies from buckets in any region; S3 answers a wrong one with a redirect.
    followRegionRedirects: true,
  };
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (accessKeyId && secretAccessKey) {
    config.credentials = {
      accessKeyId,
      secretAccessKey,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
  } else if (accessKeyId || secretAccessKey) {
    const missing = accessKeyId ? 'AWS_SECRET_ACCESS_KEY' : 'AWS_ACCESS_KEY_ID';
    throw new InputError('invalid_s3_credentials', `${missing} must be set along with the other AWS key variable`);
  }
  const endpointVariable = env.AWS_ENDPOINT_URL_S3
    ? 'AWS_ENDPOINT_URL_S3'
    : env.AWS_ENDPOINT_URL
      ? 'AWS_ENDPOINT_URL'
      : undefined;
  if (endpointVariable !== undefined) {
    const endpoint = env[endpointVariable] as string;
    if (!/^https?:\/\/[^/\s]+/.test(endpoint)) {
      throw new InputError(
        'invalid_s3_endpoint',
        `${endpointVariable} must be an http:// or https:// URL, got ${JSON.stringify(endpoint)}`,
      );
    }
    config.endpoint = endpoint;
    config.forcePathStyle = true;
    // Since early 2025 the SDK adds CRC32 checksums to every upload by default (a header, or an
    // aws-chunked body with a trailing checksum for streams) and asks for them on downloads.
    // Many S3-compatible servers reject those headers, and some (s3rver) even store the chunk
    // framing as the object's bytes, so off AWS checksums are sent only where an operation
    // requires one.
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  return config;
}

/**
 * An S3 client configured from `env` (see `s3ClientConfig`). The SDK is imported here, on first
 * use, so importing this module costs nothing to those who never touch S3.
 */
export async function openS3Client(env: NodeJS.ProcessEnv = process.env): Promise<S3Client> {
  const config = s3ClientConfig(env);
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client(config);
}

/** Why an S3 request failed, as far as the caller can act on it. */
export type S3FailureReason =
  /** No such bucket or object (404, `NoSuchKey`, `NoSuchBucket`). */
  | 'not_found'
  /** Refused (403): wrong credentials, or a bucket owned by someone else. */
  | 'access_denied'
  /** No credentials from the variables or any source the SDK tries. */
  | 'no_credentials'
  /** No answer: refused connection, DNS failure, timeout. */
  | 'unreachable'
  /** Anything else S3 answered with (throttling, server errors, ...). */
  | 'failed';

/** An S3 request that failed, with a one-line message and the reason as a typed code. */
export class S3RequestError extends Error {
  override readonly name = 'S3RequestError';
  readonly exitCode = 1;
  readonly code: S3FailureReason;
  /** The HTTP status S3 answered with, when it answered. */
  readonly status: number | undefined;

  constructor(code: S3FailureReason, message: string, status: number | undefined, cause: unknown) {
    super(message, { cause });
    this.code = code;
    this.status = status;
  }
}

/** Wraps what the SDK threw for the request described by `what` (`get s3://bucket/key`). */
export function s3RequestError(what: string, error: unknown): S3RequestError {
  const failure = error as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = failure.$metadata?.httpStatusCode;
  const s3Code = failure.name ?? 'Error';
  const detail = (failure.message ?? String(error)).replace(/\s*\n\s*/g, ' ');
  let reason: S3FailureReason;
  let message: string;
  if (status === 404 || s3Code === 'NoSuchKey' || s3Code === 'NoSuchBucket' || s3Code === 'NotFound') {
    reason = 'not_found';
    message = s3Code === 'NoSuchBucket' ? 'the bucket does not exist' : 'not found';
  } else if (status === 403 || s3Code === 'AccessDenied') {
    reason = 'access_denied';
    message = 'access denied (check the AWS credentials and the bucket policy)';
  } else if (s3Code === 'CredentialsProviderError') {
    reason = 'no_credentials';
    message = 'no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile or role)';
  } else if (status === undefined) {
    reason = 'unreachable';
    message = `no answer from S3: ${failure.code ?? s3Code}: ${detail}`;
  } else {
    reason = 'failed';
    message = `S3 answered ${status} ${s3Code}: ${detail}`;
  }
  return new S3RequestError(reason, `${what}: ${message}`, status, error);
}
