import { gunzipSync } from 'node:zlib';
import type { StoredRecord, StoredResult } from '@crawlfleet/results';
import type { SinkEntry } from '@crawlfleet/sinks';
import { S3Target } from '@crawlfleet/sinks/s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type S3Server, startS3Server, uniqueBucket } from '../src/s3-server.js';
import { storedResult } from '../src/stored-result.js';

let server: S3Server;
let bucket: string;
const targets: S3Target[] = [];

beforeAll(async () => {
  server = await startS3Server();
});

afterAll(async () => {
  await server.stop();
});

beforeEach(async () => {
  bucket = uniqueBucket('sink');
  await server.createBucket(bucket);
});

afterEach(async () => {
  for (const target of targets.splice(0)) await target.close();
});

async function open(uri: string, sinkName = 'archive'): Promise<S3Target> {
  const target = await S3Target.open(uri, { sinkName, env: server.env });
  targets.push(target);
  return target;
}

/** One minute before midnight UTC, so a batch can start on one day and end on the next. */
const LATE = Date.UTC(2025, 0, 31, 23, 59, 0);

/** `count` entries as the outbox hands them over, a second apart from `startMs`. */
function entries(tag: string, count: number, startMs: number): SinkEntry[] {
  return Array.from({ length: count }, (_, i) => {
    const result = storedResult(`ik-${tag}-${i}`);
    return { entryId: `${startMs + i * 1_000}-${i}`, result, body: Buffer.from(result.body) };
  });
}

/** The results in one batch object, a line each. */
async function readBatch(key: string): Promise<StoredResult[]> {
  const text = gunzipSync(await server.readObject(bucket, key)).toString('utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as StoredResult);
}

describe('S3Target', () => {
  it('uploads each batch as one gzipped JSON Lines object named by its date and entry ids', async () => {
    const target = await open(`s3://${bucket}/crawl/`);
    const batches = [entries('a', 50, LATE - 120_000), entries('b', 90, LATE), entries('c', 1, LATE + 3_600_000)];

    for (const batch of batches) await target.write(batch);

    const keys = await server.listKeys(bucket);
    const expected = batches.map((batch) => {
      const first = batch[0] as SinkEntry;
      const day = new Date(Number(first.entryId.split('-')[0])).toISOString().slice(0, 10).replaceAll('-', '/');
      return `crawl/archive/${day}/${first.entryId}_${batch[batch.length - 1]?.entryId}.jsonl.gz`;
    });
    // The batch that runs past midnight stays under the day it started on.
    expect(expected.map((key) => key.split('/').slice(2, 5).join('/'))).toEqual([
      '2025/01/31',
      '2025/01/31',
      '2025/02/01',
    ]);
    expect(keys).toEqual([...expected].sort());
    for (const [i, key] of expected.entries()) {
      expect(await readBatch(key)).toEqual(batches[i]?.map((entry) => entry.result));
    }
    const arrived = (await Promise.all(keys.map(readBatch))).flat().map((result) => result.idempotencyKey);
    expect(new Set(arrived)).toEqual(new Set(batches.flat().map((entry) => entry.result.idempotencyKey)));
    expect(arrived).toHaveLength(141);
  });

  it("writes a handler's records beside the results, as lines of their own kind", async () => {
    const target = await open(`s3://${bucket}/records`);
    const pages = entries('rec', 2, LATE);
    const record: StoredRecord = {
      kind: 'record',
      id: 'ik-rec-0:0',
      crawl: 'shop',
      url: 'https://shop.example/p/1',
      idempotencyKey: 'ik-rec-0',
      tenant: 'default',
      data: { title: 'a lamp', price: 19.99 },
      pushedAt: new Date(LATE).toISOString(),
    };
    await target.write([...pages, { entryId: `${LATE}-9`, record }]);
    const [key] = await server.listKeys(bucket);
    const lines = await readBatch(key as string);
    expect(lines).toHaveLength(3);
    expect(lines.at(-1)).toEqual(record);
  });

  it('replaces the object when the same batch comes again', async () => {
    const target = await open(`s3://${bucket}/crawl`);
    const batch = entries('again', 20, LATE);

    await target.write(batch);
    await target.write(batch);

    const keys = await server.listKeys(bucket);
    expect(keys).toHaveLength(1);
    expect(await readBatch(keys[0] as string)).toHaveLength(20);
  });

  it('keeps sinks sharing a prefix apart, and writes at the bucket root without one', async () => {
    const root = await open(`s3://${bucket}`, 'first');
    const shared = await open(`s3://${bucket}`, 'second');

    await root.write(entries('one', 3, LATE));
    await shared.write(entries('two', 3, LATE));
    await root.write([]);

    expect((await server.listKeys(bucket)).map((key) => key.split('/')[0])).toEqual(['first', 'second']);
  });

  it('describes itself by its URI', async () => {
    expect((await open(`s3://${bucket}/crawl`)).description).toBe(`s3://${bucket}/crawl`);
  });

  it('refuses to open against a missing bucket, with one line naming it', async () => {
    const missing = uniqueBucket('missing');
    const opening = S3Target.open(`s3://${missing}/crawl`, { sinkName: 'archive', env: server.env });

    await expect(opening).rejects.toMatchObject({ name: 'InputError', code: 'invalid_sink', exitCode: 2 });
    await expect(opening).rejects.toThrow(`sink target s3://${missing}/crawl: bucket ${missing} does not exist`);
  });

  it('refuses a bad URI or sink name before asking S3 anything', async () => {
    await expect(S3Target.open('s3://No_Such/crawl', { sinkName: 'archive', env: server.env })).rejects.toMatchObject({
      name: 'InputError',
      code: 'invalid_sink',
      message: expect.stringMatching(
        /^sink target S3 URI "s3:\/\/No_Such\/crawl": bucket "No_Such" is not a valid name/,
      ),
    });
    await expect(S3Target.open(`s3://${bucket}`, { sinkName: 'a b', env: server.env })).rejects.toMatchObject({
      code: 'invalid_sink_name',
    });
  });

  it('fails as unreachable, a runtime error, when nothing answers at the endpoint', async () => {
    const env = { ...server.env, AWS_ENDPOINT_URL: 'http://127.0.0.1:1' };

    await expect(S3Target.open(`s3://${bucket}`, { sinkName: 'archive', env })).rejects.toMatchObject({
      name: 'S3RequestError',
      code: 'unreachable',
      exitCode: 1,
    });
  });
});
