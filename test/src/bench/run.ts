#!/usr/bin/env node
/**
 * `npm run bench`: benchmarks that report against a baseline measured in the same run, on a
 * private redis-server and loopback only. Prints tables, then one JSON line.
 *
 * Parts, in order: the session hydrate+commit micro-benchmark; logging and metrics on and off;
 * the fleet headline (bare BullMQ worker vs `crawlfleet worker` at concurrency 100, the RSS
 * figure); the fleet matrix (one workload per row, each against the bare worker in the same
 * rounds, at concurrency 50), with Crawlee's HttpCrawler as a third side on the changing-cookie
 * pages; then results with 100 KB bodies, every body inline in the outbox and with a body store;
 * through a forward proxy; link following; render jobs (a browser worker at 4 contexts against a
 * bare BullMQ worker rendering the same pages in the same Chromium).
 *
 * Knobs (environment, whole numbers unless said):
 * - CRAWLFLEET_BENCH_JOBS: jobs per micro-benchmark scenario (2000).
 * - CRAWLFLEET_BENCH_FLEET_JOBS, CRAWLFLEET_BENCH_WARMUP_JOBS, CRAWLFLEET_BENCH_MONITOR_JOBS: the
 *   headline's measured jobs (8000), warm-up jobs per run (2000), jobs of its larger MONITOR run (600).
 * - CRAWLFLEET_BENCH_PAGE: the page the headline's jobs fetch, the job id appended (`/ok/`);
 *   CRAWLFLEET_BENCH_FRESH_SESSIONS=1: its measured jobs go to sessions their first jobs create.
 * - CRAWLFLEET_BENCH_WORKLOADS=name,name: the matrix workloads to run (all; see workloads.ts).
 * - CRAWLFLEET_BENCH_ROUNDS: the matrix's rounds (5); CRAWLFLEET_BENCH_MATRIX_JOBS: its measured
 *   jobs per run (4000); CRAWLFLEET_BENCH_MATRIX_WARMUP_JOBS: its warm-up jobs per run (1000);
 *   CRAWLFLEET_BENCH_MATRIX_MONITOR_JOBS: its larger MONITOR run for workloads whose sessions are
 *   new (the measured jobs; the others at most 1000, see matrix.ts).
 * - CRAWLFLEET_BENCH_BODY_JOBS: jobs per run of the 100 KB bodies part (2000; 0 skips it);
 *   CRAWLFLEET_BENCH_BODY_ROUNDS: its rounds (2).
 * - CRAWLFLEET_BENCH_PROXY_JOBS: jobs per run through a local forward proxy (2000; 0 skips it);
 *   CRAWLFLEET_BENCH_PROXY_ROUNDS: its rounds (3).
 * - CRAWLFLEET_BENCH_FOLLOW_PAGES: pages per run of the link-following part (3000; 0 skips it);
 *   CRAWLFLEET_BENCH_FOLLOW_ROUNDS: its rounds (2, after a warm-up round).
 * - CRAWLFLEET_BENCH_RENDER_PAGES: pages per run of the render part (150; 0 skips it);
 *   CRAWLFLEET_BENCH_RENDER_ROUNDS: its rounds (2).
 * - CRAWLFLEET_BENCH_CLUSTER_JOBS: jobs per run of the Redis Cluster part (1 shard vs 3 shards on a
 *   3-master cluster; 6000; 0 skips it); CRAWLFLEET_BENCH_CLUSTER_ROUNDS: its rounds (2).
 * - CRAWLFLEET_BENCH_PROFILE, CRAWLFLEET_BENCH_NODE_FLAGS: see fleet.ts.
 */
import { wholeNumberSetting } from '@crawlfleet/core';
import { benchBodies } from './bodies.js';
import { benchCluster } from './cluster.js';
import { benchFleet } from './fleet.js';
import { benchFollowing } from './following.js';
import { benchMatrix, MATRIX_DEFAULTS } from './matrix.js';
import { benchObservability } from './observability.js';
import { benchProxied } from './proxied.js';
import { benchRendering } from './rendering.js';
import { benchSessions } from './sessions.js';
import { COMMANDS_PER_JOB_TARGET, selectWorkloads } from './workloads.js';

