import { type CrawleeRun, runCrawlee } from './crawlee-side.js';
import {
  type Bench,
  type CommandCount,
  countCommands,
  type FleetSideName,
  median,
  openBench,
  round1,
  round2,
  runSide,
  type SideRun,
  type Workload,
} from './fleet.js';
import {
  type CheckOutcome,
  COMMANDS_PER_JOB_TARGET,
  CRAWLEE_RATIO_TARGET,
  MATRIX_CONCURRENCY,
  type MatrixWorkload,
} from './workloads.js';

export interface MatrixOptions {
  workloads: readonly MatrixWorkload[];
  /** Measured jobs per run, every side. Default 4000. */
  jobs?: number;
  /** Jobs each process runs before its measured jobs (see `FleetBenchOptions.warmupJobs`). Default 1000. */
  warmupJobs?: number;
  /** Rounds per workload, the sides taking turns to go first. Default 5. */
  rounds?: number;
  /**
   * Jobs of the larger crawlfleet run under MONITOR for a workload whose sessions are new; the
   * smaller has half. Such a run gets sessions in proportion to its jobs (as many jobs per
   * session as a measured run, so as many session creations per job), and at the default,
   * `jobs`, the smaller run still has as many sessions as jobs run at once, so no more jobs race
   * on one session than in a measured run (fewer jobs would count conflicts a measured run does
   * not have). Other workloads create no session per job: their larger run has at most
   * `STEADY_MONITOR_JOBS`.
   */
  monitorJobs?: number;
  progress?: (message: string) => void;
}

/** Crawlee's HttpCrawler on a workload's pages, each figure the median over the rounds. */
export interface CrawleeSummary {
  pagesPerSecond: number;
  rssMb: number;
  cpuMsPerPage: number;
  /** Over all rounds. */
  failed: number;
  /** crawlfleet jobs/s over Crawlee pages/s in the same round: the median over the rounds. */
  ratio: number;
  roundRatios: number[];
  /**
   * The bare worker's jobs/s over Crawlee's pages/s in the same rounds (median): how far the
   * target is from what a worker that keeps no session does on this machine.
   */
  baselineRatio: number;
  target: number;
  pass: boolean;
}

export interface WorkloadResult {
  name: string;
  sessions: number;
  concurrency: number;
  /** Least ratio that passes; undefined: informational. */
  target: number | undefined;
  baselineJobsPerSecond: number;
  crawlfleetJobsPerSecond: number;
  baselineP99Ms: number;
  crawlfleetP99Ms: number;
  /** crawlfleet jobs/s over baseline jobs/s in the same round: the median over the rounds. */
  ratio: number;
  roundRatios: number[];
  /** Peak RSS of the crawlfleet worker over the rounds. */
  rssMb: number;
  workerCpuMsPerJob: number;
  baselineWorkerCpuMsPerJob: number;
  /** redis-server's CPU per job while each side ran: the median over the rounds. */
  redisCpuUsPerJob: { baseline: number; crawlfleet: number };
  /** crawlfleet's Redis commands per job on the hot path (see `countCommands`). */
  commandsPerJob: number;
  commandsPerJobWholeRun: number;
  breakdown: Array<[string, number]>;
  /** Jobs of the larger and the smaller monitored run the commands per job come from. */
  monitorJobs: number;
  monitorSmallJobs: number;
  /** Jobs that ended failed, both sides, all rounds. */
  failedJobs: number;
  /** The workload's check of its runs' state: the run that found fewest. */
  check?: CheckOutcome;
  crawlee?: CrawleeSummary;
  /** What missed a target or went wrong, in words; empty when the workload passed. */
  misses: string[];
  pass: boolean;
}

export interface MatrixResult {
  jobs: number;
  warmupJobs: number;
  rounds: number;
  concurrency: number;
  /** The larger monitored run of a workload whose sessions are new (see `MatrixOptions.monitorJobs`). */
  monitorJobs: number;
  workloads: WorkloadResult[];
}

type MatrixSide = FleetSideName | 'crawlee';

/** The matrix's size when its options leave it out (`npm run bench` takes its knobs' defaults from here). */
export const MATRIX_DEFAULTS = { jobs: 4_000, warmupJobs: 1_000, rounds: 5 } as const;

/** Jobs of the larger MONITOR run of a workload whose sessions are not new: a per-job count needs no more. */
const STEADY_MONITOR_JOBS = 1_000;

/** The rounds' order of the sides: each goes first in turn. */
function rotated<T>(list: readonly T[], by: number): T[] {
  const shift = by % list.length;
  return [...list.slice(shift), ...list.slice(0, shift)];
}

/**
 * The same sessions per job at any size: a workload whose sessions are new gets sessions in
 * proportion to the jobs of a run, at least one and at most its own.
 */
