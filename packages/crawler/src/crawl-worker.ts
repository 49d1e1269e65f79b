import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { AuditLog } from '@crawlfleet/audit';
import { type BodyStore, lazyBodyStore } from '@crawlfleet/bodies';
import { type BrowserRuntime, LazyBrowserLogin } from '@crawlfleet/browser';
import {
  CRAWL_QUEUE,
  type CrawlfleetConfig,
  type CrawlObserver,
  type KeyLayout,
  RENDER_QUEUE,
  type RedisClient,
} from '@crawlfleet/core';
import { CrawlStore } from '@crawlfleet/crawls';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { fullJitterDelay } from '@crawlfleet/failures';
import { Fetcher } from '@crawlfleet/fetcher';
import type { Logger } from '@crawlfleet/log';
import { HostPacer, RobotsCache } from '@crawlfleet/politeness';
import { addJobCounts, CrawlQueues } from '@crawlfleet/producer';
import { Outbox, type OutboxFill, ResultsStore } from '@crawlfleet/results';
import { type SessionCounters, type SessionHasher, SessionManager } from '@crawlfleet/sessions';
import type { SlateStore } from '@crawlfleet/slates';
import { type Job, type Queue, Worker } from 'bullmq';
import type { CrawlHandler } from './crawl-handler.js';
import { CrawlPages } from './crawl-pages.js';
import { CrawlProcessor } from './crawl-processor.js';
import { FrontierMover } from './frontier-mover.js';
import { DeadLetteredError, type JobOutcome, RetryLaterError } from './job-errors.js';
import { OutboxBackpressure } from './outbox-backpressure.js';
import { ProxyHealth } from './proxy-health.js';

export interface CrawlWorkerOptions {
  /** A connection opened with role `worker` (it rides out Redis restarts). */
  connection: RedisClient;
  keys: KeyLayout;
  config: CrawlfleetConfig;
  logger: Logger;
  /**
   * Where session slates live. Without one, every job that names a session runs on an
   * ephemeral session (and says so once per job).
   */
  sessionStore?: SlateStore | undefined;
  /** How sessions are named in logs and audit events (`loadSessionHasher`). */
  sessionHasher: SessionHasher;
  /**
   * Where bodies above `results.inlineBodyBytes` go. Default: the store `results.bodyStore` names,
   * opened on first use; none when it is unset.
   */
  bodyStore?: BodyStore | undefined;
  /** Receives what the crawl path does (metrics). */
  observer?: CrawlObserver | undefined;
  /** Jobs processed at once by this process. Default 16. */
  concurrency?: number | undefined;
  /**
   * How long a job's lock lasts without renewal. A worker that dies leaves its jobs locked this
   * long before another worker's stalled check takes them back. Default 30 s.
   */
  lockDurationMs?: number | undefined;
  /** How often this worker looks for jobs whose worker died. Default 30 s. */
  stalledIntervalMs?: number | undefined;
  /** Times a job may stall (its worker died) before it fails. Default 2. */
  maxStalledCount?: number | undefined;
  /** Start taking jobs at once (default) or wait for `run()`. */
  autorun?: boolean | undefined;
  /** The handler named crawls' pages run through (`loadHandler`), and its time limit per page. */
  handler?: { handler: CrawlHandler; timeoutMs: number } | undefined;
  /**
   * A browser worker: it takes render jobs (the `crawl-render` queue) instead of HTTP jobs, one
   * per browser context (`concurrency` is ignored), and renders them with this runtime, which it
   * closes as it drains.
   */
  browser?: BrowserRuntime | undefined;
}

/** The outcome of one job as the worker saw it: for progress displays and counters. */
export type JobEvent =
  | { kind: 'stored' | 'duplicate' | 'cancelled'; job: Job; outcome: JobOutcome }
  | { kind: 'retrying'; job: Job; error: RetryLaterError }
  | { kind: 'dead_lettered'; job: Job; error: DeadLetteredError }
  | { kind: 'failed'; job: Job | undefined; error: Error };

export const DEFAULT_CONCURRENCY = 16;

/**
 * A BullMQ worker on the `crawl` queue (a browser worker: `crawl-render`) running `CrawlProcessor`. Stateless: everything it knows
 * lives in Redis, so any number of them can run on any number of machines.
 */
