import { constants } from 'node:os';
import { DEFAULT_PREFIX, type FetchJob, pipelineEach } from '@crawlfleet/core';
import { DEFAULT_CONCURRENCY, type JobEvent, openWorker } from '@crawlfleet/crawler';
import { CrawlStore, pendingOf } from '@crawlfleet/crawls';
import { DeadLetterQueue, type DeadLetterSummary, summarize } from '@crawlfleet/dlq';
import { ensureRedis } from '@crawlfleet/local-redis';
import { createLogger } from '@crawlfleet/log';
import { CrawlQueues, type SubmitReport } from '@crawlfleet/producer';
import { type KeyRing, localKeyRing } from '@crawlfleet/slates';
import type { Job, JobState } from 'bullmq';
import type { Command } from 'commander';
import { type CommandContext, connect, type GlobalOptions, loadSettings } from '../context.js';
import {
  type HandlerOptions,
  handlerOf,
  type CrawlOptions as ScopeOptions,
  withCrawlOptions,
  withHandlerOptions,
} from '../crawl-options.js';
import { positiveInt } from '../options.js';
import { ProgressLine, plural, printJson, say } from '../output.js';
import { CrawlOut } from './crawl-out.js';
import { enqueueJobs, prepareSeeds, startCrawl, type TargetOptions, withTargetOptions } from './submit.js';

interface CrawlOptions extends TargetOptions, ScopeOptions, HandlerOptions {
  concurrency: number;
  browsers: number;
  out?: string;
  json?: boolean;
}

/** How long a drain waits for running jobs before it stops anyway (as a worker's default). */
const DRAIN_GRACE_MS = 30_000;
/** How long a second Ctrl-C spends handing running jobs back before it exits. */
const HAND_BACK_MS = 1_000;
/** Keys per Redis pipeline when the crawl reads the state of its own keys. */
const KEYS_PER_ROUND_TRIP = 1_000;

/** Queue states of a job that will still run: an earlier run's job in them is resumed. */
const LIVE_STATES: ReadonlySet<JobState | 'unknown'> = new Set([
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'waiting-children',
]);

/**
 * The crawl's own URLs, by idempotency key: what the same command finds again when run again,
 * so a re-run resumes what an interrupted run left queued and writes every result of the crawl.
 */
interface CrawlPlan {
  /** Every distinct key of the crawl's targets, in input order: whose results go to `--out`. */
  keys: string[];
  /** Keys this run enqueued. */
  enqueued: string[];
  /** Keys still queued (waiting, delayed or running) from an earlier run: waited for, not skipped. */
  resumed: string[];
  /** Targets not run again: finished earlier (a result or a dead letter), or repeated in the input. */
  duplicates: number;
}

interface Tally {
  retries: number;
}

/** A crawl that follows links: its name, and what its store says when the run ends. */
interface Following {
  name: string;
  store: CrawlStore;
}

interface CrawlSummary {
  enqueued: number;
  resumed: number;
  duplicates: number;
  fetched: number;
  dlq: number;
  retries: number;
  /** Keys of this run with no outcome yet: left queued by an interruption. */
  left: number;
  seconds: number;
  interrupted?: boolean;
  out?: string;
  /** A crawl that followed links: its name and the pages it found (seeds included). */
  crawl?: string;
  discovered?: number;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
}

