import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectRedis, keyLayout, type RedisClient } from '@crawlfleet/core';
import type { Cluster, Redis } from 'ioredis';
import { startFixtureSite } from '../fixture/site.js';
import { runCli, TEST_KEYS } from '../harness.js';
import { startWorkerProcess } from '../processes.js';
import { startRedisCluster } from '../redis-cluster.js';
import { median, round2 } from './fleet.js';

export interface ClusterBenchOptions {
  jobs: number;
  rounds: number;
  concurrency: number;
  progress: (message: string) => void;
}

/** One side of a round: a fleet of `shards` shards on the cluster. */
export interface ClusterSide {
  shards: number;
  jobsPerSecond: number;
  /** Redis CPU each master spent per 1,000 jobs (ms), busiest master first. */
  redisCpuMsPerThousand: number[];
}

export interface ClusterBenchResult {
  jobs: number;
  rounds: number;
  concurrency: number;
  /** The masters, as `host:port`. Each side's CPU figures are per master, busiest first. */
  masters: string[];
  oneShard: { jobsPerSecond: number; redisCpuMsPerThousand: number[] };
  threeShards: { jobsPerSecond: number; redisCpuMsPerThousand: number[] };
  /** Median of the rounds' 3-shard / 1-shard jobs/s. */
  ratio: number;
  roundRatios: number[];
}

/**
 * A fleet on a 3-master Redis Cluster (no replicas: they would take CPU from the one machine the
 * bench runs on), one `crawlfleet worker` process at `concurrency`, fetching fixture pages: first
 * with `queue.shards: 1` (every job's keys on one master), then with 3 (one shard per master),
 * alternating the order each round. Reports jobs/s (from the 10th to the 100th percent of results
 * written, so the worker's start is not counted) and each master's Redis CPU per 1,000 jobs: what
 * shards are for is moving Redis load off the one master, which this machine (2 cores for the
 * cluster, the worker and the site) shows better than the jobs/s can.
 */
export async function benchCluster(options: ClusterBenchOptions): Promise<ClusterBenchResult> {
  const cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  const site = await startFixtureSite();
  const dir = mkdtempSync(join(tmpdir(), 'crawlfleet-bench-cluster-'));
  const redis = (await connectRedis(cluster.url, { role: 'worker' })) as Cluster;
  const masters = redis.nodes('master');
  const addresses = masters.map((master) => `${master.options.host}:${master.options.port}`);
  const sides: Record<1 | 3, ClusterSide[]> = { 1: [], 3: [] };
  const ratios: number[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? ([1, 3] as const) : ([3, 1] as const);
      for (const shards of order) {
        const side = await runShards(redis, masters, cluster.url, site.url.bind(site), dir, shards, round, options);
        sides[shards].push(side);
        options.progress(
          `cluster round ${round + 1}, ${shards} shard(s): ${side.jobsPerSecond} jobs/s, Redis CPU per 1,000 jobs by master ${side.redisCpuMsPerThousand.join(' / ')} ms`,
        );
      }
      const three = sides[3][round]?.jobsPerSecond ?? 0;
      const one = sides[1][round]?.jobsPerSecond ?? 1;
      ratios.push(round2(three / one));
    }
  } finally {
    redis.disconnect();
    await cluster.stop();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  }
  // Per rank (busiest master, next, ...): which master a shard's tag lands on differs from run to run.
  const summary = (runs: readonly ClusterSide[]) => ({
    jobsPerSecond: Math.round(median(runs.map((run) => run.jobsPerSecond))),
    redisCpuMsPerThousand: addresses.map((_, i) =>
      round2(median(runs.map((run) => run.redisCpuMsPerThousand[i] ?? 0))),
    ),
  });
  return {
    jobs: options.jobs,
    rounds: options.rounds,
    concurrency: options.concurrency,
    masters: addresses,
    oneShard: summary(sides[1]),
    threeShards: summary(sides[3]),
    ratio: round2(median(ratios)),
    roundRatios: ratios,
  };
}

async function runShards(
  redis: RedisClient,
  masters: readonly Redis[],
  url: string,
  page: (path: string) => string,
  dir: string,
  shards: 1 | 3,
  round: number,
  options: ClusterBenchOptions,
): Promise<ClusterSide> {
  const prefix = `bench-cluster-${round}-${shards}`;
  const config = join(dir, `${prefix}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore', hostDelayMs: 0 } },
      queue: { shards },
      retention: { completedJobs: 100, failedJobs: 100 },
    }),
  );
  const env = {
    REDIS_URL: url,
    CRAWLFLEET_SESSION_REDIS_URL: '',
    CRAWLFLEET_CONFIG: config,
    CRAWLFLEET_PREFIX: prefix,
    CRAWLFLEET_KEYS: TEST_KEYS,
    CRAWLFLEET_LOG_LEVEL: 'warn',
  };
  const file = join(dir, `${prefix}.txt`);
  writeFileSync(file, Array.from({ length: options.jobs }, (_, i) => page(`/ok/${prefix}-${i}`)).join('\n'));
  const submitted = await runCli(['submit', '--file', file, '--json'], { env });
  if (submitted.code !== 0) throw new Error(`the cluster bench's submit failed: ${submitted.stderr}`);
  const keys = keyLayout(prefix, shards);
  const written = async () => {
    let total = 0;
    for (const shard of keys.shards) total += await redis.xlen(shard.results);
    return total;
  };
  const cpu = () => Promise.all(masters.map(async (master) => usedCpuMs(String(await master.info('cpu')))));
  const worker = startWorkerProcess(env, ['--concurrency', String(options.concurrency)]);
  try {
    const from = Math.ceil(options.jobs / 10);
    const deadline = Date.now() + 300_000;
    let started: { at: number; cpu: number[]; count: number } | undefined;
    for (;;) {
      const count = await written();
      if (started === undefined && count >= from) started = { at: performance.now(), cpu: await cpu(), count };
      if (count >= options.jobs && started !== undefined) {
        const seconds = (performance.now() - started.at) / 1000;
        const done = count - started.count;
        const after = await cpu();
        return {
          shards,
          jobsPerSecond: Math.round(done / seconds),
          redisCpuMsPerThousand: after
            .map((ms, i) => round2(((ms - (started?.cpu[i] ?? 0)) * 1000) / done))
            .sort((a, b) => b - a),
        };
      }
      if (Date.now() > deadline) throw new Error(`the cluster bench's worker stored ${count} of ${options.jobs} jobs`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await worker.stop('SIGTERM');
    for (const master of masters) await removeKeys(master, prefix);
  }
}

/** The CPU Redis used so far (user and system), in ms, from `INFO cpu`. */
function usedCpuMs(info: string): number {
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

/** Deletes a run's keys from one master (its shard tags all start with `{prefix`). */
async function removeKeys(master: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await master.scan(cursor, 'MATCH', `{${prefix}*`, 'COUNT', 1000);
    cursor = next;
    for (const key of found) await master.del(key);
  } while (cursor !== '0');
}
