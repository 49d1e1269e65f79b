import {
  CRAWL_QUEUE,
  type CrawlfleetConfig,
  type FetchJob,
  type KeyLayout,
  queueOf,
  RENDER_QUEUE,
  type RedisClient,
} from '@crawlfleet/core';
import { type JobState, Queue } from 'bullmq';

/** The backoff type the worker's custom strategy answers to. */
export const BACKOFF_TYPE = 'crawlfleet';

/**
 * A job as the crawl queues take it: its idempotency key is its id (adding a key the queue holds
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
 * The two queues fetch jobs go to: `crawl` (HTTP workers) and `crawl-render` (browser workers,
 * for jobs marked `render`). A key is one job whichever queue holds it: adding routes each job by
 * `queueOf`, and a key's state, existence and removal look at both.
 */
export class CrawlQueues {
  readonly crawl: Queue<FetchJob>;
  readonly render: Queue<FetchJob>;

  constructor(
    redis: RedisClient,
    private readonly keys: KeyLayout,
    private readonly config: CrawlfleetConfig,
  ) {
    this.crawl = new Queue<FetchJob>(CRAWL_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    this.render = new Queue<FetchJob>(RENDER_QUEUE, { connection: redis, prefix: keys.bullPrefix });
  }

  /** Both queues, to listen to (errors) or count. */
  get all(): readonly Queue<FetchJob>[] {
    return [this.crawl, this.render];
  }

  /** Adds jobs, each to its queue: one round trip per queue that gets any. */
  async add(jobs: readonly FetchJob[]): Promise<void> {
    const http = jobs.filter((job) => queueOf(job) === CRAWL_QUEUE);
    const render = jobs.filter((job) => queueOf(job) === RENDER_QUEUE);
    await Promise.all([
      http.length === 0 ? undefined : this.crawl.addBulk(http.map((job) => queueEntry(job, this.config))),
      render.length === 0 ? undefined : this.render.addBulk(render.map((job) => queueEntry(job, this.config))),
    ]);
  }

  /** A key's job state in whichever queue holds it; `unknown` when neither does. */
  async state(key: string): Promise<JobState | 'unknown'> {
    const state = await this.crawl.getJobState(key);
    return state === 'unknown' ? this.render.getJobState(key) : state;
  }

  /**
   * Removes a key's job from whichever queue holds it (one that is running stays); how many went.
   * A queue that does not hold the key is not asked: BullMQ answers "removed" for a job it never had.
   */
  async remove(key: string): Promise<number> {
    let removed = 0;
    for (const queue of this.all) if ((await queue.getJobState(key)) !== 'unknown') removed += await queue.remove(key);
    return removed;
  }

  /** Queues `exists` of a key's job hashes (crawl, then render) on a pipeline. */
  queueExists(pipeline: ReturnType<RedisClient['pipeline']>, key: string): void {
    pipeline.exists(this.keys.crawlJob(key), this.keys.renderJob(key));
  }

  close(): Promise<void> {
    return Promise.all(this.all.map((queue) => queue.close())).then(() => undefined);
  }
}
