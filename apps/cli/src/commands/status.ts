import { CRAWL_QUEUE, type RetentionConfig } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { ResultsStore } from '@crawlfleet/results';
import { Queue } from 'bullmq';
import type { Command } from 'commander';
import type { Redis } from 'ioredis';
import { type CommandContext, type GlobalOptions, openContext } from '../context.js';
import { printJson, table } from '../output.js';

/** The throughput window `status` reports on. */
const WINDOW_MS = 60_000;

export interface StatusCounts {
  waiting: number;
  active: number;
  delayed: number;
  /** Completed jobs BullMQ still keeps: at most `retention.completedJobs`. */
  completed: number;
  /** Failed jobs BullMQ still keeps: at most `retention.failedJobs`. */
  failed: number;
  dlq: number;
}

export interface Status {
  counts: StatusCounts;
  /** Results the stream keeps now (at most about `retention.resultsMaxLen`). */
  results: number;
  /** Results ever written, trimmed ones included; null on a Redis older than 7. */
  resultsWritten: number | null;
  retention: Pick<RetentionConfig, 'completedJobs' | 'failedJobs' | 'resultsMaxLen'>;
  /** Which figures have reached their retention limit, so count less than what happened. */
  capped: { completed: boolean; failed: boolean; results: boolean };
  lastMinute: {
    stored: number;
    storedPerSecond: number;
    deadLettered: number;
    /** True when `stored` was worked out from the pace of the newest results (a busy fleet). */
    estimated: boolean;
  };
}

/** Now by the Redis server's clock, which dates stream entries. */
async function redisNow(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/**
 * Job counts of the crawl queue, the DLQ size, the stored results, and what the last minute
 * stored and dead-lettered.
 */
export async function readStatus(context: CommandContext): Promise<Status> {
  const { retention } = context.config;
  const queue = new Queue(CRAWL_QUEUE, { connection: context.redis, prefix: context.keys.bullPrefix });
  const dlq = new DeadLetterQueue(context.redis, context.keys);
  const results = new ResultsStore(context.redis, context.keys, retention);
  try {
    const now = await redisNow(context.redis);
    const [counts, dlqCount, kept, written, recent, deadLettered] = await Promise.all([
      queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'),
      dlq.count(),
      results.count(),
      results.written(),
      results.countRecent(WINDOW_MS, { now }),
      // An entry is a failed job of crawl-dlq, scored by when it was filed (route-dead-letter.lua).
      context.redis.zcount(dlq.queue.toKey('failed'), now - WINDOW_MS, '+inf'),
    ]);
    const completed = counts.completed ?? 0;
    const failed = counts.failed ?? 0;
    return {
      counts: {
        waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        completed,
        failed,
        dlq: dlqCount,
      },
      results: kept,
      resultsWritten: written ?? null,
      retention: {
        completedJobs: retention.completedJobs,
        failedJobs: retention.failedJobs,
        resultsMaxLen: retention.resultsMaxLen,
      },
      capped: {
        completed: completed >= retention.completedJobs,
        failed: failed >= retention.failedJobs,
        results: kept >= retention.resultsMaxLen,
      },
      lastMinute: {
        stored: recent.count,
        storedPerSecond: recent.count / (WINDOW_MS / 1000),
        deadLettered,
        estimated: recent.estimated,
      },
    };
  } finally {
    await Promise.all([queue.close(), dlq.close()]);
  }
}

/** A rate for people: whole numbers from 10 up, two decimals below. */
function perSecond(rate: number): string {
  return `${rate >= 10 ? Math.round(rate) : Number(rate.toFixed(2))}/s`;
}

function printStatus(status: Status): void {
  const { counts, retention, capped, lastMinute } = status;
  const rows = [
    ['waiting', counts.waiting],
    ['active', counts.active],
    ['delayed', counts.delayed],
    [`completed (kept, at most ${retention.completedJobs})`, counts.completed],
    [`failed (kept, at most ${retention.failedJobs})`, counts.failed],
    ['dlq', counts.dlq],
    ['results stored', status.results],
  ].map(([label, count]) => [String(label), String(count)]);
  const lines = [table(['state', 'jobs'], rows)];
  const about = lastMinute.estimated ? 'about ' : '';
  lines.push(
    `last minute: ${about}${lastMinute.stored} stored (${perSecond(lastMinute.storedPerSecond)}), ${lastMinute.deadLettered} dead-lettered`,
  );
  lines.push(
    'completed and failed count the finished jobs BullMQ keeps (retention.completedJobs, retention.failedJobs); results stored and the DLQ are the record.',
  );
  if (capped.completed) {
    lines.push(
      `completed is capped: BullMQ keeps at most ${retention.completedJobs} completed jobs (retention.completedJobs).`,
    );
  }
  if (capped.failed) {
    lines.push(`failed is capped: BullMQ keeps at most ${retention.failedJobs} failed jobs (retention.failedJobs).`);
  }
  if (capped.results) {
    const written = status.resultsWritten === null ? '' : `; ${status.resultsWritten} were written in all`;
    lines.push(
      `the results stream keeps about the newest ${retention.resultsMaxLen} (retention.resultsMaxLen)${written}.`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show job counts of the crawl queue, the DLQ and stored results, and the last minute')
    .option(
      '--json',
      'print {"counts":{...},"results","resultsWritten","retention","capped","lastMinute":{"stored","storedPerSecond","deadLettered","estimated"}}',
    )
    .action(async (options: { json?: boolean }, command: Command) => {
      const context = await openContext(command.optsWithGlobals<GlobalOptions>());
      try {
        const status = await readStatus(context);
        if (options.json) printJson(status);
        else printStatus(status);
      } finally {
        await context.close();
      }
    });
}
