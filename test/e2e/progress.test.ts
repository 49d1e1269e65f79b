import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@crawlfleet/core';
import { freePort } from '@crawlfleet/local-redis';
import { ResultsStore } from '@crawlfleet/results';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

/** One `crawl progress` log line of a worker. */
interface ProgressLine {
  level: number;
  interval_s: number;
  pages_per_s: number;
  stored: number;
  duplicates: number;
  retries: number;
  held_back: number;
  dead_lettered: Record<string, number>;
  in_flight: number;
}

function progressLines(output: string): ProgressLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as ProgressLine & { msg: string })
    .filter((line) => line.msg === 'crawl progress');
}

/** The outcomes of every progress line added up. */
function totals(lines: readonly ProgressLine[]) {
  const sum = { stored: 0, duplicates: 0, retries: 0, deadLettered: {} as Record<string, number> };
  for (const line of lines) {
    sum.stored += line.stored;
    sum.duplicates += line.duplicates;
    sum.retries += line.retries;
    for (const [failureClass, count] of Object.entries(line.dead_lettered)) {
      sum.deadLettered[failureClass] = (sum.deadLettered[failureClass] ?? 0) + count;
    }
  }
  return sum;
}

describe('progress', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let config: string;
  const prefixes: string[] = [];
  const workers: WorkerProcess[] = [];

  /** A crawl of its own: a fresh prefix, the test config (or `configPath`), info logs. */
  function ownCrawl(label: string, configPath = config) {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    const env: Record<string, string> = {
      CRAWLFLEET_PREFIX: prefix,
      CRAWLFLEET_CONFIG: configPath,
      CRAWLFLEET_LOG_LEVEL: 'info',
    };
    return { env, keys: keyLayout(prefix) };
  }

  function worker(env: Record<string, string>, args: string[]): WorkerProcess {
    const started = startWorkerProcess(env, args);
    workers.push(started);
    return started;
  }

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-progress-'));
    config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } }, jobs: { retries: 2, backoffBaseMs: 20 } }),
    );
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    for (const prefix of prefixes) await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('a worker process', () => {
    it('logs a summary at info every interval: pages/s, outcomes, dead letters by class, jobs in flight', async () => {
      const { env, keys } = ownCrawl('progress');
      const port = await freePort();
      const running = worker(env, ['--progress-every', '1s', '--concurrency', '4', '--metrics-port', String(port)]);
      const urls = [
        ...Array.from({ length: 12 }, (_, i) => site.url(`/ok/progress-${i}`)),
        site.url('/flaky/progress?fails=1'),
        site.url('/status/404?progress=1'),
        // Still running at a tick or two: the line says so though nothing else happened.
        site.url('/slow?ms=2500&progress=1'),
      ];
      await runCli(['submit', ...urls], { env });
      await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 14, {
        timeoutMs: 20_000,
        what: 'the crawl',
      });

      // Within an interval (and a little) of the last job, the summaries account for every job.
      const expected = { stored: 14, duplicates: 0, retries: 1, deadLettered: { non_recoverable: 1 } };
      const lines = await waitFor(
        () => {
          const found = progressLines(running.output());
          return JSON.stringify(totals(found)) === JSON.stringify(expected) && found;
        },
        { timeoutMs: 4_000, what: `progress lines adding up to ${JSON.stringify(expected)}` },
      );
      for (const line of lines) {
        expect(line.level).toBe(30);
        expect(line.interval_s).toBeGreaterThan(0.5);
        expect(line.interval_s).toBeLessThan(3);
        expect(line.in_flight).toBeGreaterThanOrEqual(0);
        expect(line.in_flight).toBeLessThanOrEqual(4);
      }
      expect(Math.max(...lines.map((line) => line.pages_per_s))).toBeGreaterThan(0);
      expect(Math.max(...lines.map((line) => line.in_flight))).toBeGreaterThanOrEqual(1);
      const busiest = lines.reduce((a, b) => (b.stored > a.stored ? b : a));
      expect(busiest.pages_per_s).toBeCloseTo(busiest.stored / busiest.interval_s, 0);

      // The summary sits in front of the metrics and passes every observation on.
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^crawl_jobs_total\{outcome="stored"[^}]*\} 14$/m);
      expect(metrics).toMatch(/^retry_total 1$/m);
      expect(metrics).toMatch(/^fetch_duration_ms_count\{status_class="2xx"\} 14$/m);

      // An idle worker says nothing.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(progressLines(running.output())).toHaveLength(lines.length);
      expect(await running.stop('SIGTERM')).toBe(0);
    });

    it('logs what its last interval counted when it drains (CRAWLFLEET_PROGRESS_MS)', async () => {
      const { env, keys } = ownCrawl('progress-drain');
      env.CRAWLFLEET_PROGRESS_MS = '3600000';
      const running = worker(env, ['--concurrency', '4']);
      await runCli(['submit', ...Array.from({ length: 5 }, (_, i) => site.url(`/ok/drain-${i}`))], { env });
      await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 5, {
        timeoutMs: 20_000,
        what: 'the crawl',
      });
      expect(progressLines(running.output())).toEqual([]);
      expect(await running.stop('SIGTERM')).toBe(0);
      const lines = progressLines(running.output());
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ stored: 5, retries: 0, dead_lettered: {}, in_flight: 0 });
    });

    it('logs no summary with --progress-every 0', async () => {
      const { env, keys } = ownCrawl('progress-off');
      const running = worker(env, ['--progress-every', '0']);
      await runCli(['submit', ...Array.from({ length: 3 }, (_, i) => site.url(`/ok/off-${i}`))], { env });
      await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 3, {
        timeoutMs: 20_000,
        what: 'the crawl',
      });
      expect(await running.stop('SIGTERM')).toBe(0);
      expect(progressLines(running.output())).toEqual([]);
    });

    it('refuses a progress interval it cannot read', async () => {
      const bad = await runCli(['worker', '--progress-every', 'often'], {
        env: ownCrawl('progress-bad').env,
        timeoutMs: 10_000,
      });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--progress-every/);
      const badEnv = await runCli(['worker'], {
        env: { ...ownCrawl('progress-bad').env, CRAWLFLEET_PROGRESS_MS: '-5' },
        timeoutMs: 10_000,
      });
      expect(badEnv.code).toBe(2);
      expect(badEnv.stderr).toMatch(/CRAWLFLEET_PROGRESS_MS/);
    });
  });

  describe('crawlfleet status after 30 pages with retention.completedJobs 10', () => {
    let env: Record<string, string>;

    beforeAll(async () => {
      const capped = join(dir, 'capped.config.json');
      writeFileSync(
        capped,
        JSON.stringify({
          tenants: { default: { allowHosts: ['127.0.0.1'] } },
          jobs: { retries: 1, backoffBaseMs: 20 },
          retention: { completedJobs: 10 },
        }),
      );
      env = ownCrawl('status-rate', capped).env;
      const urls = [
        ...Array.from({ length: 30 }, (_, i) => site.url(`/ok/status-${i}`)),
        site.url('/status/410?status=1'),
      ];
      const crawled = await runCli(['crawl', '--json', ...urls], { env });
      expect(crawled.code, crawled.stderr).toBe(0);
    });

    it('shows the results and dead letters of the last minute and the rate', async () => {
      const status = await runCli(['status', '--json'], { env });
      expect(status.code, status.stderr).toBe(0);
      const parsed = JSON.parse(status.stdout);
      expect(parsed.lastMinute).toEqual({
        stored: 30,
        storedPerSecond: 0.5,
        deadLettered: 1,
        estimated: false,
      });
      const human = await runCli(['status'], { env });
      expect(human.stdout).toContain('last minute: 30 stored (0.5/s), 1 dead-lettered');
    });

    it('counts all 30 stored results and says completed is capped at retention.completedJobs', async () => {
      const parsed = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
      expect(parsed.counts).toMatchObject({ completed: 10, dlq: 1 });
      expect(parsed.results).toBe(30);
      expect(parsed.resultsWritten).toBe(30);
      expect(parsed.retention).toEqual({ completedJobs: 10, failedJobs: 5000 });
      expect(parsed.capped).toEqual({ completed: true, failed: false });
      expect(parsed.outbox).toMatchObject({ entries: 30, maxEntries: 100_000, full: false, sinks: [] });
      const human = (await runCli(['status'], { env })).stdout;
      expect(human).toMatch(/^completed \(kept, at most 10\) +10$/m);
      expect(human).toMatch(/^results in the outbox +30$/m);
      expect(human).toContain('sinks: none registered');
      expect(human).toContain('BullMQ keeps at most 10 completed jobs (retention.completedJobs)');
    });
  });

  describe('the results stream', () => {
    it('counts the last minute exactly up to its limit, then estimates from the newest entries', async () => {
      const { keys } = ownCrawl('rate-estimate');
      const now = Date.now();
      // 40 entries 100 ms apart over the last 4 s, and one from two minutes ago.
      await redis.xadd(soleShard(keys).results, `${now - 120_000}-0`, 'r', '{}');
      for (let i = 39; i >= 0; i--) await redis.xadd(soleShard(keys).results, `${now - i * 100}-0`, 'r', '{}');
      const store = new ResultsStore(redis, keys, parseConfig({}).retention);
      expect(await store.countRecent(60_000, { now })).toEqual({ count: 40, estimated: false });
      // Past the limit of 10, the 11 newest span 1 s: 11 a second, over the minute.
      const estimate = await store.countRecent(60_000, { now, maxCounted: 10, pageSize: 4 });
      expect(estimate.estimated).toBe(true);
      expect(estimate.count).toBe(660);
      expect(await store.written()).toBe(41);
    });
  });
});
