import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

const GOOD = 300;
const MISSING = 20;

describe('a crawl submitted from the CLI and run by two worker processes', () => {
  const prefix = uniquePrefix('e2e');
  const keys = keyLayout(prefix);
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let env: Record<string, string>;
  let workers: WorkerProcess[] = [];
  let goodFile: string;
  let allFile: string;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-e2e-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } }, jobs: { retries: 2, backoffBaseMs: 50 } }),
    );
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config, CRAWLFLEET_LOG_LEVEL: 'info' };
    const good = Array.from({ length: GOOD }, (_, i) => site.url(`/ok/page-${i}`));
    const missing = Array.from({ length: MISSING }, (_, i) => site.url(`/status/404?n=${i}`));
    goodFile = join(dir, 'good.txt');
    allFile = join(dir, 'all.txt');
    writeFileSync(goodFile, `${good.join('\n')}\n`);
    writeFileSync(allFile, `# 300 pages and 20 missing ones\n${[...good, ...missing].join('\n')}\n`);
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('enqueues 320 jobs keyed by idempotency key', async () => {
    const submitted = await runCli(['submit', '--file', allFile, '--json'], { env });
    expect(submitted.stderr).toBe('');
    expect(submitted.code).toBe(0);
    expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: GOOD + MISSING, duplicates: 0 });
    expect(await redis.llen(`${keys.bullPrefix}:crawl:wait`)).toBe(GOOD + MISSING);
  });

  it('stores exactly 300 results and 20 DLQ entries, fetching each 404 once', async () => {
    workers = [startWorkerProcess(env, ['--concurrency', '8']), startWorkerProcess(env, ['--concurrency', '8'])];
    const dlq = new DeadLetterQueue(redis, keys);
    try {
      await waitFor(
        async () => (await redis.xlen(soleShard(keys).results)) === GOOD && (await dlq.count()) === MISSING,
        {
          timeoutMs: 40_000,
          what: '300 results and 20 dead letters',
        },
      );
      const status = await runCli(['status', '--json'], { env });
      expect(JSON.parse(status.stdout).counts).toMatchObject({ waiting: 0, active: 0, delayed: 0, dlq: MISSING });
      for (let i = 0; i < MISSING; i++) expect(site.hits(`/status/404?n=${i}`)).toBe(1);
      for (let i = 0; i < GOOD; i++) expect(site.hits(`/ok/page-${i}`)).toBe(1);

      const listed = await runCli(['dlq', 'list', '--json'], { env });
      const entries = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
      expect(entries).toHaveLength(MISSING);
      for (const entry of entries) {
        expect(entry).toMatchObject({ class: 'non_recoverable', reason: 'http_404', attempts: 1, tenant: 'default' });
        expect(String(entry.url)).toContain('/status/404?n=');
        expect(typeof entry.failedAt).toBe('string');
      }
      const shown = await runCli(['dlq', 'show', String(entries[0]?.id)], { env });
      const letter = JSON.parse(shown.stdout);
      expect(letter.lastResponse.status).toBe(404);
      expect(letter.lastResponse.bodySnippet).toContain('status 404');
      expect(letter.history).toHaveLength(1);
      expect(letter.job.url).toBe(letter.url);
    } finally {
      await dlq.close();
    }
  });

  it('exports every result as one JSON line with the documented fields', async () => {
    const out = join(dir, 'results.jsonl');
    const exported = await runCli(['results', 'export', '--format', 'jsonl', '--out', out], { env });
    expect(exported.code).toBe(0);
    expect(exported.stderr).toContain(`exported ${GOOD} results`);
    const stdout = (await runCli(['results', 'export'], { env })).stdout;
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(GOOD);
    expect(new Set(lines.map((r) => r.url)).size).toBe(GOOD);
    for (const result of lines) {
      expect(result).toMatchObject({
        status: 200,
        tenant: 'default',
        sessionId: null,
        attempts: 1,
        bodyEncoding: 'utf8',
      });
      expect(result.finalUrl).toBe(result.url);
      expect(result.headers['content-type']).toContain('text/html');
      expect(result.headers['set-cookie']).toBeUndefined();
      expect(result.body).toContain('<title>');
      expect(result.bodyBytes).toBe(Buffer.byteLength(result.body));
      expect(result.idempotencyKey).toMatch(/^ik-[0-9a-f]{40}$/);
      expect(Date.parse(result.fetchedAt)).not.toBeNaN();
    }
  });

  it('counts a resubmission of the 300 as 300 duplicates and stores nothing new', async () => {
    const again = await runCli(['submit', '--file', goodFile, '--json'], { env });
    expect(JSON.parse(again.stdout)).toEqual({ enqueued: 0, duplicates: GOOD });
    const human = await runCli(['submit', site.url('/ok/page-0')], { env });
    expect(human.stderr).toContain('enqueued 0 jobs, 1 duplicate skipped');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await redis.xlen(soleShard(keys).results)).toBe(GOOD);
    expect(site.hitsByPrefix('/ok/page-')).toBe(GOOD);
  });

  it('drains both workers on SIGTERM with exit code 0', async () => {
    const codes = await Promise.all(workers.map((w) => w.stop('SIGTERM')));
    expect(codes).toEqual([0, 0]);
    for (const worker of workers) expect(worker.output()).toContain('worker stopped');
  });
});
