import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyLayout } from '@crawlfleet/core';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, startCliProcess } from '../src/cli-process.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, openTestRedis, REDIS_URL, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

const PAGES = 1_200;
const OUTBOX_MAX = 300;
const POSTGRES = 'postgres://postgres@127.0.0.1:5432/test';

describe('the results outbox: backpressure with no sink, then a PostgreSQL sink killed and resumed', () => {
  let redis: Redis;
  let site: FixtureSite;
  let dir: string;
  let prefix: string;
  let table: string;
  let db: pg.Client;
  let env: Record<string, string>;
  let workers: WorkerProcess[] = [];
  const sinks: CliProcess[] = [];

  beforeAll(async () => {
    redis = openTestRedis();
    site = await startFixtureSite();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-outbox-'));
    prefix = uniquePrefix('outbox-pg');
    table = `t_outbox_${randomBytes(4).toString('hex')}`;
    db = new pg.Client({ connectionString: POSTGRES });
    await db.connect();
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore' } },
        results: { outboxMaxLen: OUTBOX_MAX },
      }),
    );
    env = { REDIS_URL, CRAWLFLEET_CONFIG: config, CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_LOG_LEVEL: 'info' };
  });

  afterAll(async () => {
    for (const sink of sinks) sink.kill();
    await Promise.all(workers.map((worker) => worker.stop('SIGKILL')));
    await db.query(`DROP TABLE IF EXISTS "${table}"`);
    await db.end();
    await cleanupPrefix(redis, prefix);
    await redis.quit();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function rows(): Promise<{ count: number; keys: number }> {
    const exists = await db.query('SELECT to_regclass($1) AS t', [table]);
    if (exists.rows[0]?.t === null) return { count: 0, keys: 0 };
    const answer = await db.query(`SELECT count(*) AS n, count(DISTINCT idempotency_key) AS k FROM "${table}"`);
    return { count: Number(answer.rows[0]?.n), keys: Number(answer.rows[0]?.k) };
  }

  it('holds the workers near outboxMaxLen, drops nothing, and delivers every page to PostgreSQL exactly once', async () => {
    const keys = keyLayout(prefix);
    const file = join(dir, 'urls.txt');
    writeFileSync(file, Array.from({ length: PAGES }, (_, i) => site.url(`/slow?ms=5&page=${i}`)).join('\n'));
    expect(JSON.parse((await runCli(['submit', '--file', file, '--json'], { env })).stdout)).toEqual({
      enqueued: PAGES,
      duplicates: 0,
    });

    workers = [0, 1].map(() => startWorkerProcess(env, ['--concurrency', '8']));
    // With no sink the outbox fills to its limit and the workers stop taking jobs.
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= OUTBOX_MAX, {
      timeoutMs: 60_000,
      what: 'a full outbox',
    });
    let held = -1;
    await waitFor(
      async () => {
        const now = await redis.xlen(soleShard(keys).results);
        const steady = now === held;
        held = now;
        return steady;
      },
      { timeoutMs: 20_000, intervalMs: 1_500, what: 'the workers to hold back' },
    );
    // Each worker finishes the jobs it held when the outbox filled: at most its concurrency.
    expect(held).toBeGreaterThanOrEqual(OUTBOX_MAX);
    expect(held).toBeLessThanOrEqual(OUTBOX_MAX + 2 * 8);
    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(status.outbox).toMatchObject({ entries: held, maxEntries: OUTBOX_MAX, full: true, sinks: [] });
    expect(status.counts).toMatchObject({ failed: 0, dlq: 0 });
    expect(status.counts.waiting).toBeGreaterThan(0);
    expect((await runCli(['status'], { env })).stdout).toContain('the outbox is full: workers take no new jobs');
    expect(workers.every((worker) => worker.output().includes('the results outbox is full'))).toBe(true);

    // A PostgreSQL sink, killed with SIGKILL part-way, then started again with the same name.
    const to = `${POSTGRES}?table=${table}`;
    const first = startCliProcess(['sink', 'run', '--to', to, '--name', 'pg', '--batch', '40'], env);
    sinks.push(first);
    await waitFor(async () => (await rows()).count >= 400, { timeoutMs: 60_000, what: 'the sink to be under way' });
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();
    const second = startCliProcess(['sink', 'run', '--to', to, '--name', 'pg', '--batch', '40'], env);
    sinks.push(second);
    await waitFor(async () => (await rows()).count >= PAGES, { timeoutMs: 90_000, what: 'every page in PostgreSQL' });
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 0, {
      timeoutMs: 20_000,
      what: 'the outbox trimmed',
    });
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.stderr()).toMatch(/sink pg: .*results? written/);

    expect(await rows()).toEqual({ count: PAGES, keys: PAGES });
    const pages = await db.query(
      `SELECT count(DISTINCT url) AS n, min(status) AS lo, max(status) AS hi FROM "${table}"`,
    );
    expect(pages.rows[0]).toEqual({ n: String(PAGES), lo: 200, hi: 200 });
    const after = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(after.outbox).toMatchObject({ entries: 0, bytes: 0, full: false });
    expect(after.outbox.sinks).toEqual([expect.objectContaining({ name: 'pg', pending: 0, lag: 0 })]);
    expect(after.counts).toMatchObject({ waiting: 0, active: 0, failed: 0, dlq: 0 });
    // The last minute still counts what was written, though the sink took it all out of the outbox.
    expect(after.lastMinute.estimated).toBe(true);
    expect(after.lastMinute.stored).toBeGreaterThan(PAGES * 0.8);
    expect(after.lastMinute.stored).toBeLessThanOrEqual(PAGES);
  });
});
