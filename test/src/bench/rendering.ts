import { fileURLToPath } from 'node:url';
import { chromiumPath } from '@crawlfleet/browser';
import { keyLayout, RENDER_QUEUE } from '@crawlfleet/core';
import { Queue } from 'bullmq';
import { cleanupPrefix } from '../harness.js';
import { chromiumFlags, flagDifferences } from './chromium-flags.js';
import {
  type Bench,
  enqueueBaseline,
  enqueueCrawlfleet,
  type FleetSideName,
  type JobBatch,
  jobTimes,
  median,
  openBench,
  round1,
  round2,
  startWorker,
  type Workload,
  waitUntilFinished,
} from './fleet.js';
import { type MemoryPeaks, MemorySampler } from './memory-sampler.js';
import { checkRenderState, renderWorkload } from './render-workload.js';
import { processCpuMs, processTreeCpuMs, startChild, type WorkerChild } from './worker-process.js';
import type { CheckOutcome } from './workloads.js';

const BARE_BROWSER_WORKER_PATH = fileURLToPath(new URL('./bare-browser-worker.js', import.meta.url));

/** How often each worker's memory is read while it runs. */
const SAMPLE_EVERY_MS = 250;

export interface RenderingBenchOptions {
  /** Pages each measured run renders. */
  pages: number;
  /** Pages each worker renders first, not measured (Chromium's first contexts, the sessions' first state). */
  warmupPages: number;
  rounds: number;
  /** Contexts each worker renders in at once (`crawlfleet worker --browsers N`; the bare worker's concurrency). */
  contexts: number;
  /** Sessions the crawlfleet pages are spread over. */
  sessions: number;
  progress: (message: string) => void;
}

/** One side's figures: throughput and times are medians over the rounds, memory the most of any round. */
export interface RenderingSide {
  /** Measured pages over the time from the first one's start to the last one's finish (BullMQ's stamps). */
  pagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Peak RSS of the worker process (VmHWM). */
  workerRssMb: number;
  /** Peak PSS of its Chromium processes, sampled. */
  chromiumMb: number;
  /** Peak of the worker's RSS plus Chromium's PSS at one sample: what the worker takes of the machine. */
  totalMb: number;
  /** CPU time of the worker's node process per measured page (Chromium's processes not included). */
  workerCpuMsPerPage: number;
  /** CPU time of the worker and every Chromium process under it per measured page. */
  cpuMsPerPage: number;
  /** Pages that ended failed (crawlfleet: dead-lettered), over the rounds. */
  failed: number;
}

export interface RenderingBenchResult {
  pages: number;
  warmupPages: number;
  rounds: number;
  contexts: number;
  sessions: number;
  sampleEveryMs: number;
  baseline: RenderingSide;
  crawlfleet: RenderingSide;
  /** Median of the rounds' crawlfleet/bare pages/s ratios. */
  ratio: number;
  roundRatios: number[];
  /** The state the crawlfleet runs left in their sessions: the round that found least. */
  check: CheckOutcome;
  /** Flags only one side's Chromium ran with (empty: the same command line). */
  flagDifferences: string[];
}

/** What one run of one side gave. */
interface RenderRun {
  pagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  peaks: MemoryPeaks;
  workerCpuMsPerPage: number;
  cpuMsPerPage: number;
  failed: number;
  flags: string[] | undefined;
  check?: CheckOutcome;
}

/**
 * Render jobs: a `crawlfleet worker --browsers N` process against a bare BullMQ worker process
 * rendering the same pages in the same Chromium with the same launch flags, one fresh context per
 * page on both sides, N at once, in rounds whose first side alternates, each run in a fresh worker
 * warmed up first. The crawlfleet pages are render jobs of sessions in use whose every page's
 * script changes the session's cookies or localStorage, so the ratio is what crawlfleet's session
 * sync (in and out), egress guard, robots checks and result path cost around the browser's own
 * work. Memory is sampled from outside each worker (its RSS and its Chromium's PSS).
 */
