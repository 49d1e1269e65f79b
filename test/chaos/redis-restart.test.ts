import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyLayout } from '@crawlfleet/core';
import { type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { runCli, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

const JOBS = 600;

describe('Redis restarted mid-crawl, with append-only persistence', () => {
  let server: RedisServer;
  let site: FixtureSite;
  let dir: string;
  let workers: WorkerProcess[] = [];

  beforeAll(async () => {
    server = await startRedisServer({ appendOnly: true });
    site = await startFixtureSite();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-restart-'));
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await server.stop();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets the workers reconnect by themselves and finish with nothing lost or duplicated', async () => {
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } } }));
    const env = {
      REDIS_URL: server.url,
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_PREFIX: 'restart',
      CRAWLFLEET_LOG_LEVEL: 'warn',
    };
    const file = join(dir, 'urls.txt');
    const urls = Array.from({ length: JOBS }, (_, i) => site.url(`/slow?ms=30&restart=${i}`));
    writeFileSync(file, urls.join('\n'));
    await runCli(['submit', '--file', file], { env });
    // A job taken from the queue just as Redis went down is back after its lock lapses: short
    // locks keep that to seconds (30 s in production).
    workers = [0, 1].map(() =>
      startWorkerProcess(env, ['--concurrency', '8', '--lock-duration-ms', '2000', '--stalled-interval-ms', '1000']),
    );
    const keys = keyLayout('restart');
    const count = async () => {
      const redis = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
      redis.on('error', () => {});
      try {
        await redis.connect();
        return await redis.xlen(soleShard(keys).results);
      } catch {
        return -1;
      } finally {
        redis.disconnect();
      }
    };
    await waitFor(async () => (await count()) >= 100, { timeoutMs: 30_000, what: 'the crawl under way' });

    await server.stop({ keepDir: true });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    server = await startRedisServer({ appendOnly: true, dir: server.dir, port: server.port });
    const afterRestart = await count();
    expect(afterRestart).toBeGreaterThanOrEqual(100);
    expect(afterRestart).toBeLessThan(JOBS);

    await waitFor(async () => (await count()) === JOBS, { timeoutMs: 60_000, what: 'every page after the restart' });
    const redis = new Redis(server.url);
    try {
      const results = (await redis.xrange(soleShard(keys).results, '-', '+')).map(
        ([, f]) => JSON.parse(String(f[1])) as { url: string; idempotencyKey: string },
      );
      expect(new Set(results.map((r) => r.idempotencyKey)).size).toBe(JOBS);
      expect(new Set(results.map((r) => r.url))).toEqual(new Set(urls));
      expect(await redis.llen(`${keys.bullPrefix}:crawl-dlq:wait`)).toBe(0);
    } finally {
      redis.disconnect();
    }
    expect(await Promise.all(workers.map((w) => w.stop('SIGTERM')))).toEqual([0, 0]);
  });
});
