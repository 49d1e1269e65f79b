import { CRAWL_QUEUE, connectRedis, type FetchJob, InputError, parseFetchJob } from '@crawlfleet/core';
import { startRedisServer } from '@crawlfleet/local-redis';
import {
  BACKOFF_TYPE,
  PartialSubmitError,
  Producer,
  parseTargetLines,
  prepareJobs,
  type SubmitTarget,
} from '@crawlfleet/producer';
import { ResultsStore } from '@crawlfleet/results';
import { UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, keysOf, openTestRedis, testConfig, uniquePrefix } from '../src/harness.js';

const config = testConfig();

let redis: Redis;
let prefix: string;
let keys: ReturnType<typeof keyLayout>;
let producer: Producer;

beforeAll(() => {
  redis = openTestRedis();
});

afterAll(async () => {
  await redis.quit();
});

beforeEach(() => {
  prefix = uniquePrefix('producer');
  keys = keyLayout(prefix);
  producer = new Producer(redis, keys, config);
});

afterEach(async () => {
  await producer.close();
  await cleanupPrefix(redis, prefix);
});

function targets(count: number, path = 'page'): SubmitTarget[] {
  return Array.from({ length: count }, (_, i) => ({ url: `http://127.0.0.1:8080/${path}/${i}` }));
}

function jobsFor(list: readonly SubmitTarget[], tenant = 'default'): FetchJob[] {
  return prepareJobs(config, list, { tenant });
}

/** The error `fn` throws, for assertions on its fields. */
function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** Takes the next job of the crawl queue as a worker would, leaving it active and locked. */
async function takeNextJob(token: string) {
  const connection = openTestRedis();
  const worker = new Worker(CRAWL_QUEUE, null, { connection, prefix: keys.bullPrefix, autorun: false });
  const job = await worker.getNextJob(token, { block: false });
  const release = async () => {
    await worker.close();
    await connection.quit();
  };
  if (job === undefined) {
    await release();
    throw new Error('no job to take');
  }
  return { job, release };
}

describe('parseTargetLines', () => {
  it('reads URLs and JSON lines, skipping blank lines and # comments', () => {
    const text = [
      '# seed list',
      'http://a.example/1',
      '',
      '   ',
      '  http://a.example/2  ',
      '{"url":"http://a.example/3","method":"POST","headers":{"x-a":"1"},"body":"q=1","key":"my-key"}',
      '# done',
    ].join('\r\n');

    expect(parseTargetLines(text)).toEqual([
      { url: 'http://a.example/1', source: { name: 'input', line: 2 } },
      { url: 'http://a.example/2', source: { name: 'input', line: 5 } },
      {
        url: 'http://a.example/3',
        method: 'POST',
        headers: { 'x-a': '1' },
        body: 'q=1',
        key: 'my-key',
        source: { name: 'input', line: 6 },
      },
    ]);
  });

  it('names the line of a JSON line that does not parse', () => {
    const error = thrownBy(() => parseTargetLines('http://a.example/1\n\n{"url": "http://a.example/2"', 'urls.txt'));

    expect(error).toBeInstanceOf(InputError);
    expect(error).toMatchObject({ code: 'invalid_target', exitCode: 2 });
    expect((error as Error).message).toBe('urls.txt line 3: not valid JSON');
  });

  it('refuses a JSON line with an unknown field, naming the line and the field', () => {
    const error = thrownBy(() => parseTargetLines('# header\n{"url":"http://a.example/","extra":1}'));

    expect(error).toMatchObject({ code: 'invalid_target' });
    expect((error as Error).message).toMatch(/^input line 2: .*extra/);
  });

  it('refuses a JSON line without a url', () => {
    const error = thrownBy(() => parseTargetLines('{"method":"GET"}'));

    expect(error).toMatchObject({ code: 'invalid_target' });
    expect((error as Error).message).toMatch(/^input line 1: url:/);
  });
});