export function registerCrawl(program: Command): void {
  withHandlerOptions(withCrawlOptions(withTargetOptions(program.command('crawl'))))
    .description('the one-machine quick path: submit, run workers in this process until the crawl drains, summarize')
    .option('-c, --concurrency <n>', 'jobs fetched at once', positiveInt, DEFAULT_CONCURRENCY)
    .option('--browsers <n>', 'with --render: Chromium contexts rendering at once', positiveInt, 2)
    .option('-o, --out <file>', "write this crawl's results as JSON lines to a file")
    .option('--json', 'print the summary as JSON')
    .addHelpText(
      'after',
      `
Uses REDIS_URL when set, else the Redis on 127.0.0.1:6379, else starts a private redis-server for
the run (its results are then written to ./crawlfleet-results-<time>.jsonl unless --out is given).
Session keys: CRAWLFLEET_KEYS when set, else the local key file (created on first use).
Ctrl-C drains (running pages finish, what is done is written); Ctrl-C again stops at once. The same
command again resumes what is left and writes every result of the crawl.
  $ crawlfleet crawl https://example.com/ https://example.com/about
  $ crawlfleet crawl --file urls.txt --concurrency 32 --out results.jsonl
  $ crawlfleet crawl https://example.com/ --follow same-hostname --max-depth 2 --out site.jsonl

With --follow, --handler or --crawl NAME the URLs seed a named crawl (crawl-<time> unless named):
its pages' links within the scope are fetched too, its pages run through the handler (whose
enqueue() and push() add pages and records), and the run ends when the crawl has nothing pending.
  $ crawlfleet crawl https://shop.example/ --follow same-hostname --handler ./shop.mjs --out items.jsonl`,
    )
    .action(async (urls: string[], options: CrawlOptions, command: Command) => {
      const started = Date.now();
      const settings = loadSettings(command.optsWithGlobals<GlobalOptions>());
      // Following links, or a handler, makes it a named crawl: without --crawl, one is named.
      const named =
        options.crawl === undefined &&
        ((options.follow !== undefined && options.follow !== 'none') || options.handler !== undefined)
          ? { ...options, crawl: `crawl-${timestamp().replace(/[^0-9A-Za-z]/g, '')}` }
          : options;
      const handler = await handlerOf(options);
      const { crawl, jobs } = await prepareSeeds(settings, urls, named);
      const keys = localKeyRing();
      if (keys.created)
        say(
          `created a local session key in ${keys.file} (CRAWLFLEET_KEYS is unset); crawl, worker and sessions on this machine use it; a fleet on other machines needs one CRAWLFLEET_KEYS everywhere`,
        );
      const local = await ensureRedis({ url: settings.env.redisUrl, fromEnv: settings.env.redisUrlFromEnv });
      if (local.server !== undefined) {
        say(
          `started a private redis-server on 127.0.0.1:${local.server.port} for this run (REDIS_URL is unset and nothing answers on 127.0.0.1:6379); it stops when the crawl ends`,
        );
      }
      const out = options.out ?? (local.server !== undefined ? `crawlfleet-results-${timestamp()}.jsonl` : undefined);
      const sessionRedisUrl = settings.env.sessionRedisUrlFromEnv ? settings.env.sessionRedisUrl : local.url;
      const interruption = new Interruption();
      try {
        const context = await connect(settings, local.url);
        const queues = new CrawlQueues(context.redis, context.keys, context.config);
        // The crawl's own sink is registered before its first job can be stored.
        let crawlOut = out !== undefined ? await CrawlOut.start(context, out, crawl?.definition.name) : undefined;
        try {
          if (crawl !== undefined) await startCrawl(context, crawl, jobs, options.json === true);
          const following =
            crawl === undefined
              ? undefined
              : { name: crawl.definition.name, store: new CrawlStore(context.redis, context.keys) };
          const plan = await planCrawl(queues, jobs, await enqueueJobs(context, jobs, options.force));
          crawlOut?.run(plan.keys);
          const crawled = [...plan.enqueued, ...plan.resumed];
          await sayOtherJobs(queues, crawled.length, settings.env.prefix);
          const tally: Tally = { retries: 0 };
          const unfinished =
            following === undefined ? 0 : ((await following.store.status(following.name))?.discovered ?? 0);
          if ((crawled.length > 0 || unfinished > 0) && !interruption.requested) {
            await runUntilDone(
              {
                context,
                queues,
                interruption,
                concurrency: options.concurrency,
                // Render jobs need a browser: this process runs one beside its HTTP worker.
                browsers: options.render === true ? options.browsers : undefined,
                tally,
                following,
                handler,
              },
              { redisUrl: local.url, sessionRedisUrl, ring: keys.ring },
              crawled,
            );
          }
          const settled = await settle(context, crawled);
          const status = following === undefined ? undefined : await following.store.status(following.name);
          const letters = await deadLetterSummaries(context, settled.deadLettered.slice(0, 10));
          const results = await crawlOut?.finish();
          crawlOut = undefined;
          const written = results?.written;
          const summary: CrawlSummary = {
            enqueued: plan.enqueued.length,
            resumed: plan.resumed.length,
            duplicates: plan.duplicates,
            fetched: status?.stored ?? settled.stored,
            dlq: status?.deadLettered ?? settled.deadLettered.length,
            ...(status === undefined ? {} : { crawl: status.definition.name, discovered: status.discovered }),
            retries: tally.retries,
            left:
              status === undefined ? crawled.length - settled.stored - settled.deadLettered.length : pendingOf(status),
            seconds: Number(((Date.now() - started) / 1000).toFixed(2)),
            ...(interruption.requested ? { interrupted: true } : {}),
            ...(out !== undefined ? { out } : {}),
          };
          if (options.json) printJson(summary);
          else printSummary(summary, letters, written, local.server !== undefined, settings.env.prefix);
          if (results !== undefined && results.written < results.expected) {
            // A registered sink took them and the outbox gave them up: they are in that sink.
            say(
              `${results.expected - results.written} of this crawl's results are no longer in the outbox (a sink took them: crawlfleet sink list); ${out} has the other ${results.written}`,
            );
            process.exitCode = 1;
          }
          if (interruption.requested) process.exitCode = interruption.exitCode;
        } finally {
          await crawlOut?.abandon();
          await queues.close();
          await context.close();
        }
      } finally {
        interruption.dispose();
        await local.server?.stop();
      }
    });
}

