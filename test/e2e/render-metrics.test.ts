import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { freePort } from '@crawlfleet/local-redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import {
  cleanupPrefix,
  keyLayout,
  metricSample,
  openTestRedis,
  runCli,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

describe("a browser worker's metrics", () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let worker: WorkerProcess;
  let port: number;
  const prefix = uniquePrefix('render-metrics');

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-render-metrics-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'] } },
        jobs: { retries: 0 },
        // Not much less: the limit bounds the cookie page's render too, which took over a second
        // twice in clean-clone CI runs while the suite ran beside it (it then timed out like /hang).
        render: { timeoutMs: 4_000 },
      }),
    );
    const env = { CRAWLFLEET_CONFIG: config, CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_LOG_LEVEL: 'warn' };
    port = await freePort();
    worker = startWorkerProcess(env, ['--browsers', '2', '--metrics-port', String(port)]);
    const urls = [site.url('/js/set-cookie?name=m&value=1'), site.url('/hang')];
    expect((await runCli(['submit', '--render', '--session', 'metered', ...urls], { env })).code).toBe(0);
    const dlq = new DeadLetterQueue(redis, keyLayout(prefix));
    const results = () => redis.xlen(soleShard(keyLayout(prefix)).results);
    try {
      await waitFor(async () => (await results()) === 1 && (await dlq.count()) === 1, {
        timeoutMs: 60_000,
        what: 'one page rendered and one dead-lettered',
      }).catch(async (error: Error) => {
        // What the worker was doing, for whoever reads the failure (it failed once in CI only).
        const queue = `${soleShard(keyLayout(prefix)).bullPrefix}:crawl-render`;
        const [waiting, active, delayed] = await Promise.all([
          redis.llen(`${queue}:wait`),
          redis.llen(`${queue}:active`),
          redis.zcard(`${queue}:delayed`),
        ]);
        throw new Error(
          `${error.message}: ${await results()} results, ${await dlq.count()} dead letters, render jobs waiting ${waiting}, active ${active}, delayed ${delayed}; worker said: ${worker.output().slice(-4000)}`,
        );
      });
    } finally {
      await dlq.close();
    }
    // A browser worker process starts Chromium first: under a loaded CI machine that takes a while.
  }, 90_000);
  afterAll(async () => {
    await worker.stop('SIGKILL');
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts contexts, pages by outcome, the state moved in and out of the browser, and its own queue', async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metricSample(text, 'pages_rendered_total', 'outcome="rendered"')).toBe(1);
    expect(metricSample(text, 'pages_rendered_total', 'outcome="timeout"')).toBe(1);
    expect(metricSample(text, 'headless_context_launch_latency_count')).toBe(2);
    expect(metricSample(text, 'browser_contexts_open')).toBe(0);
    expect(metricSample(text, 'state_sync_duration_ms_count', 'phase="browser_in"')).toBe(2);
    expect(metricSample(text, 'state_sync_duration_ms_count', 'phase="browser_out"')).toBeGreaterThanOrEqual(1);
    // The script's cookie: one change, from the browser.
    expect(metricSample(text, 'cookie_jar_mutation_frequency_sum', 'source="browser"')).toBe(1);
    expect(metricSample(text, 'crawl_queue_jobs', 'queue="crawl-render"')).toBeDefined();
    expect(metricSample(text, 'crawl_queue_jobs', 'state="dlq"')).toBe(1);
  });
});
