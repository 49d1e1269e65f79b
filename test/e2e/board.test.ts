import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuditLog } from '@crawlfleet/audit';
import { type RunningBoard, startBoard } from '@crawlfleet/board';
import { CRAWL_QUEUE, dlqJobId } from '@crawlfleet/core';
import { type DeadLetter, DeadLetterQueue } from '@crawlfleet/dlq';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, testConfig, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const USER = 'ops';
const PASSWORD = 'correct horse battery staple';

describe('the board', () => {
  let site: FixtureSite;
  let redis: Redis;
  let board: RunningBoard;
  let browser: Browser;
  let userData: string;
  const prefix = uniquePrefix('board');

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    const keys = keyLayout(prefix);
    const config = testConfig();
    const urls = [
      site.url('/ok/board-1'),
      site.url('/ok/board-2'),
      site.url('/status/404?board=1'),
      site.url('/status/404?board=2'),
    ];
    await submit(
      redis,
      keys,
      config,
      urls.map((url) => ({ url })),
    );
    const worker = await startTestWorker(keys, config);
    await waitFor(
      async () =>
        (await redis.xlen(soleShard(keys).results)) === 2 &&
        (await redis.zcard(`${keys.bullPrefix}:crawl-dlq:failed`)) === 2,
      {
        what: 'two pages and two dead letters',
      },
    );
    await worker.stop();
    board = await startBoard({
      connection: redis,
      keys,
      config,
      auth: { kind: 'basic', user: USER, password: PASSWORD },
      port: 0,
      failurePolicy: { freeFailures: 3, delayPerFailureMs: 300 },
    });
    userData = mkdtempSync(join(tmpdir(), 'crawlfleet-chromium-'));
  });
  afterAll(async () => {
    await browser?.close();
    await board.close();
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(userData, { recursive: true, force: true });
  });

  it('answers 401 to the page, the API and a static asset without credentials', async () => {
    const page = await fetch(board.url);
    expect(page.status).toBe(401);
    expect(page.headers.get('www-authenticate')).toContain('Basic');
    const html = await (
      await fetch(board.url, {
        headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` },
      })
    ).text();
    const asset = /src="(static\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    for (const path of ['api/queues', String(asset)]) {
      const res = await fetch(new URL(path, board.url));
      expect(res.status, path).toBe(401);
    }
    const wrong = await fetch(board.url, {
      headers: { authorization: `Basic ${Buffer.from(`${USER}:nope`).toString('base64')}` },
    });
    expect(wrong.status).toBe(401);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  });

  it('accepts the Basic scheme in any case (RFC 7617)', async () => {
    const credentials = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    for (const scheme of ['Basic', 'basic', 'BASIC', 'bAsIc']) {
      const res = await fetch(new URL('api/queues', board.url), {
        headers: { authorization: `${scheme} ${credentials}` },
      });
      expect(res.status, scheme).toBe(200);
    }
  });

  it('sends no X-Powered-By on any answer, authenticated or not', async () => {
    const headers = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
    const page = await fetch(board.url, { headers });
    const asset = /src="(static\/[^"]+\.js)"/.exec(await page.text())?.[1];
    expect(asset).toBeDefined();
    const answers = [
      page,
      await fetch(new URL('api/queues', board.url), { headers }),
      await fetch(new URL(String(asset), board.url), { headers }),
      await fetch(new URL('api/queues', board.url)),
    ];
    expect(answers.map((res) => res.status)).toEqual([200, 200, 200, 401]);
    for (const res of answers) expect(res.headers.get('x-powered-by'), res.url).toBeNull();
  });

  it('accepts a bearer token instead, when that is what is configured', async () => {
    const tokenBoard = await startBoard({
      connection: redis,
      keys: keyLayout(prefix),
      config: testConfig(),
      auth: { kind: 'bearer', token: 't0ken-for-ops' },
      port: 0,
    });
    try {
      expect((await fetch(new URL('api/queues', tokenBoard.url))).status).toBe(401);
      expect(
        (await fetch(new URL('api/queues', tokenBoard.url), { headers: { authorization: 'Bearer wrong' } })).status,
      ).toBe(401);
      for (const scheme of ['bearer', 'BEARER']) {
        const res = await fetch(new URL('api/queues', tokenBoard.url), {
          headers: { authorization: `${scheme} t0ken-for-ops` },
        });
        expect(res.status, scheme).toBe(200);
      }
      const ok = await fetch(new URL('api/queues', tokenBoard.url), {
        headers: { authorization: 'Bearer t0ken-for-ops' },
      });
      expect(ok.status).toBe(200);
      const body = (await ok.json()) as { queues: Array<{ name: string; readOnlyMode: boolean }> };
      expect(body.queues.map((q) => [q.name, q.readOnlyMode])).toEqual([
        ['crawl', false],
        ['crawl-render', false],
        ['crawl-dlq', false],
      ]);
    } finally {
      await tokenBoard.close();
    }
  });

  it('mounts every queue read-only with --read-only, and then refuses a retry', async () => {
    const readOnly = await startBoard({
      connection: redis,
      keys: keyLayout(prefix),
      config: testConfig(),
      auth: { kind: 'bearer', token: 't0ken-for-ops' },
      port: 0,
      readOnly: true,
    });
    try {
      const headers = { authorization: 'Bearer t0ken-for-ops' };
      const body = (await (await fetch(new URL('api/queues', readOnly.url), { headers })).json()) as {
        queues: Array<{ name: string; readOnlyMode: boolean }>;
      };
      expect(body.queues.map((q) => [q.name, q.readOnlyMode])).toEqual([
        ['crawl', true],
        ['crawl-render', true],
        ['crawl-dlq', true],
      ]);
      const retry = await fetch(new URL('api/queues/crawl-dlq/retry/failed', readOnly.url), { method: 'PUT', headers });
      expect(retry.status).toBeGreaterThanOrEqual(400);
      expect(await redis.zcard(`{${prefix}}:crawl-dlq:failed`)).toBe(2);
    } finally {
      await readOnly.close();
    }
  });

  it('refuses to start from the CLI without credentials, naming the variables to set', async () => {
    const result = await runCli(['board', '--port', '1'], {
      env: {
        CRAWLFLEET_BOARD_USER: undefined,
        CRAWLFLEET_BOARD_PASSWORD: undefined,
        CRAWLFLEET_BOARD_TOKEN: undefined,
      },
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(
      'crawlfleet: the board needs credentials: set CRAWLFLEET_BOARD_USER and CRAWLFLEET_BOARD_PASSWORD, or CRAWLFLEET_BOARD_TOKEN',
    );
  });

  it('slows down an address that keeps failing', async () => {
    const timeOf = async () => {
      const started = Date.now();
      await fetch(new URL('api/queues', board.url), { headers: { authorization: 'Basic bm9ib2R5Om5vdGhpbmc=' } });
      return Date.now() - started;
    };
    for (let i = 0; i < 3; i++) await timeOf();
    expect(await timeOf()).toBeGreaterThanOrEqual(250);
  });

  it('shows the dead letters to a person who logs in, in a real browser', async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({
      httpCredentials: { username: USER, password: PASSWORD },
      viewport: { width: 1400, height: 900 },
    });
    const page = await context.newPage();
    const violations: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' && /Content Security Policy|Refused to/.test(message.text()))
        violations.push(message.text());
    });
    await page.goto(board.url);
    await page.getByText('crawl-dlq').first().waitFor({ timeout: 15_000 });
    await page.goto(new URL('queue/crawl-dlq?status=failed', board.url).toString());
    await page.getByText('/status/404?board=1').first().waitFor({ timeout: 15_000 });
    const text = await page.locator('body').textContent();
    expect(text).toContain('non_recoverable/http_404');
    expect(text).toContain(site.url('/status/404?board=2'));
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'board-dlq.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    // Bull Board asks for Google Fonts; the policy blocks any third-party request on purpose
    // (the page falls back to local fonts). The board's own scripts and styles must all load.
    expect(violations.filter((v) => !v.includes('https://fonts.googleapis.com/'))).toEqual([]);

    // Retry on a dead letter is a replay, as `crawlfleet dlq replay` does it: the job goes back on
    // crawl with fresh attempts, the entry leaves the DLQ, and the audit trail says who asked.
    const dlq = new DeadLetterQueue(redis, keyLayout(prefix));
    const entry = (await dlq.list()).find((summary) => summary.url === site.url('/status/404?board=1'));
    expect(entry).toBeDefined();
    // The job card: the nearest element around the entry's id that holds its action buttons.
    const card = page.getByText(String(entry?.id), { exact: true }).locator('xpath=ancestor::*[.//button][1]');
    // Bull Board's job actions are icon buttons without a label; Retry is the refresh icon.
    await card.locator('button:has(svg.lucide-refresh-cw)').click();
    await page.getByRole('button', { name: 'Confirm' }).click();
    await waitFor(async () => (await dlq.count()) === 1, { what: 'the retried entry to leave the DLQ' });
    const crawl = new Queue(CRAWL_QUEUE, { connection: redis, prefix: `{${prefix}}` });
    const requeued = await crawl.getJob(String(entry?.id));
    expect(await requeued?.getState()).toBe('waiting');
    expect(requeued?.attemptsMade).toBe(0);
    expect(await dlq.queue.getJob(String(entry?.id))).toBeUndefined();
    const audit = await new AuditLog(redis, keyLayout(prefix), 1_000).query({ kind: 'replay' });
    expect(audit.map((event) => [event.jobId, event.reason])).toEqual([[entry?.id, 'board']]);
    await dlq.close();
    await crawl.close();
  });

  it('replays through "retry all" too, and refuses, saying why, an entry whose job is queued already', async () => {
    const keys = keyLayout(prefix);
    const dlq = new DeadLetterQueue(redis, keys);
    const crawl = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    const headers = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
    try {
      const [left] = await dlq.list();
      expect(left?.url).toBe(site.url('/status/404?board=2'));
      const all = await fetch(new URL('api/queues/crawl-dlq/retry/failed', board.url), { method: 'PUT', headers });
      expect(all.status).toBe(200);
      expect(await all.json()).toMatchObject({ retried: 1 });
      expect(await dlq.count()).toBe(0);
      expect(await (await crawl.getJob(String(left?.id)))?.getState()).toBe('waiting');

      // The same job fails again while its replay is still waiting: nothing may be enqueued twice.
      const letter = dlqLetterFor(String(left?.id), site.url('/status/404?board=2'));
      await dlq.route(letter);
      const one = await fetch(new URL(`api/queues/crawl-dlq/${left?.id}/retry`, board.url), {
        method: 'PUT',
        headers,
      });
      expect(one.status).toBe(409);
      expect(JSON.stringify(await one.json())).toContain('job_in_progress');
      expect(await dlq.show(String(left?.id))).toEqual(letter);
    } finally {
      await dlq.close();
      await crawl.close();
    }
  });

  it('replays, rather than retries, a failed crawl job that has a dead letter', async () => {
    const keys = keyLayout(prefix);
    const dlq = new DeadLetterQueue(redis, keys);
    const crawl = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    const headers = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
    // The two replayed 404s run again and fail again: failed on crawl, and back in the DLQ.
    const worker = await startTestWorker(keys, testConfig());
    try {
      await waitFor(
        async () => {
          const counts = await crawl.getJobCounts('failed', 'waiting', 'active');
          return counts.failed === 2 && counts.waiting === 0 && counts.active === 0 && (await dlq.count()) === 2;
        },
        { what: 'the replayed jobs to fail again' },
      );
      await worker.stop();
      const [entry] = await dlq.list();
      const retry = await fetch(new URL(`api/queues/crawl/${entry?.id}/retry`, board.url), { method: 'PUT', headers });
      expect(retry.status).toBe(204);
      expect(await dlq.show(String(entry?.id))).toBeUndefined();
      const job = await crawl.getJob(String(entry?.id));
      expect([await job?.getState(), job?.attemptsMade]).toEqual(['waiting', 0]);
      expect(await dlq.count()).toBe(1);
    } finally {
      await worker.stop();
      await dlq.close();
      await crawl.close();
    }
  });

  it('leaves a purge audit event when a person deletes dead letters, one by one or all at once', async () => {
    const keys = keyLayout(prefix);
    const dlq = new DeadLetterQueue(redis, keys);
    const audit = new AuditLog(redis, keys, 1_000);
    const headers = { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` };
    try {
      // Bull Board's "clean all" spares jobs that finished in the last 5 s: these failed a minute ago.
      for (const id of ['gone-1', 'gone-2', 'gone-3']) await dlq.route(dlqLetterFor(id, site.url(`/status/410?${id}`)));
      const minuteAgo = Date.now() - 60_000;
      for (const letter of await dlq.list()) {
        const id = dlqJobId(letter.id);
        await redis.hset(`${keys.bullPrefix}:crawl-dlq:${id}`, 'finishedOn', minuteAgo);
        await redis.zadd(`${keys.bullPrefix}:crawl-dlq:failed`, minuteAgo, id);
      }
      const before = await dlq.count();
      const one = await fetch(new URL('api/queues/crawl-dlq/gone-1/clean', board.url), { method: 'PUT', headers });
      expect(one.status).toBe(204);
      expect(await dlq.show('gone-1')).toBeUndefined();
      const all = await fetch(new URL('api/queues/crawl-dlq/clean/failed', board.url), { method: 'PUT', headers });
      expect(all.status).toBe(200);
      expect(await dlq.count()).toBe(0);

      const purges = (await audit.query({ kind: 'purge' })).reverse();
      expect(purges).toEqual([
        expect.objectContaining({ reason: 'board:remove', jobId: 'gone-1', detail: { purged: 1 } }),
        expect.objectContaining({
          reason: 'board:clean failed',
          detail: { purged: before - 1, ids: expect.arrayContaining(['gone-2', 'gone-3']) },
        }),
      ]);
    } finally {
      await dlq.close();
    }
  });
});

/** A dead letter for a job that is already back on crawl, as a second failure would file it. */
function dlqLetterFor(id: string, url: string): DeadLetter {
  return {
    id,
    url,
    class: 'non_recoverable',
    reason: 'http_404',
    message: 'HTTP 404',
    attempts: 1,
    failedAt: new Date().toISOString(),
    tenant: 'default',
    sessionId: null,
    job: { v: 1, url, method: 'GET', tenant: 'default', idempotencyKey: id, submittedAt: new Date().toISOString() },
    history: [],
    lastResponse: null,
  };
}
