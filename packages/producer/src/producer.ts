import { CRAWL_QUEUE, type CrawlfleetConfig, type FetchJob, type KeyLayout, type RedisClient } from '@crawlfleet/core';
import { injectTrace, inSpan, SpanKind } from '@crawlfleet/tracing';
import { Queue } from 'bullmq';
import { PartialSubmitError, type SubmitReport } from './errors.js';
import { type PrepareOptions, prepareJobs } from './prepare.js';
import type { TargetList } from './target-lines.js';
import type { SubmitTarget } from './targets.js';

/** The backoff type the worker's custom strategy answers to. */
export const BACKOFF_TYPE = 'crawlfleet';

export interface SubmitOptions {
  /** Enqueue even when the key is finished or known; an active job is still left alone. */
  force?: boolean | undefined;
  /** Jobs per Redis round trip; 500 by default. */
  batchSize?: number | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * A job as the crawl queue takes it: its idempotency key is its id (adding a key the queue holds
 * adds nothing), its attempts and retention as configured.
 */
export function queueEntry(job: FetchJob, config: CrawlfleetConfig) {
  const { jobs, retention } = config;
  return {
    name: job.url,
    data: job,
    opts: {
      jobId: job.idempotencyKey,
      attempts: jobs.retries + 1,
      backoff: { type: BACKOFF_TYPE },
      removeOnComplete: { count: retention.completedJobs },
      removeOnFail: { count: retention.failedJobs },
    },
  };
}

/**
 * Enqueues fetch jobs on `crawl`, keyed by idempotency key (the BullMQ job id). A key whose
 * result is in the ledger, or whose job is still known to the queue, is a duplicate and is not
 * enqueued again unless forced. Every target is validated before anything is enqueued.
 */
export class Producer {
  readonly queue: Queue<FetchJob>;

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
    this.queue = new Queue<FetchJob>(CRAWL_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    this.queue.on('error', (error) => {
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
        if (fresh.length > 0) await this.queue.addBulk(fresh.map((job) => this.bulkEntry(job)));
        report.enqueued += fresh.length;
        report.keys.push(...fresh.map((job) => job.idempotencyKey));
        options.onProgress?.(jobs.length - unique.length + start + batch.length, jobs.length);
      }
    } catch (error) {
      throw new PartialSubmitError(report, jobs.length, error as Error, this.connectionError);
    }
    if (unique.length === 0) options.onProgress?.(jobs.length, jobs.length);
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
    if (ready.length > 0) await this.queue.addBulk(ready.map((job) => this.bulkEntry({ ...job, replayedAt })));
    return ready.map((job) => job.idempotencyKey);
  }

  /** Removes the job of a key unless it is running; true when the key is free to enqueue. */
  private async clearFinishedJob(key: string): Promise<boolean> {
    const state = await this.queue.getJobState(key);
    if (state === 'unknown') return true;
    if (state === 'active' || state === 'waiting' || state === 'delayed' || state === 'prioritized') return false;
    return (await this.queue.remove(key)) === 1;
  }

  /** One round trip: which keys of the batch are already finished or queued. */
  private async withoutKnown(batch: readonly FetchJob[], force: boolean): Promise<FetchJob[]> {
    const pipeline = this.redis.pipeline();
    for (const job of batch) {
      pipeline.exists(this.keys.ledger(job.idempotencyKey));
      pipeline.exists(this.keys.crawlJob(job.idempotencyKey));
    }
    const answers = (await pipeline.exec()) ?? [];
    const fresh: FetchJob[] = [];
    for (const [index, job] of batch.entries()) {
      const finished = answers[index * 2]?.[1] === 1;
      const queued = answers[index * 2 + 1]?.[1] === 1;
      if (!finished && !queued) fresh.push(job);
      else if (force && (await this.forget(job.idempotencyKey, queued))) fresh.push(job);
    }
    return fresh;
  }

  /** Clears a key so it can run again; false when its job is running right now. */
  private async forget(key: string, queued: boolean): Promise<boolean> {
    if (queued && (await this.queue.remove(key)) === 0) return false;
    await this.redis.del(this.keys.ledger(key));
    return true;
  }

  private bulkEntry(job: FetchJob) {
    return queueEntry(job, this.config);
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
