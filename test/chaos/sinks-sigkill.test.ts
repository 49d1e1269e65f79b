import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyLayout } from '@crawlfleet/core';
import { type RedisServer, startRedisServer } from '@crawlfleet/local-redis';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, startCliProcess } from '../src/cli-process.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { runCli, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

const PAGES = 5_000;
const POSTGRES = 'postgres://postgres@127.0.0.1:5432/test';

describe('3 workers and 2 sinks, one of each killed with SIGKILL, 5,000 pages', () => {
  let server: RedisServer;
  let redis: Redis;
  let site: FixtureSite;
  let db: pg.Client;
  let dir: string;
  let table: string;
  const workers: WorkerProcess[] = [];
  const sinks: CliProcess[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis(server.url);
    site = await startFixtureSite();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-sink-chaos-'));
    table = `t_chaos_${randomBytes(4).toString('hex')}`;
    db = new pg.Client({ connectionString: POSTGRES });
    await db.connect();
  });
  afterAll(async () => {
    for (const sink of sinks) sink.kill();
    await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
    await db.query(`DROP TABLE IF EXISTS "${table}"`);
    await db.end();
    redis.disconnect();
    await server.stop();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function rows(): Promise<number> {
    const exists = await db.query('SELECT to_regclass($1) AS t', [table]);
    if (exists.rows[0]?.t === null) return 0;
    return Number((await db.query(`SELECT count(*) AS n FROM "${table}"`)).rows[0]?.n);
  }

  it('loses nothing, and PostgreSQL holds every page exactly once', async () => {
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        results: { outboxMaxLen: 1_000 },
      }),
    );
    const env = {
      REDIS_URL: server.url,
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_PREFIX: 'chaos',
      CRAWLFLEET_LOG_LEVEL: 'warn',
    };
    const to = `${POSTGRES}?table=${table}`;
    const files = join(dir, 'jsonl');
    // Both sinks are registered before the first result, so each gets all 5,000.
    for (const args of [
      ['--to', to, '--name', 'pg'],
      ['--to', `jsonl:${files}`, '--name', 'files'],
    ])
      expect((await runCli(['sink', 'add', ...args], { env })).code).toBe(0);
    const file = join(dir, 'urls.txt');
    writeFileSync(file, Array.from({ length: PAGES }, (_, i) => site.url(`/slow?ms=10&page=${i}`)).join('\n'));
    expect((await runCli(['submit', '--file', file], { env })).code).toBe(0);

    // Short locks, so the killed worker's jobs come back within seconds (30 s in production).
    const flags = ['--concurrency', '16', '--lock-duration-ms', '2000', '--stalled-interval-ms', '1000'];
    workers.push(...[0, 1, 2].map(() => startWorkerProcess(env, flags)));
    const batch = ['--batch', '100'];
    sinks.push(
      startCliProcess(['sink', 'run', '--to', to, '--name', 'pg', ...batch], env),
      startCliProcess(['sink', 'run', '--to', to, '--name', 'pg', ...batch], env),
      startCliProcess(['sink', 'run', '--to', `jsonl:${files}`, '--name', 'files', ...batch], env),
    );
    await waitFor(async () => (await rows()) >= 1_000, { timeoutMs: 60_000, what: 'the crawl and sinks under way' });
    const [worker] = workers;
    const [pgSink] = sinks;
    expect(await worker?.stop('SIGKILL')).toBeNull();
    pgSink?.child.kill('SIGKILL');
    expect(await pgSink?.exited, pgSink?.stderr()).toBeNull();

    await waitFor(async () => (await rows()) >= PAGES, {
      timeoutMs: 120_000,
      intervalMs: 250,
      what: 'every page in PostgreSQL',
    });
    const keys = keyLayout('chaos');
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 0, {
      timeoutMs: 30_000,
      what: 'both sinks to take everything',
    });
    for (const sink of sinks.slice(1)) sink.child.kill('SIGTERM');
    expect(await Promise.all(sinks.slice(1).map((sink) => sink.exited))).toEqual([0, 0]);

    const counted = await db.query(
      `SELECT count(*) AS n, count(DISTINCT idempotency_key) AS k, count(DISTINCT url) AS u FROM "${table}"`,
    );
    expect(counted.rows[0]).toEqual({ n: String(PAGES), k: String(PAGES), u: String(PAGES) });
    // Files may repeat a batch written just before a crash; none is missing.
    const lines = readdirSync(files)
      .filter((name) => name.endsWith('.jsonl'))
      .flatMap((name) => readFileSync(join(files, name), 'utf8').split('\n').filter(Boolean));
    expect(new Set(lines.map((line) => JSON.parse(line).idempotencyKey)).size).toBe(PAGES);
    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(status.counts).toMatchObject({ waiting: 0, active: 0, failed: 0, dlq: 0 });
    expect(status.resultsWritten).toBe(PAGES);
    expect(await Promise.all(workers.slice(1).map((w) => w.stop('SIGTERM')))).toEqual([0, 0]);
  });
});
