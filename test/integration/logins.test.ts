import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { createLogger } from '@crawlfleet/log';
import { normalizeAuth } from '@crawlfleet/sessions';
import { SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import {
  cleanupPrefix,
  dumpPrefix,
  keyLayout,
  openTestRedis,
  runCli,
  testConfig,
  testRing,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { soleShard } from '../src/shard.js';

const USER_VARIABLE = 'CRAWLFLEET_TEST_LOGIN_USER';
const PASSWORD_VARIABLE = 'CRAWLFLEET_TEST_LOGIN_PASSWORD';
const PASSWORD = 'wonderland-42';

interface StoredPage {
  url: string;
  finalUrl: string;
  status: number;
  body: string;
}

describe('logins as real sites do them', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let running: TestWorker[] = [];
  let logs: string[] = [];
  /** Set when a test started the site with other lifetimes: the next test gets the usual one. */
  let restarted = false;
  const secretsDir = mkdtempSync(join(tmpdir(), 'crawlfleet-logins-'));
  const passwordFile = join(secretsDir, 'password');

  beforeAll(async () => {
    site = await startFixtureSite({ accountPassword: PASSWORD, sessionMaxAgeSeconds: 600 });
    redis = openTestRedis();
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    process.env[USER_VARIABLE] = 'alice';
    process.env[PASSWORD_VARIABLE] = PASSWORD;
  });
  afterAll(async () => {
    delete process.env[USER_VARIABLE];
    delete process.env[PASSWORD_VARIABLE];
    rmSync(secretsDir, { recursive: true, force: true });
    redis.disconnect();
    await site.close();
  });
  beforeEach(() => {
    prefix = uniquePrefix('logins');
    site.resetHits();
    site.revokeAccountSessions();
    logs = [];
  });
  afterEach(async () => {
    await Promise.all(running.map((worker) => worker.stop()));
    running = [];
    await cleanupPrefix(redis, prefix);
    if (restarted) {
      await site.close();
      site = await startFixtureSite({ accountPassword: PASSWORD, sessionMaxAgeSeconds: 600 });
      restarted = false;
    }
  });

  function config(auth: Record<string, unknown>, extra: Record<string, unknown> = {}) {
    return testConfig({ tenants: { member: { allowHosts: ['127.0.0.1'], auth, ...extra } } });
  }

  /** Two workers, each logging at debug into `logs`, so tests can search every line they wrote. */
  async function startWorkers(cfg: ReturnType<typeof config>, concurrency = 8): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const destination = new PassThrough();
      destination.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
      const logger = createLogger({ name: `login-worker-${i}`, level: 'debug', destination });
      running.push(await startTestWorker(keyLayout(prefix), cfg, { logger, concurrency }));
    }
  }

  /** Login form submissions the site received, whatever it answered. */
  function loginAttempts(): number {
    const counts = site.accounts();
    return counts.formLogins + counts.formLoginFailures + counts.csrfRejections;
  }

  async function results(): Promise<StoredPage[]> {
    const entries = await redis.xrange(soleShard(keyLayout(prefix)).results, '-', '+');
    return entries.map(([, fields]) => JSON.parse(String(fields[1])) as StoredPage);
  }

  async function deadLetters() {
    const dlq = new DeadLetterQueue(redis, keyLayout(prefix));
    try {
      return await dlq.list({ limit: 100 });
    } finally {
      await dlq.close();
    }
  }

  async function authSlate() {
    const store = new SlateStore(redis, keyLayout(prefix), testRing());
    const read = (await store.read(store.session('member', 'acct'), ['auth'])).get('auth');
    return normalizeAuth(read?.value);
  }

  async function crawl(cfg: ReturnType<typeof config>, paths: string[], method: 'GET' | 'POST' = 'GET') {
    await submit(
      redis,
      keyLayout(prefix),
      cfg,
      paths.map((path) => ({ url: site.url(path), method })),
      'member',
      'acct',
    );
  }

  async function settled(count: number): Promise<void> {
    await waitFor(async () => (await results()).length + (await deadLetters()).length >= count, {
      timeoutMs: 60_000,
      what: `${count} jobs to end`,
    });
  }

  const formLogin = () => ({
    login: {
      page: site.url('/accounts/login/'),
      form: { username: `\${${USER_VARIABLE}}`, password: `\${file:${passwordFile}}` },
    },
  });

  for (const [kind, pathOf] of [
    ['redirect to the login page', (i: number) => `/members/page-${i}`],
    ['answer 403', (i: number) => `/members-403/page-${i}`],
  ] as const) {
    it(`logs 2 workers in at most twice for 20 CSRF-protected pages that ${kind}, and stores them as the user`, async () => {
      const cfg = config(formLogin());
      await startWorkers(cfg);
      await crawl(
        cfg,
        Array.from({ length: 20 }, (_, i) => pathOf(i)),
      );
      await settled(20);
      const pages = await results();
      expect(await deadLetters()).toEqual([]);
      expect(pages).toHaveLength(20);
      for (const page of pages) {
        expect(page.status).toBe(200);
        expect(page.body).toContain('Signed in as alice.');
        expect(page.body).not.toContain('csrfmiddlewaretoken');
      }
      const counts = site.accounts();
      expect(counts.formLogins).toBeGreaterThanOrEqual(1);
      expect(counts.formLogins).toBeLessThanOrEqual(2);
      expect(counts.csrfRejections).toBe(0);
      // The login's lifetime is the session cookie's (10 minutes here), not the 1 hour default.
      const auth = await authSlate();
      const left = Date.parse(String(auth?.expiresAt)) - Date.now();
      expect(left).toBeGreaterThan(500_000);
      expect(left).toBeLessThanOrEqual(600_000);
      const everything = `${logs.join('')}\n${await dumpPrefix(redis, prefix)}`;
      expect(everything).not.toContain(PASSWORD);
    });
  }

  it('makes at most 2 login attempts when the site refuses the login, stores no login page, and dead-letters every page as auth_failed', async () => {
    const cfg = config({
      login: { page: site.url('/accounts/login/'), form: { username: 'alice', password: 'not-the-password' } },
    });
    await startWorkers(cfg);
    await crawl(
      cfg,
      Array.from({ length: 20 }, (_, i) => `/members/refused-${i}`),
    );
    await settled(20);
    expect(await results()).toEqual([]);
    const letters = await deadLetters();
    expect(letters).toHaveLength(20);
    for (const letter of letters) expect(`${letter.class}/${letter.reason}`).toBe('non_recoverable/auth_failed');
    // One attempt: the jobs that saw the login page meanwhile take up its refusal.
    expect(loginAttempts()).toBe(1);
    expect(site.accounts().formLogins).toBe(0);
    // The entry says what happened: the status and the start of the answer, without the password.
    const dlq = new DeadLetterQueue(redis, keyLayout(prefix));
    try {
      const letter = await dlq.show(letters[0]?.id as string);
      expect(letter?.message).toMatch(/login refused: the login landed back on the login page/);
      expect(letter?.lastResponse?.status).toBe(200);
      expect(letter?.lastResponse?.bodySnippet).toContain('<form');
      expect(JSON.stringify(letter)).not.toContain('not-the-password');
    } finally {
      await dlq.close();
    }
    const auth = await authSlate();
    expect(auth?.refused?.count).toBe(1);
    expect(Date.parse(String(auth?.refused?.until))).toBeGreaterThan(Date.now() + 200_000);
  });

  it('holds the jobs of a session whose login was refused until its cool-down ends, when the tenant says wait', async () => {
    const cfg = config({
      login: { page: site.url('/accounts/login/'), form: { username: 'alice', password: 'wrong' } },
      refused: { cooldownSeconds: 60, jobs: 'wait' },
    });
    await startWorkers(cfg, 2);
    await crawl(cfg, ['/members/wait-1', '/members/wait-2']);
    const delayed = `${keyLayout(prefix).bullPrefix}:crawl:delayed`;
    await waitFor(async () => (await redis.zcard(delayed)) === 2, {
      what: 'both jobs held back',
    });
    expect(await results()).toEqual([]);
    expect(await deadLetters()).toEqual([]);
    expect(loginAttempts()).toBe(1);
  });

  it('doubles the cool-down with each refusal in a row, and tries no login while one lasts', async () => {
    const cfg = config({
      login: { page: site.url('/accounts/login/'), form: { username: 'alice', password: 'wrong' } },
      refused: { cooldownSeconds: 1, maxCooldownSeconds: 4 },
    });
    await startWorkers(cfg, 1);
    await crawl(cfg, ['/members/breaker-1']);
    await settled(1);
    expect((await authSlate())?.refused?.count).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await crawl(cfg, ['/members/breaker-2']);
    await settled(2);
    const refused = (await authSlate())?.refused;
    expect(refused?.count).toBe(2);
    expect(Date.parse(String(refused?.until)) - Date.parse(String(refused?.at))).toBe(2_000);
    await crawl(cfg, ['/members/breaker-3']);
    await settled(3);
    expect(loginAttempts()).toBe(2);
    const letters = await deadLetters();
    expect(letters.map((letter) => letter.reason)).toEqual(['auth_failed', 'auth_failed', 'auth_failed']);
    const shown = await runCli(['sessions', 'show', 'acct', '--tenant', 'member'], {
      env: { CRAWLFLEET_PREFIX: prefix },
    });
    expect(shown.stdout).toMatch(
      /auth: login refused 2x \(the login landed back on the login page, HTTP 200\); no new try before/,
    );
  });

  it("logs in again before a job's request when the session cookie would expire within the margin", async () => {
    // Lifetime 8 s, so the margin is a quarter of it: 2 s.
    await restartSite({ sessionMaxAgeSeconds: 8 });
    const cfg = config(formLogin());
    await startWorkers(cfg, 1);
    await crawl(cfg, ['/members/early-1']);
    await settled(1);
    expect(site.hitsByPrefix('/accounts/login/?next=')).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 6_500));
    await crawl(cfg, ['/members/early-2']);
    await settled(2);
    expect(site.accounts().formLogins).toBe(2);
    // The second page was never sent to the login page: the login came first.
    expect(site.hitsByPrefix('/accounts/login/?next=')).toBe(1);
    expect((await results()).map((page) => page.status)).toEqual([200, 200]);
  }, 30_000);

  it('sends no credentials to a login form that posts to another origin', async () => {
    let stolen = 0;
    const hostile = createServer((req, res) => {
      if (req.url === '/steal') stolen++;
      res.statusCode = req.url === '/login' ? 200 : 401;
      res.setHeader('content-type', 'text/html');
      res.end(
        `<form method="post" action="http://localhost:${(hostile.address() as AddressInfo).port}/steal"><input name="username"><input type="password" name="password"></form>`,
      );
    });
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    try {
      const port = (hostile.address() as AddressInfo).port;
      const cfg = config(
        { login: { page: `http://127.0.0.1:${port}/login`, form: { username: 'alice', password: PASSWORD } } },
        { allowHosts: ['127.0.0.1', 'localhost'] },
      );
      await startWorkers(cfg, 1);
      await submit(redis, keyLayout(prefix), cfg, [{ url: `http://127.0.0.1:${port}/members` }], 'member', 'acct');
      await settled(1);
      expect(stolen).toBe(0);
      const [letter] = await deadLetters();
      expect(letter?.reason).toBe('auth_failed');
      const dlq = new DeadLetterQueue(redis, keyLayout(prefix));
      try {
        expect((await dlq.show(String(letter?.id)))?.message).toMatch(
          /posts to another origin \(http:\/\/localhost:\d+\)/,
        );
      } finally {
        await dlq.close();
      }
    } finally {
      await new Promise((resolve) => hostile.close(resolve));
    }
  });

  it('logs in once, not once per page, for pages that stay forbidden after a login', async () => {
    const cfg = config(formLogin());
    await startWorkers(cfg, 2);
    await crawl(
      cfg,
      Array.from({ length: 6 }, (_, i) => `/status/403?i=${i}`),
    );
    await settled(6);
    const letters = await deadLetters();
    expect(letters).toHaveLength(6);
    for (const letter of letters) expect(letter.reason).toBe('auth_failed');
    expect(site.accounts().formLogins).toBe(1);
  });

  it('echoes the CSRF cookie in X-CSRFToken on a POST of the session, after logging in for it', async () => {
    const cfg = config({ ...formLogin(), csrf: { cookie: 'csrftoken', header: 'X-CSRFToken' } });
    await startWorkers(cfg, 2);
    await crawl(cfg, ['/members/action'], 'POST');
    await settled(1);
    const [page] = await results();
    expect(await deadLetters()).toEqual([]);
    expect(page?.status).toBe(200);
    expect(JSON.parse(String(page?.body))).toEqual({ ok: true });
    expect(site.accounts().csrfRejections).toBe(0);
  });

  /** The site again, with other token lifetimes (its address changes: configs are made after). */
  async function restartSite(options: { tokenTtlSeconds?: number; sessionMaxAgeSeconds?: number }): Promise<void> {
    await site.close();
    site = await startFixtureSite({ accountPassword: PASSWORD, sessionMaxAgeSeconds: 600, ...options });
    restarted = true;
  }

  const tokenLogin = (token: Record<string, unknown> = {}) => ({
    login: {
      url: site.url('/api/token'),
      json: { username: `\${${USER_VARIABLE}}`, password: `\${${PASSWORD_VARIABLE}}` },
      token: {
        path: 'access',
        header: 'authorization',
        prefix: 'Bearer ',
        expiresInPath: 'expires_in',
        refreshPath: 'refresh',
        ...token,
      },
    },
    refresh: { url: site.url('/api/token/refresh'), json: { refresh: '{refresh}' } },
  });

  it('refreshes a token that a 401 with WWW-Authenticate: Bearer rejects, and logs in again when the refresh is refused too', async () => {
    // No expiresInPath: the worker takes the login to last an hour, the site's token lives 1 s.
    await restartSite({ tokenTtlSeconds: 1 });
    const cfg = config(tokenLogin({ expiresInPath: undefined }));
    await startWorkers(cfg, 1);
    await crawl(cfg, ['/api/items/one']);
    await settled(1);
    expect(site.accounts()).toMatchObject({ tokenLogins: 1, refreshes: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    await crawl(cfg, ['/api/items/two']);
    await settled(2);
    expect(site.accounts()).toMatchObject({ tokenLogins: 1, refreshes: 1, rejectedTokens: 1 });
    site.revokeAccountSessions();
    await crawl(cfg, ['/api/items/three']);
    await settled(3);
    expect(site.accounts()).toMatchObject({ tokenLogins: 2, refreshes: 1, refreshFailures: 1, rejectedTokens: 2 });
    const pages = await results();
    expect(pages.map((page) => page.status)).toEqual([200, 200, 200]);
    expect(await deadLetters()).toEqual([]);
    // `sessions show` says the session holds tokens, never what they are.
    const auth = await authSlate();
    const shown = await runCli(['sessions', 'show', 'acct', '--tenant', 'member', '--json'], {
      env: { CRAWLFLEET_PREFIX: prefix },
    });
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout).auth).toMatchObject({ token: true, refreshToken: true, refused: null });
    for (const secret of [String(auth?.token), String(auth?.refreshToken)]) expect(shown.stdout).not.toContain(secret);
  }, 30_000);

  it("sends a session's token only to the login's host: another host of the same server gets none", async () => {
    const cfg = config(tokenLogin(), { allowHosts: ['127.0.0.1', 'localhost'] });
    await startWorkers(cfg, 1);
    await crawl(cfg, ['/api/items/home']);
    await settled(1);
    await submit(
      redis,
      keyLayout(prefix),
      cfg,
      [{ url: site.url('/api/items/elsewhere').replace('127.0.0.1', 'localhost') }],
      'member',
      'acct',
    );
    await settled(2);
    expect((await results()).map((page) => page.status)).toEqual([200]);
    expect((await deadLetters()).map((letter) => letter.reason)).toEqual(['auth_failed']);
  });

  it("logs a token tenant in when its session holds an older worker's login without a token", async () => {
    const store = new SlateStore(redis, keyLayout(prefix), testRing());
    const now = Date.now();
    const legacy = { loggedInAt: new Date(now).toISOString(), expiresAt: new Date(now + 3_600_000).toISOString() };
    const written = await store.commit(store.session('member', 'acct'), [
      { name: 'auth', expectedVersion: 0, value: legacy, ttlMs: 3_600_000 },
    ]);
    expect(written.ok).toBe(true);
    const cfg = config(tokenLogin());
    await startWorkers(cfg, 1);
    await crawl(cfg, ['/api/items/after-upgrade']);
    await settled(1);
    expect((await results()).map((page) => page.status)).toEqual([200]);
    expect(site.accounts()).toMatchObject({ tokenLogins: 1, rejectedTokens: 0 });
    expect((await authSlate())?.token).toBeDefined();
  });

  it('crawls 40 token-protected pages over a minute with 20 s tokens, renewing before expiry only a few times, and stores no token or password anywhere', async () => {
    await restartSite({ tokenTtlSeconds: 20 });
    const cfg = config(tokenLogin(), { hostDelayMs: 1_500 });
    await startWorkers(cfg, 4);
    const started = Date.now();
    await crawl(
      cfg,
      Array.from({ length: 40 }, (_, i) => `/api/items/${i}`),
    );
    await waitFor(async () => (await results()).length + (await deadLetters()).length >= 40, {
      timeoutMs: 120_000,
      intervalMs: 500,
      what: '40 jobs to end',
    });
    expect(Date.now() - started).toBeGreaterThan(55_000);
    expect(await deadLetters()).toEqual([]);
    const pages = await results();
    expect(pages).toHaveLength(40);
    for (const page of pages) expect(page.status).toBe(200);
    const counts = site.accounts();
    // One login, then a refresh about every 15 s (a quarter of 20 s before each expiry).
    expect(counts.tokenLogins).toBe(1);
    expect(counts.tokenLogins + counts.refreshes).toBeLessThanOrEqual(6);
    expect(counts.rejectedTokens).toBe(0);
    const auth = await authSlate();
    const token = String(auth?.token);
    const refreshToken = String(auth?.refreshToken);
    expect(token.length).toBeGreaterThan(8);
    expect(refreshToken.length).toBeGreaterThan(8);
    const everything = [logs.join(''), await dumpPrefix(redis, prefix), JSON.stringify(pages)].join('\n');
    for (const secret of [token, refreshToken, PASSWORD]) expect(everything).not.toContain(secret);
  }, 150_000);
});
