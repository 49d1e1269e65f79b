import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyLayout } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { runCli, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

const JOBS = 2_000;
const MISSING = 100;

describe('a worker killed with SIGKILL mid-crawl', () => {
  let server: RedisServer;
  let redis: Redis;
  let site: FixtureSite;
  let dir: string;
  let workers: WorkerProcess[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
    site = await startFixtureSite();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-chaos-'));
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    redis.disconnect();
    await server.stop();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves every job with exactly one result or one DLQ entry: none lost, none duplicated', async () => {
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        jobs: { retries: 1, backoffBaseMs: 20 },
      }),
    );
    const env = {
      REDIS_URL: server.url,
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_PREFIX: 'chaos',
      CRAWLFLEET_LOG_LEVEL: 'warn',
    };
    const file = join(dir, 'urls.txt');
    const good = Array.from({ length: JOBS - MISSING }, (_, i) => site.url(`/slow?ms=20&page=${i}`));
    const missing = Array.from({ length: MISSING }, (_, i) => site.url(`/status/404?missing=${i}`));
    writeFileSync(file, [...good, ...missing].join('\n'));
    expect(JSON.parse((await runCli(['submit', '--file', file, '--json'], { env })).stdout)).toEqual({
      enqueued: JOBS,
      duplicates: 0,
    });

    // Short locks, so the killed worker's jobs come back within seconds (30 s in production).
    const flags = ['--concurrency', '16', '--lock-duration-ms', '2000', '--stalled-interval-ms', '1000'];
    workers = [0, 1, 2].map(() => startWorkerProcess(env, flags));
    const keys = keyLayout('chaos');
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= 400, {
      timeoutMs: 30_000,
      what: 'the crawl to be under way',
    });
    const victim = workers[0] as WorkerProcess;
    expect(await victim.stop('SIGKILL')).toBeNull();
    const killedAt = await redis.xlen(soleShard(keys).results);
    expect(killedAt).toBeLessThan(JOBS - MISSING);

    const dlq = new DeadLetterQueue(redis, keys);
    try {
      await waitFor(async () => (await redis.xlen(soleShard(keys).results)) + (await dlq.count()) >= JOBS, {
        timeoutMs: 60_000,
        what: 'every job to end',
      });
      // Let any job the victim held finish its second run before counting.
      await waitFor(async () => (await redis.llen(`${keys.bullPrefix}:crawl:active`)) === 0, { timeoutMs: 20_000 });
      const results = (await redis.xrange(soleShard(keys).results, '-', '+')).map(
        ([, f]) => JSON.parse(String(f[1])) as { url: string; idempotencyKey: string },
      );
      expect(results).toHaveLength(JOBS - MISSING);
      expect(new Set(results.map((r) => r.idempotencyKey)).size).toBe(JOBS - MISSING);
      expect(new Set(results.map((r) => r.url))).toEqual(new Set(good));
      expect(await dlq.count()).toBe(MISSING);
      const letters = await dlq.list();
      expect(new Set(letters.map((l) => l.url))).toEqual(new Set(missing));
      expect(letters.every((l) => l.reason === 'http_404')).toBe(true);
    } finally {
      await dlq.close();
    }
    const codes = await Promise.all(workers.slice(1).map((w) => w.stop('SIGTERM')));
    expect(codes).toEqual([0, 0]);
  });
});