/** A knob: a whole number of at least `min`, or `fallback` when unset. */
const knob = (name: string, fallback: number, min = 1) =>
  wholeNumberSetting(name, process.env[name], { min, must: `a whole number of at least ${min}` }) ?? fallback;

// Every knob is read before anything runs, so a typo fails at once, not ten minutes in.
const jobs = knob('CRAWLFLEET_BENCH_JOBS', 2_000);
const fleetJobs = knob('CRAWLFLEET_BENCH_FLEET_JOBS', 8_000);
const warmupJobs = knob('CRAWLFLEET_BENCH_WARMUP_JOBS', 2_000, 0);
const monitorJobs = knob('CRAWLFLEET_BENCH_MONITOR_JOBS', 600, 2);
const workloads = selectWorkloads(process.env.CRAWLFLEET_BENCH_WORKLOADS);
const matrixRounds = knob('CRAWLFLEET_BENCH_ROUNDS', MATRIX_DEFAULTS.rounds);
const matrixJobs = knob('CRAWLFLEET_BENCH_MATRIX_JOBS', MATRIX_DEFAULTS.jobs);
const matrixWarmupJobs = knob('CRAWLFLEET_BENCH_MATRIX_WARMUP_JOBS', MATRIX_DEFAULTS.warmupJobs, 0);
const matrixMonitorJobs = knob('CRAWLFLEET_BENCH_MATRIX_MONITOR_JOBS', matrixJobs, 2);
const bodyJobs = knob('CRAWLFLEET_BENCH_BODY_JOBS', 2_000, 0);
const bodyRounds = knob('CRAWLFLEET_BENCH_BODY_ROUNDS', 2);
const proxyJobs = knob('CRAWLFLEET_BENCH_PROXY_JOBS', 2_000, 0);
const proxyRounds = knob('CRAWLFLEET_BENCH_PROXY_ROUNDS', 3);
const followPages = knob('CRAWLFLEET_BENCH_FOLLOW_PAGES', 3_000, 0);
const followRounds = knob('CRAWLFLEET_BENCH_FOLLOW_ROUNDS', 2);
const renderPages = knob('CRAWLFLEET_BENCH_RENDER_PAGES', 150, 0);
const renderRounds = knob('CRAWLFLEET_BENCH_RENDER_ROUNDS', 2);
const clusterJobs = knob('CRAWLFLEET_BENCH_CLUSTER_JOBS', 6_000, 0);
const clusterRounds = knob('CRAWLFLEET_BENCH_CLUSTER_ROUNDS', 2);

const verdict = (pass: boolean) => (pass ? 'PASS' : 'FAIL');
const started = Date.now();
const elapsed = () => `${Math.round((Date.now() - started) / 1000)} s`;
/** A progress line on stderr, with the time since the start, so each part's duration shows. */
const progress = (message: string) => process.stderr.write(`${message} [${elapsed()}]\n`);

process.stderr.write(`session hydrate+commit, ${jobs} jobs per scenario, private redis-server...\n`);
const result = await benchSessions(jobs);
const rows = [
  ['one Redis round trip (PING), for scale', result.rtt.p50, result.rtt.p99, 1],
  ['job with no session', result.noSession.p50, result.noSession.p99, 0],
  ['job with a session (200 sessions)', result.session.p50, result.session.p99, result.session.roundTripsPerJob],
  [`one hot session, ${result.hotSession.concurrency} jobs at once`, result.hotSession.p50, result.hotSession.p99, '-'],
];
const line = (cells: Array<string | number>) =>
  cells.map((c, i) => (i === 0 ? String(c).padEnd(44) : String(c).padStart(13))).join('');
