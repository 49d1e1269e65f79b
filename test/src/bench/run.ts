#!/usr/bin/env node
/**
 * `npm run bench`: benchmarks that report against a baseline measured in the same run, on a
 * private redis-server and loopback only. Prints a table, then one JSON line.
 */
import { benchFleet } from './fleet.js';
import { benchObservability } from './observability.js';
import { benchSessions } from './sessions.js';

const jobs = Number(process.env.CRAWLFLEET_BENCH_JOBS ?? 2_000);
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

const fleetJobs = Number(process.env.CRAWLFLEET_BENCH_FLEET_JOBS ?? 8_000);
const warmupJobs = Number(process.env.CRAWLFLEET_BENCH_WARMUP_JOBS ?? 2_000);
process.stderr.write(
  `\nfleet: bare BullMQ worker vs crawlfleet worker, ${fleetJobs} jobs after ${warmupJobs} to warm up, concurrency 100, each in its own process...\n`,
);
const fleet = await benchFleet({
  jobs: fleetJobs,
  warmupJobs,
  monitorJobs: Number(process.env.CRAWLFLEET_BENCH_MONITOR_JOBS ?? 600),
  progress: (message) => process.stderr.write(`${message}\n`),
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
  `ratio ${ratio} (median of the rounds: ${fleet.roundRatios.join(', ')}; target >= 0.85), p99 added ${fleet.p99AddedLatencyMs} ms, ${crawlfleet.commandsPerJob} Redis commands per job (target < 8), worker RSS ${crawlfleet.rssMb} MB (target < 200)\n`,
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

process.stdout.write(
  `${JSON.stringify({
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
  })}\n`,
);
