import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyLayout } from '@crawlfleet/core';
import { type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { runCli, waitFor } from '../src/harness.js';
import { startWorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

describe('SIGTERM while jobs hang', () => {
  let server: RedisServer;
  let redis: Redis;
  let site: FixtureSite;
  let dir: string;

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
    site = await startFixtureSite();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-grace-'));
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits within the grace period, and another worker finishes the jobs it left', async () => {
    const config = join(dir, 'crawlfleet.config.json');
    // The pages answer after 8 s; the drain may wait only 1.5 s.
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        fetch: { timeoutMs: 20_000 },
      }),
    );
    const env = {
      REDIS_URL: server.url,
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_PREFIX: 'grace',
      CRAWLFLEET_LOG_LEVEL: 'info',
    };
    const urls = Array.from({ length: 3 }, (_, i) => site.url(`/slow?ms=8000&grace=${i}`));
    await runCli(['submit', ...urls], { env });
    const flags = [
      '--concurrency',
      '3',
      '--grace-ms',
      '1500',
      '--lock-duration-ms',
      '2000',
      '--stalled-interval-ms',
      '1000',
    ];
    const first = startWorkerProcess(env, flags);
    await waitFor(() => site.hitsByPrefix('/slow') === 3, { what: 'three pages in flight' });
    const signalled = Date.now();
    const code = await first.stop('SIGTERM');
    const took = Date.now() - signalled;
    expect(code).toBe(0);
    expect(took).toBeGreaterThanOrEqual(1_400);
    expect(took).toBeLessThan(4_000);
    expect(first.output()).toContain('grace period over');

    // The jobs it could not finish are picked up by the next worker once their locks lapse.
    const second = startWorkerProcess(env, flags);
    try {
      await waitFor(async () => (await redis.xlen(soleShard(keyLayout('grace')).results)) === 3, {
        timeoutMs: 30_000,
        what: 'the three pages',
      });
      const results = (await redis.xrange(soleShard(keyLayout('grace')).results, '-', '+')).map(
        ([, f]) => JSON.parse(String(f[1])).url,
      );
      expect(new Set(results)).toEqual(new Set(urls));
    } finally {
      expect(await second.stop('SIGTERM')).toBe(0);
    }
  });

  it('exits once it says "worker stopped", even when a job still waits past the grace period', async () => {
    const config = join(dir, 'stuck.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: {
          member: {
            allowHosts: ['127.0.0.1'],
            robots: 'ignore',
            auth: { login: { url: site.url('/login'), form: { user: 'alice', password: 'secret' } } },
          },
        },
      }),
    );
    const prefix = 'grace-stuck';
    const env = { REDIS_URL: server.url, CRAWLFLEET_CONFIG: config, CRAWLFLEET_PREFIX: prefix };
    // Another worker holds the session's login lease: this worker's job waits for its login,
    // polling on timers, for up to twice the lease (minutes).
    await redis.set(keyLayout(prefix).session('member', 'stuck').authLease, 'someone-else', 'PX', 600_000);
    await runCli(['submit', '--tenant', 'member', '--session', 'stuck', site.url('/protected/stuck')], { env });
    const worker = startWorkerProcess(env, ['--grace-ms', '500']);
    await waitFor(() => site.hits('/protected/stuck') === 1, { what: 'the page asked once' });
    const signalled = Date.now();
    const code = await worker.stop('SIGTERM', 30_000);
    expect(worker.output()).toContain('worker stopped');
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5_000);
  });
});
