import { type CrawlDefinition, keyLayout } from '@crawlfleet/core';
import { FrontierMover } from '@crawlfleet/crawler';
import { CrawlStore, pendingOf } from '@crawlfleet/crawls';
import { createLogger } from '@crawlfleet/log';
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
    // Once enqueued and acknowledged, the receipts go after a grace period; the keys stay seen.
    const graced = new CrawlStore(redis, keys, 300);
    await graced.forget([
      { crawl: 'site', receipt: '0:1-1' },
      { crawl: 'site', receipt: '2:5-0' },
    ]);
    expect(await redis.hlen(keys.crawlReceipts('site'))).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 400));
    // The next forget deletes what is past its grace.
    await graced.forget([{ crawl: 'site', receipt: '1:7-0' }]);
    expect(await redis.hkeys(keys.crawlReceipts('site'))).toEqual([]);
    expect(await redis.zrange(keys.crawlForgotten('site'), 0, -1)).toEqual(['1:7-0']);
    expect(await crawls.admit('site', '1:9-0', 0, ['ik-a', 'ik-c'])).toEqual([]);
    expect(await crawls.status('site')).toMatchObject({ discovered: 4 });
    // Receipts never expire on their own: an entry left unacknowledged for days still gets its answer.
    expect(await redis.pttl(keys.crawlReceipts('site'))).toBe(-1);
  });

  it('answers a mover that claimed an entry just before another acknowledged and forgot it: same links, counted once', async () => {
    await crawls.start(definition('site'), ['ik-seed', 'ik-other'], true);
    // Two stored pages, each handing its links to its shard's frontier.
    for (const [page, found] of [
      ['ik-seed', ['a', 'b']],
      ['ik-other', ['c']],
    ] as const)
      expect(
        await results.write(storedResult(page), { crawl: 'site', maxPages: 0, links: links([...found]) }),
      ).toMatchObject({ written: true });
    const entry = async (page: string) => {
      const shard = keys.shardOf(page);
      const entries = await redis.xrange(shard.frontier, '-', '+');
      const mine = entries.find(([, fields]) => (fields[1] as string).includes(page === 'ik-seed' ? 'ik-a' : 'ik-c'));
      return `${shard.index}:${mine?.[0]}`;
    };
    const first = await entry('ik-seed');
    expect(await crawls.status('site')).toMatchObject({ discovered: 2, stored: 2, admitting: 2 });
    // Mover A admits the first page's entry, enqueues, acknowledges and forgets it...
    expect(await crawls.admit('site', first, 0, ['ik-a', 'ik-b'])).toEqual([0, 1]);
    await crawls.forget([{ crawl: 'site', receipt: first }]);
    // ...while mover B, which claimed the same entry before A acknowledged it, asks about it after.
    expect(await crawls.admit('site', first, 0, ['ik-a', 'ik-b'])).toEqual([0, 1]);
    // Counted once: the other page's links are still on their way, so the crawl is not done.
    const status = await crawls.status('site');
    expect(status).toMatchObject({ discovered: 4, stored: 2, admitting: 1 });
    expect(pendingOf(status as NonNullable<typeof status>)).toBe(3);
    expect(await crawls.admit('site', await entry('ik-other'), 0, ['ik-c'])).toEqual([0]);
    expect(await crawls.status('site')).toMatchObject({ discovered: 5, admitting: 0 });
  });

  it('gives a mover that claims an entry whose first mover died after admitting it the same links, counted once', async () => {
    await crawls.start(definition('site'), ['ik-seed'], true);
    const job = (name: string) => ({
      key: `ik-${name}`,
      job: JSON.stringify({
        v: 1,
        url: `http://127.0.0.1:9/${name}`,
        method: 'GET',
        tenant: 'default',
        idempotencyKey: `ik-${name}`,
        submittedAt: new Date().toISOString(),
      }),
    });
    await results.write(storedResult('ik-seed'), { crawl: 'site', maxPages: 0, links: [job('a'), job('b')] });
    const shard = keys.shardOf('ik-seed');
    const logger = createLogger({ name: 'mover', level: 'silent' });
    const tried: string[][] = [];
    // The first mover admits the entry, then dies before its links are on the queue.
    const dying = new FrontierMover({
      redis,
      shard,
      consumer: 'dying',
      enqueue: async (jobs) => {
        tried.push(jobs.map((j) => j.idempotencyKey));
        throw new Error('killed before enqueueing');
      },
      admission: crawls,
      logger,
    });
    dying.nudge();
    await dying.close();
    expect(tried).toEqual([['ik-a', 'ik-b']]);
    expect(await redis.xlen(shard.frontier)).toBe(1);
    // Another mover claims it once it has gone unacknowledged long enough.
    const enqueued: string[] = [];
    const taking = new FrontierMover({
      redis,
      shard,
      consumer: 'taking',
      enqueue: async (jobs) => {
        enqueued.push(...jobs.map((j) => j.idempotencyKey));
      },
      admission: crawls,
      logger,
      claimIdleMs: 50,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    taking.start();
    const until = Date.now() + 5_000;
    while (enqueued.length < 2 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    await taking.close();
    expect(enqueued.sort()).toEqual(['ik-a', 'ik-b']);
    expect(await redis.xlen(shard.frontier)).toBe(0);
    // Admitted once and counted once: nothing is on its way any more, and the two links are pending.
    expect(await redis.hget(keys.crawl('site'), 'admissions')).toBe('1');
    const status = await crawls.status('site');
    expect(status).toMatchObject({ discovered: 3, stored: 1, admitting: 0 });
    expect(pendingOf(status as NonNullable<typeof status>)).toBe(2);
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