export class CrawlWorker {
  /** One BullMQ worker per shard, each on its shard's queue. */
  readonly workers: readonly Worker[];
  readonly processor: CrawlProcessor;
  readonly fetcher: Fetcher;
  private readonly dlq: DeadLetterQueue;
  private readonly ownQueues: readonly Queue[];
  private readonly bodies: BodyStore | undefined;
  private readonly listeners = new Set<(event: JobEvent) => void>();
  private running = 0;
  readonly sessions: SessionManager;
  readonly backpressure: OutboxBackpressure;
  private readonly proxyHealth: ProxyHealth;
  /** One frontier mover per shard. */
  private readonly movers: readonly FrontierMover[];
  private readonly queues: CrawlQueues;
  private readonly browser: BrowserRuntime | undefined;
  private readonly lazyLogin: LazyBrowserLogin | undefined;

  constructor(options: CrawlWorkerOptions) {
    const { connection, keys, config, logger } = options;
    this.fetcher = new Fetcher(config.fetch);
    this.dlq = new DeadLetterQueue(connection, keys);
    const { bodyStore } = config.results;
    this.bodies = options.bodyStore ?? (bodyStore === undefined ? undefined : lazyBodyStore(bodyStore));
    this.browser = options.browser;
    const queueName = this.browser === undefined ? CRAWL_QUEUE : RENDER_QUEUE;
    this.queues = new CrawlQueues(connection, keys, config);
    // Its own queues, one per shard (to read a job's attempts, and for metrics), are among those it adds links to.
    this.ownQueues = this.queues.each(queueName);
    // An HTTP worker logs in through a browser only for a tenant whose login asks for one.
    const browserLogins = Object.values(config.tenants).some((tenant) => tenant.auth?.login.browser !== undefined);
    this.lazyLogin =
      this.browser === undefined && browserLogins
        ? new LazyBrowserLogin({ render: config.render, fetch: config.fetch, logger, observer: options.observer })
        : undefined;
    this.sessions = new SessionManager({
      store: options.sessionStore,
      config: config.sessions,
      logger,
      hasher: options.sessionHasher,
      observer: options.observer,
    });
    this.backpressure = new OutboxBackpressure(
      new Outbox(connection, keys),
      config.results,
      {
        pause: () => Promise.all(this.workers.map((worker) => worker.pause(true))).then(() => undefined),
        resume: async () => {
          for (const worker of this.workers) worker.resume();
        },
      },
      logger,
    );
    const audit = new AuditLog(connection, keys, config.retention.auditMaxLen, (error) =>
      logger.warn({ err: error.message }, 'could not append to the audit stream'),
    );
    this.proxyHealth = new ProxyHealth(connection, keys, audit, logger);
    const crawls = new CrawlStore(connection, keys);
    // The links named crawls' pages admit, moved onto the queues by every worker (its own consumer), from each shard's frontier.
    const consumer = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.movers = keys.shards.map(
      (shard) =>
        new FrontierMover({
          redis: connection,
          shard,
          consumer,
          enqueue: (jobs) => this.queues.add(jobs),
          admission: crawls,
          logger,
        }),
    );
    this.processor = new CrawlProcessor({
      crawls,
      crawlPages: new CrawlPages(crawls, logger, options.handler),
      frontier: {
        nudge: () => {
          for (const mover of this.movers) mover.nudge();
        },
      },
      sessions: this.sessions,
      observer: options.observer,
      robots: new RobotsCache(connection, keys, { leaseMs: config.fetch.timeoutMs + 5_000 }),
      pacer: new HostPacer(connection, keys),
      audit,
      proxyHealth: this.proxyHealth,
      config,
      keys,
      fetcher: this.fetcher,
      pages: this.browser?.fetcher,
      browserLogin: this.browser?.fetcher ?? this.lazyLogin,
      results: new ResultsStore(connection, keys, {
        ledgerTtlSeconds: config.retention.ledgerTtlSeconds,
        onFill: (fill, shard) => this.backpressure.observe(fill, shard),
      }),
      bodies: this.bodies,
      dlq: this.dlq,
      queueOf: (jobId) => this.ownQueues[keys.shardOf(jobId).index] as Queue,
      logger,
    });
    const { backoffBaseMs, backoffMaxMs } = config.jobs;
    // One BullMQ worker per shard's queue, the concurrency shared out between them: the keys spread
    // evenly over the shards, and so does the work.
    const concurrency = this.browser?.pool.contexts ?? options.concurrency ?? DEFAULT_CONCURRENCY;
    const perShard = Math.max(1, Math.ceil(concurrency / keys.shards.length));
    this.workers = keys.shards.map(
      (shard) =>
        new Worker(queueName, (job, token) => this.runJob(job, token), {
          connection,
          prefix: shard.bullPrefix,
          concurrency: perShard,
          lockDuration: options.lockDurationMs ?? 30_000,
          stalledInterval: options.stalledIntervalMs ?? 30_000,
          maxStalledCount: options.maxStalledCount ?? 2,
          autorun: options.autorun ?? true,
          settings: {
            // The processor already chose the delay (and logged it in the job's history).
            backoffStrategy: (attemptsMade, _type, error) =>
              error instanceof RetryLaterError
                ? error.backoffMs
                : fullJitterDelay(attemptsMade, { baseMs: backoffBaseMs, maxMs: backoffMaxMs }),
          },
        }),
    );
    for (const worker of this.workers) this.listen(worker, logger);
    for (const mover of this.movers) mover.start();
    this.backpressure
      .check()
      .catch((error: Error) => logger.warn({ err: error.message }, 'could not read the results outbox at start'));
  }

