import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CRAWL_QUEUE,
  type CrawlfleetConfig,
  connectRedis,
  type KeyLayout,
  keyLayout,
  NODE_FLAGS,
  parseConfig,
  RENDER_QUEUE,
} from '@crawlfleet/core';
import { startRedisServer } from '@crawlfleet/local-redis';
import { Producer } from '@crawlfleet/producer';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { type FixtureSite, startFixtureSite } from '../fixture/site.js';
import { CLI_PATH } from '../harness.js';
import {
  CommandMonitor,
  clientAddress,
  knownScripts,
  type ScriptNames,
  tally,
  verifyMonitorCounting,
} from './redis-monitor.js';
import { peakRssMb, processCpuMs, startChild, type WorkerChild } from './worker-process.js';

const BARE_WORKER_PATH = fileURLToPath(new URL('./bare-worker.js', import.meta.url));

export type FleetSideName = 'baseline' | 'crawlfleet';

/** Job `index` of a batch (a warm-up, a measured or a monitored run). */
export interface BenchJob {
  index: number;
  /**
   * Unique to the job within the benchmark, to put in its page: the producer drops a job whose
   * URL (in the same session) it already has, so no two pages of a run may be the same.
   */
  id: string;
  /** Whether the job is one of the warm-up jobs that run before a measured batch. */
  warmup: boolean;
}

/** What a batch of jobs is: the page each fetches, the session each goes to, how many run at once. */
export interface Workload {
  /**
   * Sessions the crawlfleet jobs are spread over, job i in session i mod this; 0 submits jobs
   * without a session. The baseline has no sessions and fetches the same pages.
   */
  sessions: number;
  /**
   * Each batch (warm-up, measured, monitored) goes to sessions no job used before, which its
   * first jobs create (`<batch>-s<n>`); otherwise every batch of a run uses the same `s<n>`, so
   * the warm-up jobs leave the measured ones sessions in use.
   */
  freshSessions: boolean;
  /** Jobs each worker processes at once. */
  concurrency: number;
  /** Path and query of a job's page on the fixture site. */
  page(job: BenchJob): string;
}

/** The session job `index` of `batch` goes to, as the producer is told; undefined: none. */
export function sessionOf(workload: Workload, batch: string, index: number): string | undefined {
  if (workload.sessions === 0) return undefined;
  const n = index % workload.sessions;
  return workload.freshSessions ? `${batch}-s${n}` : `s${n}`;
}

export interface FleetBenchOptions {
  /** Jobs per throughput run, the same for both sides. Default 8000. */
  jobs?: number;
  /**
   * Jobs each worker process runs before a throughput run is measured, so both sides are
   * measured warm (code compiled by the JIT, sockets open, caches filled), as a long-running
   * worker is. Default 2000.
   */
  warmupJobs?: number;
  /** Jobs each worker processes at once. Default 100. */
  concurrency?: number;
  /** Session ids the crawlfleet jobs are spread over (job i uses session i mod this). Default 100. */
  sessions?: number;
  /**
   * The page both sides fetch, the job's id appended: `/ok/` by default; a page that sets
   * cookies, such as `/cookies/set?sid=1&_ga=GA1.1.`, measures the cookie write path.
   */
  page?: string;
  /**
   * The measured jobs go to sessions nobody used before (their first jobs create them) instead of
   * sessions the warm-up jobs put in use. Default false.
   */
  freshSessions?: boolean;
  /**
   * Rounds: in each, one throughput run per side, back to back, the sides taking turns to go
   * first. Figures are medians over the rounds, and the ratio is the median of the rounds' own
   * ratios, so a round where the machine was slower (or faster) for both sides moves neither.
   * Default 5.
   */
  rounds?: number;
  /**
   * Jobs of the larger run under MONITOR that counts Redis commands; the smaller run has a third
   * of them, and commands per job are the difference over the difference. Default 600.
   */
  monitorJobs?: number;
  /** A log line per step, on stderr. */
  progress?: (message: string) => void;
  /**
   * The sides to run, for comparing one side's changes across runs (a side not run reports
   * zeros and the ratio is meaningless). Default both.
   */
  sides?: readonly FleetSideName[];
  /** Count Redis commands under MONITOR (two more runs per side). Default true. */
  monitor?: boolean;
}

