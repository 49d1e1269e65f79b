import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { keyLayout } from '@crawlfleet/core';
import type { StoredResult } from '@crawlfleet/results';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WARCParser } from 'warcio';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, openTestRedis, REDIS_URL, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { type S3Server, startS3Server, uniqueBucket } from '../src/s3-server.js';
import { soleShard } from '../src/shard.js';

const SMALL = 1_100;
const LARGE = 100;
const PAGES = SMALL + LARGE;
const LARGE_BYTES = 5_000;

function filesIn(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(suffix))
    .map((name) => join(dir, name));
}

function linesOf(text: string): StoredResult[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as StoredResult);
}

/** Every result must be there once, the large bodies whole again. */
function expectAllPages(results: readonly StoredResult[]): void {
  expect(results).toHaveLength(PAGES);
  expect(new Set(results.map((r) => r.idempotencyKey)).size).toBe(PAGES);
  const large = results.filter((r) => r.url.includes('/huge'));
  expect(large).toHaveLength(LARGE);
  expect(large.every((r) => r.body.length === LARGE_BYTES && r.bodyRef?.startsWith('file:'))).toBe(true);
}

describe('1,200 pages through jsonl:, gzipped jsonl:, warc: and s3:// sinks, large bodies in a file: body store', () => {
  let redis: Redis;
  let site: FixtureSite;
  let s3: S3Server;
  let dir: string;
  let prefix: string;
  let env: Record<string, string>;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    redis = openTestRedis();
    site = await startFixtureSite();
    s3 = await startS3Server();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-sinks-'));
    prefix = uniquePrefix('sinks');
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        results: { bodyStore: `file:${join(dir, 'bodies')}`, inlineBodyBytes: 1_024 },
      }),
    );
    env = { REDIS_URL, CRAWLFLEET_CONFIG: config, CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_LOG_LEVEL: 'warn', ...s3.env };
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await cleanupPrefix(redis, prefix);
    await redis.quit();
    await site.close();
    await s3.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('crawls 1,200 pages, keeping bodies over 1 KiB out of Redis', async () => {
    const urls = [
      ...Array.from({ length: SMALL }, (_, i) => site.url(`/ok/sink-${i}`)),
      ...Array.from({ length: LARGE }, (_, i) => site.url(`/huge?bytes=${LARGE_BYTES}&text=1&page=${i}`)),
    ];
    const file = join(dir, 'urls.txt');
    writeFileSync(file, urls.join('\n'));
    expect((await runCli(['submit', '--file', file], { env })).code).toBe(0);
    worker = startWorkerProcess(env, ['--concurrency', '16']);
    const keys = keyLayout(prefix);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === PAGES, {
      timeoutMs: 90_000,
      what: 'every page',
    });
    expect(await worker.stop('SIGTERM')).toBe(0);

    const stored = (await redis.xrange(soleShard(keys).results, '-', '+')).map(
      ([, f]) => JSON.parse(String(f[1])) as StoredResult,
    );
    const large = stored.filter((r) => r.url.includes('/huge'));
    expect(large.every((r) => r.body === '' && r.bodyRef !== undefined && r.bodySha256 !== undefined)).toBe(true);
    // The same body is one object in the store, whatever page it came from.
    expect(new Set(large.map((r) => r.bodyRef)).size).toBe(1);
    const objects = readdirSync(join(dir, 'bodies'), { recursive: true }).filter((name) =>
      /[0-9a-f]{64}$/.test(String(name)),
    );
    expect(objects).toHaveLength(1);
    // An inline result keeps its body; the outbox holds far less than the bodies' size.
    expect(stored.find((r) => r.url.includes('/ok/'))?.body).toContain('<html');
    expect(Number(await redis.get(soleShard(keys).resultsBytes))).toBeLessThan(PAGES * 1_024);

    const exported = join(dir, 'export.jsonl');
    expect((await runCli(['results', 'export', '--out', exported], { env })).code).toBe(0);
    expectAllPages(linesOf(readFileSync(exported, 'utf8')));
  });

  it('delivers every page to each of four sinks, then the outbox gives them up', async () => {
    const bucket = uniqueBucket('sinks');
    await s3.createBucket(bucket);
    const sinks = [
      ['files', `jsonl:${join(dir, 'jsonl')}`],
      ['gz', `jsonl:${join(dir, 'gz')}?gzip=true`],
      ['archive', `warc:${join(dir, 'warc')}`],
      ['bucket', `s3://${bucket}/crawl`],
    ];
    // All four are registered before any of them acknowledges, so each one gets every page.
    for (const [name, to] of sinks) {
      const added = await runCli(['sink', 'add', '--to', String(to), '--name', String(name)], { env });
      expect(added.code, added.stderr).toBe(0);
    }
    expect(JSON.parse((await runCli(['sink', 'list', '--json'], { env })).stdout)).toHaveLength(4);
    for (const [name, to] of sinks) {
      const ran = await runCli(['sink', 'run', '--to', String(to), '--name', String(name), '--once'], { env });
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stderr).toContain(`sink ${name}: ${PAGES} results written`);
    }

    expectAllPages(filesIn(join(dir, 'jsonl'), '.jsonl').flatMap((path) => linesOf(readFileSync(path, 'utf8'))));
    expectAllPages(
      filesIn(join(dir, 'gz'), '.jsonl.gz').flatMap((path) => linesOf(gunzipSync(readFileSync(path)).toString('utf8'))),
    );
    const objects = await s3.listKeys(bucket);
    expect(objects.length).toBeGreaterThan(0);
    const fromS3: StoredResult[] = [];
    for (const key of objects) fromS3.push(...linesOf(gunzipSync(await s3.readObject(bucket, key)).toString('utf8')));
    expectAllPages(fromS3);

    // A WARC reader opens every file: a request and a response record per page.
    const warcs = filesIn(join(dir, 'warc'), '.warc.gz');
    expect(warcs.length).toBeGreaterThan(0);
    const responses = new Map<string, number>();
    let requests = 0;
    for (const path of warcs) {
      for await (const record of new WARCParser([readFileSync(path)])) {
        if (record.warcType === 'request') requests++;
        if (record.warcType !== 'response') continue;
        const body = await record.readFully();
        responses.set(String(record.warcHeader('WARC-Crawlfleet-Idempotency-Key')), body.length);
      }
    }
    expect(requests).toBe(PAGES);
    expect(responses.size).toBe(PAGES);
    expect([...responses.values()].filter((length) => length === LARGE_BYTES)).toHaveLength(LARGE);

    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(status.outbox).toMatchObject({ entries: 0, bytes: 0 });
    expect(status.outbox.sinks.map((sink: { name: string; lag: number }) => [sink.name, sink.lag])).toEqual([
      ['archive', 0],
      ['bucket', 0],
      ['files', 0],
      ['gz', 0],
    ]);
  });
});
