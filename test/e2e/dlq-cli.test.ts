import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from '@crawlfleet/audit';
import { CRAWL_QUEUE } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

describe('DLQ operations from the CLI', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let prefix: string;
  let env: Record<string, string>;
  let worker: WorkerProcess | undefined;
  let dlq: DeadLetterQueue;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-dlq-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } }, jobs: { retries: 1, backoffBaseMs: 20 } }),
    );
    env = { CRAWLFLEET_CONFIG: config, CRAWLFLEET_LOG_LEVEL: 'warn' };
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('dlq-cli');
    env.CRAWLFLEET_PREFIX = prefix;
    dlq = new DeadLetterQueue(redis, keyLayout(prefix));
    worker = startWorkerProcess(env, ['--concurrency', '4']);
  });
  afterEach(async () => {
    await worker?.stop('SIGKILL');
    await dlq.close();
    await cleanupPrefix(redis, prefix);
  });

  const results = () => redis.xlen(soleShard(keyLayout(prefix)).results);

  async function deadLetter(path: string): Promise<string> {
    await runCli(['submit', site.url(path)], { env });
    const entry = await waitFor(async () => (await dlq.list()).find((e) => e.url === site.url(path)), {
      what: `${path} in the DLQ`,
    });
    return entry.id;
  }

  it('files exhausted retries under their own class: list and replay --class recoverable find them', async () => {
    const id = await deadLetter('/flaky/class-kept?fails=3');
    const listed = JSON.parse((await runCli(['dlq', 'list', '--class', 'recoverable', '--json'], { env })).stdout);
    expect(listed).toEqual([
      expect.objectContaining({ id, class: 'recoverable', reason: 'retries_exhausted:http_503' }),
    ]);
    const replayed = await runCli(['dlq', 'replay', '--all', '--class', 'recoverable', '--json'], { env });
    expect(JSON.parse(replayed.stdout)).toEqual({ replayed: [id], skipped: [] });
    await waitFor(async () => (await results()) === 1, { what: 'the replayed page stored' });
  });

  it('replays an entry with fresh attempts and removes it once the job is back on the queue', async () => {
    const id = await deadLetter('/flaky/replay-me?fails=3');
    expect((await dlq.show(id))?.reason).toBe('retries_exhausted:http_503');
    expect(site.hits('/flaky/replay-me?fails=3')).toBe(2);

    const replayed = await runCli(['dlq', 'replay', id, '--json'], { env });
    expect(JSON.parse(replayed.stdout)).toEqual({ replayed: [id], skipped: [] });
    await waitFor(async () => (await results()) === 1, { what: 'the replayed page stored' });
    expect(site.hits('/flaky/replay-me?fails=3')).toBe(4);
    expect(await dlq.count()).toBe(0);
    const stored = JSON.parse(String((await redis.xrange(soleShard(keyLayout(prefix)).results, '-', '+'))[0]?.[1][1]));
    expect(stored).toMatchObject({ status: 200, attempts: 2 });
  });

  it('does not store a replayed success twice', async () => {
    const path = '/flaky/twice?fails=2';
    const id = await deadLetter(path);
    // The key is forced through again and succeeds, while its old entry is still in the DLQ.
    await runCli(['submit', '--force', site.url(path)], { env });
    await waitFor(async () => (await results()) === 1, { what: 'the forced page stored' });
    expect(await dlq.count()).toBe(1);
    expect(JSON.parse((await runCli(['dlq', 'replay', '--all', '--json'], { env })).stdout).replayed).toEqual([id]);
    const queue = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keyLayout(prefix).bullPrefix });
    try {
      await waitFor(async () => (await queue.getJob(id))?.isCompleted(), { what: 'the replayed job done' });
      expect((await queue.getJob(id))?.returnvalue).toMatchObject({ outcome: 'duplicate' });
    } finally {
      await queue.close();
    }
    expect(await results()).toBe(1);
    expect(site.hits(path)).toBe(3);
  });

  it('replays every entry of one class, and keeps entries it cannot replay', async () => {
    const gone = await deadLetter('/status/410?r=1');
    const missing = await deadLetter('/status/404?r=2');
    const queue = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keyLayout(prefix).bullPrefix });
    await queue.add('junk', { not: 'a job' }, { jobId: 'junk-1' });
    await queue.close();
    await waitFor(() => dlq.show('junk-1'), { what: 'the junk entry' });
    const report = JSON.parse(
      (await runCli(['dlq', 'replay', '--all', '--class', 'non_recoverable', '--json'], { env })).stdout,
    );
    expect(report.replayed.sort()).toEqual([gone, missing].sort());
    expect(report.skipped).toEqual([{ id: 'junk-1', reason: 'invalid_payload' }]);
    // A 410 stays gone: fetched again once, and back in the DLQ.
    await waitFor(async () => (await dlq.count()) === 3, { what: 'both pages back in the DLQ' });
    expect(site.hits('/status/410?r=1')).toBe(2);
  });

  it('records retries, DLQ moves and replays in the audit stream, queryable by session', async () => {
    await runCli(['submit', '--session', 'audited', site.url('/status/503?a=1')], { env });
    const id = await waitFor(async () => (await dlq.list())[0]?.id, { what: 'the page in the DLQ' });
    await runCli(['dlq', 'replay', id], { env });
    // The replayed page fails the same way: retried once more, and back in the DLQ.
    await waitFor(async () => site.hits('/status/503?a=1') === 4 && (await dlq.count()) === 1, {
      what: 'the replay to fail again',
    });
    const events = JSON.parse((await runCli(['audit', '--json'], { env })).stdout) as AuditEvent[];
    expect(events.map((e) => e.kind)).toEqual(['dlq', 'retry', 'replay', 'dlq', 'retry']);
    const retry = events.find((e) => e.kind === 'retry');
    expect(retry).toMatchObject({
      jobId: id,
      tenant: 'default',
      reason: 'http_503',
      detail: { attempt: 1, status: 503 },
    });
    expect(typeof retry?.detail?.backoffMs).toBe('number');
    expect(retry?.session).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.stringify(events)).not.toContain('audited');
    const mine = JSON.parse((await runCli(['audit', '--session', 'audited', '--json'], { env })).stdout);
    expect(mine.map((e: { kind: string }) => e.kind)).toEqual(['dlq', 'retry', 'dlq', 'retry']);
    // The retry's log line says which job, session (hashed), attempt, backoff and error class.
    const retryLine = String(worker?.output())
      .split('\n')
      .map((line) => (line.startsWith('{') ? JSON.parse(line) : {}))
      .find((line) => line.msg === 'fetch failed; retrying');
    expect(retryLine).toMatchObject({
      job_id: id,
      tenant: 'default',
      session_id: mine[0].session,
      retry_attempt: 1,
      error_class: 'recoverable',
    });
    expect(typeof retryLine.backoff_duration_ms).toBe('number');
    expect(String(worker?.output())).not.toContain('audited');
    expect(JSON.parse((await runCli(['audit', '--session', 'other', '--json'], { env })).stdout)).toEqual([]);
    const bad = await runCli(['audit', '--kind', 'nope'], { env });
    expect(bad.code).toBe(2);
  });

  it('purges entries older than a duration, then all of them', async () => {
    await deadLetter('/status/404?p=1');
    await deadLetter('/status/404?p=2');
    expect(JSON.parse((await runCli(['dlq', 'purge', '--older-than', '1h', '--json'], { env })).stdout)).toEqual({
      purged: 0,
    });
    expect(await dlq.count()).toBe(2);
    const purged = await runCli(['dlq', 'purge'], { env });
    expect(purged.stderr).toContain('purged 2 dead letters');
    expect(await dlq.count()).toBe(0);
  });

  it('purges results, audit events and dead letters older than a duration', async () => {
    await runCli(['submit', site.url('/ok/kept'), site.url('/status/404?old=1')], { env });
    await waitFor(async () => (await results()) === 1 && (await dlq.count()) === 1, {
      what: 'a result and a dead letter',
    });
    const nothing = JSON.parse((await runCli(['purge', '--older-than', '1h', '--json'], { env })).stdout);
    expect(nothing).toEqual({ results: 0, audit: 0, dlq: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const purged = JSON.parse((await runCli(['purge', '--older-than', '1s', '--json'], { env })).stdout);
    expect(purged).toMatchObject({ results: 1, dlq: 1 });
    expect(purged.audit).toBeGreaterThanOrEqual(1);
    expect(await results()).toBe(0);
    expect(await dlq.count()).toBe(0);
    // The ledger outlives the result: the page is still known as done.
    const again = JSON.parse((await runCli(['submit', '--json', site.url('/ok/kept')], { env })).stdout);
    expect(again).toEqual({ enqueued: 0, duplicates: 1 });
    expect((await runCli(['purge'], { env })).code).toBe(2);
  });

  it('refuses unclear replays and bad durations with exit code 2', async () => {
    for (const [args, message] of [
      [['dlq', 'replay'], /give entry ids or --all/],
      [['dlq', 'replay', 'x', '--all'], /give entry ids or --all/],
      [['dlq', 'replay', '--class', 'non_recoverable', 'x'], /--class goes with --all/],
      [['dlq', 'replay', 'no-such-entry'], /no DLQ entry with id no-such-entry; nothing was replayed/],
      [['dlq', 'purge', '--older-than', '5 days'], /--older-than must look like/],
    ] as const) {
      const result = await runCli([...args], { env });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });
});