process.stdout.write(`${line(['scenario', 'p50 µs', 'p99 µs', 'trips/job'])}\n`);
for (const row of rows) process.stdout.write(`${line(row)}\n`);
process.stderr.write(`\nlogging and metrics, ${jobs} jobs, concurrency 32, private redis-server...\n`);
const observed = await benchObservability(jobs);
process.stdout.write(
  `${line(['crawl with logs and metrics off', Math.round(observed.offJobsPerSecond), '', 'jobs/s'])}\n`,
);
process.stdout.write(
  `${line(['crawl with logs (info) and metrics on', Math.round(observed.onJobsPerSecond), '', 'jobs/s'])}\n`,
);

process.stderr.write(
  `\nfleet: bare BullMQ worker vs crawlfleet worker, ${fleetJobs} jobs after ${warmupJobs} to warm up, concurrency 100, each in its own process...\n`,
);
const fleet = await benchFleet({
  jobs: fleetJobs,
  warmupJobs,
  monitorJobs,
  page: process.env.CRAWLFLEET_BENCH_PAGE || undefined,
  freshSessions: process.env.CRAWLFLEET_BENCH_FRESH_SESSIONS === '1',
  progress,
});
const { baseline, crawlfleet } = fleet;
process.stdout.write(
  `\nfleet, ${fleet.jobs} jobs on warm workers at concurrency ${fleet.concurrency} (crawlfleet jobs over ${fleet.sessions} sessions, each with a cookie):\n`,
);
process.stdout.write(
  `${line(['worker', 'jobs/s', 'p50 ms', 'p99 ms', 'RSS MB', 'cmds/job', 'cpu ms/job', 'redis µs/job'])}\n`,
);
for (const [name, side] of [
  ['bare BullMQ worker, one got GET per job', baseline],
  ['crawlfleet worker, full path', crawlfleet],
] as const) {
  process.stdout.write(
    `${line([
      name,
      Math.round(side.jobsPerSecond),
      side.p50Ms,
      side.p99Ms,
      side.rssMb,
      side.commandsPerJob.toFixed(2),
      side.workerCpuMsPerJob.toFixed(2),
      side.redisCpuUsPerJob,
    ])}\n`,
  );
}
const ratio = Number(fleet.ratio.toFixed(3));
process.stdout.write(
  `ratio ${ratio} (median of the rounds: ${fleet.roundRatios.join(', ')}; target >= 0.85 ${verdict(ratio >= 0.85)}), p99 added ${fleet.p99AddedLatencyMs} ms, ${crawlfleet.commandsPerJob} Redis commands per job (target < 8), worker RSS ${crawlfleet.rssMb} MB at concurrency ${fleet.concurrency} (target < 200 ${verdict(crawlfleet.rssMb < 200)})\n`,
);
for (const [name, side] of [
  ['crawlfleet', crawlfleet],
  ['bare worker', baseline],
] as const) {
  process.stdout.write(`${name} Redis commands per job on the hot path (a script call is one):\n`);
  for (const [command, perJob] of side.breakdown)
    process.stdout.write(`  ${command.padEnd(42)}${perJob.toFixed(2).padStart(8)}\n`);
}
if (baseline.failed + crawlfleet.failed > 0)
  process.stderr.write(`warning: jobs failed (baseline ${baseline.failed}, crawlfleet ${crawlfleet.failed})\n`);

process.stderr.write(
  `\nfleet matrix: ${workloads.map((w) => w.name).join(', ')}; ${matrixJobs} jobs after ${matrixWarmupJobs} to warm up, ${matrixRounds} round(s), each side in its own process...\n`,
);
const matrix = await benchMatrix({
  workloads,
  jobs: matrixJobs,
  warmupJobs: matrixWarmupJobs,
  rounds: matrixRounds,
  monitorJobs: matrixMonitorJobs,
  progress,
});
process.stdout.write(
  `\nfleet matrix, ${matrix.jobs} jobs per run on warm workers at concurrency ${matrix.concurrency}, ${matrix.rounds} round(s); ratio = median of the rounds' crawlfleet/bare ratios, rounds = the least and greatest of them; cmds/job = crawlfleet's Redis commands per job (target <= ${COMMANDS_PER_JOB_TARGET}); RSS = crawlfleet worker peak:\n`,
);
/** Widths of the matrix table's columns after the first (left-aligned) one; the note runs free. */
const MATRIX_WIDTHS = [10, 13, 19, 8, 12, 10, 10, 8, 8];
const matrixLine = (cells: Array<string | number>) =>
  cells
    .map((c, i) => (i === 0 ? String(c).padEnd(21) : String(c).padStart(MATRIX_WIDTHS[i - 1] ?? 0)))
    .join('')
    .concat('\n');