/**
 * Sorts the crawl's keys after the submit: enqueued now, still queued from an earlier run (a
 * job of the key waiting, delayed or running), or finished before.
 */
async function planCrawl(queues: CrawlQueues, jobs: readonly FetchJob[], report: SubmitReport): Promise<CrawlPlan> {
  const keys = [...new Set(jobs.map((job) => job.idempotencyKey))];
  const enqueued = new Set(report.keys);
  const others = keys.filter((key) => !enqueued.has(key));
  const resumed: string[] = [];
  for (let start = 0; start < others.length; start += KEYS_PER_ROUND_TRIP) {
    const batch = others.slice(start, start + KEYS_PER_ROUND_TRIP);
    const states = await Promise.all(batch.map((key) => queues.state(key)));
    batch.forEach((key, i) => {
      if (LIVE_STATES.has(states[i] ?? 'unknown')) resumed.push(key);
    });
  }
  return { keys, enqueued: report.keys, resumed, duplicates: jobs.length - report.keys.length - resumed.length };
}

/** Says when the queue holds jobs of other commands: this process runs them too, but counts only its own. */
async function sayOtherJobs(queues: CrawlQueues, own: number, prefix: string): Promise<void> {
  const others = (await liveJobs(queues)) - own;
  if (others <= 0) return;
  say(
    `${plural(others, 'other job')} ${others === 1 ? 'is' : 'are'} queued under prefix ${prefix}: this crawl's worker takes them too while its own are queued, and counts and writes only its own`,
  );
}

/**
 * Which of `keys` have an outcome in Redis (whoever ran them): a result, or a dead letter of a job
 * that finished. A dead letter left by an earlier run of a key that is queued again (`--force`,
 * a replay) is not an outcome while that job is still waiting, delayed or running.
 */
