import { JAR_LIMITS, SessionCookieJar } from '@crawlfleet/sessions';
import { SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import {
  cleanupPrefix,
  keyLayout,
  openTestRedis,
  runCli,
  testConfig,
  testRing,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { soleShard } from '../src/shard.js';

describe('a site that sets thousands of cookies', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let worker: TestWorker;
  const config = testConfig();

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
  });
  beforeEach(async () => {
    prefix = uniquePrefix('cookie-bounds');
    worker = await startTestWorker(keyLayout(prefix), config, { concurrency: 1 });
  });
  afterEach(async () => {
    await worker.stop();
    await cleanupPrefix(redis, prefix);
  });

  it('keeps the session within 180 cookies a domain, its jobs finishing and its Cookie header within bounds', async () => {
    const keys = keyLayout(prefix);
    // 10 pages of 400 distinct cookies each: 4,000 cookies for one host, one page after another.
    for (let page = 0; page < 10; page++) {
      const query = Array.from({ length: 400 }, (_, i) => `p${page}c${i}=v`).join('&');
      await submit(redis, keys, config, [{ url: site.url(`/cookies/set?${query}`) }], 'default', 'hoarder');
      await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === page + 1, {
        timeoutMs: 15_000,
        what: `page ${page + 1} stored`,
      });
    }
    const store = new SlateStore(redis, keys, testRing());
    const read = (await store.read(store.session('default', 'hoarder'), ['cookies'])).get('cookies');
    const { jar } = await SessionCookieJar.fromSlate(read?.value);
    const stored = await jar.describe();
    expect(stored).toHaveLength(JAR_LIMITS.perDomain);
    // The newest page's cookies are the ones kept.
    expect(stored.every((cookie) => cookie.name.startsWith('p9'))).toBe(true);
    expect(worker.worker.sessionCounters.cookiesEvicted).toBe(4_000 - JAR_LIMITS.perDomain);

    // The next job sends what the site accepts (Node's 16 KiB header limit) and completes.
    await submit(redis, keys, config, [{ url: site.url('/cookies/echo') }], 'default', 'hoarder');
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 11, { what: 'the echo stored' });
    const [, fields] = (await redis.xrevrange(soleShard(keys).results, '+', '-', 'COUNT', 1))[0] ?? [];
    const echoed = JSON.parse(JSON.parse(String(fields?.[1])).body) as Record<string, string>;
    expect(Object.keys(echoed).length).toBeGreaterThan(100);

    const shown = await runCli(['sessions', 'show', 'hoarder', '--json'], { env: { CRAWLFLEET_PREFIX: prefix } });
    expect(shown.stderr).toBe('');
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout).cookies).toHaveLength(JAR_LIMITS.perDomain);
  }, 60_000);
});
