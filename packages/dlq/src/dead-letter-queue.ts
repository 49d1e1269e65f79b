import { readFileSync } from 'node:fs';
import { awaitReplicas, DLQ_QUEUE, dlqJobId, type KeyLayout, type RedisClient } from '@crawlfleet/core';
import type { FailureClass } from '@crawlfleet/failures';
import { Queue } from 'bullmq';
import { type DeadLetter, type DeadLetterSummary, summarize } from './dead-letter.js';

const ROUTE = readFileSync(new URL('../lua/route-dead-letter.lua', import.meta.url), 'utf8');
const REMOVE_IF_UNCHANGED = readFileSync(new URL('../lua/remove-if-unchanged.lua', import.meta.url), 'utf8');

/**
 * Entries are failed jobs. The waiting states are still read so that entries filed by an older
 * crawlfleet (which left them waiting) stay listed and replayable.
 */
const ENTRY_STATES = ['failed', 'waiting', 'prioritized', 'delayed'] as const;
/** How long filing a dead letter waits for a replica of the DLQ's master to hold it. */
const DLQ_REPLICA_WAIT_MS = 1_000;

type WithDeadLetters = RedisClient & {
  cfRouteDeadLetter(...keysThenArgs: Array<string | number>): Promise<number>;
  cfRemoveDeadLetterIfUnchanged(...keysThenArgs: string[]): Promise<number>;
};

type PipelineWithDeadLetters = ReturnType<RedisClient['pipeline']> & {
  cfRemoveDeadLetterIfUnchanged(...keysThenArgs: string[]): unknown;
};

export interface ListOptions {
  failureClass?: FailureClass | undefined;
  /** Only the pages of this named crawl. */
  crawl?: string | undefined;
  /** At most this many entries, newest first. */
  limit?: number | undefined;
}

/**
 * The `crawl-dlq` queue. Entries are failed jobs that no worker consumes: they stay there,
 * visible in Bull Board, until a person replays or purges them (the board's Retry is a replay).
 * An entry's job id is the original job's id (see `dlqJobId`), so routing the same failure twice
 * (a worker that died after routing, then retried) keeps one.
 */
export class DeadLetterQueue {
  readonly queue: Queue<DeadLetter>;
  private readonly redis: WithDeadLetters;

  constructor(connection: RedisClient, keys: KeyLayout) {
    this.queue = new Queue<DeadLetter>(DLQ_QUEUE, { connection, prefix: keys.bullPrefix });
    if (!('cfRouteDeadLetter' in connection))
      connection.defineCommand('cfRouteDeadLetter', { numberOfKeys: 8, lua: ROUTE });
    if (!('cfRemoveDeadLetterIfUnchanged' in connection))
      connection.defineCommand('cfRemoveDeadLetterIfUnchanged', { numberOfKeys: 8, lua: REMOVE_IF_UNCHANGED });
    this.redis = connection as WithDeadLetters;
  }

  /** The keys both scripts take, in their order: the entry, then the queue's state sets. */
  private entryKeys(id: string): string[] {
    const key = this.queue.toKey.bind(this.queue);
    return [
      key(id),
      key(`${id}:logs`),
      key('failed'),
      key('wait'),
      key('delayed'),
      key('prioritized'),
      key('completed'),
      key('events'),
    ];
  }

  /**
   * Files the entry as a failed job, replacing an earlier one of the same job (a worker that died
   * after routing, or a key submitted again with --force that failed again): the newest failure
   * and history win. One script, so no reader ever sees the entry missing in between.
   */
  async route(letter: DeadLetter): Promise<void> {
    const id = dlqJobId(letter.id);
    // The job name is what Bull Board lists: class, reason and URL at a glance.
    const name = `${letter.class}/${letter.reason} ${letter.url ?? '(invalid payload)'}`;
    const keys = this.entryKeys(id);
    await this.redis.cfRouteDeadLetter(
      ...keys,
      id,
      name,
      JSON.stringify(letter),
      `${letter.class}/${letter.reason}: ${letter.message}`,
      letter.attempts,
      Date.now(),
    );
    // A dead letter is the record of a failed page: it reaches a replica before the job is marked
    // failed, so a failover of the DLQ's master cannot take it along.
    await awaitReplicas(this.redis, DLQ_REPLICA_WAIT_MS, keys[0]);
  }

  /** Removes entries by original job id; returns how many were removed. */
  async remove(ids: readonly string[]): Promise<number> {
    let removed = 0;
    for (const id of ids) removed += await this.queue.remove(dlqJobId(id));
    return removed;
  }

  /**
   * Removes entries only if they are still the letters given (same `failedAt`): after a replay,
   * a job that already failed again has a new entry, which must stay. Each check and removal is
   * one script; all of them go in one round trip. Returns the ids removed.
   */
  async removeIfUnchanged(letters: readonly DeadLetter[]): Promise<string[]> {
    if (letters.length === 0) return [];
    const pipeline = this.redis.pipeline() as PipelineWithDeadLetters;
    for (const letter of letters) {
      const id = dlqJobId(letter.id);
      pipeline.cfRemoveDeadLetterIfUnchanged(...this.entryKeys(id), id, letter.failedAt);
    }
    const answers = (await pipeline.exec()) ?? [];
    return letters.flatMap((letter, i) => {
      const [error, removed] = answers[i] ?? [];
      if (error) throw error;
      return removed === 1 ? [letter.id] : [];
    });
  }

  /** Every entry, whole, newest first, optionally of one class and failed before a moment. */
  async *entries(
    filter: { failureClass?: FailureClass | undefined; failedBefore?: number | undefined } = {},
  ): AsyncGenerator<DeadLetter> {
    const pageSize = 500;
    // Removing while paging would shift the pages: collect ids first, read each whole after.
    const ids: string[] = [];
    for (let start = 0; ; start += pageSize) {
      const jobs = await this.queue.getJobs([...ENTRY_STATES], start, start + pageSize - 1);
      for (const job of jobs) {
        const letter = job?.data;
        if (letter === undefined) continue;
        if (filter.failureClass !== undefined && letter.class !== filter.failureClass) continue;
        if (filter.failedBefore !== undefined && Date.parse(letter.failedAt) >= filter.failedBefore) continue;
        ids.push(letter.id);
      }
      if (jobs.length < pageSize) break;
    }
    for (const id of ids) {
      const letter = await this.show(id);
      if (letter !== undefined) yield letter;
    }
  }

  async count(): Promise<number> {
    return this.queue.getJobCountByTypes(...ENTRY_STATES);
  }

  /** The entry of the original job `id` (as `dlq list` shows it). */
  async show(id: string): Promise<DeadLetter | undefined> {
    const job = await this.queue.getJob(dlqJobId(id));
    return job?.data;
  }

  async list(options: ListOptions = {}): Promise<DeadLetterSummary[]> {
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const found: DeadLetterSummary[] = [];
    const pageSize = 500;
    for (let start = 0; found.length < limit; start += pageSize) {
      const jobs = await this.queue.getJobs([...ENTRY_STATES], start, start + pageSize - 1);
      for (const job of jobs) {
        if (job === undefined || job.data === undefined) continue;
        if (options.failureClass !== undefined && job.data.class !== options.failureClass) continue;
        const summary = summarize(job.data);
        if (options.crawl !== undefined && summary.crawl !== options.crawl) continue;
        found.push(summary);
        if (found.length >= limit) break;
      }
      if (jobs.length < pageSize) break;
    }
    return found;
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
