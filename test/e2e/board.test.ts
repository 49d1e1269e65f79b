import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RunningBoard, startBoard } from '@crawlfleet/board';
import type { Redis } from 'ioredis';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, testConfig, uniquePrefix, waitFor } from '../src/harness.js';

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
        (await redis.xlen(keys.results)) === 2 && (await redis.llen(`${keys.bullPrefix}:crawl-dlq:wait`)) === 2,
      {
        what: 'two pages and two dead letters',
      },
    );
    await worker.stop();
    board = await startBoard({
      connection: redis,
      keys,
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

  it('accepts a bearer token instead, when that is what is configured', async () => {
    const tokenBoard = await startBoard({
      connection: redis,
      keys: keyLayout(prefix),
      auth: { kind: 'bearer', token: 't0ken-for-ops' },
      port: 0,
    });
    try {
      expect((await fetch(new URL('api/queues', tokenBoard.url))).status).toBe(401);
      expect(
        (await fetch(new URL('api/queues', tokenBoard.url), { headers: { authorization: 'Bearer wrong' } })).status,
      ).toBe(401);
      const ok = await fetch(new URL('api/queues', tokenBoard.url), {
        headers: { authorization: 'Bearer t0ken-for-ops' },
      });
      expect(ok.status).toBe(200);
      const body = (await ok.json()) as { queues: Array<{ name: string; readOnlyMode: boolean }> };
      expect(body.queues.map((q) => [q.name, q.readOnlyMode])).toEqual([
        ['crawl', false],
        ['crawl-dlq', true],
      ]);
    } finally {
      await tokenBoard.close();
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
    await page.goto(new URL('queue/crawl-dlq?status=waiting', board.url).toString());
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
  });
});