process.stdout.write(
  matrixLine([
    'workload',
    'sessions',
    'bare jobs/s',
    'crawlfleet jobs/s',
    'ratio',
    'rounds',
    'target',
    'cmds/job',
    'RSS MB',
    'result',
    '  note',
  ]),
);
for (const w of matrix.workloads) {
  const note = [
    ...(w.check === undefined || w.check.error !== undefined
      ? []
      : [`${w.check.what} ${w.check.found}/${w.check.expected}`]),
    ...w.misses,
  ].join('; ');
  process.stdout.write(
    matrixLine([
      w.name,
      w.sessions === 0 ? '-' : w.sessions,
      Math.round(w.baselineJobsPerSecond),
      Math.round(w.crawlfleetJobsPerSecond),
      w.ratio.toFixed(3),
      // A workload that broke has no rounds.
      w.roundRatios.length === 0
        ? '-'
        : `${Math.min(...w.roundRatios).toFixed(2)}-${Math.max(...w.roundRatios).toFixed(2)}`,
      w.target === undefined ? '-' : `>= ${w.target}`,
      w.commandsPerJob.toFixed(2),
      w.rssMb,
      verdict(w.pass),
      `  ${note || '-'}`,
    ]),
  );
}
const crawleeRow = matrix.workloads.find((w) => w.crawlee !== undefined);
const crawlee = crawleeRow?.crawlee;
if (crawleeRow === undefined || crawlee === undefined)
  process.stdout.write('crawlee: not run (it runs with changing-cookie-100)\n');
else
  process.stdout.write(
    `crawlee HttpCrawler on the ${crawleeRow.name} pages (${crawleeRow.sessions} sessions keeping cookies, concurrency ${crawleeRow.concurrency}): ${Math.round(crawlee.pagesPerSecond)} pages/s, RSS ${crawlee.rssMb} MB, CPU ${crawlee.cpuMsPerPage} ms/page${crawlee.failed > 0 ? `, ${crawlee.failed} pages FAILED` : ''}; crawlfleet ${crawleeRow.name} jobs/s / crawlee pages/s = ${crawlee.ratio.toFixed(2)} (median of the rounds: ${crawlee.roundRatios.join(', ')}; target >= ${crawlee.target} ${verdict(crawlee.pass)}); the bare worker did ${crawlee.baselineRatio.toFixed(2)} times Crawlee in the same rounds\n`,
  );

let bodies: Awaited<ReturnType<typeof benchBodies>> | undefined;
if (bodyJobs > 0) {
  process.stderr.write(
    `\nresults with 100 KB bodies: bare worker, crawlfleet with bodies inline, crawlfleet with a file: body store; ${bodyJobs} jobs, ${bodyRounds} round(s), no sink running...\n`,
  );
  bodies = await benchBodies({ jobs: bodyJobs, warmupJobs: 200, rounds: bodyRounds, concurrency: 50, progress });
  process.stdout.write(
    `\nresults with ${bodies.bodyBytes / 1024} KB bodies, ${bodies.jobs} jobs per run at concurrency ${bodies.concurrency}, median of ${bodies.rounds} round(s); Redis MB = used_memory with the run's results still in the outbox:\n`,
  );
  process.stdout.write(`${line(['worker', 'jobs/s', 'ratio', 'RSS MB', 'Redis MB', 'cpu ms/job'])}\n`);
  for (const [name, side] of [
    ['bare BullMQ worker', bodies.baseline],
    ['crawlfleet, bodies inline in the outbox', bodies.inline],
    ['crawlfleet, bodies in a file: body store', bodies.stored],
  ] as const) {
    process.stdout.write(
      `${line([name, side.jobsPerSecond, (side.jobsPerSecond / bodies.baseline.jobsPerSecond).toFixed(3), side.rssMb, side.redisMb, side.workerCpuMsPerJob])}\n`,
    );
  }
}

