import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startCliProcess } from '../src/cli-process.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';

function urlsIn(file: string): string[] {
  const text = readFileSync(file, 'utf8').trim();
  return text === '' ? [] : text.split('\n').map((line) => JSON.parse(line).url as string);
}

describe('a quick-path crawl reports and writes exactly its own URLs', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let config: string;
  let prefix: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-own-'));
    config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } } }));
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('own-urls');
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config };
    site.resetHits();
  });
  afterEach(async () => {
    await cleanupPrefix(redis, prefix);
  });

  it('writes one line per URL with --force, not the old results next to the new ones', async () => {
    const urls = ['/ok/f1', '/ok/f2', '/ok/f3'].map((path) => site.url(path));
    const out = join(dir, 'force.jsonl');
    expect((await runCli(['crawl', '--out', out, ...urls], { env })).code).toBe(0);
    expect(urlsIn(out)).toHaveLength(3);

    const forced = await runCli(['crawl', '--force', '--json', '--out', out, ...urls], { env });
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ enqueued: 3, fetched: 3, duplicates: 0 });
    expect(urlsIn(out).sort()).toEqual([...urls].sort());
    expect(site.hitsByPrefix('/ok/f')).toBe(6);
  });

  it('crawls, counts and writes a URL of its own that was already queued instead of skipping it', async () => {
    const queued = site.url('/ok/queued-before');
    const fresh = site.url('/ok/fresh');
    expect((await runCli(['submit', queued], { env })).code).toBe(0);
    const out = join(dir, 'queued.jsonl');
    const crawled = await runCli(['crawl', '--json', '--out', out, queued, fresh], { env });
    expect(crawled.code).toBe(0);
    expect(JSON.parse(crawled.stdout)).toMatchObject({ enqueued: 1, resumed: 1, duplicates: 0, fetched: 2 });
    expect(urlsIn(out).sort()).toEqual([fresh, queued].sort());
  });

  it("does not take an earlier run's dead letter for the outcome of a --force run that is still retrying", async () => {
    const retrying = join(dir, 'retrying.config.json');
    writeFileSync(
      retrying,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        jobs: { retries: 1, backoffBaseMs: 50, backoffMaxMs: 100 },
      }),
    );
    const own = { ...env, CRAWLFLEET_CONFIG: retrying };
    // 429 three times with Retry-After: 2: the first run dead-letters it after two tries; the
    // second waits at least 2 s after its own 429 before the page answers.
    const url = site.url('/ratelimit/force-dlq?retryAfter=2&times=3');
    const first = await runCli(['crawl', '--json', url], { env: own });
    expect(JSON.parse(first.stdout)).toMatchObject({ fetched: 0, dlq: 1 });
    const out = join(dir, 'retrying.jsonl');
    const forced = await runCli(['crawl', '--force', '--json', '--out', out, url], { env: own });
    expect(JSON.parse(forced.stdout)).toMatchObject({ fetched: 1, dlq: 0, left: 0 });
    expect(urlsIn(out)).toEqual([url]);
  });

  it('says so, and exits 1, when a sink took results of the crawl out of the outbox', async () => {
    const urls = Array.from({ length: 12 }, (_, i) => site.url(`/ok/taken-${i}`));
    expect((await runCli(['crawl', '--json', ...urls], { env })).code).toBe(0);
    // A sink takes every result there is; the outbox gives them up.
    const taken = join(dir, 'taken');
    const sunk = await runCli(['sink', 'run', '--to', `jsonl:${taken}`, '--name', 'taker', '--once'], { env });
    expect(sunk.code).toBe(0);
    expect(await runCli(['sink', 'remove', 'taker'], { env })).toMatchObject({ code: 0 });

    const out = join(dir, 'taken.jsonl');
    const crawled = await runCli(['crawl', '--out', out, ...urls], { env });
    expect(crawled.code).toBe(1);
    expect(crawled.stderr).toContain("12 of this crawl's results are no longer in the outbox (a sink took them");
    expect(urlsIn(out)).toEqual([]);
  });

  it('writes a crawl four times the size of the outbox to --out without waiting for a sink', async () => {
    const small = join(dir, 'small.config.json');
    writeFileSync(
      small,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        results: { outboxMaxLen: 10 },
      }),
    );
    const urls = Array.from({ length: 40 }, (_, i) => site.url(`/ok/bigger-${i}`));
    const out = join(dir, 'bigger.jsonl');
    const crawled = await runCli(['crawl', '--json', '--out', out, ...urls], {
      env: { ...env, CRAWLFLEET_CONFIG: small },
    });
    expect(crawled.code).toBe(0);
    expect(JSON.parse(crawled.stdout)).toMatchObject({ fetched: 40, dlq: 0, left: 0 });
    expect(urlsIn(out).sort()).toEqual([...urls].sort());
  });

  it('says why it waits when the outbox is full and no sink reads it (no --out)', async () => {
    const small = join(dir, 'full.config.json');
    writeFileSync(
      small,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        results: { outboxMaxLen: 10 },
      }),
    );
    const urls = Array.from({ length: 40 }, (_, i) => site.url(`/ok/full-${i}`));
    const crawl = startCliProcess(['crawl', '--concurrency', '2', ...urls], { ...env, CRAWLFLEET_CONFIG: small });
    try {
      await waitFor(() => crawl.stderr().includes('the results outbox is full'), {
        timeoutMs: 20_000,
        what: 'the crawl to say the outbox is full',
      });
      expect(crawl.stderr()).toContain('waiting for a sink to take them (crawlfleet sink run, or crawl with --out)');
      crawl.child.kill('SIGINT');
      expect(await crawl.exited).toBe(130);
    } finally {
      crawl.kill();
    }
  });

  it('keeps the results of other jobs in the outbox for their own sinks', async () => {
    const others = Array.from({ length: 3 }, (_, i) => site.url(`/ok/kept-other-${i}`));
    expect((await runCli(['crawl', ...others], { env })).code).toBe(0);
    const before = JSON.parse((await runCli(['status', '--json'], { env })).stdout).results;
    const out = join(dir, 'kept.jsonl');
    expect((await runCli(['crawl', '--out', out, site.url('/ok/kept-mine')], { env })).code).toBe(0);
    expect(urlsIn(out)).toEqual([site.url('/ok/kept-mine')]);
    const after = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    // The others' results are all still there (no sink took them), and nothing past them is trimmed.
    expect(after.results).toBe(before + 1);
    expect(after.outbox.sinks).toEqual([]);
  });

  it('counts and writes nothing of the jobs other commands queued, and says they were there', async () => {
    const others = Array.from({ length: 5 }, (_, i) => site.url(`/ok/other-${i}`));
    expect((await runCli(['submit', ...others], { env })).code).toBe(0);
    const mine = [site.url('/ok/mine-1'), site.url('/ok/mine-2')];
    const out = join(dir, 'mine.jsonl');
    const crawled = await runCli(['crawl', '--out', out, ...mine], { env });
    expect(crawled.code).toBe(0);
    expect(crawled.stdout).toContain('crawled 2 URLs in');
    expect(crawled.stdout).toContain('2 fetched');
    expect(crawled.stdout).toContain(`results: ${out} (2 lines)`);
    expect(crawled.stderr).toMatch(/5 other jobs/);
    expect(urlsIn(out).sort()).toEqual([...mine].sort());
  });

  it('writes every result of the crawl to --out when run again after it finished', async () => {
    const urls = [site.url('/ok/r1'), site.url('/ok/r2'), site.url('/status/404?r=3')];
    const out = join(dir, 'rerun.jsonl');
    expect((await runCli(['crawl', '--out', out, ...urls], { env })).code).toBe(0);
    const again = await runCli(['crawl', '--json', '--out', out, ...urls], { env });
    expect(JSON.parse(again.stdout)).toMatchObject({ enqueued: 0, resumed: 0, duplicates: 3, fetched: 0, dlq: 0 });
    expect(urlsIn(out).sort()).toEqual([urls[0], urls[1]].sort());
    expect(site.hitsByPrefix('/ok/r')).toBe(2);
  });
});
