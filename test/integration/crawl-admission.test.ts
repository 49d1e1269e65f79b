import { type CrawlDefinition, keyLayout } from '@crawlfleet/core';
import { CrawlStore, pendingOf } from '@crawlfleet/crawls';
import { ResultsStore } from '@crawlfleet/results';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, openTestRedis, uniquePrefix } from '../src/harness.js';
import { storedResult } from '../src/stored-result.js';

const SHARDS = 3;

/**
 * A named crawl on a fleet of 3 shards: a page's result write (on its shard) cannot reach the
 * crawl's seen set (on the fleet tag), so it hands the page's links to its shard's frontier as one
 * entry, and a mover has the crawl admit them. The admission keeps the crawl's rules (each key
 * once, the page limit, nothing for a cancelled crawl) and answers an entry asked about twice (a
 * mover died before enqueueing, another claimed it) with the same links.
 */
describe('admitting a named crawl’s links on a fleet of several shards', () => {
  let redis: Redis;
  let prefix: string;
  let keys: ReturnType<typeof keyLayout>;
  let crawls: CrawlStore;
  let results: ResultsStore;

  beforeAll(() => {
    redis = openTestRedis();
  });
  afterAll(async () => {
    await redis.quit();
  });
  beforeEach(() => {
    prefix = uniquePrefix('admission');
    keys = keyLayout(prefix, SHARDS);
    crawls = new CrawlStore(redis, keys);
    results = new ResultsStore(redis, keys, { ledgerTtlSeconds: 3_600 });
  });
  afterEach(async () => {
    await cleanupPrefix(redis, prefix);
  });

  const definition = (name: string, maxPages?: number): CrawlDefinition => ({
    v: 1,
    name,
    tenant: 'default',
    follow: 'same-hostname',
    include: [],
    exclude: [],
    ...(maxPages === undefined ? {} : { maxPages }),
    createdAt: new Date().toISOString(),
  });
  const links = (names: string[]) => names.map((name) => ({ key: `ik-${name}`, job: JSON.stringify({ name }) }));

  it("forwards a stored page's links to its shard's frontier, and counts them pending until admitted", async () => {
    await crawls.start(definition('site'), ['ik-seed'], true);
    const outcome = await results.write(storedResult('ik-seed'), {
      crawl: 'site',
      maxPages: 0,
      links: links(['a', 'b', 'c']),
    });
    expect(outcome).toMatchObject({ written: true, admitted: 3 });
    const shard = keys.shardOf('ik-seed');
    const entries = await redis.xrange(shard.frontier, '-', '+');
    expect(entries).toHaveLength(1);
    const [, fields] = entries[0] as [string, string[]];
    expect(fields[0]).toBe('l');
    expect(JSON.parse(fields[1] as string)).toEqual({
      crawl: 'site',
      maxPages: 0,
      links: links(['a', 'b', 'c']).map(({ key, job }) => [key, job]),
    });
    // The stored page is counted on its shard; its links are not discovered yet, but pending.
    const before = await crawls.status('site');
    expect(before).toMatchObject({ discovered: 1, stored: 1, admitting: 1 });
    expect(pendingOf(before as NonNullable<typeof before>)).toBe(1);

    expect(await crawls.admit('site', `${shard.index}:${entries[0]?.[0]}`, 0, ['ik-a', 'ik-b', 'ik-c'])).toEqual([
      0, 1, 2,
    ]);
    const after = await crawls.status('site');
    expect(after).toMatchObject({ discovered: 4, stored: 1, admitting: 0 });
    expect(pendingOf(after as NonNullable<typeof after>)).toBe(3);

    // The same page written again (a retried job) forwards nothing and counts nothing.
    expect(
      await results.write(storedResult('ik-seed'), { crawl: 'site', maxPages: 0, links: links(['a', 'b']) }),
    ).toMatchObject({ written: false, admitted: 0 });
    expect(await redis.xlen(shard.frontier)).toBe(1);
  });

  it('answers an entry asked about again with the same links, and admits each key once across entries', async () => {
    await crawls.start(definition('site'), ['ik-seed'], true);
    expect(await crawls.admit('site', '0:1-1', 0, ['ik-a', 'ik-b'])).toEqual([0, 1]);
    // A mover died before enqueueing them; the one that claimed the entry gets them again.
    expect(await crawls.admit('site', '0:1-1', 0, ['ik-a', 'ik-b'])).toEqual([0, 1]);
    // Another page's entry, on another shard, finding one of them and a new one.
    expect(await crawls.admit('site', '2:5-0', 0, ['ik-b', 'ik-c'])).toEqual([1]);
    expect(await crawls.status('site')).toMatchObject({ discovered: 4 });
    // Once enqueued and acknowledged, the receipts go; the keys stay seen.
    await crawls.forget([
      { crawl: 'site', receipt: '0:1-1' },
      { crawl: 'site', receipt: '2:5-0' },
    ]);
    expect(await redis.hlen(keys.crawlReceipts('site'))).toBe(0);
    expect(await crawls.admit('site', '1:9-0', 0, ['ik-a', 'ik-c'])).toEqual([]);
    expect(await crawls.status('site')).toMatchObject({ discovered: 4 });
  });

  it('holds to the page limit for the whole fleet, and admits nothing for a cancelled crawl', async () => {
    await crawls.start(definition('capped', 4), ['ik-seed'], true);
    expect(await crawls.admit('capped', '0:1-0', 4, ['ik-a', 'ik-b'])).toEqual([0, 1]);
    expect(await crawls.admit('capped', '1:1-0', 4, ['ik-a', 'ik-c', 'ik-d', 'ik-e'])).toEqual([1]);
    expect(await crawls.status('capped')).toMatchObject({ discovered: 4 });

    await crawls.start(definition('stopped'), ['ik-seed'], true);
    await crawls.steer('stopped', 'cancelled');
    expect(await crawls.admit('stopped', '0:2-0', 0, ['ik-a'])).toEqual([]);
    expect(await crawls.status('stopped')).toMatchObject({ discovered: 1, admitting: 0 });
  });
});