let proxied: Awaited<ReturnType<typeof benchProxied>> | undefined;
if (proxyJobs > 0) {
  process.stderr.write(
    `\nthrough a forward proxy on loopback (proxy-chain): bare worker and crawlfleet (100 new sessions bound to it), ${proxyJobs} jobs, ${proxyRounds} round(s)...\n`,
  );
  proxied = await benchProxied({ jobs: proxyJobs, warmupJobs: 500, rounds: proxyRounds, concurrency: 50, progress });
  process.stdout.write(
    `\nthrough one forward proxy, ${proxied.jobs} jobs per run at concurrency ${proxied.concurrency}, ${proxied.rounds} round(s): bare worker ${proxied.baselineJobsPerSecond} jobs/s, crawlfleet (${proxied.sessions} new sessions) ${proxied.crawlfleetJobsPerSecond} jobs/s, ratio ${proxied.ratio} (rounds ${proxied.roundRatios.join(', ')}); the proxy forwarded ${proxied.forwarded} of ${proxied.expected} pages${proxied.failed > 0 ? `, ${proxied.failed} jobs FAILED` : ''}\n`,
  );
}

let following: Awaited<ReturnType<typeof benchFollowing>> | undefined;
if (followPages > 0) {
  process.stderr.write(
    `\nlink following: a crawl of ${followPages} pages whose handler parses each page, enqueues its links and pushes a record, against crawlfleet fetching the same pages as submitted URLs; ${followRounds} round(s) after a warm-up...\n`,
  );
  following = await benchFollowing({ pages: followPages, rounds: followRounds, concurrency: 50, progress });
  process.stdout.write(
    `\nlink following (handler: cheerio, enqueue, push), ${following.pages} pages at concurrency ${following.concurrency}, ${following.rounds} round(s): plain fetch ${following.plainPagesPerSecond} pages/s, following ${following.followingPagesPerSecond} pages/s, ratio ${following.ratio} (rounds ${following.roundRatios.join(', ')}); ${following.records} records for ${following.stored} pages\n`,
  );
}

let rendering: Awaited<ReturnType<typeof benchRendering>> | undefined;
if (renderPages > 0) {
  process.stderr.write(
    `\nrender jobs: bare BullMQ worker vs crawlfleet worker --browsers 4, the same pages in the same Chromium, ${renderPages} pages after 40 to warm up, ${renderRounds} round(s), each in its own process...\n`,
  );
  rendering = await benchRendering({
    pages: renderPages,
    warmupPages: 40,
    rounds: renderRounds,
    contexts: 4,
    sessions: 20,
    progress,
  });
  process.stdout.write(
    `\nrender jobs, ${rendering.pages} pages per run at ${rendering.contexts} contexts (a new context per page), ${rendering.rounds} round(s); crawlfleet's pages over ${rendering.sessions} sessions in use, each page's script setting a cookie or localStorage; pages/s medians, memory the peak of any run (Chromium's PSS sampled every ${rendering.sampleEveryMs} ms):\n`,
  );
  process.stdout.write(
    `${line(['worker', 'pages/s', 'p99 ms', 'RSS MB', 'Chromium MB', 'together MB', 'cpu ms/page'])}\n`,
  );
  for (const [name, side] of [
    ['bare BullMQ worker + playwright-core', rendering.baseline],
    ['crawlfleet worker --browsers 4', rendering.crawlfleet],
  ] as const) {
    process.stdout.write(
      `${line([name, side.pagesPerSecond, side.p99Ms, side.workerRssMb, side.chromiumMb, side.totalMb, side.cpuMsPerPage])}\n`,
    );
  }
  const { check } = rendering;
  process.stdout.write(
    `ratio ${rendering.ratio} (rounds ${rendering.roundRatios.join(', ')}); the sessions kept ${check.found}/${check.expected} ${check.what}${check.error ? ` (check failed: ${check.error})` : ''}; Chromium flags ${rendering.flagDifferences.length === 0 ? 'the same on both sides' : `DIFFER: ${rendering.flagDifferences.join(', ')}`}${rendering.baseline.failed + rendering.crawlfleet.failed > 0 ? `; pages FAILED: bare ${rendering.baseline.failed}, crawlfleet ${rendering.crawlfleet.failed}` : ''}\n`,
  );
}

