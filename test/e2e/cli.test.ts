import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRAWL_QUEUE } from '@crawlfleet/core';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, keysOf, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

describe('the crawlfleet command', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let config: string;
  let prefix: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-cli-'));
    config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'] }, shop: { allowHosts: ['127.0.0.1'] } },
        jobs: { retries: 1, backoffBaseMs: 20 },
      }),
    );
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('cli');
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config };
  });
  afterEach(async () => {
    await cleanupPrefix(redis, prefix);
  });

  /** Expects exit code 2, one line on stderr, and nothing stored under the test prefix. */
  async function expectBadInput(
    args: string[],
    message: RegExp,
    extraEnv: Record<string, string> = {},
    input?: string,
  ) {
    const result = await runCli(args, { env: { ...env, ...extraEnv }, input });
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toMatch(message);
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(result.stdout).toBe('');
    expect(await keysOf(redis, prefix)).toEqual([]);
  }

  it('lists every command in --help', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['submit', 'crawl', 'worker', 'status', 'dlq', 'results']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
    expect(help.stdout).toContain('REDIS_URL');
    expect(help.stdout).toContain('Exit codes');
    const dlqHelp = await runCli(['dlq', '--help']);
    expect(dlqHelp.stdout).toMatch(/list \[options\]/);
    expect(dlqHelp.stdout).toMatch(/show <id>/);
  });

  it('runs as npx crawlfleet from the repository, as README says', async () => {
    const { execFileSync } = await import('node:child_process');
    const repo = fileURLToPath(new URL('../..', import.meta.url));
    const version = execFileSync('npx', ['--no-install', 'crawlfleet', '--version'], {
      cwd: repo,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(version.trim()).toBe('0.1.0');
  });

  it('refuses bad input with exit code 2 and one line, enqueuing nothing', async () => {
    await expectBadInput(['submit', 'not a url'], /^crawlfleet: not a valid absolute URL: "not a url"$/);
    await expectBadInput(['submit', 'ftp://example.com/x'], /only http and https/);
    await expectBadInput(['submit'], /nothing to submit/);
    await expectBadInput(['submit', '--file', join(dir, 'missing.txt')], /--file .*missing\.txt: file not found/);
    await expectBadInput(['submit', '--tenant', 'nobody', site.url('/ok/1')], /unknown tenant "nobody"/);
    await expectBadInput(['submit', '--session', 'a b', site.url('/ok/1')], /--session must be/);
    await expectBadInput(['submit', '--key', '123', site.url('/ok/1')], /--key must be/);
    await expectBadInput(['submit', '--key', 'k1', site.url('/ok/1'), site.url('/ok/2')], /--key names one job/);
    await expectBadInput(['submit', '-X', 'BREW', site.url('/ok/1')], /unsupported method/);
    await expectBadInput(['submit', '--bogus'], /unknown option '--bogus'/);
    await expectBadInput(['dlq', 'list', '--class', 'sad'], /--class must be one of/);
    await expectBadInput(['results', 'export', '--format', 'csv'], /--format must be jsonl/);
    await expectBadInput(['crawl', '--concurrency', '0', site.url('/ok/1')], /must be a positive integer/);
    await expectBadInput(['status'], /CRAWLFLEET_PREFIX must be/, { CRAWLFLEET_PREFIX: 'a b' });
  });

  it('enqueues nothing when one line of a file is bad, and names the line', async () => {
    const file = join(dir, 'mixed.txt');
    writeFileSync(file, `${site.url('/ok/1')}\n${site.url('/ok/2')}\nhttp://[broken\n${site.url('/ok/3')}\n`);
    await expectBadInput(
      ['submit', '--file', file],
      /^crawlfleet: .*mixed\.txt line 3: not a valid absolute URL.*nothing was enqueued$/,
    );
    const jsonFile = join(dir, 'bad.jsonl');
    writeFileSync(jsonFile, `{"url":"${site.url('/ok/1')}"}\n{"url": 5}\n`);
    await expectBadInput(['submit', '--file', jsonFile], /bad\.jsonl line 2: url:/);
    const secretFile = join(dir, 'secret.jsonl');
    writeFileSync(
      secretFile,
      `${JSON.stringify({ url: site.url('/ok/1'), headers: { Authorization: 'Bearer t0ken' } })}\n`,
    );
    await expectBadInput(['submit', '--file', secretFile], /the Authorization header would be stored in plain text/);
  });

  it('refuses a malformed or invalid config file with exit code 2', async () => {
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "tenants": ');
    await expectBadInput(['submit', site.url('/ok/1')], /broken\.json: not valid JSON/, { CRAWLFLEET_CONFIG: broken });
    const wrong = join(dir, 'wrong.json');
    writeFileSync(wrong, JSON.stringify({ tenants: { a: { allowHost: [] } } }));
    await expectBadInput(['--config', wrong, 'status'], /wrong\.json: tenants\.a: Unrecognized key/);
    await expectBadInput(['--config', join(dir, 'nope.json'), 'status'], /nope\.json: file not found/);
  });

  it('exits 1 with one line when Redis is unreachable', async () => {
    const result = await runCli(['submit', site.url('/ok/1')], { env: { ...env, REDIS_URL: 'redis://127.0.0.1:1' } });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(/^crawlfleet: cannot reach Redis at redis:\/\/127\.0\.0\.1:1.*ECONNREFUSED/);
  });

  it('reads targets from stdin, JSON lines included, and reports duplicates', async () => {
    const input = [
      site.url('/ok/a'),
      `${site.url('/ok/a')}?utm_source=mail#top`,
      JSON.stringify({ url: site.url('/echo'), method: 'POST', body: 'x=1' }),
      JSON.stringify({ url: site.url('/echo'), method: 'POST', body: 'x=2' }),
    ].join('\n');
    const result = await runCli(['submit', '--file', '-', '--json', '--tenant', 'shop', '--session', 's1'], {
      env,
      input,
    });
    expect(JSON.parse(result.stdout)).toEqual({ enqueued: 3, duplicates: 1 });
    const queue = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keyLayout(prefix).bullPrefix });
    try {
      const jobs = await queue.getWaiting();
      expect(jobs).toHaveLength(3);
      for (const job of jobs) expect(job.data).toMatchObject({ tenant: 'shop', sessionId: 's1', v: 1 });
      expect(jobs.map((j) => j.data.body).sort()).toEqual(['x=1', 'x=2', undefined].sort());
    } finally {
      await queue.close();
    }
  });

  it('crawls in one process and prints a summary, writing results with --out', async () => {
    const out = join(dir, 'crawl.jsonl');
    const result = await runCli(
      [
        'crawl',
        '--json',
        '--out',
        out,
        site.url('/ok/c1'),
        site.url('/ok/c2'),
        site.url('/status/404?c=1'),
        site.url('/flaky/c?fails=1'),
      ],
      { env },
    );
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      enqueued: 4,
      duplicates: 0,
      fetched: 3,
      dlq: 1,
      retries: 1,
      out,
    });
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).status)).toEqual([200, 200, 200]);

    const human = await runCli(['crawl', site.url('/ok/c1'), site.url('/status/410?c=2')], { env });
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('crawled 1 URL in');
    expect(human.stdout).toContain('0 fetched, 1 to the DLQ');
    expect(human.stdout).toContain('1 duplicate skipped');
    expect(human.stdout).toMatch(/DLQ http_410 +http:\/\/127\.0\.0\.1:\d+\/status\/410\?c=2/);
  });

  it('drains a worker process on SIGTERM: active jobs finish, waiting ones stay queued, exit 0', async () => {
    const slow = Array.from({ length: 4 }, (_, i) => site.url(`/slow?ms=1200&i=${i}`));
    expect((await runCli(['submit', ...slow], { env })).code).toBe(0);
    const worker = startWorkerProcess(env, ['--concurrency', '2', '--grace-ms', '10000']);
    await waitFor(() => site.hitsByPrefix('/slow') === 2, { what: 'two slow pages in flight' });
    const code = await worker.stop('SIGTERM');
    expect(code).toBe(0);
    const keys = keyLayout(prefix);
    expect(await redis.xlen(soleShard(keys).results)).toBe(2);
    const status = JSON.parse((await runCli(['status', '--json'], { env })).stdout);
    expect(status.counts).toMatchObject({ waiting: 2, active: 0 });
    expect(worker.output()).toContain('draining');
    expect(site.hitsByPrefix('/slow')).toBe(2);
  });
});
