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

/** Job counts of several queues (one per shard), added up by state. */
export function addJobCounts(counts: ReadonlyArray<Record<string, number>>): Record<string, number> {
  const total: Record<string, number> = {};
  for (const shard of counts)
    for (const [state, count] of Object.entries(shard)) total[state] = (total[state] ?? 0) + count;
  return total;
}

/** One shard's two queues. */
export interface ShardQueues {
  readonly crawl: Queue<FetchJob>;
  readonly render: Queue<FetchJob>;
}

/**
 * The queues fetch jobs go to: `crawl` (HTTP workers) and `crawl-render` (browser workers, for
 * jobs marked `render`), one of each per shard (`queue.shards`). A key is one job whichever queue
 * holds it: adding routes each job to its key's shard and to the queue `queueOf` names, and a
 * key's state, existence and removal look at both queues of its shard.
 */
export class CrawlQueues {
  readonly shards: readonly ShardQueues[];

  constructor(
    redis: RedisClient,
    private readonly keys: KeyLayout,
    private readonly config: CrawlfleetConfig,
  ) {
    this.shards = keys.shards.map((shard) => ({
      crawl: new Queue<FetchJob>(CRAWL_QUEUE, { connection: redis, prefix: shard.bullPrefix }),
      render: new Queue<FetchJob>(RENDER_QUEUE, { connection: redis, prefix: shard.bullPrefix }),
    }));
  }

  /** Every queue, to listen to (errors) or count. */
  get all(): readonly Queue<FetchJob>[] {
    return this.shards.flatMap((shard) => [shard.crawl, shard.render]);
  }

  /** The `crawl` queue of every shard, or the `crawl-render` one. */
  each(name: typeof CRAWL_QUEUE | typeof RENDER_QUEUE): readonly Queue<FetchJob>[] {
    return this.shards.map((shard) => (name === CRAWL_QUEUE ? shard.crawl : shard.render));
  }

  /** The two queues of a key's shard. */
  of(key: string): ShardQueues {
    return this.shards[this.keys.shardOf(key).index] as ShardQueues;
  }

  /** Adds jobs, each to its shard's queue: one round trip per queue that gets any. */
  async add(jobs: readonly FetchJob[]): Promise<void> {
    const byQueue = new Map<Queue<FetchJob>, FetchJob[]>();
    for (const job of jobs) {
      const shard = this.of(job.idempotencyKey);
      const queue = queueOf(job) === CRAWL_QUEUE ? shard.crawl : shard.render;
      const list = byQueue.get(queue);
      if (list === undefined) byQueue.set(queue, [job]);
      else list.push(job);
    }
    await Promise.all(
      [...byQueue].map(([queue, list]) => queue.addBulk(list.map((job) => queueEntry(job, this.config)))),
    );
  }

  /** A key's job state in whichever queue of its shard holds it; `unknown` when neither does. */
  async state(key: string): Promise<JobState | 'unknown'> {
    const { crawl, render } = this.of(key);
    const state = await crawl.getJobState(key);
    return state === 'unknown' ? render.getJobState(key) : state;
  }

  /**
   * Removes a key's job from whichever queue holds it (one that is running stays); how many went.
   * A queue that does not hold the key is not asked: BullMQ answers "removed" for a job it never had.
   */
  async remove(key: string): Promise<number> {
    let removed = 0;
    const { crawl, render } = this.of(key);
    for (const queue of [crawl, render])
      if ((await queue.getJobState(key)) !== 'unknown') removed += await queue.remove(key);
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