let clustered: Awaited<ReturnType<typeof benchCluster>> | undefined;
if (clusterJobs > 0) {
  process.stderr.write(
    `\nRedis Cluster (3 masters, no replicas): one crawlfleet worker at concurrency 50, queue.shards 1 vs 3, ${clusterJobs} jobs per run, ${clusterRounds} round(s)...\n`,
  );
  clustered = await benchCluster({ jobs: clusterJobs, rounds: clusterRounds, concurrency: 50, progress });
  process.stdout.write(
    `\nRedis Cluster of 3 masters, ${clustered.jobs} jobs per run at concurrency ${clustered.concurrency}, ${clustered.rounds} round(s); medians; Redis CPU (ms) per 1,000 jobs on each master, busiest first:\n`,
  );
  process.stdout.write(`${line(['fleet', 'jobs/s', 'busiest', 'second', 'third'])}\n`);
  for (const [name, side] of [
    ['queue.shards 1', clustered.oneShard],
    ['queue.shards 3', clustered.threeShards],
  ] as const)
    process.stdout.write(`${line([name, side.jobsPerSecond, ...side.redisCpuMsPerThousand])}\n`);
  process.stdout.write(
    `ratio 3 shards / 1 shard ${clustered.ratio} (rounds ${clustered.roundRatios.join(', ')}): on 2 cores shared by the cluster, the worker and the site the jobs/s say little; the CPU columns show the load moving off one master\n`,
  );
}