export async function benchRendering(options: RenderingBenchOptions): Promise<RenderingBenchResult> {
  const workload = renderWorkload(options.sessions, options.contexts);
  const bench = await openBench({ retain: options.warmupPages + options.pages, progress: options.progress });
  try {
    const runs: Record<FleetSideName, RenderRun[]> = { baseline: [], crawlfleet: [] };
    const ratios: number[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? (['baseline', 'crawlfleet'] as const) : (['crawlfleet', 'baseline'] as const);
      for (const side of order) runs[side].push(await runRender(bench, side, workload, options));
      ratios.push(
        round2((runs.crawlfleet[round]?.pagesPerSecond ?? 0) / (runs.baseline[round]?.pagesPerSecond ?? Number.NaN)),
      );
    }
    const summary = (list: RenderRun[]): RenderingSide => ({
      pagesPerSecond: round1(median(list.map((r) => r.pagesPerSecond))),
      p50Ms: Math.round(median(list.map((r) => r.p50Ms))),
      p99Ms: Math.round(median(list.map((r) => r.p99Ms))),
      workerRssMb: round1(Math.max(0, ...list.map((r) => r.peaks.workerRssMb))),
      chromiumMb: round1(Math.max(0, ...list.map((r) => r.peaks.chromiumMb))),
      totalMb: round1(Math.max(0, ...list.map((r) => r.peaks.totalMb))),
      workerCpuMsPerPage: round2(median(list.map((r) => r.workerCpuMsPerPage))),
      cpuMsPerPage: Math.round(median(list.map((r) => r.cpuMsPerPage))),
      failed: list.reduce((sum, r) => sum + r.failed, 0),
    });
    const checks = runs.crawlfleet.flatMap((r) => (r.check === undefined ? [] : [r.check]));
    const worst = checks.reduce((least, check) =>
      check.error !== undefined || check.found < least.found ? check : least,
    );
    return {
      pages: options.pages,
      warmupPages: options.warmupPages,
      rounds: options.rounds,
      contexts: options.contexts,
      sessions: options.sessions,
      sampleEveryMs: SAMPLE_EVERY_MS,
      baseline: summary(runs.baseline),
      crawlfleet: summary(runs.crawlfleet),
      ratio: round2(median(ratios)),
      roundRatios: ratios,
      check: worst,
      flagDifferences: compareFlags(runs.baseline[0]?.flags, runs.crawlfleet[0]?.flags),
    };
  } finally {
    await bench.close();
  }
}

/** The two sides' Chromium flags compared; a side whose Chromium was not found says so. */
function compareFlags(bare: string[] | undefined, crawlfleet: string[] | undefined): string[] {
  if (bare === undefined || crawlfleet === undefined)
    return [`no Chromium command line found under the ${bare === undefined ? 'bare' : 'crawlfleet'} worker`];
  return flagDifferences(bare, crawlfleet);
}

/** A side's worker process: the bare browser worker, or `crawlfleet worker --browsers N` as the CLI starts it. */
function startRenderWorker(bench: Bench, side: FleetSideName, workload: Workload, prefix: string): WorkerChild {
  const keys = keyLayout(prefix);
  if (side === 'crawlfleet')
    return startWorker(bench, side, workload, keys, ['--browsers', String(workload.concurrency)]);
  return startChild([BARE_BROWSER_WORKER_PATH], {
    REDIS_URL: bench.serverUrl,
    BENCH_PREFIX: keys.bullPrefix,
    BENCH_QUEUE: RENDER_QUEUE,
    BENCH_CONCURRENCY: String(workload.concurrency),
    // The binary crawlfleet's worker resolves (CRAWLFLEET_CHROMIUM, else /usr/bin/chromium).
    BENCH_CHROMIUM: chromiumPath(),
  });
}

