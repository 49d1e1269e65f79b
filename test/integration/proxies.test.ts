import { AuditLog } from '@crawlfleet/audit';
import { CRAWL_QUEUE, type FetchJob, type KeyLayout } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { Producer } from '@crawlfleet/producer';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import { type ForwardProxy, startForwardProxy } from '../src/forward-proxy.js';
import {
  cleanupPrefix,
  dumpPrefix,
  keyLayout,
  openTestRedis,
  runCli,
  testConfig,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { soleShard } from '../src/shard.js';

const SESSIONS = 10;
const PAGES_PER_SESSION = 30;
const PASSWORD = 'proxy-secret-3f9a1c';

describe('proxies: a session is bound to one proxy, on every worker', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let keys: KeyLayout;
  let proxies: ForwardProxy[];
  let workers: TestWorker[] = [];

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
  });
  beforeEach(async () => {
    prefix = uniquePrefix('proxies');
    keys = keyLayout(prefix);
    site.resetHits();
    // The second proxy asks for credentials, which the config names as ${TEST_PROXY_PASSWORD}.
    proxies = [
      await startForwardProxy(),
      await startForwardProxy({ username: 'crawler', password: PASSWORD }),
      await startForwardProxy(),
    ];
    vi.stubEnv('TEST_PROXY_PASSWORD', PASSWORD);
  });
  afterEach(async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    workers = [];
    await Promise.all(proxies.map((proxy) => proxy.stop()));
    vi.unstubAllEnvs();
    await cleanupPrefix(redis, prefix);
  });

  function config() {
    return testConfig({
      tenants: {
        default: {
          allowHosts: ['127.0.0.1'],
          robots: 'respect',
          identity: { profile: 'browser', locales: ['en-US', 'de-DE'] },
          proxy: {
            urls: [
              proxies[0]?.url,
              `http://crawler:\${TEST_PROXY_PASSWORD}@127.0.0.1:${proxies[1]?.port}`,
              proxies[2]?.url,
            ],
          },
        },
      },
    });
  }

  it('sends each of 10 sessions through one proxy with one browser header set, from two workers; nothing goes direct; no credential is stored', async () => {
    const cfg = config();
    for (let s = 0; s < SESSIONS; s++) {
      const targets = Array.from({ length: PAGES_PER_SESSION }, (_, i) => ({ url: site.url(`/ok/s${s}-p${i}`) }));
      await submit(redis, keys, cfg, targets, 'default', `s${s}`);
    }
    workers = [
      await startTestWorker(keys, cfg, { concurrency: 8 }),
      await startTestWorker(keys, cfg, { concurrency: 8 }),
    ];
    const total = SESSIONS * PAGES_PER_SESSION;
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= total, {
      timeoutMs: 60_000,
      what: 'every page',
    });

    // Which proxy forwarded each session's pages.
    const bySession = new Map<string, Set<number>>();
    for (const [index, proxy] of proxies.entries()) {
      for (const url of proxy.forwarded) {
        const session = /\/ok\/(s\d+)-p\d+$/.exec(url)?.[1];
        if (session === undefined) continue;
        const used = bySession.get(session) ?? new Set<number>();
        used.add(index);
        bySession.set(session, used);
      }
    }
    expect(bySession.size).toBe(SESSIONS);
    for (const [session, used] of bySession) expect(used.size, `${session} went through ${[...used]}`).toBe(1);
    const inUse = new Set([...bySession.values()].flatMap((used) => [...used]));
    expect(inUse.size).toBeGreaterThanOrEqual(2);

    // Each session sent one header set (user agent, client hints, languages) on every page.
    const headerSets = new Map<string, Set<string>>();
    for (const proxy of proxies)
      for (const [url, headers] of proxy.headers) {
        const session = /\/ok\/(s\d+)-p\d+$/.exec(url)?.[1];
        if (session === undefined) continue;
        const { 'user-agent': userAgent, 'accept-language': language, accept, 'sec-ch-ua': hints } = headers;
        const set = headerSets.get(session) ?? new Set<string>();
        set.add(JSON.stringify([userAgent, language, accept, hints]));
        headerSets.set(session, set);
      }
    for (const [session, sets] of headerSets) expect(sets.size, `${session} sent ${[...sets]}`).toBe(1);
    const userAgents = new Set([...headerSets.values()].map((sets) => JSON.parse([...sets][0] ?? '[]')[0]));
    expect(userAgents.size).toBeGreaterThanOrEqual(2);
    expect([...userAgents].every((agent) => String(agent).startsWith('Mozilla/5.0'))).toBe(true);
    // Everything the site saw came through a proxy: the pages and robots.txt.
    const forwarded = proxies.reduce((sum, proxy) => sum + proxy.forwarded.length, 0);
    expect(forwarded).toBe(site.hitsByPrefix('/'));
    expect(site.hitsByPrefix('/ok/')).toBe(total);
    expect(proxies[1]?.refused).toBe(0);

    // Each result, and each job's return value (what the board shows), names its session's proxy.
    const results = (await redis.xrange(soleShard(keys).results, '-', '+')).map(([, f]) => JSON.parse(String(f[1])));
    for (const result of results) {
      const session = /\/ok\/(s\d+)-p\d+$/.exec(result.url)?.[1] as string;
      expect(result.proxy).toBe(`http://127.0.0.1:${proxies[[...(bySession.get(session) ?? [])][0] ?? -1]?.port}`);
    }
    const queue = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    try {
      const [done] = await queue.getCompleted(0, 0);
      expect(done?.returnvalue).toMatchObject({
        outcome: 'stored',
        proxy: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      });
    } finally {
      await queue.close();
    }
    // The proxy's password is in no Redis value: results, jobs, ledger, sessions.
    expect(await dumpPrefix(redis, prefix)).not.toContain(PASSWORD);

    // `sessions show` names the session's proxy (never its credentials) and its identity.
    for (const [session, used] of [...bySession].slice(0, 3)) {
      const shown = await runCli(['sessions', 'show', session, '--json'], { env: { CRAWLFLEET_PREFIX: prefix } });
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).not.toContain(PASSWORD);
      const view = JSON.parse(shown.stdout);
      expect(view.proxy).toBe(`http://127.0.0.1:${proxies[[...used][0] ?? -1]?.port}`);
      expect(view.profile).toMatchObject({ userAgent: expect.stringMatching(/^Mozilla\/5\.0/), browserHeaders: true });
    }
  });

  it('keeps a session on the proxy its profile names, even when the pool is listed in another order', async () => {
    const cfg = config();
    await submit(redis, keys, cfg, [{ url: site.url('/ok/first') }], 'default', 'kept');
    workers = [await startTestWorker(keys, cfg)];
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= 1, { what: 'the first page' });
    const first = proxies.findIndex((proxy) => proxy.forwarded.some((url) => url.endsWith('/ok/first')));
    await workers[0]?.stop();
    workers = [];

    // The same proxies in reverse order: the name alone would now pick another one.
    const reordered = testConfig({
      tenants: {
        default: { ...cfg.tenants.default, proxy: { urls: [...(cfg.tenants.default?.proxy?.urls ?? [])].reverse() } },
      },
    });
    await submit(redis, keys, reordered, [{ url: site.url('/ok/second') }], 'default', 'kept');
    workers = [await startTestWorker(keys, reordered)];
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= 2, { what: 'the second page' });
    const second = proxies.findIndex((proxy) => proxy.forwarded.some((url) => url.endsWith('/ok/second')));
    expect(second).toBe(first);
  });

  describe('a failing proxy', () => {
    async function letterOf(url: string, proxyUrls: string[]) {
      const cfg = testConfig({
        jobs: { retries: 1, backoffBaseMs: 20, backoffMaxMs: 50 },
        breakers: { failureThreshold: 1 },
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore', proxy: { urls: proxyUrls } } },
      });
      await submit(redis, keys, cfg, [{ url }], 'default', 'through-a-bad-proxy');
      workers = [await startTestWorker(keys, cfg)];
      const dlq = new DeadLetterQueue(redis, keys);
      try {
        return await waitFor(async () => (await dlq.list()).find((letter) => letter.url === url), {
          timeoutMs: 20_000,
          what: `the dead letter of ${url}`,
        });
      } finally {
        await dlq.close();
      }
    }

    async function breakerOpened(): Promise<boolean> {
      const events = await new AuditLog(redis, keys, 1_000).query({ kind: 'breaker_open' });
      return events.length > 0;
    }

    it('fails as proxy_unreachable when it is down, retried, and never opens the session breaker', async () => {
      const down = proxies[2] as ForwardProxy;
      await down.stop();
      const letter = await letterOf(site.url('/ok/via-a-dead-proxy'), [down.url]);
      expect(letter).toMatchObject({
        class: 'recoverable',
        reason: 'retries_exhausted:proxy_unreachable',
        attempts: 2,
      });
      expect(await breakerOpened()).toBe(false);
      expect(site.hitsByPrefix('/ok/via-a-dead-proxy')).toBe(0);
    });

    it('fails as proxy_auth_required when it refuses the credentials (HTTP 407), the password nowhere', async () => {
      vi.stubEnv('TEST_PROXY_PASSWORD', 'not-the-password');
      const url = site.url('/ok/via-a-refusing-proxy');
      const letter = await letterOf(url, [`http://crawler:\${TEST_PROXY_PASSWORD}@127.0.0.1:${proxies[1]?.port}`]);
      expect(letter).toMatchObject({ reason: 'retries_exhausted:proxy_auth_required', attempts: 2 });
      expect(proxies[1]?.refused).toBe(2);
      expect(await breakerOpened()).toBe(false);
      expect(await dumpPrefix(redis, prefix)).not.toContain('not-the-password');
    });

    it('dead-letters at once as proxy_secret_missing when the secret its URL names is not set', async () => {
      const letter = await letterOf(site.url('/ok/no-secret'), [
        `http://crawler:\${NO_SUCH_PROXY_SECRET}@127.0.0.1:${proxies[0]?.port}`,
      ]);
      expect(letter).toMatchObject({ class: 'non_recoverable', reason: 'proxy_secret_missing', attempts: 1 });
      expect(proxies[0]?.forwarded).toEqual([]);
    });
  });

  it('moves the sessions of a proxy that dies mid-crawl to another, each with a fresh jar, and fetches every page once', async () => {
    // Credentials are not the point here: the second proxy asks for none in this test.
    await proxies[1]?.stop();
    proxies[1] = await startForwardProxy();
    const cfg = testConfig({
      jobs: { retries: 5, backoffBaseMs: 50, backoffMaxMs: 200 },
      tenants: {
        default: {
          allowHosts: ['127.0.0.1'],
          robots: 'ignore',
          proxy: { urls: proxies.map((proxy) => `http://127.0.0.1:${proxy.port}`) },
        },
      },
    });
    const sessions = 6;
    const pages = 40;
    // Interleaved (page i of every session, then page i + 1), so every session still has pages
    // queued when the proxy dies: a session that finished before would move nowhere.
    const producer = new Producer(redis, keys, cfg);
    try {
      const perSession = Array.from({ length: sessions }, (_, s) =>
        producer.prepare(
          Array.from({ length: pages }, (_, i) => ({ url: site.url(`/cookies/set?seen=1&k=s${s}-p${i}`) })),
          { tenant: 'default', sessionId: `r${s}` },
        ),
      );
      await producer.submit(
        Array.from({ length: pages }, (_, i) => perSession.map((jobs) => jobs[i] as FetchJob)).flat(),
      );
    } finally {
      await producer.close();
    }
    const sessionOf = (url: string) => /k=(s\d+)-p\d+/.exec(url)?.[1];
    workers = [
      await startTestWorker(keys, cfg, { concurrency: 3 }),
      await startTestWorker(keys, cfg, { concurrency: 3 }),
    ];
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= 60, {
      timeoutMs: 30_000,
      what: 'the crawl under way',
    });

    // The proxy that carries the most sessions dies.
    const carried = proxies.map((proxy) => new Set(proxy.forwarded.map(sessionOf).filter(Boolean)));
    const victim = carried.reduce((best, set, i) => (set.size > (carried[best]?.size ?? 0) ? i : best), 0);
    const moved = carried[victim] as Set<string>;
    expect(moved.size).toBeGreaterThan(0);
    const killed = proxies[victim] as ForwardProxy;
    await killed.stop();
    const before = new Set(killed.forwarded);

    const total = sessions * pages;
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= total, {
      timeoutMs: 60_000,
      what: 'every page',
    });
    const results = (await redis.xrange(soleShard(keys).results, '-', '+')).map(([, f]) => JSON.parse(String(f[1])));
    expect(results).toHaveLength(total);
    expect(new Set(results.map((r) => r.idempotencyKey)).size).toBe(total);
    expect(killed.forwarded.length).toBe(before.size);

    const audit = new AuditLog(redis, keys, 1_000);
    expect(await audit.query({ kind: 'proxy_down' })).toHaveLength(1);
    expect(await audit.query({ kind: 'proxy_rotated' })).toHaveLength(moved.size);
    for (const session of moved) {
      // From the kill on, the session went through one other proxy only...
      const after = proxies.filter(
        (proxy, i) => i !== victim && proxy.forwarded.some((url) => sessionOf(url) === session),
      );
      expect(after, `${session} after the kill`).toHaveLength(1);
      // ...and started there with a fresh jar: its first requests carried none of the old cookies.
      const through = [...(after[0] as ForwardProxy).headers].filter(([url]) => sessionOf(url) === session);
      expect(through.some(([, headers]) => !String(headers.cookie ?? '').includes('seen=1'))).toBe(true);
    }
  });
});