function scaledTo(workload: Workload, jobs: number, measuredJobs: number): Workload {
  if (!workload.freshSessions) return workload;
  const sessions = Math.min(workload.sessions, Math.max(1, Math.round((jobs * workload.sessions) / measuredJobs)));
  return { ...workload, sessions };
}

async function measureWorkload(
  bench: Bench,
  workload: MatrixWorkload,
  sizes: { jobs: number; warmupJobs: number; rounds: number; monitorJobs: number },
): Promise<WorkloadResult> {
  const { jobs, warmupJobs } = sizes;
  const monitorJobs = workload.freshSessions ? sizes.monitorJobs : Math.min(sizes.monitorJobs, STEADY_MONITOR_JOBS);
  const monitorSmallJobs = Math.round(monitorJobs / 2);
  const sides: MatrixSide[] = workload.crawlee ? ['baseline', 'crawlfleet', 'crawlee'] : ['baseline', 'crawlfleet'];
  const runs: Record<FleetSideName, SideRun[]> = { baseline: [], crawlfleet: [] };
  const crawleeRuns: CrawleeRun[] = [];
  const checks: CheckOutcome[] = [];
  const check = workload.check;
  for (let round = 0; round < sizes.rounds; round++) {
    for (const side of rotated(sides, round)) {
      if (side === 'crawlee') crawleeRuns.push(await runCrawlee(bench, workload, { jobs, warmupJobs }));
      else
        runs[side].push(
          await runSide(bench, side, workload, {
            jobs,
            warmupJobs,
            afterRun:
              side === 'crawlfleet' && check !== undefined
                ? async (keys) => {
                    const outcome = await check(bench, keys);
                    bench.progress(
                      `  ${outcome.what}: ${outcome.found}/${outcome.expected}${outcome.error ? ` (${outcome.error})` : ''}`,
                    );
                    checks.push(outcome);
                  }
                : undefined,
          }),
        );
    }
  }
  bench.progress(`  Redis commands per job: ${monitorSmallJobs} and ${monitorJobs} crawlfleet jobs under MONITOR...`);
  const counted: CommandCount = await countCommands(bench, 'crawlfleet', (count) => scaledTo(workload, count, jobs), {
    small: monitorSmallJobs,
    large: monitorJobs,
  });

  const roundRatios = runs.crawlfleet.map(
    (run, i) => run.jobsPerSecond / (runs.baseline[i]?.jobsPerSecond ?? Number.NaN),
  );
  const ratio = median(roundRatios);
  const misses: string[] = [];
  if (workload.target !== undefined && !(ratio >= workload.target)) misses.push(`ratio < ${workload.target}`);
  if (!(counted.perJob <= COMMANDS_PER_JOB_TARGET)) misses.push(`cmds/job > ${COMMANDS_PER_JOB_TARGET}`);
  const failedJobs = [...runs.baseline, ...runs.crawlfleet].reduce((sum, run) => sum + run.failed, 0);
  if (failedJobs > 0) misses.push(`${failedJobs} jobs failed`);
  // The run that found fewest speaks for the workload; a check that could not run fails it.
  const worst = checks.reduce<CheckOutcome | undefined>(
    (fewest, outcome) => (fewest === undefined || outcome.found < fewest.found ? outcome : fewest),
    undefined,
  );
  if (worst !== undefined && (worst.error !== undefined || worst.found < worst.expected))
    misses.push(worst.error === undefined ? `${worst.expected - worst.found} ${worst.what} lost` : worst.error);

  let crawlee: CrawleeSummary | undefined;
  if (crawleeRuns.length > 0) {
    /** A side's jobs/s over Crawlee's pages/s, round by round. */
    const overCrawlee = (side: FleetSideName) =>
      runs[side].map((run, i) => run.jobsPerSecond / (crawleeRuns[i]?.pagesPerSecond ?? Number.NaN));
    const crawleeRatios = overCrawlee('crawlfleet');
    const crawleeRatio = median(crawleeRatios);
    crawlee = {
      pagesPerSecond: median(crawleeRuns.map((r) => r.pagesPerSecond)),
      rssMb: round1(Math.max(...crawleeRuns.map((r) => r.rssMb))),
      cpuMsPerPage: round2(median(crawleeRuns.map((r) => r.cpuMsPerPage))),
      failed: crawleeRuns.reduce((sum, r) => sum + r.failed, 0),
      ratio: crawleeRatio,
      roundRatios: crawleeRatios.map(round2),
      baselineRatio: round2(median(overCrawlee('baseline'))),
      target: CRAWLEE_RATIO_TARGET,
      pass: crawleeRatio >= CRAWLEE_RATIO_TARGET,
    };
  }

  return {
    name: workload.name,
    sessions: workload.sessions,
    concurrency: workload.concurrency,
    target: workload.target,
    baselineJobsPerSecond: median(runs.baseline.map((r) => r.jobsPerSecond)),
    crawlfleetJobsPerSecond: median(runs.crawlfleet.map((r) => r.jobsPerSecond)),
    baselineP99Ms: median(runs.baseline.map((r) => r.p99Ms)),
    crawlfleetP99Ms: median(runs.crawlfleet.map((r) => r.p99Ms)),
    ratio,
    roundRatios: roundRatios.map(round2),
    rssMb: round1(Math.max(0, ...runs.crawlfleet.map((r) => r.rssMb))),
    workerCpuMsPerJob: round2(median(runs.crawlfleet.map((r) => r.workerCpuMsPerJob))),
    baselineWorkerCpuMsPerJob: round2(median(runs.baseline.map((r) => r.workerCpuMsPerJob))),
    redisCpuUsPerJob: {
      baseline: Math.round(median(runs.baseline.map((r) => r.redisCpuUsPerJob))),
      crawlfleet: Math.round(median(runs.crawlfleet.map((r) => r.redisCpuUsPerJob))),
    },
    commandsPerJob: round2(counted.perJob),
    commandsPerJobWholeRun: round2(counted.wholeRun),
    breakdown: counted.breakdown,
    monitorJobs,
    monitorSmallJobs,
    failedJobs,
    ...(worst === undefined ? {} : { check: worst }),
    ...(crawlee === undefined ? {} : { crawlee }),
    misses,
    pass: misses.length === 0,
  };
}