/**
 * One run of one side on a prefix of its own: a fresh worker, its warm-up pages, then the measured
 * ones, enqueued while the queue is paused so they start together on a warm worker. Its memory is
 * sampled from the worker's start to its last page.
 */
async function runRender(
  bench: Bench,
  side: FleetSideName,
  workload: Workload,
  options: RenderingBenchOptions,
): Promise<RenderRun> {
  const run = ++bench.runs;
  bench.site.resetHits();
  const prefix = `render-${run}`;
  const keys = keyLayout(prefix);
  const tag = `r${run}`;
  const queue = new Queue(RENDER_QUEUE, { connection: bench.control, prefix: keys.bullPrefix });
  await queue.pause();
  const enqueue = (batch: JobBatch) =>
    side === 'baseline'
      ? enqueueBaseline(bench, keys, workload, batch)
      : enqueueCrawlfleet(bench, keys, workload, batch);
  // Bounded: a page takes well under a second even on a busy machine.
  const timeoutMs = 60_000 + 1_000 * (options.warmupPages + options.pages);
  if (options.warmupPages > 0) await enqueue({ jobs: options.warmupPages, tag: `${tag}w`, warmup: true, render: true });
  const child = startRenderWorker(bench, side, workload, prefix);
  const sampler = MemorySampler.start(child.pid, SAMPLE_EVERY_MS);
  let ids: string[];
  let peaks: MemoryPeaks;
  let failed: number;
  let workerCpuMs: number;
  let cpuMs: number;
  let flags: string[] | undefined;
  try {
    await child.printed(side === 'baseline' ? 'ready' : '"worker started"', 60_000);
    if (options.warmupPages > 0) {
      await queue.resume();
      await waitUntilFinished(bench, keys, child, { jobs: options.warmupPages, side, queue: RENDER_QUEUE, timeoutMs });
      await queue.pause();
    }
    flags = chromiumFlags(child.pid);
    ids = await enqueue({ jobs: options.pages, tag, warmup: false, render: true });
    const workerCpuBefore = processCpuMs(child.pid);
    const cpuBefore = processTreeCpuMs(child.pid);
    await queue.resume();
    ({ failed } = await waitUntilFinished(bench, keys, child, {
      jobs: options.warmupPages + options.pages,
      side,
      queue: RENDER_QUEUE,
      timeoutMs,
    }));
    peaks = sampler.stop();
    workerCpuMs = processCpuMs(child.pid) - workerCpuBefore;
    cpuMs = processTreeCpuMs(child.pid) - cpuBefore;
  } finally {
    sampler.close();
    await child.stop();
    await queue.close();
  }
  const times = await jobTimes(bench, keys, ids, RENDER_QUEUE);
  const check =
    side === 'crawlfleet' ? await checkRenderState(bench, keys, workload, { tag, pages: options.pages }) : undefined;
  await cleanupPrefix(bench.control, prefix);
  bench.progress(
    `  ${side}: ${round1(times.jobsPerSecond)} pages/s, p99 ${times.p99Ms} ms, worker RSS ${Math.round(peaks.workerRssMb)} MB, Chromium ${Math.round(peaks.chromiumMb)} MB, together ${Math.round(peaks.totalMb)} MB (${peaks.samples} samples), CPU ${Math.round(cpuMs / options.pages)} ms/page with Chromium (worker ${round2(workerCpuMs / options.pages)})${failed > 0 ? `, ${failed} FAILED` : ''}${check === undefined ? '' : `, ${check.what} ${check.found}/${check.expected}${check.error ? ` (${check.error})` : ''}`}`,
  );
  return {
    pagesPerSecond: times.jobsPerSecond,
    p50Ms: times.p50Ms,
    p99Ms: times.p99Ms,
    peaks,
    workerCpuMsPerPage: workerCpuMs / options.pages,
    cpuMsPerPage: cpuMs / options.pages,
    failed,
    flags,
    ...(check === undefined ? {} : { check }),
  };
}
