import { Outbox, ResultsStore } from '@crawlfleet/results';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, uniquePrefix } from '../src/harness.js';
import { soleShard } from '../src/shard.js';
import { storedResult as result } from '../src/stored-result.js';

let redis: Redis;
let prefix: string;
let keys: ReturnType<typeof keyLayout>;
let store: ResultsStore;
let outbox: Outbox;

beforeAll(() => {
  redis = openTestRedis();
});

afterAll(async () => {
  await redis.quit();
});

beforeEach(() => {
  prefix = uniquePrefix('outbox');
  keys = keyLayout(prefix);
  store = new ResultsStore(redis, keys, { ledgerTtlSeconds: 3_600 });
  outbox = new Outbox(redis, keys);
});

afterEach(async () => {
  await cleanupPrefix(redis, prefix);
});

async function writeResults(count: number, tag: string): Promise<string[]> {
  const outcomes = await Promise.all(Array.from({ length: count }, (_, i) => store.write(result(`ik-${tag}-${i}`))));
  return outcomes.map((outcome) => outcome.entryId);
}

/** Reads `count` new entries for `consumer` of `group` and acknowledges the first `ack` of them. */
async function consume(group: string, count: number, ack: number): Promise<string[]> {
  const read = (await redis.xreadgroup(
    'GROUP',
    group,
    'c1',
    'COUNT',
    count,
    'STREAMS',
    soleShard(keys).results,
    '>',
  )) as Array<[string, Array<[string, string[]]>]>;
  const ids = read[0]?.[1].map(([id]) => id) ?? [];
  if (ack > 0) await redis.xack(soleShard(keys).results, group, ...ids.slice(0, ack));
  return ids;
}

describe('Outbox', () => {
  it('trims nothing while no sink is registered', async () => {
    await writeResults(50, 'none');

    const after = await outbox.trim();

    expect(after).toMatchObject({ trimmed: 0, entries: 50 });
    expect(after.bytes).toBeGreaterThan(0);
    expect(await outbox.sinks()).toEqual([]);
  });

  it('trims only below what every sink has acknowledged, and counts the bytes it gives up', async () => {
    const ids = await writeResults(100, 'two');
    const before = await outbox.fill();
    expect(await outbox.register('pg')).toBe(true);
    expect(await outbox.register('pg')).toBe(false);
    await outbox.register('files');

    // pg acknowledges 60 of the 80 it read; files acknowledges 30 of 30.
    await consume('pg', 80, 60);
    await consume('files', 30, 30);
    const first = await outbox.trim();
    expect(first.trimmed).toBe(30);
    const [oldest] = await redis.xrange(soleShard(keys).results, '-', '+', 'COUNT', 1);
    expect(oldest?.[0]).toBe(ids[30]);

    // files catches up to 100; pg still has entry 61..80 pending: the oldest pending one stays.
    await consume('files', 100, 100);
    const second = await outbox.trim();
    expect(second.trimmed).toBe(30);
    expect((await redis.xrange(soleShard(keys).results, '-', '+', 'COUNT', 1))[0]?.[0]).toBe(ids[60]);

    const sinks = await outbox.sinks();
    expect(sinks.map((sink) => [sink.name, sink.pending, sink.lag])).toEqual([
      ['files', 0, 0],
      ['pg', 20, 20],
    ]);
    // The bytes left are those of the 40 entries left.
    const left = await redis.xrange(soleShard(keys).results, '-', '+');
    expect(left).toHaveLength(40);
    const leftBytes = left.reduce((sum, [, fields]) => sum + Buffer.byteLength(fields[1] ?? ''), 0);
    expect(await outbox.fill()).toEqual({ entries: 40, bytes: leftBytes });
    expect(before.bytes).toBeGreaterThan(leftBytes);
  });

  it('gives up what only a removed sink held, and keeps the ledger', async () => {
    await writeResults(20, 'gone');
    await outbox.register('slow');
    await outbox.register('fast');
    await consume('fast', 20, 20);
    expect((await outbox.trim()).trimmed).toBe(0);

    expect(await outbox.remove('slow')).toBe(true);
    expect(await outbox.remove('slow')).toBe(false);

    expect(await outbox.fill()).toEqual({ entries: 0, bytes: 0 });
    expect(await store.isFinished('ik-gone-0')).toBe(true);
  });

  it('trims a long acknowledged run in several steps', async () => {
    await writeResults(2_500, 'long');
    await outbox.register('all');
    await consume('all', 2_500, 2_500);

    expect(await outbox.trim()).toEqual({ trimmed: 2_500, entries: 0, bytes: 0 });
  });

  it('purges by age whatever the sinks have, and takes the bytes off with the entries', async () => {
    await writeResults(30, 'old');
    const [last] = await redis.xrevrange(soleShard(keys).results, '+', '-', 'COUNT', 1);
    const cut = Number(String(last?.[0]).split('-')[0]) + 1;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await writeResults(10, 'new');
    await outbox.register('slow');

    const purged = await outbox.purgeBefore(cut);

    expect(purged.trimmed).toBe(30);
    const left = await redis.xrange(soleShard(keys).results, '-', '+');
    expect(left).toHaveLength(10);
    const leftBytes = left.reduce((sum, [, fields]) => sum + Buffer.byteLength(fields[1] ?? ''), 0);
    expect(await outbox.fill()).toEqual({ entries: 10, bytes: leftBytes });
    expect(await redis.xlen(soleShard(keys).resultsSizes)).toBe(10);
  });

  it('refuses a sink name that is not one word', async () => {
    await expect(outbox.register('a b')).rejects.toThrow(/sink name/);
  });
});
