import { SessionCookieJar } from '@crawlfleet/sessions';
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

/** Ways a slate key can be broken by hand or by another program. */
const TAMPERS: Array<[string, (redis: Redis, key: string) => Promise<unknown>]> = [
  ['a version of 1e20', (redis, key) => redis.hset(key, 'v', '1e20')],
  ['a version that is not a number', (redis, key) => redis.hset(key, 'v', 'abc')],
  ['a list in place of the hash', async (redis, key) => redis.multi().del(key).rpush(key, 'x').exec()],
  ['a string in place of the hash', async (redis, key) => redis.multi().del(key).set(key, 'x').exec()],
];

describe('a slate that is not a well-formed {v, d} hash', () => {
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
    prefix = uniquePrefix('malformed');
    worker = await startTestWorker(keyLayout(prefix), config);
  });
  afterEach(async () => {
    await worker.stop();
    await cleanupPrefix(redis, prefix);
  });

  async function crawl(path: string, count: number): Promise<void> {
    const keys = keyLayout(prefix);
    await submit(redis, keys, config, [{ url: site.url(path) }], 'default', 's1');
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === count, { what: `${count} results` });
  }

  async function cookieNames(): Promise<string[]> {
    const store = new SlateStore(redis, keyLayout(prefix), testRing());
    const read = (await store.read(store.session('default', 's1'), ['cookies'])).get('cookies');
    const { jar } = await SessionCookieJar.fromSlate(read?.value);
    return (await jar.describe()).map((cookie) => cookie.name).sort();
  }

  for (const [kind, tamper] of TAMPERS) {
    it(`is replaced once, with one warning, when it holds ${kind}, and the session goes on advancing`, async () => {
      const cookies = keyLayout(prefix).session('default', 's1').slate('cookies');
      await crawl('/cookies/set?first=1', 1);
      await tamper(redis, cookies);

      await crawl('/cookies/set?second=2', 2);
      expect(await redis.type(cookies)).toBe('hash');
      expect(await redis.hget(cookies, 'v')).toBe('1');
      expect(await cookieNames()).toEqual(['second']);
      expect(worker.worker.sessionCounters).toMatchObject({ discardedSlates: 1, ephemeral: 0, commitFailures: 0 });

      await crawl('/cookies/set?third=3', 3);
      expect(await redis.hget(cookies, 'v')).toBe('2');
      expect(await cookieNames()).toEqual(['second', 'third']);
      expect(worker.worker.sessionCounters.discardedSlates).toBe(1);
    });
  }

  it('is shown as unreadable by sessions show, which exits 0 instead of failing on WRONGTYPE', async () => {
    await crawl('/cookies/set?first=1', 1);
    const cookies = keyLayout(prefix).session('default', 's1').slate('cookies');
    await redis.multi().del(cookies).rpush(cookies, 'x').exec();
    const shown = await runCli(['sessions', 'show', 's1', '--json'], { env: { CRAWLFLEET_PREFIX: prefix } });
    expect(shown.stderr).not.toMatch(/WRONGTYPE/);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout).slates.cookies).toEqual({ version: -1, unreadable: 'malformed' });
  });
});
