#!/usr/bin/env node
/**
 * `npm run bench`: benchmarks that report against a baseline measured in the same run, on a
 * private redis-server and loopback only. Prints a table, then one JSON line.
 */
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
  cells.map((c, i) => (i === 0 ? String(c).padEnd(44) : String(c).padStart(10))).join('');
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
process.stdout.write(
  `${JSON.stringify({
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
