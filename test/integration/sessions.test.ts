import { openSessionRedis, whenReady } from '@crawlfleet/core';
import { RecoverableError } from '@crawlfleet/failures';
import { freePort, startRedisServer } from '@crawlfleet/local-redis';
import { createLogger } from '@crawlfleet/log';
import { loadSessionHasher, SessionCookieJar, SessionManager } from '@crawlfleet/sessions';
import { SlateStore } from '@crawlfleet/slates';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import {
  cleanupPrefix,
  dumpPrefix,
  keyLayout,
  openTestRedis,
  testConfig,
  testRing,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { soleShard } from '../src/shard.js';

const PASSWORD_VARIABLE = 'CRAWLFLEET_TEST_FIXTURE_PASSWORD';

describe('sessions shared by jobs', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let running: TestWorker[] = [];
  const ring = testRing();

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    process.env[PASSWORD_VARIABLE] = 'secret';
  });
  afterAll(async () => {
    delete process.env[PASSWORD_VARIABLE];
    redis.disconnect();
    await site.close();
  });
  beforeEach(() => {
    prefix = uniquePrefix('sessions');
    site.resetHits();
    sessionsConfig = {};
  });
  afterEach(async () => {
    await Promise.all(running.map((w) => w.stop()));
    running = [];
    await cleanupPrefix(redis, prefix);
  });

  /** `sessions` settings of the next workers and submits (reset before each test). */
  let sessionsConfig: Record<string, unknown> = {};

  function config() {
    return testConfig({
      sessions: sessionsConfig,
      tenants: {
        default: { allowHosts: ['127.0.0.1'] },
        member: {
          allowHosts: ['127.0.0.1'],
          auth: { login: { url: site.url('/login'), form: { user: 'alice', password: `\${${PASSWORD_VARIABLE}}` } } },
        },
      },
    });
  }

  async function run(options: Parameters<typeof startTestWorker>[2] = {}): Promise<TestWorker> {
    const worker = await startTestWorker(keyLayout(prefix), config(), options);
    running.push(worker);
    return worker;
  }

  async function crawl(tenant: string, sessionId: string, paths: string[]): Promise<void> {
    const keys = keyLayout(prefix);
    const before = await redis.xlen(soleShard(keys).results);
    await submit(
      redis,
      keys,
      config(),
      paths.map((path) => ({ url: site.url(path) })),
      tenant,
      sessionId,
    );
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === before + paths.length, {
      what: `${paths.length} results`,
    });
  }

  async function jarOf(tenant: string, sessionId: string) {
    const store = new SlateStore(redis, keyLayout(prefix), ring);
    const slates = await store.read(store.session(tenant, sessionId), ['cookies', 'auth', 'profile', 'meta']);
    return { slates, jar: (await SessionCookieJar.fromSlate(slates.get('cookies')?.value)).jar };
  }

  async function metaOf(tenant: string, sessionId: string) {
    const store = new SlateStore(redis, keyLayout(prefix), ring);
    const read = (await store.read(store.session(tenant, sessionId), ['meta'])).get('meta');
    return read?.value as { jobs: number; errors: number; lastUsedAt: string } | undefined;
  }

  it('commits nothing for jobs that only count, and writes their exact count when the worker drains', async () => {
    sessionsConfig = { metaFlushMs: 600_000 };
    const worker = await run();
    // The first job creates the session (profile, cookie, meta): that is a commit.
    await crawl('default', 'quiet', ['/cookies/set?a=1']);
    expect(await metaOf('default', 'quiet')).toMatchObject({ jobs: 1, errors: 0 });
    const versions = async () => {
      const store = new SlateStore(redis, keyLayout(prefix), ring);
      const slates = await store.read(store.session('default', 'quiet'), ['cookies', 'profile', 'meta']);
      return [...slates.values()].map((slate) => slate.version);
    };
    const created = await versions();

    await crawl(
      'default',
      'quiet',
      Array.from({ length: 20 }, (_, i) => `/ok/quiet-${i}`),
    );
    // Twenty jobs later no slate moved: their counts wait in the worker.
    expect(await versions()).toEqual(created);
    expect(worker.worker.sessions.metaBacklog).toBe(1);

    await worker.stop();
    running = running.filter((w) => w !== worker);
    expect(await metaOf('default', 'quiet')).toMatchObject({ jobs: 21, errors: 0 });
    expect(worker.worker.sessions.metaBacklog).toBe(0);
  });

  it('writes waiting counts on the flush timer, and with the next commit of the session', async () => {
    sessionsConfig = { metaFlushMs: 300 };
    const first = await run();
    // The session first, so that the next jobs find it and count behind (run together with it,
    // they would all find none and write their counts with their own commits).
    await crawl('default', 'timer', ['/cookies/set?t=1']);
    await crawl('default', 'timer', ['/ok/t-1', '/ok/t-2', '/ok/t-3']);
    await waitFor(async () => (await metaOf('default', 'timer'))?.jobs === 4, { what: 'meta.jobs = 4 by the timer' });
    // Written by the timer of a worker still running, not by its drain.
    expect(first.worker.sessionCounters.metaWrittenBehind).toBe(3);
    await first.stop();
    running = running.filter((w) => w !== first);

    sessionsConfig = { metaFlushMs: 600_000 };
    const second = await run();
    await crawl('default', 'carried', ['/cookies/set?c=1', '/ok/c-1', '/ok/c-2']);
    // A job that sets a cookie commits, and takes the waiting counts along.
    await crawl('default', 'carried', ['/cookies/set?c=2']);
    expect(await metaOf('default', 'carried')).toMatchObject({ jobs: 4 });
    expect(second.worker.sessions.metaBacklog).toBe(0);
  });

  it('writes no cookie slate for pages that re-send the session cookie unchanged or set only trackers', async () => {
    await run();
    await crawl('default', 'steady', ['/cookies/set?sid=1']);
    const cookies = keyLayout(prefix).session('default', 'steady').slate('cookies');
    expect(await redis.hget(cookies, 'v')).toBe('1');
    const keys = keyLayout(prefix);
    const before = await redis.xlen(soleShard(keys).results);
    // Other keys for pages that answer the same session cookie again, with a new tracker each.
    await submit(
      redis,
      keys,
      config(),
      Array.from({ length: 10 }, (_, i) => ({
        url: site.url(`/cookies/set?sid=1&_ga=GA1.1.${i}`),
        key: `steady-${i}`,
      })),
      'default',
      'steady',
    );
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === before + 10, { what: '10 more results' });
    expect(await redis.hget(cookies, 'v')).toBe('1');
    expect((await (await jarOf('default', 'steady')).jar.describe()).map((cookie) => cookie.name)).toEqual(['sid']);
  });

  it('keeps every cookie when 50 jobs of one session commit at once', async () => {
    await run({ concurrency: 50 });
    const paths = Array.from({ length: 50 }, (_, i) => `/cookies/set?c${i}=v${i}`);
    await crawl('default', 's50', paths);
    const { jar, slates } = await jarOf('default', 's50');
    const names = (await jar.describe()).map((c) => c.name).sort();
    expect(names).toEqual(Array.from({ length: 50 }, (_, i) => `c${i}`).sort());
    expect(slates.get('meta')?.value).toMatchObject({ jobs: 50, errors: 0 });
    expect(await jar.getCookieString(site.url('/'))).toContain('c49=v49');
  });

  it('refuses a cookie set for another domain, counts it, and keeps the rest', async () => {
    const worker = await run();
    await crawl('default', 'scoped', ['/cookies/foreign']);
    expect(worker.worker.sessionCounters.cookiesRejected).toBe(1);
    const { jar } = await jarOf('default', 'scoped');
    expect((await jar.describe()).map((c) => c.name)).toEqual(['mine']);
  });

  it('sends the session cookies a previous job received', async () => {
    await run();
    await crawl('default', 'shop', ['/cookies/set?cart=42']);
    await crawl('default', 'shop', ['/cookies/echo']);
    const lines = await redis.xrange(soleShard(keyLayout(prefix)).results, '-', '+');
    const echo = JSON.parse(String(lines[1]?.[1][1]));
    expect(JSON.parse(echo.body)).toEqual({ cart: '42' });
  });

  it('logs a session in on a 401, retries the page, and reuses the login afterwards', async () => {
    await run();
    await crawl('member', 'alice', ['/protected/one']);
    await crawl('member', 'alice', ['/protected/two']);
    expect(site.logins()).toBe(1);
    const results = (await redis.xrange(soleShard(keyLayout(prefix)).results, '-', '+')).map(([, f]) =>
      JSON.parse(String(f[1])),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200]);
    const { slates } = await jarOf('member', 'alice');
    const auth = slates.get('auth')?.value as { expiresAt: string } | undefined;
    expect(Date.parse(String(auth?.expiresAt))).toBeGreaterThan(Date.now());
  });

  it('discards a tampered cookie, warns, and runs on fresh state', async () => {
    const worker = await run();
    await crawl('member', 'bob', ['/protected/one']);
    const key = keyLayout(prefix).session('member', 'bob').slate('cookies');
    const field = await cookieFieldNamed(key, 'auth');
    const envelope = String(await redis.hget(key, field));
    const flipped = envelope.slice(0, 40) + (envelope[40] === 'A' ? 'B' : 'A') + envelope.slice(41);
    await redis.hset(key, field, flipped);
    await crawl('member', 'bob', ['/protected/two']);
    expect(worker.worker.sessionCounters.discardedSlates).toBe(1);
    expect(site.logins()).toBe(2);
    const { slates, jar } = await jarOf('member', 'bob');
    expect(slates.get('cookies')?.discarded).toBeUndefined();
    expect(slates.get('cookies')?.discardedFields).toBeUndefined();
    expect((await jar.describe()).map((c) => c.name)).toEqual(['auth']);
  });

  /** The field of the cookies slate holding the cookie `name` (fields are `domain;path;name`). */
  async function cookieFieldNamed(key: string, name: string): Promise<string> {
    const fields = await redis.hkeys(key);
    const field = fields.find((f) => f.endsWith(`;${name}`));
    if (field === undefined) throw new Error(`no cookie ${name} in ${fields.join(', ')}`);
    return field;
  }

  it('replaces an unreadable profile and auth once, instead of warning on every job', async () => {
    const worker = await run();
    await crawl('member', 'erin', ['/protected/one']);
    const layout = keyLayout(prefix).session('member', 'erin');
    for (const slate of ['profile', 'auth']) await redis.hset(layout.slate(slate), 'd', 'cf1.nope.broken');
    await crawl('member', 'erin', ['/ok/after-damage']);
    expect(worker.worker.sessionCounters.discardedSlates).toBe(2);
    await crawl('member', 'erin', ['/ok/again']);
    expect(worker.worker.sessionCounters.discardedSlates).toBe(2);
    const { slates } = await jarOf('member', 'erin');
    expect(slates.get('profile')?.discarded).toBeUndefined();
    expect(slates.get('profile')?.value).toMatchObject({ userAgent: 'crawlfleet/0.1' });
    expect(await redis.exists(layout.slate('auth'))).toBe(0);
  });

  it("rejects a cookie copied from another session's slate or another cookie's field, and a truncated one", async () => {
    const worker = await run();
    await crawl('default', 'from', ['/cookies/set?mine=1']);
    await crawl('default', 'to', ['/cookies/set?theirs=2']);
    const layout = keyLayout(prefix);
    const from = layout.session('default', 'from').slate('cookies');
    const to = layout.session('default', 'to').slate('cookies');
    const mine = await cookieFieldNamed(from, 'mine');
    const stolen = String(await redis.hget(from, mine));
    // The same field name in another session, and another field name in the same slate.
    await redis.hset(to, mine, stolen);
    await redis.hset(
      to,
      mine.replace(/;mine$/, ';other'),
      String(await redis.hget(to, await cookieFieldNamed(to, 'theirs'))),
    );
    await crawl('default', 'to', ['/cookies/echo']);
    const echo = JSON.parse(
      String((await redis.xrevrange(soleShard(layout).results, '+', '-', 'COUNT', 1))[0]?.[1][1]),
    );
    expect(JSON.parse(echo.body)).toEqual({ theirs: '2' });
    expect(worker.worker.sessionCounters.discardedSlates).toBe(1);
    // The job that found them deleted them.
    expect((await redis.hkeys(to)).filter((f) => f.includes(';')).length).toBe(1);
    await redis.hset(from, mine, stolen.slice(0, 30));
    await crawl('default', 'from', ['/ok/after-truncation']);
    expect(worker.worker.sessionCounters.discardedSlates).toBe(2);
  });

  it('stores no cookie value, token or password in plain text anywhere in Redis', async () => {
    await run();
    await crawl('member', 'carol', ['/protected/a', '/tracking-cookies']);
    const { jar } = await jarOf('member', 'carol');
    const cookies = await jar.jar.getCookies(site.url('/'));
    const secrets = cookies.map((c) => c.value).filter((v) => v.length >= 8);
    expect(secrets.length).toBeGreaterThanOrEqual(2);
    const dump = await dumpPrefix(redis, prefix);
    expect(dump.length).toBeGreaterThan(1000);
    for (const secret of [...secrets, 'secret', `password=secret`]) expect(dump).not.toContain(secret);
  });

  it('drops, rather than counts twice, meta counts whose commit timed out but was applied later', async () => {
    // A private server, to pause it without pausing the other tests.
    const server = await startRedisServer();
    const sessionRedis = openSessionRedis(server.url, 500);
    const admin = new Redis(server.url);
    try {
      await whenReady(sessionRedis, 3_000);
      const store = new SlateStore(sessionRedis, keyLayout(prefix), ring);
      const manager = new SessionManager({
        store,
        config: { ...config().sessions, metaFlushMs: 600_000 },
        logger: createLogger({ name: 't', level: 'silent' }),
        hasher: await loadSessionHasher(admin, keyLayout(prefix).sessionHashKey),
      });
      const keys = store.session('default', 'paused');
      const first = await manager.open(keys);
      first.ensureProfile(() => ({ userAgent: 'ua/1', createdAt: new Date().toISOString() }));
      await first.commit();
      // The second job changes nothing: its count waits in the worker.
      await (await manager.open(keys)).commit();
      expect(manager.metaBacklog).toBe(1);
      // The third sets a cookie, so it commits and carries the waiting count; Redis holds the
      // commit past the client's 500 ms timeout, then applies it.
      const third = await manager.open(keys);
      await third.jar.setCookie('c=1; Path=/', 'http://127.0.0.1/');
      const pausedAt = Date.now();
      await admin.client('PAUSE', 1_500, 'WRITE');
      await third.commit();
      expect(manager.counters.commitFailures).toBe(1);
      expect(manager.counters.metaDropped).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, pausedAt + 1_700 - Date.now())));
      await manager.close();
      const meta = (await store.read(keys, ['meta'])).get('meta')?.value as { jobs: number };
      // 1 written by the first job, then 2 by the timed-out commit: the carried count is not added again.
      expect(meta.jobs).toBe(3);
    } finally {
      sessionRedis.disconnect();
      admin.disconnect();
      await server.stop();
    }
  });

  it('runs jobs on ephemeral sessions when the session Redis is down, and keeps working', async () => {
    const { openSessionRedis } = await import('@crawlfleet/core');
    const dead = openSessionRedis(`redis://127.0.0.1:${await freePort()}`);
    try {
      const worker = await run({ sessionStore: new SlateStore(dead, keyLayout(prefix), ring) });
      await crawl('member', 'dave', ['/protected/1', '/protected/2', '/cookies/set?x=1']);
      expect(worker.worker.sessionCounters.ephemeral).toBe(3);
      const statuses = (await redis.xrange(soleShard(keyLayout(prefix)).results, '-', '+')).map(
        ([, f]) => JSON.parse(String(f[1])).status,
      );
      expect(statuses).toEqual([200, 200, 200]);
    } finally {
      dead.disconnect();
    }
  });

  it('keeps the first profile when two jobs create one at once, and sends its user agent for life', async () => {
    const store = new SlateStore(redis, keyLayout(prefix), ring);
    const manager = new SessionManager({
      store,
      config: config().sessions,
      logger: createLogger({ name: 't', level: 'silent' }),
      hasher: await loadSessionHasher(redis, keyLayout(prefix).sessionHashKey),
    });
    const keys = store.session('default', 'ident');
    const [a, b] = await Promise.all([manager.open(keys), manager.open(keys)]);
    a.ensureProfile(() => ({ userAgent: 'first-agent/1', createdAt: new Date().toISOString() }));
    b.ensureProfile(() => ({ userAgent: 'second-agent/1', createdAt: new Date().toISOString() }));
    await a.commit();
    await b.commit();
    const stored = await store.read(keys, ['profile', 'meta']);
    expect(stored.get('profile')?.value).toMatchObject({ userAgent: 'first-agent/1' });
    expect(stored.get('meta')?.value).toMatchObject({ jobs: 2 });

    await run();
    await crawl('default', 'ident', ['/echo']);
    const echo = JSON.parse(
      String((await redis.xrevrange(soleShard(keyLayout(prefix)).results, '+', '-', 'COUNT', 1))[0]?.[1][1]),
    );
    expect(JSON.parse(echo.body).headers['user-agent']).toBe('first-agent/1');
  });

  it('fails a job as recoverable when its workflow moved on while it ran', async () => {
    const store = new SlateStore(redis, keyLayout(prefix), ring);
    const manager = new SessionManager({
      store,
      config: config().sessions,
      logger: createLogger({ name: 't', level: 'silent' }),
      hasher: await loadSessionHasher(redis, keyLayout(prefix).sessionHashKey),
    });
    const keys = store.session('default', 'flow');
    const [a, b] = await Promise.all([manager.open(keys), manager.open(keys)]);
    expect(await a.workflow('pager')).toBeUndefined();
    expect(await b.workflow('pager')).toBeUndefined();
    a.setWorkflow('pager', { cursor: 2 });
    b.setWorkflow('pager', { cursor: 3 });
    await a.commit();
    await expect(b.commit()).rejects.toBeInstanceOf(RecoverableError);
    await expect(b.commit()).rejects.toMatchObject({ reason: 'workflow_conflict' });
    expect((await store.read(keys, ['workflow:pager'])).get('workflow:pager')?.value).toEqual({ cursor: 2 });
    const c = await manager.open(keys);
    expect(await c.workflow('pager')).toEqual({ cursor: 2 });
    c.setWorkflow('pager', undefined);
    await c.commit();
    expect(await redis.exists(keys.slate('workflow:pager'))).toBe(0);
  });

  it('names sessions in logs by a keyed hash: the same for every process of one installation, unguessable without it', async () => {
    const { createHash } = await import('node:crypto');
    const layout = keyLayout(prefix);
    const first = await loadSessionHasher(redis, layout.sessionHashKey);
    const elsewhere = openTestRedis();
    const second = await loadSessionHasher(elsewhere, layout.sessionHashKey);
    elsewhere.disconnect();
    expect(first.hash('shop', 'alice')).toBe(second.hash('shop', 'alice'));
    expect(first.hash('shop', 'alice')).toMatch(/^[0-9a-f]{16}$/);
    expect(first.hash('shop', 'alice')).not.toBe(first.hash('shop', 'bob'));
    expect(first.hash('shop', 'alice')).not.toBe(createHash('sha256').update('shop/alice').digest('hex').slice(0, 16));
    const otherInstall = keyLayout(uniquePrefix('other-install'));
    const other = await loadSessionHasher(redis, otherInstall.sessionHashKey);
    expect(other.hash('shop', 'alice')).not.toBe(first.hash('shop', 'alice'));
    await redis.del(otherInstall.sessionHashKey);
  });
});
