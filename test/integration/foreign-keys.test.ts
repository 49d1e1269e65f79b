import { generateKeyEntry, parseKeyRing, SessionAdmin, SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit } from '../src/fleet.js';
import {
  cleanupPrefix,
  keyLayout,
  openTestRedis,
  TEST_KEYS,
  testConfig,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { startWorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

describe("a worker whose key ring lacks the fleet's key", () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  const config = testConfig();
  const otherKeys = generateKeyEntry();

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
  });
  beforeEach(() => {
    prefix = uniquePrefix('foreign-keys');
  });
  afterEach(async () => {
    await cleanupPrefix(redis, prefix);
  });

  async function crawlWith(keysEntry: string, path: string, count: number) {
    const keys = keyLayout(prefix);
    const connection = redis.duplicate();
    const ringWorker = await startTestWorker(keys, config, {
      sessionStore: new SlateStore(connection, keys, parseKeyRing(keysEntry)),
    });
    try {
      await submit(redis, keys, config, [{ url: site.url(path) }], 'default', 's1');
      await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === count, { what: `${count} results` });
      return ringWorker.worker.sessionCounters;
    } finally {
      await ringWorker.stop();
      connection.disconnect();
    }
  }

  it("runs the job on an ephemeral session and overwrites nothing the fleet's key sealed", async () => {
    const keys = keyLayout(prefix);
    const cookies = keys.session('default', 's1').slate('cookies');
    await crawlWith(TEST_KEYS, '/cookies/set?mine=1', 1);
    const before = await redis.hgetall(cookies);

    const counters = await crawlWith(otherKeys, '/cookies/set?theirs=2', 2);
    expect(counters).toMatchObject({ unknownKey: 1, discardedSlates: 0 });
    expect(await redis.hgetall(cookies)).toEqual(before);

    const store = new SlateStore(redis, keys, parseKeyRing(TEST_KEYS));
    const read = (await store.read(keys.session('default', 's1'), ['cookies', 'meta'])).get('cookies');
    expect(read?.discarded).toBeUndefined();
    expect(JSON.stringify(read?.value)).toContain('mine');
  });

  it('knows at start whether its ring opens the fleet: created, readable, unreadable, and readable again after a rotation', async () => {
    const keys = keyLayout(prefix);
    const admin = new SessionAdmin(redis, keys);
    const fleet = parseKeyRing(TEST_KEYS);
    expect(await admin.checkKeyRing(fleet)).toEqual({ state: 'created' });
    expect(await admin.checkKeyRing(fleet)).toEqual({ state: 'readable' });
    const stranger = parseKeyRing(otherKeys);
    expect(await admin.checkKeyRing(stranger)).toEqual({ state: 'unreadable', kid: TEST_KEYS.split(':')[0] });
    // The fleet rotates to a new key; a ring holding only the new key then opens the check.
    const next = generateKeyEntry();
    await admin.rotate(parseKeyRing(`${next},${TEST_KEYS}`));
    expect(await admin.checkKeyRing(parseKeyRing(next))).toEqual({ state: 'readable' });
  });

  it('says so loudly when a worker process starts with keys that open none of the fleet', async () => {
    const keys = keyLayout(prefix);
    await new SessionAdmin(redis, keys).checkKeyRing(parseKeyRing(TEST_KEYS));
    const worker = startWorkerProcess({ CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_KEYS: otherKeys });
    try {
      await waitFor(() => worker.output().includes('"worker started"'), { what: 'the worker to start' });
      const line = worker
        .output()
        .split('\n')
        .find((text) => text.includes("cannot open this fleet's sessions"));
      expect(JSON.parse(String(line))).toMatchObject({ level: 50, alert: true, fleet_kid: TEST_KEYS.split(':')[0] });
    } finally {
      const code = await worker.stop();
      // On a failure, how it ended and what it said last.
      expect({ code, signal: worker.child.signalCode, output: code === 0 ? '' : worker.output().slice(-3000) }).toEqual(
        {
          code: 0,
          signal: null,
          output: '',
        },
      );
    }
  });
});
