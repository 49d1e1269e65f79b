import { CRAWL_QUEUE, type KeyLayout } from '@crawlfleet/core';
import { CrawlWorker } from '@crawlfleet/crawler';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { createLogger } from '@crawlfleet/log';
import { loadSessionHasher } from '@crawlfleet/sessions';
import { type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, testConfig, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

describe('the crawl worker', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let keys: KeyLayout;
  let dlq: DeadLetterQueue;
  let queue: Queue;
  let running: TestWorker[] = [];
  const config = testConfig({
    jobs: { retries: 2, backoffBaseMs: 20, backoffMaxMs: 100 },
    fetch: { timeoutMs: 500, maxBodyBytes: 64 * 1024 },
  });

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
  });
  beforeEach(() => {
    prefix = uniquePrefix('worker');
    keys = keyLayout(prefix);
    dlq = new DeadLetterQueue(redis, keys);
    queue = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keys.bullPrefix });
  });
  afterEach(async () => {
    await Promise.all(running.map((w) => w.stop()));
    running = [];
    await Promise.all([dlq.close(), queue.close()]);
    await cleanupPrefix(redis, prefix);
  });

  async function run(): Promise<TestWorker> {
    const worker = await startTestWorker(keys, config);
    running.push(worker);
    return worker;
  }

  async function letterFor(url: string) {
    return waitFor(async () => (await dlq.list()).find((entry) => entry.url === url), {
      what: `a DLQ entry for ${url}`,
    });
  }

  async function storedResults(): Promise<Array<Record<string, unknown>>> {
    const entries = await redis.xrange(soleShard(keys).results, '-', '+');
    return entries.map(([, fields]) => JSON.parse(String(fields[1])));
  }

  /** A worker that takes one job by hand and never acknowledges it, like one killed mid-job. */
  async function takeAndDie(run: (worker: CrawlWorker, job: Job) => Promise<void>): Promise<string> {
    const connection = redis.duplicate({ maxRetriesPerRequest: null });
    const doomed = new CrawlWorker({
      connection,
      keys,
      config,
      logger: createLogger({ name: 'doomed', level: 'silent' }),
      autorun: false,
      lockDurationMs: 1_000,
      sessionHasher: await loadSessionHasher(redis, keys.sessionHashKey),
    });
    const job = await doomed.workers[0]?.getNextJob('doomed-token');
    if (job === undefined) throw new Error('no job to take');
    await run(doomed, job);
    connection.disconnect();
    await Promise.all(doomed.workers.map((worker) => worker.close(true))).catch(() => {});
    return String(job.id);
  }

  it('stores a page once and marks its key finished in the ledger', async () => {
    const [job] = await submit(redis, keys, config, [{ url: site.url('/ok/one') }]);
    const id = String(job?.idempotencyKey);
    await run();
    await waitFor(async () => (await queue.getJob(id))?.isCompleted(), { what: 'the job to complete' });
    expect(await redis.xlen(soleShard(keys).results)).toBe(1);
    const [entryId] = (await redis.xrange(soleShard(keys).results, '-', '+'))[0] ?? [];
    expect(await redis.get(keys.ledger(id))).toBe(entryId);
    expect((await queue.getJob(id))?.returnvalue).toMatchObject({ outcome: 'stored', status: 200, entryId });
  });

  it('retries a 503 and stores the page when the server recovers', async () => {
    await submit(redis, keys, config, [{ url: site.url('/flaky/recovers?fails=1&status=503') }]);
    await run();
    const [result] = await waitFor(async () => {
      const found = await storedResults();
      return found.length === 1 ? found : undefined;
    });
    expect(result).toMatchObject({ status: 200, attempts: 2 });
    expect(site.hits('/flaky/recovers?fails=1&status=503')).toBe(2);
  });

  it('recovers from a reset connection', async () => {
    await submit(redis, keys, config, [{ url: site.url('/reset-once/r1') }]);
    await run();
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 1);
    expect(site.hits('/reset-once/r1')).toBe(2);
  });

  it('moves a page that keeps failing with 503 to the DLQ after its retries, with the attempt history', async () => {
    const url = site.url('/status/503');
    await submit(redis, keys, config, [{ url }]);
    await run();
    const summary = await letterFor(url);
    expect(summary).toMatchObject({ class: 'recoverable', reason: 'retries_exhausted:http_503', attempts: 3 });
    const letter = await dlq.show(summary.id);
    expect(letter?.history.map((h) => h.attempt)).toEqual([1, 2, 3]);
    expect(letter?.history.every((h) => h.status === 503 && h.reason === 'http_503')).toBe(true);
    expect(letter?.history[0]?.backoffMs).toBeGreaterThanOrEqual(0);
    expect(letter?.history[2]?.backoffMs).toBeUndefined();
    expect(letter?.lastResponse?.status).toBe(503);
    expect(site.hits('/status/503')).toBe(3);
    await waitFor(async () => (await queue.getJob(summary.id))?.isFailed(), { what: 'the job to fail' });
  });

  it('retries a job that Redis refuses to store as internal_error, and dead-letters it on the last attempt', async () => {
    // The results stream is not a stream: every result write fails inside Redis (WRONGTYPE).
    await redis.set(soleShard(keys).results, 'not a stream');
    const url = site.url('/ok/unstorable');
    await submit(redis, keys, config, [{ url }]);
    await run();
    const summary = await letterFor(url);
    expect(summary).toMatchObject({
      class: 'recoverable',
      reason: 'retries_exhausted:internal_error',
      attempts: 3,
    });
    const letter = await dlq.show(summary.id);
    expect(letter?.history.map((h) => h.reason)).toEqual(['internal_error', 'internal_error', 'internal_error']);
    expect(letter?.history[0]?.error).toContain('WRONGTYPE');
    // It was fetched each time and never marked finished: a replay once Redis is fixed stores it.
    expect(site.hits('/ok/unstorable')).toBe(3);
    const idempotencyKey = (letter?.job as { idempotencyKey?: string } | undefined)?.idempotencyKey;
    expect(idempotencyKey).toBeDefined();
    expect(await redis.exists(keys.ledger(String(idempotencyKey)))).toBe(0);
  });

  it('moves a 410 to the DLQ without retrying', async () => {
    const url = site.url('/status/410');
    await submit(redis, keys, config, [{ url }]);
    await run();
    expect(await letterFor(url)).toMatchObject({ class: 'non_recoverable', reason: 'http_410', attempts: 1 });
    expect(site.hits('/status/410')).toBe(1);
  });

  it('refuses a body over the cap without retrying', async () => {
    const url = site.url('/huge?bytes=200000');
    await submit(redis, keys, config, [{ url }]);
    await run();
    expect(await letterFor(url)).toMatchObject({ reason: 'body_too_large', attempts: 1 });
    expect(site.hits('/huge?bytes=200000')).toBe(1);
  });

  it('times out a hanging page, retries it, then dead-letters it as retries_exhausted:timeout', async () => {
    const url = site.url('/hang');
    await submit(redis, keys, config, [{ url }]);
    await run();
    const letter = await waitFor(async () => (await dlq.list()).find((e) => e.url === url), { timeoutMs: 15_000 });
    expect(letter.reason).toBe('retries_exhausted:timeout');
    expect(site.hits('/hang')).toBe(3);
  });

  it('refuses a loopback target for a tenant that does not allow it, without connecting', async () => {
    const url = site.url('/ok/forbidden');
    await submit(redis, keys, config, [{ url }], 'other');
    await run();
    expect(await letterFor(url)).toMatchObject({
      class: 'non_recoverable',
      reason: 'address_not_allowed',
      attempts: 1,
    });
    expect(site.hits('/ok/forbidden')).toBe(0);
  });

  it('moves a payload that fails the schema to the DLQ as invalid_payload and keeps working', async () => {
    await queue.add('junk', { url: 42, tenant: 'default' }, { jobId: 'junk-1', attempts: 3 });
    await queue.add('https://x.invalid/', { v: 1, url: 'https://x.invalid/' }, { jobId: 'junk-2', attempts: 3 });
    await submit(redis, keys, config, [{ url: site.url('/ok/after-junk') }]);
    await run();
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 1);
    await waitFor(async () => (await dlq.count()) === 2);
    const junk = await dlq.show('junk-1');
    expect(junk).toMatchObject({ class: 'non_recoverable', reason: 'invalid_payload', url: null, attempts: 1 });
    expect(junk?.message).toMatch(/^v: /);
    expect(junk?.job).toEqual({ url: 42, tenant: 'default' });
    expect(await dlq.show('junk-2')).toMatchObject({ reason: 'invalid_payload', url: 'https://x.invalid/' });
  });

  it('moves a job of a tenant the worker does not know to the DLQ as unknown_tenant', async () => {
    const [job] = await submit(redis, keys, config, [{ url: site.url('/ok/nobody') }]);
    const stranger = { ...job, idempotencyKey: 'stranger-1', tenant: 'stranger' };
    await queue.add(stranger.url ?? 'x', stranger, { jobId: 'stranger-1' });
    await run();
    expect(await waitFor(() => dlq.show('stranger-1'))).toMatchObject({ reason: 'unknown_tenant', tenant: 'stranger' });
    await waitFor(() => site.hits('/ok/nobody') === 1, { what: "the known tenant's page fetched" });
  });

  it('writes no second result when a worker dies between writing the result and acknowledging the job', async () => {
    await submit(redis, keys, config, [{ url: site.url('/ok/crash') }]);
    // Worker A runs the whole crawl path (result and ledger written) and dies before acking.
    const id = await takeAndDie(async (worker, job) => {
      await worker.processor.process(job);
    });
    expect(await redis.xlen(soleShard(keys).results)).toBe(1);

    // Worker B finds the stalled job once A's lock lapses, runs it again, and writes nothing new.
    running.push(await startTestWorker(keys, config, { stalledIntervalMs: 300 }));
    await waitFor(async () => (await queue.getJob(id))?.isCompleted(), {
      timeoutMs: 15_000,
      what: 'the job to complete',
    });
    expect((await queue.getJob(id))?.returnvalue).toMatchObject({ outcome: 'duplicate' });
    expect(await redis.xlen(soleShard(keys).results)).toBe(1);
    expect(site.hits('/ok/crash')).toBe(1);
    expect(await dlq.count()).toBe(0);
  });

  it('keeps one DLQ entry when a worker dies after routing and the job runs again', async () => {
    await submit(redis, keys, config, [{ url: site.url('/status/404?crash=1') }]);
    const id = await takeAndDie(async (worker, job) => {
      await expect(worker.processor.process(job)).rejects.toThrow(/http_404/);
    });
    expect(await dlq.count()).toBe(1);

    running.push(await startTestWorker(keys, config, { stalledIntervalMs: 300 }));
    await waitFor(async () => (await queue.getJob(id))?.isFailed(), { timeoutMs: 15_000, what: 'the job to fail' });
    expect(await dlq.count()).toBe(1);
    expect(await redis.exists(keys.dlqJob(id))).toBe(1);
  });
});