process.stderr.write(`the bench took ${elapsed()}\n`);
process.stdout.write(
  `${JSON.stringify({
    ...(clustered === undefined
      ? {}
      : {
          cluster: {
            jobs: clustered.jobs,
            rounds: clustered.rounds,
            masters: clustered.masters,
            one_shard_jobs_per_s: clustered.oneShard.jobsPerSecond,
            three_shards_jobs_per_s: clustered.threeShards.jobsPerSecond,
            one_shard_redis_cpu_ms_per_1000_jobs: clustered.oneShard.redisCpuMsPerThousand,
            three_shards_redis_cpu_ms_per_1000_jobs: clustered.threeShards.redisCpuMsPerThousand,
            ratio: clustered.ratio,
            round_ratios: clustered.roundRatios,
          },
        }),
    baseline_jobs_per_s: Math.round(baseline.jobsPerSecond),
    crawlfleet_jobs_per_s: Math.round(crawlfleet.jobsPerSecond),
    ratio,
    p99_added_latency_ms: fleet.p99AddedLatencyMs,
    redis_commands_per_job: crawlfleet.commandsPerJob,
    worker_rss_mb: crawlfleet.rssMb,
    baseline_p50_ms: baseline.p50Ms,
    baseline_p99_ms: baseline.p99Ms,
    crawlfleet_p50_ms: crawlfleet.p50Ms,
    crawlfleet_p99_ms: crawlfleet.p99Ms,
    baseline_redis_commands_per_job: baseline.commandsPerJob,
    baseline_worker_rss_mb: baseline.rssMb,
    crawlfleet_worker_cpu_ms_per_job: crawlfleet.workerCpuMsPerJob,
    baseline_worker_cpu_ms_per_job: baseline.workerCpuMsPerJob,
    crawlfleet_redis_cpu_us_per_job: crawlfleet.redisCpuUsPerJob,
    baseline_redis_cpu_us_per_job: baseline.redisCpuUsPerJob,
    crawlfleet_redis_commands_per_job_whole_run: crawlfleet.commandsPerJobWholeRun,
    crawlfleet_redis_commands_breakdown: Object.fromEntries(crawlfleet.breakdown),
    baseline_redis_commands_breakdown: Object.fromEntries(baseline.breakdown),
    fleet_round_ratios: fleet.roundRatios,
    fleet_jobs: fleet.jobs,
    fleet_warmup_jobs: fleet.warmupJobs,
    fleet_concurrency: fleet.concurrency,
    fleet_sessions: fleet.sessions,
    fleet_failed_jobs: baseline.failed + crawlfleet.failed,
    observability_off_jobs_per_s: Math.round(observed.offJobsPerSecond),
    observability_on_jobs_per_s: Math.round(observed.onJobsPerSecond),
    observability_ratio: Number(observed.ratio.toFixed(3)),
    session_hydrate_commit_p50_us: result.session.p50,
    session_hydrate_commit_p99_us: result.session.p99,
    no_session_p50_us: result.noSession.p50,
    redis_rtt_p50_us: result.rtt.p50,
    session_cost_in_rtts: Number((result.session.p50 / Math.max(1, result.rtt.p50)).toFixed(2)),
    session_round_trips_per_job: result.session.roundTripsPerJob,
    hot_session_p99_us: result.hotSession.p99,
    hot_session_conflicts_per_job: result.hotSession.conflictsPerJob,
    worker_rss_pass: crawlfleet.rssMb < 200,
    matrix_jobs: matrix.jobs,
    matrix_warmup_jobs: matrix.warmupJobs,
    matrix_rounds: matrix.rounds,
    matrix_concurrency: matrix.concurrency,
    matrix_monitor_jobs: matrix.monitorJobs,
    matrix_pass: matrix.workloads.every((w) => w.pass) && (crawlee?.pass ?? true),
    ...(rendering === undefined
      ? {}
      : {
          rendering: {
            pages: rendering.pages,
            warmup_pages: rendering.warmupPages,
            rounds: rendering.rounds,
            contexts: rendering.contexts,
            sessions: rendering.sessions,
            baseline_pages_per_s: rendering.baseline.pagesPerSecond,
            crawlfleet_pages_per_s: rendering.crawlfleet.pagesPerSecond,
            ratio: rendering.ratio,
            round_ratios: rendering.roundRatios,
            baseline_p99_ms: rendering.baseline.p99Ms,
            crawlfleet_p99_ms: rendering.crawlfleet.p99Ms,
            baseline_worker_rss_mb: rendering.baseline.workerRssMb,
            crawlfleet_worker_rss_mb: rendering.crawlfleet.workerRssMb,
            baseline_chromium_mb: rendering.baseline.chromiumMb,
            crawlfleet_chromium_mb: rendering.crawlfleet.chromiumMb,
            baseline_total_mb: rendering.baseline.totalMb,
            crawlfleet_total_mb: rendering.crawlfleet.totalMb,
            baseline_cpu_ms_per_page: rendering.baseline.cpuMsPerPage,
            crawlfleet_cpu_ms_per_page: rendering.crawlfleet.cpuMsPerPage,
            baseline_worker_cpu_ms_per_page: rendering.baseline.workerCpuMsPerPage,
            crawlfleet_worker_cpu_ms_per_page: rendering.crawlfleet.workerCpuMsPerPage,
            check: rendering.check,
            chromium_flag_differences: rendering.flagDifferences,
            failed_pages: rendering.baseline.failed + rendering.crawlfleet.failed,
          },
        }),
    ...(following === undefined
      ? {}
      : {
          following: {
            pages: following.pages,
            rounds: following.rounds,
            plain_pages_per_s: following.plainPagesPerSecond,
            following_pages_per_s: following.followingPagesPerSecond,
            ratio: following.ratio,
            round_ratios: following.roundRatios,
            records: following.records,
            stored: following.stored,
          },
        }),
    ...(proxied === undefined
      ? {}
      : {
          proxied: {
            jobs: proxied.jobs,
            rounds: proxied.rounds,
            sessions: proxied.sessions,
            baseline_jobs_per_s: proxied.baselineJobsPerSecond,
            crawlfleet_jobs_per_s: proxied.crawlfleetJobsPerSecond,
            ratio: proxied.ratio,
            round_ratios: proxied.roundRatios,
            forwarded: proxied.forwarded,
            expected: proxied.expected,
            failed_jobs: proxied.failed,
          },
        }),
    ...(bodies === undefined
      ? {}
      : {
          bodies: {
            body_bytes: bodies.bodyBytes,
            jobs: bodies.jobs,
            rounds: bodies.rounds,
            baseline_jobs_per_s: bodies.baseline.jobsPerSecond,
            inline_jobs_per_s: bodies.inline.jobsPerSecond,
            stored_jobs_per_s: bodies.stored.jobsPerSecond,
            baseline_worker_rss_mb: bodies.baseline.rssMb,
            inline_worker_rss_mb: bodies.inline.rssMb,
            stored_worker_rss_mb: bodies.stored.rssMb,
            baseline_redis_mb: bodies.baseline.redisMb,
            inline_redis_mb: bodies.inline.redisMb,
            stored_redis_mb: bodies.stored.redisMb,
            inline_worker_cpu_ms_per_job: bodies.inline.workerCpuMsPerJob,
            stored_worker_cpu_ms_per_job: bodies.stored.workerCpuMsPerJob,
            failed_jobs: bodies.baseline.failed + bodies.inline.failed + bodies.stored.failed,
          },
        }),
    workloads: Object.fromEntries(
      matrix.workloads.map((w) => [
        w.name,
        {
          sessions: w.sessions,
          concurrency: w.concurrency,
          baseline_jobs_per_s: Math.round(w.baselineJobsPerSecond),
          crawlfleet_jobs_per_s: Math.round(w.crawlfleetJobsPerSecond),
          ratio: Number(w.ratio.toFixed(3)),
          round_ratios: w.roundRatios,
          target: w.target ?? null,
          redis_commands_per_job: w.commandsPerJob,
          redis_commands_per_job_whole_run: w.commandsPerJobWholeRun,
          redis_commands_breakdown: Object.fromEntries(w.breakdown),
          monitor_jobs: [w.monitorSmallJobs, w.monitorJobs],
          worker_rss_mb: w.rssMb,
          worker_cpu_ms_per_job: w.workerCpuMsPerJob,
          baseline_worker_cpu_ms_per_job: w.baselineWorkerCpuMsPerJob,
          redis_cpu_us_per_job: w.redisCpuUsPerJob,
          baseline_p99_ms: w.baselineP99Ms,
          crawlfleet_p99_ms: w.crawlfleetP99Ms,
          failed_jobs: w.failedJobs,
          ...(w.check === undefined ? {} : { check: w.check }),
          pass: w.pass,
          misses: w.misses,
        },
      ]),
    ),
    ...(crawlee === undefined || crawleeRow === undefined
      ? {}
      : {
          crawlee_workload: crawleeRow.name,
          crawlee_pages_per_s: Math.round(crawlee.pagesPerSecond),
          crawlee_ratio: Number(crawlee.ratio.toFixed(3)),
          crawlee_round_ratios: crawlee.roundRatios,
          crawlee_baseline_ratio: crawlee.baselineRatio,
          crawlee_ratio_target: crawlee.target,
          crawlee_pass: crawlee.pass,
          crawlee_rss_mb: crawlee.rssMb,
          crawlee_cpu_ms_per_page: crawlee.cpuMsPerPage,
          crawlee_failed_pages: crawlee.failed,
        }),
  })}\n`,
);
