import type { RetentionConfig } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { addJobCounts, CrawlQueues } from '@crawlfleet/producer';
import { isFull, Outbox, ResultsStore, type SinkState, totalFill } from '@crawlfleet/results';
import type { Command } from 'commander';
import { type CommandContext, type GlobalOptions, openContext } from '../context.js';
import { plural, printJson, table } from '../output.js';

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
  /** The crawl queue (HTTP workers). */
  counts: StatusCounts;
  /** The render queue (`--render` jobs, browser workers). */
  render: { waiting: number; active: number; delayed: number; completed: number; failed: number };
  /** Results the outbox holds now: those some sink has not acknowledged (all of them with no sink). */
  results: number;
  /** Results ever written, those sinks took included; null on a Redis older than 7. */
  resultsWritten: number | null;
  retention: Pick<RetentionConfig, 'completedJobs' | 'failedJobs'>;
  /** Which figures have reached their retention limit, so count less than what happened. */
  capped: { completed: boolean; failed: boolean };
  outbox: OutboxStatus;
  /** Each shard (`queue.shards`): its hash tag, its crawl queue's jobs and its outbox's results. */
  shards: ShardStatus[];
  lastMinute: {
    stored: number;
    storedPerSecond: number;
    deadLettered: number;
    /** True when `stored` was worked out from the pace of the newest results (a busy fleet). */
    estimated: boolean;
  };
}

export interface ShardStatus {
  shard: number;
  tag: string;
  waiting: number;
  active: number;
  delayed: number;
  results: number;
}

export interface OutboxStatus {
  entries: number;
  bytes: number;
  /** `results.outboxMaxLen` and `results.outboxMaxBytes` of this config. */
  maxEntries: number;
  maxBytes: number;
  /** At or past a limit: workers take no new jobs until sinks catch up. */
  full: boolean;
  /** The registered sinks; with none, nothing leaves the outbox. */
  sinks: SinkState[];
}

/**
 * Job counts of the crawl queue, the DLQ size, the stored results, and what the last minute
 * stored and dead-lettered.
 */
export async function readStatus(context: CommandContext): Promise<Status> {
  const { retention } = context.config;
  const queues = new CrawlQueues(context.redis, context.keys, context.config);
  const dlq = new DeadLetterQueue(context.redis, context.keys);
  const results = new ResultsStore(context.redis, context.keys, retention);
  const outbox = new Outbox(context.redis, context.keys);
  const limits = context.config.results;
  try {
    const now = await results.serverNow();
    const states = ['waiting', 'prioritized', 'active', 'delayed', 'completed', 'failed'] as const;
    const [byShard, renderByShard, dlqCount, fills, sinks, written, recent, deadLettered] = await Promise.all([
      Promise.all(queues.shards.map((shard) => shard.crawl.getJobCounts(...states))),
      Promise.all(queues.shards.map((shard) => shard.render.getJobCounts(...states))),
      dlq.count(),
      outbox.fills(),
      outbox.sinks(),
      results.written(),
      results.countWritten(WINDOW_MS, { now }),
      // An entry is a failed job of crawl-dlq, scored by when it was filed (route-dead-letter.lua).
      context.redis.zcount(dlq.queue.toKey('failed'), now - WINDOW_MS, '+inf'),
    ]);
    const counts = addJobCounts(byShard);
    const rendering = addJobCounts(renderByShard);
    const fill = totalFill(fills);
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
      render: {
        waiting: (rendering.waiting ?? 0) + (rendering.prioritized ?? 0),
        active: rendering.active ?? 0,
        delayed: rendering.delayed ?? 0,
        completed: rendering.completed ?? 0,
        failed: rendering.failed ?? 0,
      },
      results: fill.entries,
      resultsWritten: written ?? null,
      retention: { completedJobs: retention.completedJobs, failedJobs: retention.failedJobs },
      capped: { completed: completed >= retention.completedJobs, failed: failed >= retention.failedJobs },
      outbox: {
        ...fill,
        maxEntries: limits.outboxMaxLen,
        maxBytes: limits.outboxMaxBytes,
        full: isFull(fill, limits),
        sinks,
      },
      shards: context.keys.shards.map((shard, i) => ({
        shard: shard.index,
        tag: shard.tag,
        waiting: (byShard[i]?.waiting ?? 0) + (byShard[i]?.prioritized ?? 0),
        active: byShard[i]?.active ?? 0,
        delayed: byShard[i]?.delayed ?? 0,
        results: fills[i]?.entries ?? 0,
      })),
      lastMinute: {
        stored: recent.count,
        storedPerSecond: recent.count / (WINDOW_MS / 1000),
        deadLettered,
        estimated: recent.estimated,
      },
    };
  } finally {
    await Promise.all([queues.close(), dlq.close()]);
  }
}

