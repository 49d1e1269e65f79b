import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { AuditLog } from '@crawlfleet/audit';
import type { CrawlfleetConfig, KeyLayout, RedisClient } from '@crawlfleet/core';
import { type DeadLetter, DeadLetterQueue, replayDeadLetters } from '@crawlfleet/dlq';
import { type CrawlQueues, Producer } from '@crawlfleet/producer';
import type { Job, Queue } from 'bullmq';

type AdapterOptions = ConstructorParameters<typeof BullMQAdapter>[1];

/** An error Bull Board shows as it is, with this HTTP status. */
class RetryRefused extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

/**
 * Replays dead letters for the board, through the same code as `crawlfleet dlq replay`: fresh
 * attempts on `crawl`, an audit event first, the entry removed once its job is enqueued.
 */
export class BoardReplay {
  readonly dlq: DeadLetterQueue;
  private readonly producer: Producer;
  private readonly audit: AuditLog;

  constructor(connection: RedisClient, keys: KeyLayout, config: CrawlfleetConfig) {
    this.dlq = new DeadLetterQueue(connection, keys);
    this.producer = new Producer(connection, keys, config);
    this.audit = new AuditLog(connection, keys, config.retention.auditMaxLen);
  }

  /** The crawl and render queues of every shard, which replays go back to: the ones the board shows. */
  get queues(): CrawlQueues {
    return this.producer.queues;
  }

  /** Replays one entry; refuses (409) one that cannot go back on `crawl` now, saying why. */
  async replay(letter: DeadLetter): Promise<void> {
    const report = await replayDeadLetters(this.dlq, this.producer, [letter], {
      beforeEnqueue: (ids) => this.audit.appendAll(ids.map((id) => ({ kind: 'replay', jobId: id, reason: 'board' }))),
    });
    const [skipped] = report.skipped;
    if (skipped !== undefined)
      throw new RetryRefused(`dead letter ${skipped.id} was not replayed: ${skipped.reason}`, 409);
  }

  /** Records dead letters a person deleted from the board, as `crawlfleet dlq purge` does. */
  async purged(action: string, ids: readonly string[] | undefined, count: number): Promise<void> {
    await this.audit.append({
      kind: 'purge',
      reason: `board:${action}`,
      ...(ids?.length === 1 ? { jobId: ids[0] } : {}),
      detail: { purged: count, ...(ids !== undefined && ids.length > 1 ? { ids: ids.slice(0, 100) } : {}) },
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.dlq.close(), this.producer.close()]);
  }
}

/** Says, after a board action deleted jobs, which (when known) and how many. */
type Purged = (action: string, ids: readonly string[] | undefined, count: number) => Promise<void>;

/**
 * A Bull Board adapter whose Retry (one job, or "retry all") replays instead of retrying inside
 * BullMQ. `replayOf` says how a job is replayed; undefined leaves BullMQ's own retry.
 */
export class ReplayingAdapter extends BullMQAdapter {
  constructor(
    private readonly bullQueue: Queue,
    options: AdapterOptions,
    private readonly replayOf: (job: Job) => Promise<(() => Promise<void>) | undefined>,
    /** Told of every deletion through the board (Remove, Clean all, Empty, Obliterate); none for `crawl`. */
    private readonly purged?: Purged,
  ) {
    super(bullQueue, options);
  }

  override async clean(...args: Parameters<BullMQAdapter['clean']>): Promise<void> {
    const [status, graceTimeMs] = args;
    if (this.purged === undefined) return super.clean(...args);
    // As Bull Board cleans, but keeping the ids BullMQ returns, for the audit trail.
    const ids = await this.bullQueue.clean(graceTimeMs, Number.MAX_SAFE_INTEGER, status);
    await this.purged(`clean ${status}`, ids, ids.length);
  }

  override async empty(): Promise<void> {
    if (this.purged === undefined) return super.empty();
    // Empty drains the jobs still to run (entries filed by an older crawlfleet), not failed ones.
    const before = await this.count('waiting', 'prioritized');
    await super.empty();
    await this.purged('empty', undefined, Math.max(0, before - (await this.count('waiting', 'prioritized'))));
  }

  override async obliterate(...args: Parameters<BullMQAdapter['obliterate']>): Promise<void> {
    if (this.purged === undefined) return super.obliterate(...args);
    const before = await this.count();
    await super.obliterate(...args);
    await this.purged('obliterate', undefined, before);
  }

  /** Jobs in these states (every state when none is named). */
  private async count(...states: Parameters<Queue['getJobCounts']>): Promise<number> {
    const counts = await this.bullQueue.getJobCounts(...states);
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  }

  override async getJob(id: string): Promise<Job | undefined> {
    const job = await super.getJob(id);
    return job === undefined || job === null ? undefined : this.replaying(job);
  }

  override async getJobs(...args: Parameters<BullMQAdapter['getJobs']>): Promise<Job[]> {
    return (await super.getJobs(...args)).map((job) => this.replaying(job));
  }

  private replaying(job: Job): Job {
    const retry = job.retry.bind(job);
    job.retry = async (state) => {
      const replay = await this.replayOf(job);
      if (replay === undefined) return retry(state);
      await replay();
    };
    const purged = this.purged;
    if (purged !== undefined) {
      const remove = job.remove.bind(job);
      job.remove = async (options) => {
        await remove(options);
        await purged('remove', [String(job.id)], 1);
      };
    }
    return job;
  }
}

/**
 * The adapter for `crawl-dlq`: Retry on an entry replays it; deleting entries (Remove, Clean all,
 * Empty, Obliterate) leaves a `purge` audit event, as `crawlfleet dlq purge` does.
 */
export function deadLetterAdapter(replay: BoardReplay, options: AdapterOptions): ReplayingAdapter {
  return new ReplayingAdapter(
    replay.dlq.queue,
    options,
    async (job) => {
      const letter = job.data as DeadLetter | undefined;
      if (letter === undefined) throw new RetryRefused(`dead letter ${job.id} has no data`, 409);
      return () => replay.replay(letter);
    },
    (action, ids, count) => replay.purged(action, ids, count),
  );
}

/**
 * The adapter for `crawl`: Retry on a failed job that has a dead letter replays that letter, so
 * the entry does not linger in the DLQ after its job ran again. Other jobs retry as BullMQ does.
 */
export function crawlAdapter(queue: Queue, replay: BoardReplay, options: AdapterOptions): ReplayingAdapter {
  return new ReplayingAdapter(queue, options, async (job) => {
    const letter = job.id === undefined ? undefined : await replay.dlq.show(job.id);
    return letter === undefined ? undefined : () => replay.replay(letter);
  });
}