  /** Turns a BullMQ worker's events into job events, and logs its errors. */
  private listen(worker: Worker, logger: Logger): void {
    worker.on('completed', (job, outcome: JobOutcome) => this.emit({ kind: outcome.outcome, job, outcome }));
    worker.on('failed', (job, error) => {
      if (error instanceof RetryLaterError && job !== undefined) this.emit({ kind: 'retrying', job, error });
      else if (error instanceof DeadLetteredError && job !== undefined)
        this.emit({ kind: 'dead_lettered', job, error });
      else {
        logger.error({ job_id: job?.id, err: error }, 'job failed outside the crawl path');
        this.emit({ kind: 'failed', job, error });
      }
    });
    // Connection errors are retried by ioredis; say so once per error, do not crash.
    worker.on('error', (error) => logger.error({ err: error }, 'worker error'));
  }

  private async runJob(job: Job, token: string | undefined): Promise<JobOutcome> {
    this.running++;
    try {
      return await this.processor.process(job, token);
    } finally {
      this.running--;
    }
  }

  /** The queue this worker takes jobs from (on every shard): `crawl`, or `crawl-render` for a browser worker. */
  get queueName(): string {
    return (this.ownQueues[0] as Queue).name;
  }

  /** Jobs this worker is running now. */
  get inFlight(): number {
    return this.running;
  }

  /** Job counts of this worker's queue (`crawl`, or `crawl-render` for a browser worker) by state, and the DLQ size: for metrics. */
  async queueDepths(): Promise<Record<string, number>> {
    const [shards, dlq] = await Promise.all([
      Promise.all(
        this.ownQueues.map((queue) =>
          queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'),
        ),
      ),
      this.dlq.count(),
    ]);
    return { ...addJobCounts(shards), dlq };
  }

  /** The results outbox as this worker last saw it, and whether it holds back because it is full. */
  get outbox(): OutboxFill & { holding: boolean } {
    return { ...this.backpressure.fill, holding: this.backpressure.isHolding };
  }

  /** What this worker counted about sessions (ephemeral fallbacks, discarded slates, ...). */
  get sessionCounters(): SessionCounters {
    return this.sessions.counters;
  }

  /** Subscribes to job outcomes; returns the unsubscribe function. */
  onJob(listener: (event: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: JobEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  run(): Promise<void> {
    return Promise.all(this.workers.map((worker) => worker.run())).then(() => undefined);
  }

  /**
   * Stops taking jobs and waits up to `graceMs` for the active ones to finish. Returns false when
   * some were still running: their locks lapse and another worker's stalled check retries them.
   */
  async drain(graceMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    this.processor.shutdown();
    this.backpressure.close();
    this.proxyHealth.close();
    const closed = Promise.all(this.workers.map((worker) => worker.close())).then(() => true);
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    const finished = await Promise.race([closed, timedOut]);
    clearTimeout(timer);
    // Links the last pages admitted go onto the queue before the connection closes.
    await Promise.all(this.movers.map((mover) => mover.close()));
    // The meta counts written behind go out before the session connection closes.
    await this.sessions.close();
    this.fetcher.close();
    await Promise.all([this.browser?.close(), this.lazyLogin?.close()]);
    await Promise.all([this.dlq.close(), this.queues.close(), this.bodies?.close()]);
    return finished;
  }
}
