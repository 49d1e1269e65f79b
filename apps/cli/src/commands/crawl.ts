import { CRAWL_QUEUE, DEFAULT_PREFIX } from '@crawlfleet/core';
import { DEFAULT_CONCURRENCY, openWorker } from '@crawlfleet/crawler';
import { DeadLetterQueue, type DeadLetterSummary, summarize } from '@crawlfleet/dlq';
import { ensureRedis } from '@crawlfleet/local-redis';
import { createLogger } from '@crawlfleet/log';
import { type KeyRing, localKeyRing } from '@crawlfleet/slates';
import { Queue } from 'bullmq';
import type { Command } from 'commander';
import { type CommandContext, connect, type GlobalOptions, loadSettings } from '../context.js';
import { positiveInt } from '../options.js';
import { ProgressLine, plural, printJson, say } from '../output.js';
import { exportResults } from './results.js';
import { enqueueJobs, prepareTargets, type TargetOptions, withTargetOptions } from './submit.js';

interface CrawlOptions extends TargetOptions {
  concurrency: number;
  out?: string;
  json?: boolean;
}

interface Tally {
  stored: number;
  deadLettered: number;
  retries: number;
}

/** Which of `keys` ended with a result and which in the DLQ, read from Redis (whoever ran them). */
async function settle(
  context: CommandContext,
  keys: readonly string[],
): Promise<{ stored: number; deadLettered: string[] }> {
  const pipeline = context.redis.pipeline();
  for (const key of keys) {
    pipeline.exists(context.keys.ledger(key));
    pipeline.exists(context.keys.dlqJob(key));
  }
  const answers = (await pipeline.exec()) ?? [];
  let stored = 0;
  const deadLettered: string[] = [];
  keys.forEach((key, i) => {
    if (answers[i * 2]?.[1] === 1) stored++;
    else if (answers[i * 2 + 1]?.[1] === 1) deadLettered.push(key);
  });
  return { stored, deadLettered };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
}

export function registerCrawl(program: Command): void {
  withTargetOptions(program.command('crawl'))
    .description('the one-machine quick path: submit, run workers in this process until the crawl drains, summarize')
    .option('-c, --concurrency <n>', 'jobs fetched at once', positiveInt, DEFAULT_CONCURRENCY)
    .option('-o, --out <file>', "write this crawl's results as JSON lines to a file")
    .option('--json', 'print the summary as JSON')
    .addHelpText(
      'after',
      `
Uses REDIS_URL when set, else the Redis on 127.0.0.1:6379, else starts a private redis-server for
the run (its results are then written to ./crawlfleet-results-<time>.jsonl unless --out is given).
  $ crawlfleet crawl https://example.com/ https://example.com/about
  $ crawlfleet crawl --file urls.txt --concurrency 32 --out results.jsonl`,
    )
    .action(async (urls: string[], options: CrawlOptions, command: Command) => {
      const started = Date.now();
      const settings = loadSettings(command.optsWithGlobals<GlobalOptions>());
      const jobs = await prepareTargets(settings, urls, options);
      const keys = localKeyRing();
      if (keys.created)
        say(
          `created a local session key in ${keys.file} (CRAWLFLEET_KEYS is unset); workers on other machines need CRAWLFLEET_KEYS`,
        );
      const local = await ensureRedis({ url: settings.env.redisUrl, fromEnv: settings.env.redisUrlFromEnv });
      if (local.server !== undefined) {
        say(
          `started a private redis-server on 127.0.0.1:${local.server.port} for this run (REDIS_URL is unset and nothing answers on 127.0.0.1:6379); it stops when the crawl ends`,
        );
      }
      const out = options.out ?? (local.server !== undefined ? `crawlfleet-results-${timestamp()}.jsonl` : undefined);
      const sessionRedisUrl = settings.env.sessionRedisUrlFromEnv ? settings.env.sessionRedisUrl : local.url;
      try {
        const context = await connect(settings, local.url);
        try {
          const report = await enqueueJobs(context, jobs, options.force);
          const tally: Tally = { stored: 0, deadLettered: 0, retries: 0 };
          if (report.enqueued > 0) {
            await runUntilDrained(
              context,
              { redisUrl: local.url, sessionRedisUrl, ring: keys.ring },
              report.keys,
              options.concurrency,
              tally,
            );
          }
          const settled = await settle(context, report.keys);
          const letters = await deadLetterSummaries(context, settled.deadLettered.slice(0, 10));
          const exported = out !== undefined ? await exportResults(context, out, new Set(report.keys)) : undefined;
          const seconds = (Date.now() - started) / 1000;
          const summary = {
            enqueued: report.enqueued,
            duplicates: report.duplicates,
            fetched: settled.stored,
            dlq: settled.deadLettered.length,
            retries: tally.retries,
            seconds: Number(seconds.toFixed(2)),
            ...(out !== undefined ? { out } : {}),
          };
          if (options.json) printJson(summary);
          else printSummary(summary, letters, exported, local.server !== undefined, settings.env.prefix);
        } finally {
          await context.close();
        }
      } finally {
        await local.server?.stop();
      }
    });
}

