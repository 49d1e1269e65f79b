import type { KeyLayout } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { HostPacer } from '@crawlfleet/politeness';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, testConfig, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

describe('fleet-wide politeness', () => {
  let site: FixtureSite;
  let slowSite: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let keys: KeyLayout;
  let dlq: DeadLetterQueue;
  let running: TestWorker[] = [];
  const config = testConfig({
    tenants: {
      default: { allowHosts: ['127.0.0.1'] },
      careless: { allowHosts: ['127.0.0.1'], robots: 'ignore' },
      gentle: { allowHosts: ['127.0.0.1'], hostDelayMs: 300 },
    },
    jobs: { retries: 2, backoffBaseMs: 10, backoffMaxMs: 20 },
  });

  beforeAll(async () => {
    [site, slowSite] = await Promise.all([startFixtureSite(), startFixtureSite({ crawlDelaySeconds: 1 })]);
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await Promise.all([site.close(), slowSite.close()]);
  });
  beforeEach(() => {
    prefix = uniquePrefix('polite');
    keys = keyLayout(prefix);
    dlq = new DeadLetterQueue(redis, keys);
    site.resetHits();
    slowSite.resetHits();
  });
  afterEach(async () => {
    await Promise.all(running.map((w) => w.stop()));
    running = [];
    await dlq.close();
    await cleanupPrefix(redis, prefix);
  });

  async function fleet(size: number, concurrency = 8): Promise<void> {
    for (let i = 0; i < size; i++) running.push(await startTestWorker(keys, config, { concurrency }));
  }

  async function storedResults(): Promise<Array<{ url: string; attempts: number; status: number }>> {
    return (await redis.xrange(soleShard(keys).results, '-', '+')).map(([, fields]) => JSON.parse(String(fields[1])));
  }

  const gaps = (times: number[]) => times.slice(1).map((t, i) => t - (times[i] as number));

  it('never fetches a URL robots.txt disallows, and fetches robots.txt once for the fleet', async () => {
    await fleet(2);
    const pages = Array.from({ length: 20 }, (_, i) => ({ url: site.url(`/ok/r${i}`) }));
    await submit(redis, keys, config, [...pages, { url: site.url('/private/secret') }]);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 20, { what: '20 pages' });
    const letter = await waitFor(async () => (await dlq.list())[0]);
    expect(letter).toMatchObject({ class: 'non_recoverable', reason: 'robots_disallowed', attempts: 1 });
    expect(site.hits('/private/secret')).toBe(0);
    expect(site.hits('/robots.txt')).toBe(1);
    expect(await redis.get(keys.robots(new URL(site.origin).origin))).toContain('Disallow: /private/');
  });

  it('asks robots.txt about every redirect target, on this origin and on another, before following it', async () => {
    await fleet(1);
    const sameOrigin = site.url('/redirect?to=/private/hop-same');
    const otherOrigin = site.url(`/redirect?to=${encodeURIComponent(slowSite.url('/private/hop-other'))}`);
    const allowed = site.url(`/redirect?to=${encodeURIComponent(slowSite.url('/ok/hop-allowed'))}`);
    await submit(redis, keys, config, [{ url: sameOrigin }, { url: otherOrigin }, { url: allowed }]);
    await waitFor(async () => (await dlq.count()) === 2 && (await redis.xlen(soleShard(keys).results)) === 1, {
      what: 'two disallowed hops in the DLQ and one page stored',
    });
    const letters = await dlq.list();
    expect(letters.map((l) => [l.url, l.class, l.reason]).sort()).toEqual(
      [
        [sameOrigin, 'non_recoverable', 'robots_disallowed'],
        [otherOrigin, 'non_recoverable', 'robots_disallowed'],
      ].sort(),
    );
    expect(letters.every((l) => l.attempts === 1)).toBe(true);
    // Neither disallowed target was ever asked for; the other origin's robots.txt was, once.
    expect(site.hits('/private/hop-same')).toBe(0);
    expect(slowSite.hits('/private/hop-other')).toBe(0);
    expect(slowSite.hits('/robots.txt')).toBe(1);
    expect((await storedResults())[0]?.url).toBe(allowed);
  });

  it('retries a page while its robots.txt answers 5xx, never fetching it, and dead-letters it when retries run out', async () => {
    const down = await startFixtureSite({ robotsStatus: 503 });
    try {
      await fleet(1);
      await submit(redis, keys, config, [{ url: down.url('/ok/behind-a-503') }]);
      await waitFor(async () => (await dlq.count()) === 1, { what: 'the page in the DLQ' });
      const [letter] = await dlq.list();
      expect([letter?.class, letter?.reason, letter?.attempts]).toEqual([
        'recoverable',
        'retries_exhausted:robots_unavailable',
        3,
      ]);
      const shown = await dlq.show(String(letter?.id));
      expect(shown?.history.map((h) => h.reason)).toEqual([
        'robots_unavailable',
        'robots_unavailable',
        'robots_unavailable',
      ]);
      expect(down.hits('/robots.txt')).toBe(3);
      expect(down.hits('/ok/behind-a-503')).toBe(0);
    } finally {
      await down.close();
    }
  });

  it("does not count a redirect target's robots.txt outage against the session's breaker", async () => {
    const down = await startFixtureSite({ robotsStatus: 503 });
    try {
      await fleet(1);
      const urls = [1, 2].map((n) => site.url(`/redirect?to=${encodeURIComponent(down.url(`/ok/hop-${n}`))}`));
      await submit(
        redis,
        keys,
        config,
        urls.map((url) => ({ url })),
        'default',
        'steady',
      );
      await waitFor(async () => (await dlq.count()) === 2, { what: 'both pages in the DLQ' });
      const reasons = (await dlq.list()).map((letter) => letter.reason);
      expect(reasons).toEqual(['retries_exhausted:robots_unavailable', 'retries_exhausted:robots_unavailable']);
      // Six failed attempts of one session, more than breakers.failureThreshold, and its breaker stays shut.
      expect((await dlq.list()).map((letter) => letter.attempts)).toEqual([3, 3]);
      expect(await redis.exists(keys.session('default', 'steady').breaker)).toBe(0);
      expect(down.hits('/ok/hop-1') + down.hits('/ok/hop-2')).toBe(0);
    } finally {
      await down.close();
    }
  });

  it('crawls a site whose robots.txt answers 404 as a site without rules, asking for it once', async () => {
    const open = await startFixtureSite({ robotsStatus: 404 });
    try {
      await fleet(1);
      await submit(redis, keys, config, [
        { url: open.url('/private/no-rules-1') },
        { url: open.url('/private/no-rules-2') },
      ]);
      await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 2, { what: 'both pages stored' });
      expect(open.hits('/robots.txt')).toBe(1);
    } finally {
      await open.close();
    }
  });

  it('fetches what robots.txt disallows for a tenant that ignores it, without asking for robots.txt', async () => {
    await fleet(1);
    await submit(redis, keys, config, [{ url: site.url('/private/open') }], 'careless');
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 1);
    expect(site.hits('/private/open')).toBe(1);
    expect(site.hits('/robots.txt')).toBe(0);
  });

  it("keeps a host's Crawl-delay across two workers, moving early jobs to delayed without spending attempts", async () => {
    await fleet(2);
    const paths = ['/ok/d1', '/ok/d2', '/ok/d3'];
    await submit(
      redis,
      keys,
      config,
      paths.map((path) => ({ url: slowSite.url(path) })),
    );
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 3, {
      timeoutMs: 15_000,
      what: '3 paced pages',
    });
    const times = paths.flatMap((path) => slowSite.hitTimes(path)).sort((a, b) => a - b);
    expect(times).toHaveLength(3);
    for (const gap of gaps(times)) expect(gap).toBeGreaterThanOrEqual(950);
    expect((await storedResults()).map((r) => r.attempts)).toEqual([1, 1, 1]);
  });

  it("keeps a tenant's per-host delay", async () => {
    await fleet(2);
    const paths = Array.from({ length: 4 }, (_, i) => `/ok/g${i}`);
    await submit(
      redis,
      keys,
      config,
      paths.map((path) => ({ url: site.url(path) })),
      'gentle',
    );
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 4, { timeoutMs: 15_000 });
    const times = paths.flatMap((path) => site.hitTimes(path)).sort((a, b) => a - b);
    for (const gap of gaps(times)) expect(gap).toBeGreaterThanOrEqual(280);
  });

  it("reads an unpaced host's state at most once per recheck, sees its own 429 at once and another worker's after the recheck", async () => {
    const mine = new HostPacer(redis, keys, { unpacedRecheckMs: 300 });
    const other = new HostPacer(redis, keys);
    const host = 'unpaced.example:80';
    // Times are given, not waited for: the test does not depend on how fast the machine is.
    const t0 = Date.now();
    expect(await mine.reserve(host, 0, t0)).toBe(0);
    // Another worker's 429 slows the host for 5 s: within the recheck this worker still goes.
    await other.slowDown(host, t0 + 5_000, t0);
    expect(await mine.reserve(host, 0, t0 + 100)).toBe(0);
    expect(await mine.reserve(host, 0, t0 + 400)).toBe(4_600);
    // Its own 429 counts at once, whatever it read before.
    const fresh = 'fresh.example:80';
    expect(await mine.reserve(fresh, 0, t0)).toBe(0);
    await mine.slowDown(fresh, t0 + 2_000, t0);
    expect(await mine.reserve(fresh, 0, t0 + 1)).toBe(1_999);
    // A paced host reserves every slot in Redis, never from memory.
    const paced = 'paced.example:80';
    expect(await mine.reserve(paced, 200, t0)).toBe(0);
    expect(await other.reserve(paced, 200, t0 + 50)).toBe(150);
  });

  it('slows every job for a host after a 429 with Retry-After, not only the one that got it', async () => {
    await fleet(1, 4);
    await submit(redis, keys, config, [{ url: site.url('/ratelimit/host?times=1&retryAfter=2') }]);
    await waitFor(() => site.hits('/ratelimit/host?times=1&retryAfter=2') === 1, { what: 'the 429' });
    const limitedAt = site.hitTimes('/ratelimit/host?times=1&retryAfter=2')[0] as number;
    await submit(redis, keys, config, [{ url: site.url('/ok/next-on-host') }]);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 2, { timeoutMs: 10_000 });
    expect((site.hitTimes('/ok/next-on-host')[0] as number) - limitedAt).toBeGreaterThanOrEqual(1_900);
    expect((await storedResults()).find((r) => r.url.endsWith('/ok/next-on-host'))?.attempts).toBe(1);
  });
});