/**
 * One side's figures, each the median over the side's rounds unless it says otherwise. Times are
 * per job, processor start to finish, from BullMQ's own stamps (`processedOn` to `finishedOn`,
 * in ms).
 */
export interface FleetSide {
  /**
   * Jobs over the time from the first job's start (`processedOn`) to the last one's finish
   * (`finishedOn`): process start-up is left out; the first robots.txt fetch and the ramp-down
   * are in.
   */
  jobsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Peak RSS of the worker process (VmHWM), the highest over the side's throughput runs. */
  rssMb: number;
  /**
   * CPU time of the worker process per job, from the moment it is ready (start-up left out) to
   * its last job, all threads (V8's GC helpers included).
   */
  workerCpuMsPerJob: number;
  /** CPU time of redis-server per job while the worker ran. */
  redisCpuUsPerJob: number;
  /** Redis commands the worker sends per job on the hot path (a script call counts one). */
  commandsPerJob: number;
  /** All the worker's commands of the larger monitored run over its jobs: start-up and drain included. */
  commandsPerJobWholeRun: number;
  /**
   * Hot-path commands per job by command (EVALSHA by script name), most first; commands under
   * 0.005 per job (idle polling that differs a little between the two runs) are left out.
   */
  breakdown: Array<[string, number]>;
  /** Jobs that ended failed instead of completed (crawlfleet: dead-lettered), over the side's rounds. */
  failed: number;
}

export interface FleetBenchResult {
  jobs: number;
  warmupJobs: number;
  concurrency: number;
  sessions: number;
  monitorJobs: number;
  /** The smaller monitored run; per-job commands are (large - small) / (monitorJobs - this). */
  monitorSmallJobs: number;
  baseline: FleetSide;
  crawlfleet: FleetSide;
  /** crawlfleet jobs/s over baseline jobs/s in the same round: the median over the rounds. */
  ratio: number;
  /** Each round's ratio, in order. */
  roundRatios: number[];
  /** p99 of crawlfleet's per-job time minus the baseline's. */
  p99AddedLatencyMs: number;
}

/** What one worker run gave. */
export interface SideRun
  extends Pick<
    FleetSide,
    'jobsPerSecond' | 'p50Ms' | 'p99Ms' | 'rssMb' | 'workerCpuMsPerJob' | 'redisCpuUsPerJob' | 'failed'
  > {
  /** Commands of the monitored run, in order, when it was monitored. */
  commands: string[];
}

/** A private redis-server, the fixture site and a crawlfleet config: what every run of a benchmark shares. */
export interface Bench {
  serverUrl: string;
  site: FixtureSite;
  /** The benchmark's own connection: enqueues, polls and reads results; never counted. */
  control: Redis;
  /** A temporary folder for the config and whatever a side needs written; removed on close. */
  dir: string;
  configPath: string;
  /** What the config file holds, parsed: what the workers and the producer read from it. */
  config: CrawlfleetConfig;
  maxSockets: number;
  scripts: ScriptNames;
  excluded: ReadonlySet<string>;
  runs: number;
  /** Finished jobs each run keeps (all of them), so their times can be read. */
  retain: number;
  progress: (message: string) => void;
  /** The forward proxy both sides go through, when the bench has one. */
  proxyUrl?: string | undefined;
  close(): Promise<void>;
}

/**
 * Starts a private redis-server and the fixture site, checks that MONITOR counts right, and
 * writes a crawlfleet config that keeps `retain` finished jobs per run.
 */
