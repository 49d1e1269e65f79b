import { join } from 'node:path';
import { type Bench, median, openBench, round1, round2, runSide, type Workload } from './fleet.js';

/** The size of every page of this part: a large page, as news and shop pages are. */
export const BODY_BYTES = 100 * 1024;

export interface BodiesBenchOptions {
  jobs: number;
  warmupJobs: number;
  rounds: number;
  concurrency: number;
  progress: (message: string) => void;
}

/** One side of the large-bodies part: medians over the rounds. */
export interface BodiesSide {
  jobsPerSecond: number;
  rssMb: number;
  /** redis-server's `used_memory` once the measured jobs are done, before Redis is cleared. */
  redisMb: number;
  workerCpuMsPerJob: number;
  failed: number;
}

export interface BodiesBenchResult {
  jobs: number;
  concurrency: number;
  rounds: number;
  bodyBytes: number;
  baseline: BodiesSide;
  /** Every body inline in the outbox (no body store). */
  inline: BodiesSide;
  /** Bodies above `results.inlineBodyBytes` (16 KiB) in a `file:` body store. */
  stored: BodiesSide;
}

/** Each page is 100 KB of text, started by the job's id so no two bodies are the same object. */
const largePage: Workload = {
  sessions: 0,
  freshSessions: false,
  concurrency: 50,
  page: (job) => `/huge?bytes=${BODY_BYTES}&text=1&stamp=${job.id}`,
};

async function usedMemoryMb(bench: Bench): Promise<number> {
  const info = await bench.control.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN) / (1024 * 1024);
}

type Mode = 'baseline' | 'inline' | 'stored';

/**
 * Results with 100 KB bodies: the bare worker, crawlfleet with every body inline in the outbox,
 * and crawlfleet with a `file:` body store. Worker RSS and Redis memory are what this measures:
 * inline, the outbox holds every body in Redis until a sink takes it (none runs here, as when
 * sinks fall behind); with the body store, Redis holds references.
 */
export async function benchBodies(options: BodiesBenchOptions): Promise<BodiesBenchResult> {
  const retain = options.warmupJobs + options.jobs;
  const workload = { ...largePage, concurrency: options.concurrency };
  const plain = await openBench({ retain, progress: options.progress });
  let withStore: Bench | undefined;
  try {
    withStore = await openBench({
      retain,
      progress: options.progress,
      results: { bodyStore: `file:${join(plain.dir, 'bodies')}`, inlineBodyBytes: 16 * 1024 },
    });
    const runs: Record<Mode, BodiesSide[]> = { baseline: [], inline: [], stored: [] };
    const modes: Mode[] = ['baseline', 'inline', 'stored'];
    for (let round = 0; round < options.rounds; round++) {
      // The sides take turns to go first.
      const order = round % 2 === 0 ? modes : [...modes].reverse();
      for (const mode of order) {
        const bench = mode === 'stored' ? withStore : plain;
        let redisMb = Number.NaN;
        const run = await runSide(bench, mode === 'baseline' ? 'baseline' : 'crawlfleet', workload, {
          jobs: options.jobs,
          warmupJobs: options.warmupJobs,
          afterRun: async () => {
            redisMb = await usedMemoryMb(bench);
          },
        });
        runs[mode].push({
          jobsPerSecond: run.jobsPerSecond,
          rssMb: run.rssMb,
          redisMb,
          workerCpuMsPerJob: run.workerCpuMsPerJob,
          failed: run.failed,
        });
      }
    }
    const summary = (sides: BodiesSide[]): BodiesSide => ({
      jobsPerSecond: Math.round(median(sides.map((s) => s.jobsPerSecond))),
      rssMb: round1(median(sides.map((s) => s.rssMb))),
      redisMb: round1(median(sides.map((s) => s.redisMb))),
      workerCpuMsPerJob: round2(median(sides.map((s) => s.workerCpuMsPerJob))),
      failed: Math.max(...sides.map((s) => s.failed)),
    });
    return {
      jobs: options.jobs,
      concurrency: options.concurrency,
      rounds: options.rounds,
      bodyBytes: BODY_BYTES,
      baseline: summary(runs.baseline),
      inline: summary(runs.inline),
      stored: summary(runs.stored),
    };
  } finally {
    await withStore?.close();
    await plain.close();
  }
}
