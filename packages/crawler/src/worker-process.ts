import { BrowserRuntime } from '@crawlfleet/browser';
import {
  type CrawlfleetConfig,
  checkShardCount,
  coalesceWrites,
  connectRedis,
  isCluster,
  type KeyLayout,
  keyLayout,
  openSessionRedis,
  redactRedisUrl,
  whenReady,
} from '@crawlfleet/core';
import type { Logger } from '@crawlfleet/log';
import { FleetMetrics, serveMetrics } from '@crawlfleet/metrics';
import { loadSessionHasher } from '@crawlfleet/sessions';
import { type KeptHydrate, type KeyRing, SessionAdmin, SlateStore, TrackedHydrates } from '@crawlfleet/slates';
import { CrawlWorker, type CrawlWorkerOptions } from './crawl-worker.js';
import { DEFAULT_PROGRESS_MS, ProgressSummary } from './progress-summary.js';

export interface OpenWorkerOptions
  extends Pick<
    CrawlWorkerOptions,
    'concurrency' | 'lockDurationMs' | 'stalledIntervalMs' | 'maxStalledCount' | 'observer' | 'handler'
  > {
  redisUrl: string;
  /** Where session slates live (`CRAWLFLEET_SESSION_REDIS_URL`, default `redisUrl`). */
  sessionRedisUrl: string;
  /** The keys that seal and open session slates (`CRAWLFLEET_KEYS`). */
  ring: KeyRing;
  keys: KeyLayout;
  config: CrawlfleetConfig;
  logger: Logger;
  /**
   * A browser worker with this many Chromium contexts: it takes render jobs only. Chromium is
   * started before anything else; without a usable one, `BrowserUnavailableError` (exit code 2).
   */
  browsers?: number | undefined;
}

/** A running worker and the connections it owns. */
export interface OpenedWorker {
  readonly worker: CrawlWorker;
  /** False when the session Redis did not answer at start (jobs run on ephemeral sessions). */
  readonly sessionStoreReady: boolean;
  /** Drains (up to `graceMs`), then closes every connection; false when jobs were still running. */
  close(graceMs: number): Promise<boolean>;
}

/**
 * Connects to the queue Redis (riding out restarts) and the session Redis (failing fast, so a
 * session store that is down gives ephemeral sessions instead of stalled jobs), and starts a
 * worker. The one place worker wiring lives, for `crawlfleet worker` and `crawlfleet crawl` alike.
 */
export async function openWorker(options: OpenWorkerOptions): Promise<OpenedWorker> {
  const browser = options.browsers === undefined ? undefined : await startBrowser(options, options.browsers);
  const connection = await connectRedis(options.redisUrl, { role: 'worker' });
  try {
    await checkShardCount(connection, options.keys);
  } catch (error) {
    connection.disconnect();
    await browser?.close();
    throw error;
  }
  const sessionRedis = openSessionRedis(options.sessionRedisUrl);
  // The worker's two busy connections (not BullMQ's blocking one, which it duplicates itself).
  coalesceWrites(connection);
  coalesceWrites(sessionRedis);
  // A moment for the session store, so the first jobs do not run on ephemeral sessions; a store
  // that stays down does not keep the worker from starting.
  const sessionStoreReady = await whenReady(sessionRedis, 3_000);
  if (!sessionStoreReady) {
    options.logger.warn(
      { session_redis: redactRedisUrl(options.sessionRedisUrl) },
      'session Redis unreachable; jobs run on ephemeral sessions until it answers',
    );
  }
  // Tracking redirects invalidations to a subscriber on the same node; on a cluster that is one
  // per master, which this worker does not keep: it reads its sessions, and says so once.
  if (options.config.sessions.trackHydrates && isCluster(sessionRedis)) {
    options.logger.warn(
      'session Redis is a cluster: hydrate tracking (CLIENT TRACKING) is off; every job reads its session',
    );
  }
  const tracked =
    options.config.sessions.trackHydrates && !isCluster(sessionRedis)
      ? TrackedHydrates.start<KeptHydrate>(sessionRedis, {
          onUnavailable: (reason) =>
            options.logger.warn({ err: reason }, 'session Redis refuses CLIENT TRACKING; every job reads its session'),
        })
      : undefined;
  let worker: CrawlWorker;
  try {
    const sessionStore = new SlateStore(sessionRedis, options.keys, options.ring, { tracked });
    if (sessionStoreReady) await warnOnForeignKeys(sessionStore, options.logger);
    worker = new CrawlWorker({
      ...options,
      connection,
      sessionHasher: await loadSessionHasher(connection, options.keys.sessionHashKey),
      sessionStore,
      browser,
    });
  } catch (error) {
    await browser?.close();
    tracked?.close();
    sessionRedis.disconnect();
    connection.disconnect();
    throw error;
  }
  return {
    worker,
    sessionStoreReady,
    async close(graceMs) {
      const finished = await worker.drain(graceMs);
      await connection.quit().catch(() => connection.disconnect());
      if (tracked !== undefined) {
        options.logger.info({ ...tracked.counters, kept: tracked.size }, 'session hydrates answered from tracking');
        tracked.close();
      }
      sessionRedis.disconnect();
      return finished;
    },
  };
}

