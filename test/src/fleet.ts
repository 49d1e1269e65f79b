import { BrowserRuntime } from '@crawlfleet/browser';
import {
  type CrawlfleetConfig,
  connectRedis,
  type FetchJob,
  type KeyLayout,
  openSessionRedis,
  type RedisClient,
  whenReady,
} from '@crawlfleet/core';
import { CrawlWorker, type CrawlWorkerOptions } from '@crawlfleet/crawler';
import { DeadLetterQueue, type DeadLetterSummary } from '@crawlfleet/dlq';
import { createLogger } from '@crawlfleet/log';
import { Producer, type SubmitTarget } from '@crawlfleet/producer';
import { compareIds } from '@crawlfleet/results';
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
  const sessionRedis = openSessionRedis(REDIS_URL) as Redis;
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

/**
 * A browser worker on a test prefix: render jobs only, `contexts` Chromium contexts at once
 * (Debian's Chromium, or CRAWLFLEET_CHROMIUM). Its browser closes when it stops.
 */
export async function startBrowserWorker(
  keys: KeyLayout,
  config: CrawlfleetConfig,
  contexts = 2,
  options: Partial<CrawlWorkerOptions> = {},
): Promise<TestWorker & { browser: BrowserRuntime }> {
  const logger = options.logger ?? createLogger({ name: 'test-browser-worker', level: 'silent' });
  const browser = await BrowserRuntime.start({ contexts, render: config.render, fetch: config.fetch, logger });
  await browser.pool.start();
  return { ...(await startTestWorker(keys, config, { ...options, logger, browser })), browser };
}

/** Enqueues targets as `crawlfleet submit --render` would; returns the jobs. */
export function submitRender(
  redis: Redis,
  keys: KeyLayout,
  config: CrawlfleetConfig,
  targets: SubmitTarget[],
  tenant = 'default',
  sessionId?: string,
): Promise<FetchJob[]> {
  return submit(redis, keys, config, targets, tenant, sessionId, { render: true });
}

/** Enqueues targets as `crawlfleet submit` would; returns the jobs. */
export async function submit(
  redis: Redis,
  keys: KeyLayout,
  config: CrawlfleetConfig,
  targets: SubmitTarget[],
  tenant = 'default',
  sessionId?: string,
  options: { render?: boolean } = {},
): Promise<FetchJob[]> {
  const producer = new Producer(redis, keys, config);
  try {
    const jobs = producer.prepare(targets, { tenant, sessionId, render: options.render });
    await producer.submit(jobs);
    return jobs;
  } finally {
    await producer.close();
  }
}

/** The results the outbox holds, oldest first, as stored. */
export async function storedResults<T = Record<string, unknown>>(redis: RedisClient, keys: KeyLayout): Promise<T[]> {
  const entries = (await Promise.all(keys.shards.map((shard) => redis.xrange(shard.results, '-', '+')))).flat();
  entries.sort(([a], [b]) => compareIds(a, b));
  return entries.map(([, fields]) => JSON.parse(String(fields[1])) as T);
}

/** The dead letters of a prefix (up to 500), as `crawlfleet dlq list` shows them. */
export async function deadLettersOf(redis: Redis, keys: KeyLayout): Promise<DeadLetterSummary[]> {
  const dlq = new DeadLetterQueue(redis, keys);
  try {
    return await dlq.list({ limit: 500 });
  } finally {
    await dlq.close();
  }
}
