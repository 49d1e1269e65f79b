import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@crawlfleet/core';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { graphPagesWithin, SITEMAP_PAGES } from '../src/fixture/link-graph.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, type TestWorker } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

const TENANTS = {
  default: { allowHosts: ['127.0.0.1'], robots: 'ignore' },
  // 50 pages a second at most: a crawl long enough to steer.
  // 25 pages/s: the graph's 369 pages take 15 s, time enough to pause and cancel it part-way on a loaded machine.
  paced: { allowHosts: ['127.0.0.1'], robots: 'ignore', hostDelayMs: 40 },
};

describe('a named crawl follows links within its scope, each page once, across the fleet', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let workers: TestWorker[] = [];
  const prefixes: string[] = [];

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-follow-'));
    writeFileSync(join(dir, 'crawlfleet.config.json'), JSON.stringify({ tenants: TENANTS }));
  });
  afterEach(async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    workers = [];
  });
  afterAll(async () => {
    for (const prefix of prefixes) await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A fleet of `count` workers on a prefix of its own, and the environment of its CLI. */
  async function fleet(count: number) {
    const prefix = uniquePrefix('follow');
    prefixes.push(prefix);
    const keys = keyLayout(prefix);
    const config = parseConfig({ tenants: TENANTS });
    for (let i = 0; i < count; i++) workers.push(await startTestWorker(keys, config, { concurrency: 4 }));
    const env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: join(dir, 'crawlfleet.config.json') };
    return { keys, env };
  }

  async function crawlShown(env: Record<string, string>, name: string) {
    const shown = await runCli(['crawls', 'show', name, '--json'], { env });
    expect(shown.code, shown.stderr).toBe(0);
    return JSON.parse(shown.stdout);
  }

  it('fetches exactly the pages within --max-depth 3 on the same host, each once, and nothing outside', async () => {
    site.resetHits();
    const { keys, env } = await fleet(2);
    const submitted = await runCli(
      ['submit', '--crawl', 'graph', '--follow', 'same-hostname', '--max-depth', '3', site.url('/graph/')],
      { env },
    );
    expect(submitted.code, submitted.stderr).toBe(0);
    expect(submitted.stderr).toContain('started crawl graph (follow same-hostname, depth 3)');

    const expected = graphPagesWithin(3);
    await waitFor(
      async () => {
        const shown = await crawlShown(env, 'graph');
        return shown.stored >= expected.size && shown.pending === 0 ? shown : undefined;
      },
      { timeoutMs: 30_000, what: `the ${expected.size} pages of the crawl` },
    );
    // Every page within depth 3, once; nothing deeper, nothing on the other host name.
    for (const path of expected.keys()) expect(site.hits(path), path).toBe(1);
    expect(site.hitsByPrefix('/graph')).toBe(expected.size);
    expect(site.hits('/graph/outside')).toBe(0);

    const results = (await redis.xrange(soleShard(keys).results, '-', '+')).map(([, f]) => JSON.parse(String(f[1])));
    expect(results).toHaveLength(expected.size);
    for (const result of results) {
      const url = new URL(result.url);
      expect(result.crawl).toBe('graph');
      expect(result.depth, result.url).toBe(expected.get(`${url.pathname}${url.search}`));
    }
    expect(await crawlShown(env, 'graph')).toMatchObject({
      name: 'graph',
      state: 'running',
      scope: { follow: 'same-hostname', maxDepth: 3, maxPages: null },
      discovered: expected.size,
      stored: expected.size,
      deadLettered: 0,
      pending: 0,
    });
  });

  it('stops at --max-pages 50 for the whole fleet of 3 workers', async () => {
    site.resetHits();
    const { keys, env } = await fleet(3);
    const submitted = await runCli(
      ['submit', '--crawl', 'capped', '--follow', 'same-hostname', '--max-pages', '50', '--json', site.url('/graph/')],
      { env },
    );
    expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: 1, duplicates: 0 });
    await waitFor(
      async () => {
        const shown = await crawlShown(env, 'capped');
        return shown.stored >= 50 && shown.pending === 0 ? shown : undefined;
      },
      { timeoutMs: 30_000, what: 'the crawl to reach 50 pages' },
    );
    // Give a straggler the chance to show itself.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await redis.xlen(soleShard(keys).results)).toBe(50);
    expect(site.hitsByPrefix('/graph')).toBe(50);
    // Every page was stored within the last minute; done, it has no ETA.
    expect(await crawlShown(env, 'capped')).toMatchObject({
      discovered: 50,
      stored: 50,
      pending: 0,
      queued: 0,
      inFlight: 0,
      lastMinute: 50,
      etaSeconds: null,
    });
  });

  it('pauses across the fleet within a second, resumes, and cancels for good', async () => {
    site.resetHits();
    const { env } = await fleet(3);
    const crawl = ['--crawl', 'steered', '--tenant', 'paced', '--follow', 'same-hostname'];
    expect((await runCli(['submit', ...crawl, site.url('/graph/')], { env })).code).toBe(0);
    const hits = () => site.hitsByPrefix('/graph');
    await waitFor(() => hits() >= 20, { timeoutMs: 20_000, what: '20 pages fetched' });

    // Under way: what is pending is queued or running, and the running ones are counted.
    const running = await crawlShown(env, 'steered');
    expect(running.queued + running.inFlight).toBe(running.pending);
    expect(running.inFlight).toBeLessThanOrEqual(12);

    expect((await runCli(['crawls', 'pause', 'steered'], { env })).stderr).toContain('crawl steered paused');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const paused = hits();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(hits(), 'pages fetched while paused').toBe(paused);
    expect((await crawlShown(env, 'steered')).state).toBe('paused');

    expect((await runCli(['crawls', 'resume', 'steered'], { env })).stderr).toContain('crawl steered resumed');
    await waitFor(() => hits() >= paused + 20, { timeoutMs: 20_000, what: 'the crawl to go on' });
    // Cancelled while pages wait their turn (the tenant is paced), so some end unfetched: on a
    // loaded machine the crawl can be between pages, nothing queued, for a moment.
    await waitFor(async () => (await crawlShown(env, 'steered')).queued >= 3, {
      timeoutMs: 20_000,
      what: 'pages queued behind the pace',
    });

    expect((await runCli(['crawls', 'cancel', 'steered'], { env })).stderr).toContain('crawl steered cancelled');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const cancelled = hits();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(hits(), 'pages fetched after the cancel').toBe(cancelled);
    expect(cancelled).toBeLessThan(graphPagesWithin(6).size);
    // Its queued jobs end unfetched, counted as cancelled: nothing stays pending.
    const ended = await waitFor(
      async () => {
        const shown = await crawlShown(env, 'steered');
        return shown.pending === 0 ? shown : undefined;
      },
      { timeoutMs: 20_000, what: "the cancelled crawl's jobs to end" },
    );
    expect(ended.state).toBe('cancelled');
    expect(ended.cancelled).toBeGreaterThan(0);
    expect(ended.stored + ended.deadLettered + ended.cancelled).toBe(ended.discovered);
    const resumed = await runCli(['crawls', 'resume', 'steered'], { env });
    expect(resumed.code).toBe(2);
    expect(resumed.stderr).toContain('crawl steered was cancelled');
    const extended = await runCli(['submit', '--crawl', 'steered', '--tenant', 'paced', site.url('/graph/n/3')], {
      env,
    });
    expect(extended.code).toBe(2);
  });

  it('runs on one machine: crawl URL --follow --max-depth --out writes every page of the crawl once', async () => {
    site.resetHits();
    const { env } = await fleet(0);
    const out = join(dir, 'graph.jsonl');
    const crawled = await runCli(
      ['crawl', '--json', '--follow', 'same-hostname', '--max-depth', '2', '--out', out, site.url('/graph/')],
      { env },
    );
    expect(crawled.code, crawled.stderr).toBe(0);
    const expected = graphPagesWithin(2);
    const summary = JSON.parse(crawled.stdout);
    expect(summary).toMatchObject({ enqueued: 1, fetched: expected.size, dlq: 0, left: 0, discovered: expected.size });
    expect(summary.crawl).toMatch(/^crawl-\d{8}T\d{6}$/);
    const lines = readFileSync(out, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(expected.size);
    expect(new Set(lines.map((line) => new URL(line.url).pathname + new URL(line.url).search))).toEqual(
      new Set(expected.keys()),
    );
    expect(site.hitsByPrefix('/graph')).toBe(expected.size);
  });

  it("seeds a crawl with the pages its site's sitemaps list (robots.txt, an index, gzip), in scope, each once", async () => {
    site.resetHits();
    const { env } = await fleet(2);
    const submitted = await runCli(['submit', '--crawl', 'mapped', '--sitemaps', '--json', site.url('/graph/n/1')], {
      env,
    });
    expect(submitted.code, submitted.stderr).toBe(0);
    // The index and its two files; the root, three deep pages (one spelled twice); not the other host's.
    expect(submitted.stderr).toContain('read 3 sitemap files: 4 more pages seed crawl mapped');
    expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: 5, duplicates: 0 });
    await waitFor(
      async () => {
        const shown = await crawlShown(env, 'mapped');
        return shown.stored >= 5 && shown.pending === 0 ? shown : undefined;
      },
      { timeoutMs: 20_000, what: 'the sitemap pages' },
    );
    for (const path of ['/graph/n/1', '/graph/', ...SITEMAP_PAGES]) expect(site.hits(path), path).toBe(1);
    expect(site.hits('/graph/outside')).toBe(0);
    expect(site.hitsByPrefix('/graph')).toBe(5);
    expect(await crawlShown(env, 'mapped')).toMatchObject({ discovered: 5, stored: 5 });
  });

  it('extends a crawl with more seeds, refuses another scope for it, and refuses scope options without a crawl', async () => {
    const { env } = await fleet(0);
    const first = await runCli(['submit', '--crawl', 'steady', '--follow', 'none', site.url('/graph/n/1')], { env });
    expect(first.code, first.stderr).toBe(0);
    const extended = await runCli(['submit', '--crawl', 'steady', site.url('/graph/n/2')], { env });
    expect(extended.stderr).toContain('extended crawl steady (follow none)');
    expect(await crawlShown(env, 'steady')).toMatchObject({ discovered: 2, stored: 0, pending: 2 });

    const other = await runCli(['submit', '--crawl', 'steady', '--follow', 'all', site.url('/graph/n/3')], { env });
    expect(other.code).toBe(2);
    expect(other.stderr.trim().split('\n')).toHaveLength(1);
    expect(other.stderr).toContain('crawl steady exists with another scope (follow none)');
    expect((await crawlShown(env, 'steady')).discovered).toBe(2);

    const loose = await runCli(['submit', '--follow', 'all', site.url('/graph/n/3')], { env });
    expect(loose.code).toBe(2);
    expect(loose.stderr).toContain('need --crawl NAME');
    const unknown = await runCli(['crawls', 'show', 'nope'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no crawl named nope');
    const listed = JSON.parse((await runCli(['crawls', 'list', '--json'], { env })).stdout);
    expect(listed.map((crawl: { name: string }) => crawl.name)).toEqual(['steady']);
  });
});
