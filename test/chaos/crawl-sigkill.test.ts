import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keyLayout, type ShardKeys } from '@crawlfleet/core';
import { type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphPagesWithin } from '../src/fixture/link-graph.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { runCli, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';

/** On one shard a page's write admits its links; on three, movers admit them on the fleet tag (docs/redis-cluster.md). */
describe.each([1, 3])(
  'a worker killed with SIGKILL in the middle of a crawl that follows links, on %i shard(s)',
  (shards) => {
    let server: RedisServer;
    let redis: Redis;
    let site: FixtureSite;
    let dir: string;
    let workers: WorkerProcess[] = [];

    beforeAll(async () => {
      server = await startRedisServer();
      redis = new Redis(server.url);
      site = await startFixtureSite();
      dir = mkdtempSync(join(tmpdir(), 'crawlfleet-crawl-chaos-'));
    });
    afterAll(async () => {
      await Promise.all(workers.map((w) => w.stop('SIGKILL')));
      redis.disconnect();
      await server.stop();
      await site.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("stores every page of the graph and its handler's record exactly once, and admits every link once", async () => {
      const config = join(dir, 'crawlfleet.config.json');
      writeFileSync(
        config,
        JSON.stringify({
          // About 150 pages a second: the kill lands mid-crawl.
          tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore', hostDelayMs: 6 } },
          jobs: { retries: 2, backoffBaseMs: 20 },
          queue: { shards },
        }),
      );
      const env = {
        REDIS_URL: server.url,
        CRAWLFLEET_CONFIG: config,
        CRAWLFLEET_PREFIX: `crawl-chaos-${shards}`,
        CRAWLFLEET_LOG_LEVEL: 'warn',
      };
      const submitted = await runCli(['submit', '--crawl', 'all', '--follow', 'same-hostname', site.url('/graph/')], {
        env,
      });
      expect(submitted.code, submitted.stderr).toBe(0);

      // Short locks, so the killed worker's jobs come back within seconds (30 s in production).
      const handler = fileURLToPath(new URL('../src/fixture/handlers/titles.mjs', import.meta.url));
      const flags = [
        ...['--concurrency', '8', '--lock-duration-ms', '2000', '--stalled-interval-ms', '1000'],
        ...['--handler', handler],
      ];
      workers = [0, 1, 2].map(() => startWorkerProcess(env, flags));
      const keys = keyLayout(`crawl-chaos-${shards}`, shards);
      /** Summed over the shards. */
      const total = async (count: (shard: ShardKeys) => Promise<number>) =>
        (await Promise.all(keys.shards.map(count))).reduce((sum, n) => sum + n, 0);
      const outbox = () => total((shard) => redis.xlen(shard.results));
      const expected = graphPagesWithin(100);
      await waitFor(async () => (await outbox()) >= 100, {
        timeoutMs: 30_000,
        what: 'the crawl to be under way',
      });
      expect(await (workers[0] as WorkerProcess).stop('SIGKILL')).toBeNull();
      expect(await outbox()).toBeLessThan(expected.size);

      const shown = async () => JSON.parse((await runCli(['crawls', 'show', 'all', '--json'], { env })).stdout);
      await waitFor(
        async () => {
          const crawl = await shown();
          return crawl.stored >= expected.size && crawl.pending === 0 ? crawl : undefined;
        },
        // A move the victim held (admitted, not enqueued) is claimed after 30 s.
        { timeoutMs: 90_000, what: 'every page of the graph' },
      ).catch(async (error: Error) => {
        throw new Error(`${error.message}: ${JSON.stringify(await shown())}`);
      });
      // Let a job the victim held finish its second run before counting.
      await waitFor(async () => (await total((shard) => redis.llen(`${shard.bullPrefix}:crawl:active`))) === 0, {
        timeoutMs: 20_000,
      });

      const entries = (await Promise.all(keys.shards.map((shard) => redis.xrange(shard.results, '-', '+')))).flat();
      const results = entries.filter(([, f]) => f[0] === 'r').map(([, f]) => JSON.parse(String(f[1])));
      const records = entries.filter(([, f]) => f[0] === 'd').map(([, f]) => JSON.parse(String(f[1])));
      expect(results).toHaveLength(expected.size);
      // One record per page, pushed by the handler: {url, title}.
      expect(records).toHaveLength(expected.size);
      expect(new Set(records.map((record) => record.id)).size).toBe(expected.size);
      expect(new Set(records.map((record) => record.data.url))).toEqual(new Set(results.map((result) => result.url)));
      expect(records.every((record) => record.data.title.length > 0)).toBe(true);
      expect(new Set(results.map((r) => r.idempotencyKey)).size).toBe(expected.size);
      for (const result of results) {
        const url = new URL(result.url);
        expect(result.depth, result.url).toBe(expected.get(`${url.pathname}${url.search}`));
      }
      // Each link admitted once, and every admitted link moved onto the queue.
      expect(await shown()).toMatchObject({
        discovered: expected.size,
        stored: expected.size,
        deadLettered: 0,
        records: expected.size,
      });
      expect(await redis.scard(keys.crawlSeen('all'))).toBe(expected.size);
      // What the frontier still holds was taken by the killed worker (enqueued, not yet acknowledged):
      // another worker claims it after 30 s, and enqueueing it again adds nothing. None waits unread.
      const left = await total((shard) => redis.xlen(shard.frontier));
      const taken = await total(async (shard) =>
        Number(((await redis.xpending(shard.frontier, 'movers')) as [number])[0] ?? 0),
      );
      expect(left).toBe(taken);

      const codes = await Promise.all(workers.slice(1).map((w) => w.stop('SIGTERM')));
      expect(codes).toEqual([0, 0]);
    });
  },
);