export async function openBench(options: {
  retain: number;
  progress: (message: string) => void;
  /** The config's `results` section (the outbox, the body store); defaults otherwise. */
  results?: Record<string, unknown>;
  /** A forward proxy both sides send every request through (the tenant's `proxy.urls`, the bare worker's agent). */
  proxyUrl?: string;
}): Promise<Bench> {
  const server = await startRedisServer();
  const site = await startFixtureSite();
  const dir = mkdtempSync(join(tmpdir(), 'crawlfleet-fleet-bench-'));
  let control: Redis | undefined;
  const close = async () => {
    control?.disconnect();
    await site.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await verifyMonitorCounting(server.url);
    // The bench runs on one Redis: its own server.
    control = (await connectRedis(server.url, { role: 'worker' })) as Redis;
    const configPath = join(dir, 'crawlfleet.config.json');
    // robots.txt respected (fetched once, then cached), the host pace checked on every job
    // (no interval, so no job is held back), breakers and PII redaction as by default, and
    // every finished job kept so its times can be read.
    const config = {
      tenants: {
        default: {
          allowHosts: ['127.0.0.1'],
          robots: 'respect',
          hostDelayMs: 0,
          ...(options.proxyUrl === undefined ? {} : { proxy: { urls: [options.proxyUrl] } }),
        },
      },
      retention: { completedJobs: options.retain, failedJobs: options.retain },
      ...(options.results === undefined ? {} : { results: options.results }),
    };
    writeFileSync(configPath, JSON.stringify(config));
    const parsed = parseConfig(config);
    return {
      serverUrl: server.url,
      site,
      control,
      dir,
      configPath,
      config: parsed,
      maxSockets: parsed.fetch.maxSocketsPerHost,
      scripts: knownScripts(),
      excluded: new Set([await clientAddress(control)]),
      runs: 0,
      retain: options.retain,
      progress: options.progress,
      proxyUrl: options.proxyUrl,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** redis-server's own user plus system CPU time so far, in ms. */
async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
  return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1000;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

export const round1 = (value: number) => Math.round(value * 10) / 10;
export const round2 = (value: number) => Math.round(value * 100) / 100;

function jobKey(keys: KeyLayout, id: string, queue: string): string {
  return `${keys.bullPrefix}:${queue}:${id}`;
}

/** A batch of jobs to enqueue: job i's id is `<tag>-<i>`. */
export interface JobBatch {
  jobs: number;
  tag: string;
  warmup: boolean;
  /** Render jobs, on the `crawl-render` queue (`submit --render`). Default false. */
  render?: boolean;
}

/** Baseline jobs: a bare URL each, with the same retention options crawlfleet's producer sets. */
export async function enqueueBaseline(
  bench: Bench,
  keys: KeyLayout,
  workload: Workload,
  batch: JobBatch,
): Promise<string[]> {
  const queue = new Queue(batch.render === true ? RENDER_QUEUE : CRAWL_QUEUE, {
    connection: bench.control,
    prefix: keys.bullPrefix,
  });
  const ids: string[] = [];
  try {
    for (let start = 0; start < batch.jobs; start += 500) {
      const jobs = Array.from({ length: Math.min(500, batch.jobs - start) }, (_, j) => {
        const index = start + j;
        const id = `b-${batch.tag}-${index}`;
        ids.push(id);
        const url = bench.site.url(workload.page({ index, id: `${batch.tag}-${index}`, warmup: batch.warmup }));
        return {
          name: url,
          data: { url },
          opts: { jobId: id, removeOnComplete: { count: bench.retain }, removeOnFail: { count: bench.retain } },
        };
      });
      await queue.addBulk(jobs);
    }
  } finally {
    await queue.close();
  }
  return ids;
}

/** crawlfleet jobs, as `crawlfleet submit --session` (and `--render`) makes them. */
export async function enqueueCrawlfleet(
  bench: Bench,
  keys: KeyLayout,
  workload: Workload,
  batch: JobBatch,
): Promise<string[]> {
  const producer = new Producer(bench.control, keys, bench.config);
  try {
    const prepared = Array.from({ length: batch.jobs }, (_, index) => {
      const page = workload.page({ index, id: `${batch.tag}-${index}`, warmup: batch.warmup });
      const [job] = producer.prepare([{ url: bench.site.url(page) }], {
        tenant: 'default',
        sessionId: sessionOf(workload, batch.tag, index),
        render: batch.render,
      });
      if (job === undefined) throw new Error('the producer prepared no job');
      return job;
    });
    const report = await producer.submit(prepared);
    if (report.enqueued !== batch.jobs) throw new Error(`enqueued ${report.enqueued} of ${batch.jobs} crawlfleet jobs`);
    return report.keys;
  } finally {
    await producer.close();
  }
}

export function startWorker(
  bench: Bench,
  side: FleetSideName,
  workload: Workload,
  keys: KeyLayout,
  /** More arguments of `crawlfleet worker` (`--handler FILE`). */
  extraArgs: readonly string[] = [],
): WorkerChild {
  const common = {
    REDIS_URL: bench.serverUrl,
    CRAWLFLEET_SESSION_REDIS_URL: undefined,
    // Tracing stays off, as in a default install.
    OTEL_EXPORTER_OTLP_ENDPOINT: undefined,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
    OTEL_TRACES_EXPORTER: undefined,
  };
  // CRAWLFLEET_BENCH_PROFILE=<dir> writes a CPU profile of each worker process to <dir>/<side>;
  // CRAWLFLEET_BENCH_NODE_FLAGS adds node flags to both (to study heap settings, for example).
  const profile = process.env.CRAWLFLEET_BENCH_PROFILE;
  const nodeArgs = [
    ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${join(profile, side)}`] : []),
    ...(process.env.CRAWLFLEET_BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
  ];
  if (side === 'baseline') {
    return startChild([...nodeArgs, BARE_WORKER_PATH], {
      ...common,
      BENCH_PREFIX: keys.bullPrefix,
      BENCH_QUEUE: CRAWL_QUEUE,
      BENCH_CONCURRENCY: String(workload.concurrency),
      BENCH_MAX_SOCKETS: String(bench.maxSockets),
      BENCH_PROXY: bench.proxyUrl,
    });
  }
  // As the `crawlfleet` command and the image start it: with crawlfleet's node flags.
  return startChild(
    [
      ...NODE_FLAGS,
      ...nodeArgs,
      CLI_PATH,
      'worker',
      '--concurrency',
      String(workload.concurrency),
      '--grace-ms',
      '5000',
      ...extraArgs,
    ],
    {
      ...common,
      CRAWLFLEET_PREFIX: keys.prefix,
      CRAWLFLEET_CONFIG: bench.configPath,
      CRAWLFLEET_LOG_LEVEL: 'info',
      CRAWLFLEET_CONCURRENCY: undefined,
      CRAWLFLEET_METRICS_PORT: undefined,
    },
  );
}

/** What `waitUntilFinished` waits for: `jobs` finished jobs of `queue` (default `crawl`) within `timeoutMs` (default 120 s). */
export interface FinishedJobs {
  jobs: number;
  /** The side's name, for errors. */
  side: string;
  queue?: string;
  timeoutMs?: number;
}

/** Polls the finished sets every 250 ms (two ZCARDs on the benchmark's own connection). */
export async function waitUntilFinished(
  bench: Bench,
  keys: KeyLayout,
  child: WorkerChild,
  until: FinishedJobs,
): Promise<{ completed: number; failed: number }> {
  const { jobs, side, queue = CRAWL_QUEUE, timeoutMs = 120_000 } = until;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answers = await bench.control
      .pipeline()
      .zcard(`${keys.bullPrefix}:${queue}:completed`)
      .zcard(`${keys.bullPrefix}:${queue}:failed`)
      .exec();
    const completed = Number(answers?.[0]?.[1] ?? 0);
    const failed = Number(answers?.[1]?.[1] ?? 0);
    if (completed + failed >= jobs) return { completed, failed };
    const code = child.exitCode();
    if (code !== undefined) throw new Error(`the ${side} worker exited (${code}) early: ${child.tail()}`);
    if (Date.now() > deadline)
      throw new Error(
        `the ${side} worker finished ${completed + failed} of ${jobs} jobs in ${timeoutMs / 1000} s: ${child.tail()}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Throughput and per-job times from the jobs' own `processedOn` and `finishedOn` (jobs of `queue`). */
export async function jobTimes(bench: Bench, keys: KeyLayout, ids: readonly string[], queue: string = CRAWL_QUEUE) {
  const pipeline = bench.control.pipeline();
  for (const id of ids) pipeline.hmget(jobKey(keys, id, queue), 'processedOn', 'finishedOn');
  const answers = (await pipeline.exec()) ?? [];
  const durations: number[] = [];
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const [error, fields] of answers) {
    if (error) throw error;
    const [processedOn, finishedOn] = (fields as Array<string | null>).map(Number);
    if (!processedOn || !finishedOn) throw new Error('a finished job has no processedOn/finishedOn');
    durations.push(finishedOn - processedOn);
    first = Math.min(first, processedOn);
    last = Math.max(last, finishedOn);
  }
  durations.sort((a, b) => a - b);
  return {
    jobsPerSecond: ids.length / (Math.max(1, last - first) / 1000),
    p50Ms: percentile(durations, 50),
    p99Ms: percentile(durations, 99),
  };
}

/** One run of one side: a fresh worker process, its warm-up jobs, then the measured ones. */
export interface SideRunOptions {
  jobs: number;
  /** Jobs the worker runs first, not measured (pages `warmup: true`). Default 0. */
  warmupJobs?: number;
  /** Count the Redis commands of the whole run (warm-up excluded) under MONITOR. Default false. */
  monitored?: boolean;
  /**
   * Called once the measured jobs finished and the worker stopped, before Redis is cleared: to
   * check the state the run left, under its key layout.
   */
  afterRun?: (keys: KeyLayout) => Promise<void>;
}

export async function runSide(
  bench: Bench,
  side: FleetSideName,
  workload: Workload,
  options: SideRunOptions,
): Promise<SideRun> {
  const { jobs, warmupJobs = 0, monitored = false } = options;
  const run = ++bench.runs;
  // The site remembers every hit; a run needs none of the earlier ones, and a growing map would
  // slow the site down run after run.
  bench.site.resetHits();
  const keys = keyLayout(`fleet-${run}`);
  const tag = `r${run}`;
  // The queue stays paused until the worker is up, so its start-up is outside every figure.
  const queue = new Queue(CRAWL_QUEUE, { connection: bench.control, prefix: keys.bullPrefix });
  await queue.pause();
  const enqueue = (batch: JobBatch) =>
    side === 'baseline'
      ? enqueueBaseline(bench, keys, workload, batch)
      : enqueueCrawlfleet(bench, keys, workload, batch);
  if (warmupJobs > 0) await enqueue({ jobs: warmupJobs, tag: `${tag}w`, warmup: true });
  // Everything enqueued above ran before MONITOR starts, so none of it is counted.
  const monitor = monitored ? await CommandMonitor.start(bench.serverUrl, bench.scripts, bench.excluded) : undefined;
  const child = startWorker(bench, side, workload, keys);
  let ids: string[];
  let rssMb: number;
  let failed: number;
  let workerCpuMs: number;
  let redisCpuUsed: number;
  try {
    await child.printed(side === 'baseline' ? 'ready' : '"worker started"', 30_000);
    if (warmupJobs > 0) {
      await queue.resume();
      await waitUntilFinished(bench, keys, child, { jobs: warmupJobs, side });
      await queue.pause();
    }
    // Enqueued while paused: the measured jobs start together, on a warm worker.
    ids = await enqueue({ jobs, tag, warmup: false });
    const workerCpuBefore = processCpuMs(child.pid);
    const redisCpuBefore = await redisCpuMs(bench.control);
    await queue.resume();
    ({ failed } = await waitUntilFinished(bench, keys, child, { jobs: warmupJobs + jobs, side }));
    rssMb = peakRssMb(child.pid);
    workerCpuMs = processCpuMs(child.pid) - workerCpuBefore;
    redisCpuUsed = (await redisCpuMs(bench.control)) - redisCpuBefore;
    await child.stop();
    if (monitor !== undefined) await untilMonitorSaw(monitor, jobs);
  } finally {
    await child.stop();
    monitor?.stop();
    await queue.close();
  }
  const times = await jobTimes(bench, keys, ids);
  await options.afterRun?.(keys);
  await bench.control.flushall();
  bench.progress(
    `  ${side}${monitored ? ' (under MONITOR)' : ''}: ${Math.round(times.jobsPerSecond)} jobs/s, p99 ${times.p99Ms} ms, RSS ${Math.round(rssMb)} MB, CPU ${round2(workerCpuMs / jobs)} ms/job, Redis CPU ${Math.round((redisCpuUsed * 1000) / jobs)} µs/job${failed > 0 ? `, ${failed} FAILED` : ''}`,
  );
  return {
    ...times,
    rssMb,
    workerCpuMsPerJob: workerCpuMs / jobs,
    redisCpuUsPerJob: (redisCpuUsed * 1000) / jobs,
    failed,
    commands: monitor?.commands ?? [],
  };
}

const isCompletion = (name: string) => name.endsWith(' bullmq:moveToFinished');

/** MONITOR lines arrive after the commands ran: wait until every job's completion is in. */
async function untilMonitorSaw(monitor: CommandMonitor, jobs: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (monitor.commands.filter(isCompletion).length < jobs) {
    if (Date.now() > deadline) throw new Error(`MONITOR saw fewer than ${jobs} job completions`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Redis commands a side's worker sends per job (a script call counts one). */
export interface CommandCount {
  /** Per job on the hot path: the difference of two monitored runs over the difference of their jobs. */
  perJob: number;
  /** All the commands of the larger run over its jobs: start-up and drain included. */
  wholeRun: number;
  /** Hot-path commands per job by command, most first (see `FleetSide.breakdown`). */
  breakdown: Array<[string, number]>;
}

/**
 * Commands per job on the hot path, as the difference of two monitored runs of `small` and
 * `large` jobs: what a worker sends once (connections, script loads, the hasher key, the first
 * robots.txt, the stalled-job check, the drain) is the same in both and cancels out, and so does
 * the ramp-up and ramp-down of the concurrency, which a window inside one run would mix in.
 */
function perJobCommands(
  small: { jobs: number; commands: string[] },
  large: { jobs: number; commands: string[] },
): CommandCount {
  const jobs = large.jobs - small.jobs;
  const smallCounts = new Map(tally(small.commands));
  const breakdown = tally(large.commands)
    .map(([name, count]): [string, number] => [name, round2((count - (smallCounts.get(name) ?? 0)) / jobs)])
    .filter(([, perJob]) => perJob !== 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return {
    perJob: (large.commands.length - small.commands.length) / jobs,
    wholeRun: large.commands.length / large.jobs,
    breakdown,
  };
}

/**
 * Counts `side`'s commands per job under MONITOR: a run of `small` jobs, then one of `large`,
 * each with no warm-up, on the workload `workloadOf` gives for that many jobs (a caller whose
 * sessions are created by their first jobs scales the sessions with the jobs, so the difference
 * holds as many session creations per job as a measured run).
 */
export async function countCommands(
  bench: Bench,
  side: FleetSideName,
  workloadOf: (jobs: number) => Workload,
  sizes: { small: number; large: number },
): Promise<CommandCount> {
  const small = await runSide(bench, side, workloadOf(sizes.small), { jobs: sizes.small, monitored: true });
  const large = await runSide(bench, side, workloadOf(sizes.large), { jobs: sizes.large, monitored: true });
  return perJobCommands({ jobs: sizes.small, ...small }, { jobs: sizes.large, ...large });
}

/**
 * The issue's fleet benchmark: a bare BullMQ worker doing one got GET per job against the
 * `crawlfleet worker` process doing the whole path (session hydrate and commit, breaker,
 * robots.txt and host pace, result and ledger write), same jobs and concurrency, each worker in
 * its own process, against the fixture site and a private redis-server.
 *
 * The crawlfleet jobs go to sessions in use: the first warm-up job of each session fetches
 * `/cookies/set?sid=bench-s<n>`, so by the measured jobs every session has a cookie (sent with
 * every request), a profile and meta, all written by the worker itself. With fewer warm-up jobs
 * than sessions, the sessions past them start measured without.
 */
export async function benchFleet(options: FleetBenchOptions = {}): Promise<FleetBenchResult> {
  const jobs = options.jobs ?? 8_000;
  const warmupJobs = options.warmupJobs ?? 2_000;
  const monitorJobs = options.monitorJobs ?? 600;
  const rounds = Math.max(1, options.rounds ?? 5);
  const progress = options.progress ?? (() => undefined);
  const sessions = options.sessions ?? 100;
  const freshSessions = options.freshSessions ?? false;
  const page = options.page ?? '/ok/';
  const workload: Workload = {
    sessions,
    freshSessions,
    concurrency: options.concurrency ?? 100,
    page: (job) =>
      job.warmup && !freshSessions && job.index < sessions
        ? `/cookies/set?sid=bench-s${job.index}`
        : `${page}${job.id}`,
  };
  const bench = await openBench({ retain: Math.max(warmupJobs + jobs, monitorJobs), progress });
  try {
    const runs: Record<FleetSideName, SideRun[]> = { baseline: [], crawlfleet: [] };
    const sides = options.sides ?? (['baseline', 'crawlfleet'] as const);
    for (let round = 0; round < rounds; round++) {
      // Each side goes first in every other round, so a drift of the machine within a round
      // (or a cost the first run leaves to the second) weighs on both alike.
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) runs[side].push(await runSide(bench, side, workload, { jobs, warmupJobs }));
    }
    // Medians over the rounds; RSS is the peak of them all.
    const summary = (list: SideRun[]) => ({
      jobsPerSecond: median(list.map((r) => r.jobsPerSecond)),
      p50Ms: median(list.map((r) => r.p50Ms)),
      p99Ms: median(list.map((r) => r.p99Ms)),
      rssMb: Math.max(0, ...list.map((r) => r.rssMb)),
      workerCpuMsPerJob: median(list.map((r) => r.workerCpuMsPerJob)),
      redisCpuUsPerJob: median(list.map((r) => r.redisCpuUsPerJob)),
      failed: list.reduce((sum, r) => sum + r.failed, 0),
    });
    const measured = { baseline: summary(runs.baseline), crawlfleet: summary(runs.crawlfleet) };
    const roundRatios = runs.crawlfleet.map(
      (run, i) => run.jobsPerSecond / (runs.baseline[i]?.jobsPerSecond ?? Number.NaN),
    );
    const smallJobs = Math.max(1, Math.round(monitorJobs / 3));
    if (options.monitor !== false)
      progress(`Redis commands per job: ${smallJobs} and ${monitorJobs} jobs per side under MONITOR...`);
    const monitored = async (name: FleetSideName): Promise<CommandCount> => {
      if (options.monitor === false || !sides.includes(name)) return { perJob: 0, wholeRun: 0, breakdown: [] };
      return countCommands(bench, name, () => workload, { small: smallJobs, large: monitorJobs });
    };
    const counted = { baseline: await monitored('baseline'), crawlfleet: await monitored('crawlfleet') };

    const side = (name: FleetSideName): FleetSide => ({
      ...measured[name],
      rssMb: round1(measured[name].rssMb),
      workerCpuMsPerJob: round2(measured[name].workerCpuMsPerJob),
      redisCpuUsPerJob: Math.round(measured[name].redisCpuUsPerJob),
      commandsPerJob: round2(counted[name].perJob),
      commandsPerJobWholeRun: round2(counted[name].wholeRun),
      breakdown: counted[name].breakdown,
    });
    const baseline = side('baseline');
    const crawlfleet = side('crawlfleet');
    return {
      jobs,
      warmupJobs,
      concurrency: workload.concurrency,
      sessions,
      monitorJobs,
      monitorSmallJobs: smallJobs,
      baseline,
      crawlfleet,
      ratio: median(roundRatios),
      roundRatios: roundRatios.map(round2),
      p99AddedLatencyMs: crawlfleet.p99Ms - baseline.p99Ms,
    };
  } finally {
    await bench.close();
  }
}