/** A browser worker's runtime, its Chromium started (so a worker without one stops before taking a job). */
async function startBrowser(options: OpenWorkerOptions, contexts: number): Promise<BrowserRuntime> {
  const runtime = await BrowserRuntime.start({
    contexts,
    render: options.config.render,
    fetch: options.config.fetch,
    logger: options.logger,
    observer: options.observer,
  });
  try {
    const version = await runtime.pool.start();
    options.logger.info({ chromium: version, contexts }, 'browser started');
    return runtime;
  } catch (error) {
    await runtime.close();
    throw error;
  }
}

/**
 * Says loudly, once at start, when this worker's key ring cannot open the fleet's sessions: its
 * session jobs would all run ephemeral. The worker still runs (its other jobs are fine).
 */
async function warnOnForeignKeys(store: SlateStore, logger: Logger): Promise<void> {
  try {
    const check = await new SessionAdmin(store.connection, store.keys).checkKeyRing(store.ring);
    if (check.state === 'unreadable')
      logger.error(
        { alert: true, fleet_kid: check.kid },
        `this worker's session keys (CRAWLFLEET_KEYS or the local key file) cannot open this fleet's sessions (sealed with key id ${check.kid}): every session job runs ephemeral and writes nothing until the worker gets that key`,
      );
  } catch (error) {
    logger.warn({ err: (error as Error).message }, 'could not check the key ring against the session store');
  }
}

export interface WorkerProcessOptions extends Omit<OpenWorkerOptions, 'keys'> {
  prefix: string;
  /** How long SIGTERM/SIGINT waits for active jobs before exiting anyway. Default 30 s. */
  graceMs?: number | undefined;
  /** Serve /metrics and /healthz on this port (`CRAWLFLEET_METRICS_PORT`); none by default. */
  metricsPort?: number | undefined;
  metricsHost?: string | undefined;
  /**
   * How often a `crawl progress` line is logged at info (`CRAWLFLEET_PROGRESS_MS`), when anything
   * happened; 0 logs none. Default 30 s.
   */
  progressEveryMs?: number | undefined;
}

export const DEFAULT_GRACE_MS = 30_000;

/**
 * Runs a worker until SIGTERM or SIGINT, then drains: stops taking jobs, lets active ones finish
 * (up to `graceMs`), closes connections and resolves. A second signal exits at once.
 */
export async function runWorkerProcess(options: WorkerProcessOptions): Promise<void> {
  const { logger } = options;
  let opened: OpenedWorker | undefined;
  let draining = false;
  // The sources are read at scrape time, once the worker exists.
  const metrics =
    options.metricsPort === undefined
      ? undefined
      : new FleetMetrics({
          queueDepths: async () => (opened === undefined ? {} : opened.worker.queueDepths()),
          queueName: () => opened?.worker.queueName ?? 'crawl',
          connections: () => opened?.worker.fetcher.connections ?? { requests: 0, reused: 0 },
          outbox: () => opened?.worker.outbox,
        });
  const progressEveryMs = options.progressEveryMs ?? DEFAULT_PROGRESS_MS;
  const progress =
    progressEveryMs === 0
      ? undefined
      : new ProgressSummary({
          logger,
          everyMs: progressEveryMs,
          inFlight: () => opened?.worker.inFlight ?? 0,
          next: metrics,
        });
  opened = await openWorker({
    ...options,
    keys: keyLayout(options.prefix, options.config.queue.shards),
    observer: progress ?? metrics,
  });
  progress?.start();
  const server =
    metrics === undefined || options.metricsPort === undefined
      ? undefined
      : await serveMetrics(metrics.registry, {
          port: options.metricsPort,
          host: options.metricsHost,
          healthy: () => !draining,
        });
  const worker = opened;
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  // The signal handlers go in before "worker started" is said: whoever waits for that line may
  // send SIGTERM at once, and a signal that finds no handler ends the process undrained.
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (draining) {
        logger.warn({ signal }, 'second signal: exiting without waiting for active jobs');
        process.exit(1);
      }
      draining = true;
      logger.info({ signal, grace_ms: graceMs }, 'draining: no new jobs, waiting for active ones');
      void worker.close(graceMs).then((finished) => {
        progress?.stop();
        if (!finished) {
          logger.warn({ grace_ms: graceMs }, 'grace period over; unfinished jobs will be retried by other workers');
        }
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  logger.info(
    {
      redis: redactRedisUrl(options.redisUrl),
      session_redis: redactRedisUrl(options.sessionRedisUrl),
      key_id: options.ring.current.kid,
      prefix: options.prefix,
      concurrency: opened.worker.workers.reduce((sum, worker) => sum + worker.concurrency, 0),
      browsers: options.browsers,
      grace_ms: graceMs,
      metrics_port: options.metricsPort,
      progress_every_ms: progressEveryMs,
    },
    'worker started',
  );
  await stopped;
  await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
  logger.info('worker stopped');
}