describe('prepareJobs', () => {
  it('builds one schema-valid job per target with a derived idempotency key', () => {
    const [job] = prepareJobs(config, [{ url: 'http://127.0.0.1:8080/a' }], { tenant: 'default', sessionId: 's-1' });

    expect(job).toMatchObject({
      v: 1,
      url: 'http://127.0.0.1:8080/a',
      method: 'GET',
      tenant: 'default',
      sessionId: 's-1',
    });
    expect(job?.idempotencyKey).toMatch(/^ik-[0-9a-f]{40}$/);
    expect(parseFetchJob(job).ok).toBe(true);
  });

  it('refuses an unknown tenant', () => {
    const error = thrownBy(() => prepareJobs(config, targets(1), { tenant: 'nobody' }));

    expect(error).toBeInstanceOf(InputError);
    expect(error).toMatchObject({ code: 'unknown_tenant' });
    expect((error as Error).message).toContain('"nobody"');
  });

  it('refuses a session id that is not a plain name', () => {
    const error = thrownBy(() => prepareJobs(config, targets(1), { tenant: 'default', sessionId: 'bad session!' }));

    expect(error).toMatchObject({ code: 'invalid_session' });
    expect((error as Error).message).toContain('--session');
  });

  it('names the bad target among several and says nothing was enqueued', async () => {
    const list = [{ url: 'http://a.example/1' }, { url: 'not a url' }, { url: 'http://a.example/3' }];

    const error = thrownBy(() => producer.prepare(list, { tenant: 'default' }));

    expect(error).toMatchObject({ code: 'invalid_url' });
    expect((error as Error).message).toMatch(/^target 2: /);
    expect((error as Error).message).toContain('nothing was enqueued');
    // BullMQ writes the queue's own meta hash when a Queue connects, job or no job: leave it out.
    const written = (await keysOf(redis, prefix)).filter((key) => !key.endsWith(':crawl:meta'));
    expect(written).toEqual([]);
  });
});