async function outcomes(
  context: CommandContext,
  keys: readonly string[],
): Promise<Array<'stored' | 'dead_lettered' | undefined>> {
  const found: Array<'stored' | 'dead_lettered' | undefined> = [];
  for (let start = 0; start < keys.length; start += KEYS_PER_ROUND_TRIP) {
    const batch = keys.slice(start, start + KEYS_PER_ROUND_TRIP);
    // A key's ledger mark and job are on its shard; the DLQ is on the fleet's tag.
    // Sent together: one round trip on one Redis, as before the shards.
    const [onShard, inDlq] = await Promise.all([
      pipelineEach(context.redis, batch, context.keys.ledger, (pipeline, key) => {
        pipeline.exists(context.keys.ledger(key));
        // BullMQ's job hash (in whichever queue has it): gone (trimmed by retention) or with finishedOn once it ended.
        pipeline.hmget(context.keys.crawlJob(key), 'timestamp', 'finishedOn');
        pipeline.hmget(context.keys.renderJob(key), 'timestamp', 'finishedOn');
      }),
      pipelineEach(context.redis, batch, context.keys.dlqJob, (pipeline, key) => {
        pipeline.exists(context.keys.dlqJob(key));
      }),
    ]);
    batch.forEach((_key, i) => {
      const [stored, httpJob, renderJob] = onShard[i] ?? [];
      const http = (httpJob?.[1] as Array<string | null> | undefined) ?? [];
      const render = (renderJob?.[1] as Array<string | null> | undefined) ?? [];
      const [added, finishedOn] = http[0] !== null && http[0] !== undefined ? http : render;
      const ended = added === null || added === undefined || finishedOn !== null;
      if (stored?.[1] === 1) found.push('stored');
      else if (inDlq[i]?.[0]?.[1] === 1 && ended) found.push('dead_lettered');
      else found.push(undefined);
    });
  }
  return found;
}

/** Which of `keys` ended with a result and which in the DLQ during this run. */
async function settle(
  context: CommandContext,
  keys: readonly string[],
): Promise<{ stored: number; deadLettered: string[] }> {
  const found = await outcomes(context, keys);
  return {
    stored: found.filter((outcome) => outcome === 'stored').length,
    deadLettered: keys.filter((_key, i) => found[i] === 'dead_lettered'),
  };
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
  summary: CrawlSummary,
  letters: DeadLetterSummary[],
  written: number | undefined,
  ephemeral: boolean,
  prefix: string,
): void {
  const env = prefix === DEFAULT_PREFIX ? '' : `CRAWLFLEET_PREFIX=${prefix} `;
  const crawled = summary.enqueued + summary.resumed;
  const head = summary.interrupted
    ? `crawl interrupted after ${summary.seconds} s`
    : `crawled ${plural(crawled, 'URL')}${summary.resumed > 0 ? ` (${summary.resumed} resumed from an earlier run)` : ''} in ${summary.seconds} s`;
  const lines = [
    `${head}: ${summary.fetched} fetched, ${summary.dlq} to the DLQ, ${plural(summary.retries, 'retry')}, ${plural(summary.duplicates, 'duplicate')} skipped`,
  ];
  if (summary.crawl !== undefined)
    lines.push(
      `crawl ${summary.crawl} followed links to ${plural(summary.discovered ?? 0, 'page')} (crawlfleet crawls show ${summary.crawl})`,
    );
  for (const letter of letters) lines.push(`  DLQ ${letter.reason.padEnd(14)} ${letter.url ?? letter.id}`);
  if (summary.dlq > letters.length) lines.push(`  ... and ${summary.dlq - letters.length} more`);
  if (summary.left > 0 && summary.interrupted)
    lines.push(
      ephemeral
        ? `${summary.left} of ${plural(crawled, 'URL')} not crawled (the private redis-server stops with this run)`
        : `${summary.left} of ${plural(crawled, 'URL')} left in the queue: the same command again finishes them`,
    );
  else if (summary.left > 0)
    lines.push(`${summary.left} of ${plural(crawled, 'URL')} ended with neither a result nor a dead letter`);
  if (summary.out !== undefined) lines.push(`results: ${summary.out} (${plural(written ?? 0, 'line')})`);
  else lines.push(`results: ${env}crawlfleet results export --out results.jsonl`);
  if (summary.dlq > 0 && !ephemeral) lines.push(`dead letters: ${env}crawlfleet dlq list`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * Ctrl-C (or SIGTERM) during a crawl: the first asks the crawl to stop taking jobs and drain; the
 * second hands this process's running jobs back to the queue (within a second) and exits at once.
 */
class Interruption {
  private signal: NodeJS.Signals | undefined;
  private wake: () => void = () => {};
  private readonly woken = new Promise<void>((resolve) => {
    this.wake = resolve;
  });
  /** Set by the running worker: gives its jobs back and says how many. */
  handBack: () => Promise<number> = async () => 0;

  private readonly listener = (signal: NodeJS.Signals) => {
    if (this.signal === undefined) {
      this.signal = signal;
      say(
        `draining: no new jobs; running pages finish (up to ${DRAIN_GRACE_MS / 1000} s) and what is done is written; Ctrl-C again to stop at once`,
      );
      this.wake();
      return;
    }
    const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), HAND_BACK_MS).unref());
    void Promise.race([this.handBack().catch(() => undefined), timeout]).then((handed) => {
      say(
        `stopped at once${handed ? `: ${plural(handed, 'running job')} went back to the queue` : ''}; the same command again finishes the crawl`,
      );
      process.exit(this.exitCode);
    });
  };

  constructor() {
    process.on('SIGINT', this.listener);
    process.on('SIGTERM', this.listener);
  }

  get requested(): boolean {
    return this.signal !== undefined;
  }

  /** Resolves on the first signal. */
  whenRequested(): Promise<void> {
    return this.woken;
  }

  /** 130 after Ctrl-C, 143 after SIGTERM: what a shell reports for a process the signal ended. */
  get exitCode(): number {
    return 128 + (this.signal === undefined ? 0 : constants.signals[this.signal]);
  }

  dispose(): void {
    process.off('SIGINT', this.listener);
    process.off('SIGTERM', this.listener);
  }
}

