import {
  type CrawlfleetConfig,
  connectRedis,
  keyLayout,
  openSessionRedis,
  redactRedisUrl,
  whenReady,
} from '@crawlfleet/core';
import type { Logger } from '@crawlfleet/log';
import { type KeyRing, SlateStore } from '@crawlfleet/slates';
import { CrawlWorker, type CrawlWorkerOptions } from './crawl-worker.js';

export interface WorkerProcessOptions
  extends Pick<CrawlWorkerOptions, 'concurrency' | 'lockDurationMs' | 'stalledIntervalMs' | 'maxStalledCount'> {
  redisUrl: string;
  /** Where session slates live (`CRAWLFLEET_SESSION_REDIS_URL`, default `redisUrl`). */
  sessionRedisUrl: string;
  /** The keys that seal and open session slates (`CRAWLFLEET_KEYS`). */
  ring: KeyRing;
  prefix: string;
  config: CrawlfleetConfig;
  logger: Logger;
  /** How long SIGTERM/SIGINT waits for active jobs before exiting anyway. Default 30 s. */
  graceMs?: number | undefined;
}

export const DEFAULT_GRACE_MS = 30_000;

/**
 * Runs a worker until SIGTERM or SIGINT, then drains: stops taking jobs, lets active ones finish
 * (up to `graceMs`), closes connections and resolves. A second signal exits at once.
 */
export async function runWorkerProcess(options: WorkerProcessOptions): Promise<void> {
  const { logger } = options;
  const connection = await connectRedis(options.redisUrl, { role: 'worker' });
  const keys = keyLayout(options.prefix);
  const sessionRedis = openSessionRedis(options.sessionRedisUrl);
  // Give the session store a moment so the first jobs do not run on ephemeral sessions; a store
  // that stays down does not keep the worker from starting.
  if (!(await whenReady(sessionRedis, 3_000))) {
    logger.warn(
      { session_redis: redactRedisUrl(options.sessionRedisUrl) },
      'session Redis unreachable; jobs run on ephemeral sessions until it answers',
    );
  }
  const worker = new CrawlWorker({
    ...options,
    connection,
    keys,
    sessionStore: new SlateStore(sessionRedis, keys, options.ring),
  });
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  logger.info(
    {
      redis: redactRedisUrl(options.redisUrl),
      prefix: options.prefix,
      concurrency: worker.worker.concurrency,
      grace_ms: graceMs,
    },
    'worker started',
  );
  await new Promise<void>((resolve) => {
    let draining = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (draining) {
        logger.warn({ signal }, 'second signal: exiting without waiting for active jobs');
        process.exit(1);
      }
      draining = true;
      logger.info({ signal, grace_ms: graceMs }, 'draining: no new jobs, waiting for active ones');
      void worker.drain(graceMs).then((finished) => {
        if (!finished)
          logger.warn({ grace_ms: graceMs }, 'grace period over; unfinished jobs will be retried by other workers');
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await connection.quit().catch(() => connection.disconnect());
  sessionRedis.disconnect();
  logger.info('worker stopped');
}
