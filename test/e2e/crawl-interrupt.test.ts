import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CliProcess, startCliProcess } from '../src/cli-process.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';

/** The URLs of a results file, one per line. */
function urlsIn(file: string): string[] {
  const text = readFileSync(file, 'utf8').trim();
  return text === '' ? [] : text.split('\n').map((line) => JSON.parse(line).url as string);
}

describe('Ctrl-C during crawlfleet crawl', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let config: string;
  let prefix: string;
  let env: Record<string, string>;
  let running: CliProcess | undefined;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-interrupt-'));
    config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } } }));
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('interrupt');
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config };
    site.resetHits();
  });
  afterEach(async () => {
    running?.kill();
    running = undefined;
    await cleanupPrefix(redis, prefix);
  });

  function pages(label: string, count: number, ms: number): { urls: string[]; file: string } {
    const urls = Array.from({ length: count }, (_, i) => site.url(`/slow?ms=${ms}&${label}=${i}`));
    const file = join(dir, `${label}.txt`);
    writeFileSync(file, `${urls.join('\n')}\n`);
    return { urls, file };
  }

  it('drains on the first Ctrl-C and writes what is done; the same command again finishes the rest', async () => {
    const { urls, file } = pages('drain', 300, 200);
    const out = join(dir, 'drain.jsonl');
    const args = ['crawl', '--file', file, '--concurrency', '16', '--out', out];
    running = startCliProcess(args, env);
    await waitFor(() => site.hitsByPrefix('/slow') >= 32, { what: 'the crawl under way' });
    running.child.kill('SIGINT');
    const code = await running.exited;
    expect(running.stderr()).toMatch(/draining/i);
    expect(code).toBe(130);
    expect(existsSync(out)).toBe(true);
    const done = urlsIn(out);
    expect(done.length).toBeGreaterThan(0);
    expect(done.length).toBeLessThan(urls.length);
    expect(new Set(done).size).toBe(done.length);
    expect(running.stdout()).toContain(`${urls.length - done.length} of ${urls.length} URLs left in the queue`);
    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(status.counts).toMatchObject({ waiting: urls.length - done.length, active: 0 });

    const again = await runCli([...args, '--json'], { env });
    expect(again.stderr).not.toContain('crawlfleet:');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      enqueued: 0,
      resumed: urls.length - done.length,
      duplicates: done.length,
      fetched: urls.length - done.length,
      dlq: 0,
      left: 0,
    });
    const all = urlsIn(out);
    expect(all).toHaveLength(urls.length);
    expect(new Set(all)).toEqual(new Set(urls));
    // Nothing was fetched twice: the drain let running pages finish, the re-run took the rest.
    for (const url of urls) expect(site.hits(url.slice(site.origin.length))).toBe(1);
  });

  it('exits at once on a second Ctrl-C during the drain; the same command again still finishes every URL', async () => {
    const { urls, file } = pages('twice', 24, 2_500);
    const out = join(dir, 'twice.jsonl');
    const args = ['crawl', '--file', file, '--concurrency', '8', '--out', out];
    running = startCliProcess(args, env);
    await waitFor(() => site.hitsByPrefix('/slow') >= 8, { what: 'eight slow pages in flight' });
    running.child.kill('SIGINT');
    await waitFor(() => /draining/i.test(running?.stderr() ?? ''), { what: 'the drain message' });
    const second = Date.now();
    running.child.kill('SIGINT');
    const code = await running.exited;
    expect(Date.now() - second).toBeLessThan(1_500);
    expect(code).toBe(130);
    expect(running.stderr()).toMatch(/stopped at once/);

    const again = await runCli(args, { env, timeoutMs: 30_000 });
    expect(again.code).toBe(0);
    const all = urlsIn(out);
    expect(all).toHaveLength(urls.length);
    expect(new Set(all)).toEqual(new Set(urls));
  });
});