/** Bytes for people: 1.5 MiB, 512 KiB, 300 B. */
function size(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${Number((bytes / (1024 * 1024)).toFixed(1))} MiB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KiB`;
  return `${bytes} B`;
}

/** The outbox: how full, who reads it, and what to do when it holds the fleet back. */
function outboxLines(outbox: OutboxStatus): string[] {
  const lines = [
    `outbox: ${outbox.entries} of ${outbox.maxEntries} results, ${size(outbox.bytes)} of ${size(outbox.maxBytes)} (results.outboxMaxLen, results.outboxMaxBytes)`,
  ];
  if (outbox.sinks.length === 0) {
    lines.push(
      'sinks: none registered; results stay in the outbox until one reads them (crawlfleet sink run --to URI)',
    );
  } else {
    for (const sink of outbox.sinks)
      lines.push(
        `sink ${sink.name}: ${sink.lag ?? '?'} unread, ${sink.pending} pending acknowledgement, ${plural(sink.consumers, 'consumer')}`,
      );
  }
  if (outbox.full)
    lines.push(
      'the outbox is full: workers take no new jobs until sinks catch up (nothing is dropped); run or scale crawlfleet sink run',
    );
  return lines;
}

/** A rate for people: whole numbers from 10 up, two decimals below. */
function perSecond(rate: number): string {
  return `${rate >= 10 ? Math.round(rate) : Number(rate.toFixed(2))}/s`;
}

function printStatus(status: Status): void {
  const { counts, retention, capped, lastMinute, outbox } = status;
  const rows = [
    ['waiting', counts.waiting],
    ['active', counts.active],
    ['delayed', counts.delayed],
    [`completed (kept, at most ${retention.completedJobs})`, counts.completed],
    [`failed (kept, at most ${retention.failedJobs})`, counts.failed],
    ['dlq', counts.dlq],
    ['results in the outbox', status.results],
  ].map(([label, count]) => [String(label), String(count)]);
  const lines = [table(['state', 'jobs'], rows)];
  const { render } = status;
  if (render.waiting + render.active + render.delayed + render.completed + render.failed > 0)
    lines.push(
      `render queue (browser workers, crawlfleet worker --browsers N): ${render.waiting} waiting, ${render.active} active, ${render.delayed} delayed, ${render.completed} completed, ${render.failed} failed`,
    );
  const about = lastMinute.estimated ? 'about ' : '';
  lines.push(
    `last minute: ${about}${lastMinute.stored} stored (${perSecond(lastMinute.storedPerSecond)}), ${lastMinute.deadLettered} dead-lettered`,
  );
  lines.push(
    'completed and failed count the finished jobs BullMQ keeps (retention.completedJobs, retention.failedJobs); results and the DLQ are the record.',
  );
  lines.push(...outboxLines(outbox));
  if (status.shards.length > 1)
    for (const shard of status.shards)
      lines.push(
        `shard ${shard.shard} ${shard.tag}: ${shard.waiting} waiting, ${shard.active} active, ${shard.delayed} delayed, ${shard.results} results in its outbox`,
      );
  if (capped.completed) {
    lines.push(
      `completed is capped: BullMQ keeps at most ${retention.completedJobs} completed jobs (retention.completedJobs).`,
    );
  }
  if (capped.failed) {
    lines.push(`failed is capped: BullMQ keeps at most ${retention.failedJobs} failed jobs (retention.failedJobs).`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show job counts of the crawl queue, the DLQ, the results outbox and its sinks, and the last minute')
    .option(
      '--json',
      'print {"counts":{...},"render":{...},"results","resultsWritten","retention","capped","outbox":{"entries","bytes","maxEntries","maxBytes","full","sinks":[...]},"shards":[{"shard","tag","waiting","active","delayed","results"}],"lastMinute":{...}}',
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
