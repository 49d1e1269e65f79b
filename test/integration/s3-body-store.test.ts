import { createHash, randomBytes } from 'node:crypto';
import { BodyReader, type BodyStore, openBodyStore, parseS3Uri, s3ClientConfig } from '@crawlfleet/bodies';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type S3Server, startS3Server, uniqueBucket } from '../src/s3-server.js';

let server: S3Server;
let bucket: string;
const opened: Array<BodyStore | BodyReader> = [];

beforeAll(async () => {
  server = await startS3Server();
  // openBodyStore and BodyReader read the AWS variables from the environment, as in production.
  for (const [name, value] of Object.entries(server.env)) vi.stubEnv(name, value);
});

afterAll(async () => {
  vi.unstubAllEnvs();
  await server.stop();
});

beforeEach(async () => {
  bucket = uniqueBucket('bodies');
  await server.createBucket(bucket);
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});

async function open(uri: string): Promise<BodyStore> {
  const store = await openBodyStore(uri);
  opened.push(store);
  return store;
}

/** Bytes no text decoding would survive: every byte value, then random ones. */
function binaryBody(size: number): Buffer {
  const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  return Buffer.concat([every, randomBytes(size - every.length)]);
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('S3BodyStore', () => {
  it('puts binary bytes under prefix/sha256/ab/<hex> and gets them back unchanged', async () => {
    const store = await open(`s3://${bucket}/bodies/`);
    const bytes = binaryBody(300_000);
    const hex = sha256(bytes);

    const stored = await store.put(bytes);

    const key = `bodies/sha256/${hex.slice(0, 2)}/${hex}`;
    expect(stored).toEqual({ ref: `s3://${bucket}/${key}`, sha256: hex });
    expect(store.location).toBe(`s3://${bucket}/bodies/`);
    expect((await store.get(stored.ref)).equals(bytes)).toBe(true);
    expect((await server.readObject(bucket, key)).equals(bytes)).toBe(true);
  });

  it('puts at the bucket root when the URI has no prefix', async () => {
    const store = await open(`s3://${bucket}`);
    const stored = await store.put(Buffer.from('root body'));

    expect(await server.listKeys(bucket)).toEqual([`sha256/${stored.sha256.slice(0, 2)}/${stored.sha256}`]);
  });

  it('answers the same ref for the same bytes and keeps one object for them', async () => {
    const store = await open(`s3://${bucket}/bodies`);
    const other = await open(`s3://${bucket}/bodies`);
    const bytes = binaryBody(10_000);

    const first = await store.put(bytes);
    const again = await store.put(Buffer.from(bytes));
    const fromOther = await other.put(bytes);
    const different = await store.put(binaryBody(10_000));

    expect(again).toEqual(first);
    expect(fromOther).toEqual(first);
    expect(different.ref).not.toBe(first.ref);
    expect(await server.listKeys(bucket, 'bodies/')).toEqual(
      [first, different].map(({ sha256: hex }) => `bodies/sha256/${hex.slice(0, 2)}/${hex}`).sort(),
    );
  });

  it('resolves refs through BodyReader, whichever bucket and prefix wrote them', async () => {
    const otherBucket = uniqueBucket('bodies');
    await server.createBucket(otherBucket);
    const here = await open(`s3://${bucket}/worker-a`);
    const there = await open(`s3://${otherBucket}/deep/worker-b`);
    const a = binaryBody(5_000);
    const b = binaryBody(70_000);
    const refs = [await here.put(a), await there.put(b)].map((stored) => stored.ref);
    const reader = new BodyReader();
    opened.push(reader);

    const [readA, readB] = await Promise.all(refs.map((ref) => reader.get(ref)));

    expect(readA?.equals(a)).toBe(true);
    expect(readB?.equals(b)).toBe(true);
  });

  it('fails with a one-line not_found error when a body or its bucket is missing', async () => {
    const store = await open(`s3://${bucket}/bodies`);
    const missing = `s3://${bucket}/bodies/sha256/00/${'0'.repeat(64)}`;
    const nowhere = `s3://${uniqueBucket('gone')}/sha256/00/${'0'.repeat(64)}`;

    await expect(store.get(missing)).rejects.toMatchObject({
      name: 'S3RequestError',
      code: 'not_found',
      status: 404,
      message: `get body ${missing}: not found`,
    });
    const reader = new BodyReader();
    opened.push(reader);
    await expect(reader.get(nowhere)).rejects.toMatchObject({
      code: 'not_found',
      message: `get body ${nowhere}: the bucket does not exist`,
    });
  });

  it.each([
    ['a scheme with no bucket', 's3://'],
    ['a bucket name with capitals and _', 's3://Bad_Bucket/bodies'],
    ['a bucket name too short', 's3://ab/bodies'],
    ['a bucket name that is an IP address', 's3://10.0.0.1/bodies'],
    ['two dots in a bucket name', 's3://my..bucket/bodies'],
    ['an empty prefix segment', 's3://my-bucket/a//b'],
    ['a query in the prefix', 's3://my-bucket/bodies?x=1'],
  ])('refuses %s as invalid_s3_uri', async (_, uri) => {
    const refused = openBodyStore(uri);

    await expect(refused).rejects.toMatchObject({ name: 'InputError', code: 'invalid_s3_uri' });
    await expect(refused).rejects.toThrow(/^S3 URI "[^\n]+": [^\n]+$/);
  });

  it('refuses a ref that names a bucket and no object', async () => {
    const store = await open(`s3://${bucket}/bodies`);

    await expect(store.get(`s3://${bucket}`)).rejects.toMatchObject({ code: 'invalid_s3_uri' });
  });
});

describe('parseS3Uri', () => {
  it('keeps the prefix without the slashes around it', () => {
    expect(parseS3Uri('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Uri('s3://my-bucket/')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Uri('s3://my.bucket-1/a/b/')).toEqual({ bucket: 'my.bucket-1', prefix: 'a/b' });
  });
});

describe('s3ClientConfig', () => {
  it('uses path-style addressing and only required checksums on a custom endpoint', () => {
    const config = s3ClientConfig({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000', AWS_DEFAULT_REGION: 'eu-west-1' });

    expect(config).toMatchObject({
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      region: 'eu-west-1',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    expect(config.credentials).toBeUndefined();
  });

  it('leaves AWS to the SDK defaults in us-east-1 when nothing is set', () => {
    expect(s3ClientConfig({})).toEqual({ region: 'us-east-1', followRegionRedirects: true });
  });

  it('takes keys and a session token from the variables', () => {
    const config = s3ClientConfig({
      AWS_ACCESS_KEY_ID: 'id',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_SESSION_TOKEN: 'token',
    });

    expect(config.credentials).toEqual({ accessKeyId: 'id', secretAccessKey: 'secret', sessionToken: 'token' });
  });

  it('refuses an endpoint that is not a URL and a key without its secret', () => {
    expect(() => s3ClientConfig({ AWS_ENDPOINT_URL: '127.0.0.1:9000' })).toThrow(
      expect.objectContaining({
        code: 'invalid_s3_endpoint',
        message: expect.stringMatching(/^AWS_ENDPOINT_URL must/),
      }),
    );
    expect(() => s3ClientConfig({ AWS_ACCESS_KEY_ID: 'id' })).toThrow(
      expect.objectContaining({
        code: 'invalid_s3_credentials',
        message: expect.stringMatching(/AWS_SECRET_ACCESS_KEY/),
      }),
    );
  });
});