/** A workload whose runs threw: no figures, and it fails. */
function brokenWorkload(workload: MatrixWorkload, error: unknown): WorkloadResult {
  const message = error instanceof Error ? error.message : String(error);
  return {
    name: workload.name,
    sessions: workload.sessions,
    concurrency: workload.concurrency,
    target: workload.target,
    baselineJobsPerSecond: Number.NaN,
    crawlfleetJobsPerSecond: Number.NaN,
    baselineP99Ms: Number.NaN,
    crawlfleetP99Ms: Number.NaN,
    ratio: Number.NaN,
    roundRatios: [],
    rssMb: Number.NaN,
    workerCpuMsPerJob: Number.NaN,
    baselineWorkerCpuMsPerJob: Number.NaN,
    redisCpuUsPerJob: { baseline: Number.NaN, crawlfleet: Number.NaN },
    commandsPerJob: Number.NaN,
    commandsPerJobWholeRun: Number.NaN,
    breakdown: [],
    monitorJobs: 0,
    monitorSmallJobs: 0,
    failedJobs: 0,
    misses: [`did not run to the end: ${message.split('\n')[0]?.slice(0, 200)}`],
    pass: false,
  };
}

/**
 * The fleet matrix: each workload (no session, new sessions, cookies unchanged or changing on
 * every response, many sessions, one hot session) measured against the bare worker in the same
 * rounds, both sides fetching the same pages, each run a fresh worker process after its own
 * warm-up; then crawlfleet's Redis commands per job under MONITOR. A workload that breaks is
 * reported as failed and the matrix goes on.
 */
export async function benchMatrix(options: MatrixOptions): Promise<MatrixResult> {
  const jobs = options.jobs ?? MATRIX_DEFAULTS.jobs;
  const warmupJobs = options.warmupJobs ?? MATRIX_DEFAULTS.warmupJobs;
  const rounds = Math.max(1, options.rounds ?? MATRIX_DEFAULTS.rounds);
  const monitorJobs = Math.max(2, options.monitorJobs ?? jobs);
  const progress = options.progress ?? (() => undefined);
  const bench = await openBench({ retain: Math.max(warmupJobs + jobs, monitorJobs), progress });
  const results: WorkloadResult[] = [];
  try {
    for (const workload of options.workloads) {
      progress(
        `\n${workload.name}: ${workload.sessions === 0 ? 'no session' : `${workload.sessions} ${workload.freshSessions ? 'new ' : ''}session(s)`}, concurrency ${workload.concurrency}, ${rounds} round(s)${workload.crawlee ? ', Crawlee as a third side' : ''}...`,
      );
      try {
        results.push(await measureWorkload(bench, workload, { jobs, warmupJobs, rounds, monitorJobs }));
      } catch (error) {
        progress(`  ${workload.name} broke: ${error instanceof Error ? error.message : String(error)}`);
        results.push(brokenWorkload(workload, error));
        await bench.control.flushall();
      }
    }
  } finally {
    await bench.close();
  }
  return {
    jobs,
    warmupJobs,
    rounds,
    concurrency: MATRIX_CONCURRENCY,
    monitorJobs,
    workloads: results,
  };
}
