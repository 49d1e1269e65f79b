import {
  awaitReplicas,
  type CrawlfleetConfig,
  type FetchJob,
  type KeyLayout,
  pipelineEach,
  type RedisClient,
} from '@crawlfleet/core';
import { injectTrace, inSpan, SpanKind } from '@crawlfleet/tracing';
import { CrawlQueues } from './crawl-queues.js';
import { PartialSubmitError, type SubmitReport } from './errors.js';
import { type PrepareOptions, prepareJobs } from './prepare.js';
import type { TargetList } from './target-lines.js';

/** How long a submit waits for a replica of each master to hold its jobs. */
const REPLICA_WAIT_MS = 2_000;

import type { SubmitTarget } from './targets.js';

export interface SubmitOptions {
  /** Enqueue even when the key is finished or known; an active job is still left alone. */
  force?: boolean | undefined;
  /** Jobs per Redis round trip; 500 by default. */
  batchSize?: number | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * Enqueues fetch jobs on `crawl` (render jobs on `crawl-render`), keyed by idempotency key (the BullMQ job id). A key whose
 * result is in the ledger, or whose job is still known to the queue, is a duplicate and is not
 * enqueued again unless forced. Every target is validated before anything is enqueued.
 */
export class Producer {
  readonly queues: CrawlQueues;

  /**
   * The first error the connection reported since the current submit began: why a command then
   * failed. Without a listener, BullMQ would print each of these with its stack on stderr.
   */
  private connectionError: Error | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: KeyLayout,
    private readonly config: CrawlfleetConfig,
  ) {
    this.queues = new CrawlQueues(redis, keys, config);
    for (const queue of this.queues.all)
      queue.on('error', (error) => {
        this.connectionError ??= error;
      });
  }

  /** Validates every target and builds its job; see `prepareJobs`. */
  prepare(targets: readonly SubmitTarget[] | TargetList, options: PrepareOptions): FetchJob[] {
    return prepareJobs(this.config, targets, options);
  }

  /**
   * Enqueues in batches under one `crawlfleet.submit` span, whose W3C trace context each job
   * carries (when tracing is on), so the worker's spans continue the producer's trace.
   */
  async submit(jobs: readonly FetchJob[], options: SubmitOptions = {}): Promise<SubmitReport> {
    return inSpan(
      'crawlfleet.submit',
      { kind: SpanKind.PRODUCER, attributes: { 'crawlfleet.jobs': jobs.length } },
      async () => {
        const trace = injectTrace();
        const traced =
          trace === undefined ? jobs : jobs.map((job) => (job.trace === undefined ? { ...job, trace } : job));
        return this.enqueue(traced, options);
      },
    );
  }

  private async enqueue(jobs: readonly FetchJob[], options: SubmitOptions): Promise<SubmitReport> {
    const report: SubmitReport = { enqueued: 0, duplicates: 0, keys: [] };
    this.connectionError = undefined;
    const seen = new Set<string>();
    const unique: FetchJob[] = [];
    for (const job of jobs) {
      if (seen.has(job.idempotencyKey)) report.duplicates++;
      else {
        seen.add(job.idempotencyKey);
        unique.push(job);
      }
    }
    const batchSize = options.batchSize ?? 500;
    try {
      for (let start = 0; start < unique.length; start += batchSize) {
        const batch = unique.slice(start, start + batchSize);
        const fresh = await this.withoutKnown(batch, options.force === true);
        report.duplicates += batch.length - fresh.length;
        if (fresh.length > 0) await this.queues.add(fresh);
        report.enqueued += fresh.length;
        report.keys.push(...fresh.map((job) => job.idempotencyKey));
        options.onProgress?.(jobs.length - unique.length + start + batch.length, jobs.length);
      }
    } catch (error) {
      throw new PartialSubmitError(report, jobs.length, error as Error, this.connectionError);
    }
    if (unique.length === 0) options.onProgress?.(jobs.length, jobs.length);
    // An enqueued job must not be lost to a failover: a replica holds it before the submit returns.
    if (report.enqueued > 0) {
      const { unconfirmed } = await awaitReplicas(this.redis, REPLICA_WAIT_MS);
      if (unconfirmed > 0) report.unreplicated = unconfirmed;
    }
    return report;
  }

  /**
   * Enqueues jobs again with fresh attempts (a DLQ replay): an old failed or finished job of the
   * same key is removed first, but the ledger is left alone, so a key that did succeed meanwhile
   * is not stored twice. Returns the keys enqueued; a key whose job is running is skipped.
   */
  async requeue(jobs: readonly FetchJob[], beforeAdd?: (keys: string[]) => Promise<void>): Promise<string[]> {
    const ready: FetchJob[] = [];
    for (const job of jobs) if (await this.clearFinishedJob(job.idempotencyKey)) ready.push(job);
    // Whatever must be recorded first (an audit event) happens before a worker can see the job.
    await beforeAdd?.(ready.map((job) => job.idempotencyKey));
    const replayedAt = new Date().toISOString();
    if (ready.length > 0) await this.queues.add(ready.map((job) => ({ ...job, replayedAt })));
    return ready.map((job) => job.idempotencyKey);
  }

  /** Removes the job of a key unless it is running; true when the key is free to enqueue. */
  private async clearFinishedJob(key: string): Promise<boolean> {
    const state = await this.queues.state(key);
    if (state === 'unknown') return true;
    if (state === 'active' || state === 'waiting' || state === 'delayed' || state === 'prioritized') return false;
    return (await this.queues.remove(key)) >= 1;
  }

  /** One round trip (one per master on a cluster): which keys of the batch are already finished or queued. */
  private async withoutKnown(batch: readonly FetchJob[], force: boolean): Promise<FetchJob[]> {
    const answers = await pipelineEach(
      this.redis,
      batch,
      (job) => this.keys.ledger(job.idempotencyKey),
      (pipeline, job) => {
        pipeline.exists(this.keys.ledger(job.idempotencyKey));
        this.queues.queueExists(pipeline, job.idempotencyKey);
      },
    );
    const fresh: FetchJob[] = [];
    for (const [index, job] of batch.entries()) {
      const finished = answers[index]?.[0]?.[1] === 1;
      const queued = Number(answers[index]?.[1]?.[1] ?? 0) > 0;
      if (!finished && !queued) fresh.push(job);
      else if (force && (await this.forget(job.idempotencyKey, queued))) fresh.push(job);
    }
    return fresh;
  }

  /** Clears a key so it can run again; false when its job is running right now. */
  private async forget(key: string, queued: boolean): Promise<boolean> {
    if (queued && (await this.queues.remove(key)) === 0) return false;
    await this.redis.del(this.keys.ledger(key));
    return true;
  }

  close(): Promise<void> {
    return this.queues.close();
  }
}
