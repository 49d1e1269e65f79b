import {
  type CrawlfleetConfig,
  connectRedis,
  type FetchJob,
  type KeyLayout,
  openSessionRedis,
  whenReady,
} from '@crawlfleet/core';
import { CrawlWorker, type CrawlWorkerOptions } from '@crawlfleet/crawler';
import { createLogger } from '@crawlfleet/log';
import { Producer, type SubmitTarget } from '@crawlfleet/producer';
import { loadSessionHasher } from '@crawlfleet/sessions';
import { type KeptHydrate, SlateStore, TrackedHydrates } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { REDIS_URL, testRing } from './harness.js';

/**
 * An in-process worker on a test prefix, with its own worker-role connection, and its session
 * hydrates tracked as a worker process tracks them (`sessions.trackHydrates`).
 */
export interface TestWorker {
  readonly worker: CrawlWorker;
  stop(graceMs?: number): Promise<void>;
}

export async function startTestWorker(
  keys: KeyLayout,
  config: CrawlfleetConfig,
  options: Partial<CrawlWorkerOptions> = {},
): Promise<TestWorker> {
  const connection = await connectRedis(REDIS_URL, { role: 'worker' });
  const sessionRedis = openSessionRedis(REDIS_URL);
  await whenReady(sessionRedis, 3_000);
  const tracked = config.sessions.trackHydrates ? TrackedHydrates.start<KeptHydrate>(sessionRedis) : undefined;
  const worker = new CrawlWorker({
    connection,
    keys,
    config,
    sessionStore: new SlateStore(sessionRedis, keys, testRing(), { tracked }),
    sessionHasher: await loadSessionHasher(connection, keys.sessionHashKey),
    logger: createLogger({ name: 'test-worker', level: 'silent' }),
    concurrency: 4,
    ...options,
  });
  return {
    worker,
    async stop(graceMs = 5_000) {
      await worker.drain(graceMs);
      await connection.quit().catch(() => connection.disconnect());
      tracked?.close();
      sessionRedis.disconnect();
    },
  };
}

/** Enqueues targets as `crawlfleet submit` would; returns the jobs. */
export async function submit(
  redis: Redis,
  keys: KeyLayout,
  config: CrawlfleetConfig,
  targets: SubmitTarget[],
  tenant = 'default',
  sessionId?: string,
): Promise<FetchJob[]> {
  const producer = new Producer(redis, keys, config);
  try {
    const jobs = producer.prepare(targets, { tenant, sessionId });
    await producer.submit(jobs);
    return jobs;
  } finally {
    await producer.close();
  }
}
