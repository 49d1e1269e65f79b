import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

describe('worker metrics', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let worker: WorkerProcess;
  let port: number;
  const prefix = uniquePrefix('metrics');

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-metrics-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } }, jobs: { retries: 2, backoffBaseMs: 20 } }),
    );
    const env = { CRAWLFLEET_CONFIG: config, CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_LOG_LEVEL: 'warn' };
    port = await freePort();
    worker = startWorkerProcess(env, ['--metrics-port', String(port), '--concurrency', '4']);
    const urls = [
      ...Array.from({ length: 8 }, (_, i) => site.url(`/cookies/set?c${i}=${i}`)),
      site.url('/flaky/m?fails=1'),
      site.url('/status/404'),
      site.url('/ratelimit/m?times=1&retryAfter=0'),
    ];
    await runCli(['submit', '--session', 'metered', ...urls], { env });
    await waitFor(async () => (await redis.xlen(soleShard(keyLayout(prefix)).results)) === 10, {
      timeoutMs: 20_000,
      what: 'the crawl',
    });
  });
  afterAll(async () => {
    await worker.stop('SIGKILL');
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 200 ok at /healthz', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok\n');
  });

  it('exposes every named metric with plausible values at /metrics', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    for (const name of [
      'session_creation_total',
      'session_destruction_total',
      'connection_reuse_ratio',
      'cookie_jar_size_bytes',
      'cookie_jar_mutation_total',
      'state_sync_duration_ms',
      'retry_total',
      'retry_success_ratio',
      'backoff_duration_ms',
      'session_invalidation_triggers_total',
      'crawl_jobs_total',
      'fetch_duration_ms',
      'http_429_ratio',
      'crawl_queue_jobs',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(metricSample(text, 'crawl_jobs_total', 'outcome="stored"')).toBe(10);
    expect(metricSample(text, 'crawl_jobs_total', 'outcome="dead_lettered"')).toBe(1);
    expect(metricSample(text, 'retry_total')).toBe(2);
    expect(metricSample(text, 'retry_success_ratio')).toBe(1);
    expect(metricSample(text, 'session_creation_total')).toBeGreaterThanOrEqual(1);
    expect(metricSample(text, 'cookie_jar_mutation_total')).toBe(8);
    expect(metricSample(text, 'cookie_jar_size_bytes_count')).toBeGreaterThanOrEqual(8);
    expect(metricSample(text, 'state_sync_duration_ms_count', 'phase="hydrate"')).toBe(13);
    expect(metricSample(text, 'fetch_duration_ms_count', 'status_class="2xx"')).toBe(10);
    const ratio429 = metricSample(text, 'http_429_ratio') ?? -1;
    expect(ratio429).toBeCloseTo(1 / 13, 5);
    expect(metricSample(text, 'connection_reuse_ratio')).toBeGreaterThan(0.5);
    expect(metricSample(text, 'crawl_queue_jobs', 'state="dlq"')).toBe(1);
    expect(metricSample(text, 'crawl_queue_jobs', 'state="waiting"')).toBe(0);
  });
});
