import { startForwardProxy } from '../forward-proxy.js';
import { median, openBench, round2, runSide, type Workload } from './fleet.js';

export interface ProxiedBenchOptions {
  jobs: number;
  warmupJobs: number;
  rounds: number;
  concurrency: number;
  progress: (message: string) => void;
}

export interface ProxiedBenchResult {
  jobs: number;
  rounds: number;
  sessions: number;
  concurrency: number;
  baselineJobsPerSecond: number;
  crawlfleetJobsPerSecond: number;
  /** Median of the rounds' crawlfleet/bare ratios. */
  ratio: number;
  roundRatios: number[];
  /** Requests the proxy forwarded, against the pages both sides fetched: nothing went direct. */
  forwarded: number;
  expected: number;
  failed: number;
}

/**
 * Both sides through one forward proxy on loopback (proxy-chain): the bare worker with the same
 * proxy agent crawlfleet uses, crawlfleet with the tenant's `proxy.urls`, its jobs spread over 100
 * sessions that their first jobs create (each bound to the proxy in its profile).
 */
export async function benchProxied(options: ProxiedBenchOptions): Promise<ProxiedBenchResult> {
  const proxy = await startForwardProxy();
  const workload: Workload = {
    sessions: 100,
    freshSessions: true,
    concurrency: options.concurrency,
    page: (job) => `/ok/${job.id}`,
  };
  const bench = await openBench({
    retain: options.warmupJobs + options.jobs,
    progress: options.progress,
    proxyUrl: proxy.url,
  });
  try {
    const ratios: number[] = [];
    const sides = { baseline: [] as number[], crawlfleet: [] as number[] };
    let failed = 0;
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? (['baseline', 'crawlfleet'] as const) : (['crawlfleet', 'baseline'] as const);
      const perSide: Record<string, number> = {};
      for (const side of order) {
        const run = await runSide(bench, side, workload, { jobs: options.jobs, warmupJobs: options.warmupJobs });
        perSide[side] = run.jobsPerSecond;
        sides[side].push(run.jobsPerSecond);
        failed += run.failed;
      }
      ratios.push(round2((perSide.crawlfleet ?? 0) / (perSide.baseline ?? 1)));
    }
    const pages = 2 * options.rounds * (options.warmupJobs + options.jobs);
    return {
      jobs: options.jobs,
      rounds: options.rounds,
      sessions: workload.sessions,
      concurrency: options.concurrency,
      baselineJobsPerSecond: Math.round(median(sides.baseline)),
      crawlfleetJobsPerSecond: Math.round(median(sides.crawlfleet)),
      ratio: median(ratios),
      roundRatios: ratios,
      forwarded: proxy.forwarded.filter((url) => url.includes('/ok/')).length,
      expected: pages,
      failed,
    };
  } finally {
    await bench.close();
    await proxy.stop();
  }
}