async function deadLetterSummaries(context: CommandContext, ids: string[]): Promise<DeadLetterSummary[]> {
  if (ids.length === 0) return [];
  const dlq = new DeadLetterQueue(context.redis, context.keys);
  try {
    const letters = await Promise.all(ids.map((id) => dlq.show(id)));
    return letters.flatMap((letter) => (letter === undefined ? [] : [summarize(letter)]));
  } finally {
    await dlq.close();
  }
}

function printSummary(
  summary: {
    enqueued: number;
    duplicates: number;
    fetched: number;
    dlq: number;
    retries: number;
    seconds: number;
    out?: string;
  },
  letters: DeadLetterSummary[],
  exported: number | undefined,
  ephemeral: boolean,
  prefix: string,
): void {
  const env = prefix === DEFAULT_PREFIX ? '' : `CRAWLFLEET_PREFIX=${prefix} `;
  const lines = [
    `crawled ${plural(summary.enqueued, 'URL')} in ${summary.seconds} s: ${summary.fetched} fetched, ${summary.dlq} to the DLQ, ${plural(summary.retries, 'retry')}, ${plural(summary.duplicates, 'duplicate')} skipped`,
  ];
  for (const letter of letters) lines.push(`  DLQ ${letter.reason.padEnd(14)} ${letter.url ?? letter.id}`);
  if (summary.dlq > letters.length) lines.push(`  ... and ${summary.dlq - letters.length} more`);
  if (summary.out !== undefined) lines.push(`results: ${summary.out} (${plural(exported ?? 0, 'line')})`);
  else lines.push(`results: ${env}crawlfleet results export --out results.jsonl`);
  if (summary.dlq > 0 && !ephemeral) lines.push(`dead letters: ${env}crawlfleet dlq list`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Runs a worker in this process until every enqueued key has an outcome, or the queue has
 * nothing left to run (other workers of the fleet may take some of the jobs).
 */
async function runUntilDrained(
  context: CommandContext,
  connections: { redisUrl: string; sessionRedisUrl: string; ring: KeyRing },
  keys: string[],
  concurrency: number,
  tally: Tally,
): Promise<void> {
  const pending = new Set(keys);
  const logger = createLogger({ name: 'crawl', level: process.env.CRAWLFLEET_LOG_LEVEL ?? 'silent' });
  const opened = await openWorker({ ...connections, keys: context.keys, config: context.config, concurrency, logger });
  if (!opened.sessionStoreReady) say('session Redis unreachable: jobs run on ephemeral sessions until it answers');
  opened.worker.onJob((event) => {
    const id = String(event.job?.id);
    if (!pending.has(id)) return;
    if (event.kind === 'retrying') tally.retries++;
    else {
      pending.delete(id);
      if (event.kind === 'dead_lettered') tally.deadLettered++;
      else if (event.kind !== 'failed') tally.stored++;
    }
  });
  const queue = new Queue(CRAWL_QUEUE, { connection: context.redis, prefix: context.keys.bullPrefix });
  const progress = new ProgressLine();
  try {
    for (;;) {
      const done = keys.length - pending.size;
      progress.update(
        `crawling: ${done}/${keys.length} done (${tally.stored} fetched, ${tally.deadLettered} to the DLQ, ${plural(tally.retries, 'retry')})`,
      );
      if (pending.size === 0) break;
      const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed');
      if (Object.values(counts).every((n) => n === 0)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    progress.done();
    await opened.close(30_000);
    await queue.close();
  }
}