interface CrawlRun {
  context: CommandContext;
  queues: CrawlQueues;
  interruption: Interruption;
  concurrency: number;
  /** Browser contexts for render jobs (`--render`); none: no browser is started. */
  browsers?: number | undefined;
  tally: Tally;
  /** A crawl that follows links: the run also waits until it has nothing pending. */
  following?: Following | undefined;
  /** The handler its pages run through. */
  handler?: Awaited<ReturnType<typeof handlerOf>>;
}

/**
 * Runs a worker in this process until every key of the crawl has an outcome (whoever ran it),
 * the queue has nothing left to run, or Ctrl-C; then drains it.
 */
async function runUntilDone(
  run: CrawlRun,
  connections: { redisUrl: string; sessionRedisUrl: string; ring: KeyRing },
  keys: string[],
): Promise<void> {
  const { context, queues, interruption, tally, following } = run;
  const pending = new Set(keys);
  // Logs go to stderr: stdout is the crawl's summary (JSON with --json), which a log line would break.
  const logger = createLogger({
    name: 'crawl',
    level: process.env.CRAWLFLEET_LOG_LEVEL ?? 'silent',
    destination: process.stderr,
  });
  const options = { ...connections, keys: context.keys, config: context.config, logger, handler: run.handler };
  // The browser first: without a usable Chromium the run stops before anything is taken.
  const browser = run.browsers === undefined ? undefined : await openWorker({ ...options, browsers: run.browsers });
  let opened: Awaited<ReturnType<typeof openWorker>>;
  try {
    opened = await openWorker({ ...options, concurrency: run.concurrency });
  } catch (error) {
    await browser?.close(DRAIN_GRACE_MS);
    throw error;
  }
  const workers = browser === undefined ? [opened] : [opened, browser];
  if (!opened.sessionStoreReady) say('session Redis unreachable: jobs run on ephemeral sessions until it answers');
  let fetched = 0;
  let deadLettered = 0;
  let followed = { stored: 0, discovered: 0, pending: following === undefined ? 0 : 1 };
  const onJob = (event: JobEvent) => {
    const id = String(event.job?.id);
    if (following !== undefined && (event.job?.data as FetchJob | undefined)?.crawl?.name === following.name) {
      if (event.kind === 'retrying') tally.retries++;
      return;
    }
    if (!pending.has(id)) return;
    if (event.kind === 'retrying') tally.retries++;
    else {
      pending.delete(id);
      if (event.kind === 'dead_lettered') deadLettered++;
      else if (event.kind !== 'failed') fetched++;
    }
  };
  // This process's running jobs, so a second Ctrl-C can give them back instead of stranding them.
  const running = new Map<string, Job>();
  for (const { worker } of workers) {
    worker.onJob(onJob);
    for (const bull of worker.workers) {
      bull.on('active', (job) => running.set(String(job.id), job));
      bull.on('completed', (job) => running.delete(String(job.id)));
      bull.on('failed', (job) => running.delete(String(job?.id)));
    }
  }
  interruption.handBack = async () => {
    const jobs = [...running.values()];
    await Promise.allSettled(jobs.map((job) => job.moveToWait(job.token)));
    return jobs.length;
  };
  const progress = new ProgressLine();
  let lastPending = -1;
  /** Frontier entries not yet moved: links on their way to the queue. */
  const linksMoving = async () => {
    let moving = 0;
    for (const shard of context.keys.shards) moving += await context.redis.xlen(shard.frontier);
    return moving;
  };
  try {
    for (let tick = 0; ; tick++) {
      const { holding, entries } = opened.worker.outbox;
      const rendering = browser === undefined ? '' : `, ${browser.worker.inFlight} rendering`;
      const waiting = holding
        ? `; the results outbox is full (${entries} results): waiting for a sink to take them (crawlfleet sink run, or crawl with --out)`
        : '';
      if (following !== undefined) {
        const status = await following.store.status(following.name);
        if (status !== undefined)
          followed = {
            stored: status.stored,
            discovered: status.discovered,
            pending: pendingOf(status),
          };
        progress.update(
          `crawling ${following.name}: ${followed.stored} stored of ${followed.discovered} found, ${followed.pending} pending${rendering} (${plural(tally.retries, 'retry')})${waiting}`,
        );
      } else
        progress.update(
          `crawling: ${keys.length - pending.size}/${keys.length} done (${fetched} fetched, ${deadLettered} to the DLQ${rendering}, ${plural(tally.retries, 'retry')})${waiting}`,
        );
      if ((pending.size === 0 && followed.pending === 0) || interruption.requested) break;
      // Other workers of the fleet may run some of the crawl's jobs: look every second, but only
      // while this worker finished none of them (a crawl of a million URLs is not swept 4 times a
      // second while its own worker makes progress).
      if (tick % 4 === 3) {
        const idle = pending.size === lastPending;
        lastPending = pending.size;
        if (idle && following === undefined && (await settleFromRedis(context, pending)) === 0) break;
        // A following crawl may have links on their way to the queue: idle only once none is left.
        if ((await liveJobs(queues)) === 0 && (following === undefined || (await linksMoving()) === 0)) break;
      }
      await Promise.race([new Promise((resolve) => setTimeout(resolve, 250)), interruption.whenRequested()]);
    }
  } finally {
    progress.done();
    await Promise.all(workers.map((worker) => worker.close(DRAIN_GRACE_MS)));
    interruption.handBack = async () => 0;
  }
}

/** Jobs of both queues that will still run (waiting, delayed, running). */
async function liveJobs(queues: CrawlQueues): Promise<number> {
  let live = 0;
  for (const queue of queues.all) {
    const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'waiting-children');
    live += Object.values(counts).reduce((sum, n) => sum + n, 0);
  }
  return live;
}

/**
 * Drops the keys that have an outcome in Redis from `pending` (other workers ran them), a batch
 * of round trips at a time; returns how many are left.
 */
async function settleFromRedis(context: CommandContext, pending: Set<string>): Promise<number> {
  const keys = [...pending];
  const found = await outcomes(context, keys);
  keys.forEach((key, i) => {
    if (found[i] !== undefined) pending.delete(key);
  });
  return pending.size;
}