describe('Producer.submit', () => {
  it('enqueues one job per target whose BullMQ job id is its idempotency key', async () => {
    const jobs = jobsFor(targets(3));

    const report = await producer.submit(jobs);

    expect(report).toEqual({ enqueued: 3, duplicates: 0, keys: jobs.map((job) => job.idempotencyKey) });
    expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getWaitingCount()).toBe(3);
    for (const job of jobs) {
      const hash = await redis.hgetall(`{${prefix}}:crawl:${job.idempotencyKey}`);
      expect(hash.name).toBe(job.url);
      const data = JSON.parse(hash.data ?? 'null');
      expect(data).toEqual(job);
      expect(parseFetchJob(data).ok).toBe(true);
      const opts = JSON.parse(hash.opts ?? 'null');
      expect(opts.attempts).toBe(config.jobs.retries + 1);
      expect(opts.backoff).toMatchObject({ type: BACKOFF_TYPE });
      expect(BACKOFF_TYPE).toBe('crawlfleet');

      const queued = await producer.queues.each(CRAWL_QUEUE)[0]?.getJob(job.idempotencyKey);
      expect(queued?.id).toBe(job.idempotencyKey);
      expect(queued?.opts.attempts).toBe(4);
    }
  });

  it('counts a repeated target of one input once', async () => {
    const [a, b] = targets(2);
    if (a === undefined || b === undefined) throw new Error('unreachable');
    const jobs = jobsFor([a, b, a, a]);

    const report = await producer.submit(jobs);

    expect(report.enqueued).toBe(2);
    expect(report.duplicates).toBe(2);
    expect(report.keys).toEqual([jobs[0]?.idempotencyKey, jobs[1]?.idempotencyKey]);
    expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getWaitingCount()).toBe(2);
  });

  it('reports every job of a resubmission as a duplicate and enqueues nothing', async () => {
    const jobs = jobsFor(targets(5));
    await producer.submit(jobs);

    const again = await producer.submit(jobsFor(targets(5)));

    expect(again).toEqual({ enqueued: 0, duplicates: 5, keys: [] });
    expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getWaitingCount()).toBe(5);
  });

  it('treats URLs that canonicalize equal as one target', async () => {
    const jobs = jobsFor([
      { url: 'http://Example.COM/page?b=2&a=1' },
      { url: 'http://example.com/page?a=1&b=2&utm_source=news&utm_medium=mail#top' },
      { url: 'HTTP://EXAMPLE.com./page?fbclid=xyz&a=1&b=2' },
      { url: 'http://example.com/page?a=1&b=3' },
    ]);

    const report = await producer.submit(jobs);

    expect(new Set(jobs.slice(0, 3).map((job) => job.idempotencyKey)).size).toBe(1);
    expect(report.enqueued).toBe(2);
    expect(report.duplicates).toBe(2);
    expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getWaitingCount()).toBe(2);
  });

  it('keys the same URL of two tenants apart', async () => {
    const url = [{ url: 'http://example.com/shared' }];

    const report = await producer.submit([...jobsFor(url, 'default'), ...jobsFor(url, 'other')]);

    expect(report.enqueued).toBe(2);
    expect(report.duplicates).toBe(0);
  });

  it('treats a key that is finished in the ledger as a duplicate', async () => {
    const [byHand, byStore] = jobsFor(targets(2));
    if (byHand === undefined || byStore === undefined) throw new Error('unreachable');
    await redis.set(keys.ledger(byHand.idempotencyKey), '1-0', 'EX', 60);
    const results = new ResultsStore(redis, keys, config.retention);
    await results.write({
      url: byStore.url,
      finalUrl: byStore.url,
      status: 200,
      headers: {},
      body: '',
      bodyEncoding: 'utf8',
      bodyBytes: 0,
      bodyTruncated: false,
      idempotencyKey: byStore.idempotencyKey,
      jobId: byStore.idempotencyKey,
      tenant: 'default',
      sessionId: null,
      attempts: 1,
      redirects: 0,
      durationMs: 1,
      fetchedAt: new Date().toISOString(),
    });

    const report = await producer.submit([byHand, byStore]);

    expect(report).toEqual({ enqueued: 0, duplicates: 2, keys: [] });
    expect(await redis.exists(keys.crawlJob(byHand.idempotencyKey), keys.crawlJob(byStore.idempotencyKey))).toBe(0);
  });

  it('with force, re-enqueues a finished key and deletes its ledger mark', async () => {
    const [job] = jobsFor(targets(1));
    if (job === undefined) throw new Error('unreachable');
    await redis.set(keys.ledger(job.idempotencyKey), '1-0', 'EX', 60);

    const report = await producer.submit([job], { force: true });

    expect(report).toEqual({ enqueued: 1, duplicates: 0, keys: [job.idempotencyKey] });
    expect(await redis.exists(keys.ledger(job.idempotencyKey))).toBe(0);
    expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getJobState(job.idempotencyKey)).toBe('waiting');
  });

  it('with force, re-enqueues a waiting job in place', async () => {
    const jobs = jobsFor(targets(2));
    await producer.submit(jobs);

    const report = await producer.submit(jobs, { force: true });

    expect(report.enqueued).toBe(2);
    expect(report.duplicates).toBe(0);
    expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getWaitingCount()).toBe(2);
  });

  it('with force, re-enqueues a completed job and a failed job', async () => {
    const jobs = jobsFor(targets(2));
    await producer.submit(jobs);
    const first = await takeNextJob('token-1');
    const second = await takeNextJob('token-2');
    try {
      await first.job.moveToCompleted({ ok: true }, 'token-1', false);
      await second.job.moveToFailed(new UnrecoverableError('gone'), 'token-2', false);
      const states = await Promise.all(
        jobs.map((job) => producer.queues.each(CRAWL_QUEUE)[0]?.getJobState(job.idempotencyKey)),
      );
      expect(states.sort()).toEqual(['completed', 'failed']);

      expect(await producer.submit(jobs)).toEqual({ enqueued: 0, duplicates: 2, keys: [] });
      const forced = await producer.submit(jobs, { force: true });

      expect(forced.enqueued).toBe(2);
      expect(forced.duplicates).toBe(0);
      for (const job of jobs)
        expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getJobState(job.idempotencyKey)).toBe('waiting');
      expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getCompletedCount()).toBe(0);
      expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getFailedCount()).toBe(0);
    } finally {
      await first.release();
      await second.release();
    }
  });

  it('with force, leaves a job that a worker is running alone', async () => {
    const [job] = jobsFor(targets(1));
    if (job === undefined) throw new Error('unreachable');
    await producer.submit([job]);
    const taken = await takeNextJob('token-active');
    try {
      expect(taken.job.id).toBe(job.idempotencyKey);

      const report = await producer.submit([job], { force: true });

      expect(report).toEqual({ enqueued: 0, duplicates: 1, keys: [] });
      expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getJobState(job.idempotencyKey)).toBe('active');
      expect(await redis.exists(`{${prefix}}:crawl:${job.idempotencyKey}:lock`)).toBe(1);
      expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getWaitingCount()).toBe(0);
    } finally {
      await taken.job.moveToCompleted('done', 'token-active', false);
      await taken.release();
    }
  });

  it('submits in batches and reports progress after each, ending at the total', async () => {
    const progress: Array<[number, number]> = [];

    const report = await producer.submit(jobsFor(targets(20)), {
      batchSize: 7,
      onProgress: (done, total) => progress.push([done, total]),
    });

    expect(report.enqueued).toBe(20);
    expect(progress.every(([, total]) => total === 20)).toBe(true);
    const counts = progress.map(([done]) => done);
    for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1] ?? 0);
    expect([...new Set(counts)]).toEqual([7, 14, 20]);
    expect(counts.at(-1)).toBe(20);
  });

  it('counts in-input duplicates as done in its progress', async () => {
    const list = targets(10);
    const progress: number[] = [];

    await producer.submit(jobsFor([...list, ...list.slice(0, 4)]), {
      batchSize: 5,
      onProgress: (done) => progress.push(done),
    });

    expect([...new Set(progress)]).toEqual([9, 14]);
  });

  it('enqueues 2,000 URLs', { timeout: 15_000 }, async () => {
    const jobs = jobsFor(targets(2_000, 'bulk'));

    const report = await producer.submit(jobs);

    expect(report.enqueued).toBe(2_000);
    expect(report.keys).toHaveLength(2_000);
    expect(await producer.queues.each(CRAWL_QUEUE)[0]?.getWaitingCount()).toBe(2_000);
    expect(await redis.llen(`{${prefix}}:crawl:wait`)).toBe(2_000);
  });

  it('throws PartialSubmitError saying how much was enqueued when Redis goes away mid-way', async () => {
    const server = await startRedisServer();
    const connection = await connectRedis(server.url, { role: 'command' });
    const doomed = new Producer(connection, keys, config);
    for (const queue of doomed.queues.all) queue.on('error', () => {});
    try {
      const jobs = jobsFor(targets(30));
      let stopping: Promise<void> | undefined;

      const error = await doomed
        .submit(jobs, {
          batchSize: 10,
          onProgress: () => {
            if (stopping !== undefined) return;
            stopping = server.stop({ signal: 'SIGKILL' });
            // onProgress is synchronous: hold the submit loop until the kill has landed.
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
          },
        })
        .then(
          () => undefined,
          (thrown: unknown) => thrown,
        );

      expect(error).toBeInstanceOf(PartialSubmitError);
      const partial = error as PartialSubmitError;
      expect(partial.report.enqueued).toBe(10);
      expect(partial.report.keys).toEqual(jobs.slice(0, 10).map((job) => job.idempotencyKey));
      expect(partial.total).toBe(30);
      expect(partial.exitCode).toBe(1);
      expect(partial.cause).toBeInstanceOf(Error);
      expect(partial.message).toContain('after enqueuing 10 of 30 jobs');
    } finally {
      await doomed.close().catch(() => {});
      connection.disconnect();
      await server.stop();
    }
  });
});
