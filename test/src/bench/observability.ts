import { createWriteStream } from 'node:fs';
import { connectRedis, keyLayout, openSessionRedis, parseConfig, whenReady } from '@crawlfleet/core';
import { CrawlWorker } from '@crawlfleet/crawler';
import { startRedisServer } from '@crawlfleet/local-redis';
import { createLogger } from '@crawlfleet/log';
import { FleetMetrics } from '@crawlfleet/metrics';
import { Producer } from '@crawlfleet/producer';
import { loadSessionHasher } from '@crawlfleet/sessions';
import { generateKeyEntry, parseKeyRing, SlateStore } from '@crawlfleet/slates';
import { startFixtureSite } from '../fixture/site.js';

export interface ObservabilityBenchResult {
  jobs: number;
  concurrency: number;
  offJobsPerSecond: number;
  onJobsPerSecond: number;
  /** on / off: 1 means logging and metrics cost nothing. */
  ratio: number;
}

/**
 * What logging and metrics cost the hot path: the same crawl (half of the jobs in sessions) with
 * JSON logs at the default level to /dev/null and metrics on, against both off. Each side runs
 * twice, alternating, and keeps its best, so drift of the machine does not pick a winner.
 */
export async function benchObservability(jobs = 2_000, concurrency = 32): Promise<ObservabilityBenchResult> {
  const server = await startRedisServer();
  const site = await startFixtureSite();
  const config = parseConfig({
    tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore', redactPii: true } },
  });
  const ring = parseKeyRing(generateKeyEntry());
  try {
    const run = async (round: number, observed: boolean): Promise<number> => {
      const keys = keyLayout(`bench-obs-${round}`);
      const redis = await connectRedis(server.url, { role: 'worker' });
      const sessionRedis = openSessionRedis(server.url);
      await whenReady(sessionRedis, 5_000);
      const producer = new Producer(redis, keys, config);
      const targets = Array.from({ length: jobs }, (_, i) => ({ url: site.url(`/ok/r${round}-${i}`) }));
      await producer.submit(producer.prepare(targets.slice(0, jobs / 2), { tenant: 'default' }));
      await producer.submit(producer.prepare(targets.slice(jobs / 2), { tenant: 'default', sessionId: `s${round}` }));
      await producer.close();
      const logger = observed
        ? createLogger({ name: 'bench', level: 'info', destination: createWriteStream('/dev/null') })
        : createLogger({ name: 'bench', level: 'silent' });
      const started = performance.now();
      const worker = new CrawlWorker({
        connection: redis,
        keys,
        config,
        logger,
        concurrency,
        sessionStore: new SlateStore(sessionRedis, keys, ring),
        sessionHasher: await loadSessionHasher(redis, keys.sessionHashKey),
        observer: observed ? new FleetMetrics() : undefined,
      });
      await new Promise<void>((resolve) => {
        let done = 0;
        worker.onJob((event) => {
          if (event.kind !== 'retrying' && ++done === jobs) resolve();
        });
      });
      const seconds = (performance.now() - started) / 1000;
      await worker.drain(10_000);
      await redis.flushall();
      redis.disconnect();
      sessionRedis.disconnect();
      return jobs / seconds;
    };
    let off = 0;
    let on = 0;
    for (let round = 0; round < 2; round++) {
      off = Math.max(off, await run(round * 2, false));
      on = Math.max(on, await run(round * 2 + 1, true));
    }
    return { jobs, concurrency, offJobsPerSecond: off, onJobsPerSecond: on, ratio: on / off };
  } finally {
    await site.close();
    await server.stop();
  }
}
