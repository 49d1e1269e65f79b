import { type DeadLetter, DeadLetterQueue } from '@crawlfleet/dlq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, uniquePrefix } from '../src/harness.js';

let redis: Redis;
let prefix: string;
let keys: ReturnType<typeof keyLayout>;
let dlq: DeadLetterQueue;

beforeAll(() => {
  redis = openTestRedis();
});

afterAll(async () => {
  await redis.quit();
});

beforeEach(() => {
  prefix = uniquePrefix('dlq');
  keys = keyLayout(prefix);
  dlq = new DeadLetterQueue(redis, keys);
});

afterEach(async () => {
  await dlq.close();
  await cleanupPrefix(redis, prefix);
});

function letter(id: string, overrides: Partial<DeadLetter> = {}): DeadLetter {
  const url = `http://127.0.0.1:8080/status/404?id=${id}`;
  return {
    id,
    url,
    class: 'non_recoverable',
    reason: 'http_404',
    message: 'GET answered 404 Not Found',
    attempts: 1,
    failedAt: '2025-01-02T03:04:05.000Z',
    tenant: 'default',
    sessionId: 'session-1',
    job: { v: 1, url, method: 'GET', tenant: 'default', idempotencyKey: id, submittedAt: '2025-01-02T03:04:00.000Z' },
    history: [
      { attempt: 1, at: '2025-01-02T03:04:05.000Z', failureClass: 'non_recoverable', reason: 'http_404', error: '404' },
    ],
    lastResponse: { status: 404, headers: { 'content-type': 'text/plain' }, bodySnippet: 'not found' },
    ...overrides,
  };
}

describe('DeadLetterQueue.route', () => {
  it('adds an entry whose job id is the letter id and whose job name says class, reason and url', async () => {
    const routed = letter('ik-route');

    await dlq.route(routed);

    const hash = await redis.hgetall(keys.dlqJob('ik-route'));
    expect(hash.name).toBe(`${routed.class}/${routed.reason} ${routed.url}`);
    expect(JSON.parse(hash.data ?? 'null')).toEqual(routed);
    // A failed job, so Bull Board offers Retry for it (which the board turns into a replay).
    expect(await redis.zrange(`{${prefix}}:crawl-dlq:failed`, 0, -1)).toEqual(['ik-route']);
    expect(await redis.llen(`{${prefix}}:crawl-dlq:wait`)).toBe(0);
    const job = await dlq.queue.getJob('ik-route');
    expect(await job?.getState()).toBe('failed');
    expect(job?.failedReason).toBe(`${routed.class}/${routed.reason}: ${routed.message}`);
    expect(job?.attemptsMade).toBe(routed.attempts);
    expect(await dlq.count()).toBe(1);
  });

  it('still lists, replaces and replays-away an entry an older crawlfleet left waiting', async () => {
    const legacy = letter('ik-legacy');
    await dlq.queue.add('legacy', legacy, { jobId: 'ik-legacy' });
    expect((await dlq.list()).map((summary) => summary.id)).toEqual(['ik-legacy']);

    const newer = letter('ik-legacy', { failedAt: '2025-02-01T00:00:00.000Z' });
    await dlq.route(newer);
    expect(await redis.llen(`{${prefix}}:crawl-dlq:wait`)).toBe(0);
    expect(await dlq.show('ik-legacy')).toEqual(newer);
    expect(await dlq.removeIfUnchanged([newer])).toEqual(['ik-legacy']);
    expect(await dlq.count()).toBe(0);
    expect(await redis.exists(keys.dlqJob('ik-legacy'))).toBe(0);
  });

  it('names an entry without a url by its class, reason and "(invalid payload)"', async () => {
    await dlq.route(letter('ik-no-url', { url: null, job: { garbage: true }, reason: 'invalid_payload' }));

    expect(await redis.hget(keys.dlqJob('ik-no-url'), 'name')).toMatch(/^\w+\/\w+ \(invalid payload\)$/);
  });

  it('removes an entry only while it is still the failure given, never a newer one', async () => {
    const replayed = letter('ik-cas', { failedAt: '2025-03-01T00:00:00.000Z' });
    await dlq.route(replayed);
    const again = letter('ik-cas', { failedAt: '2025-03-01T00:00:05.000Z', reason: 'http_410' });
    await dlq.route(again);

    expect(await dlq.removeIfUnchanged([replayed])).toEqual([]);
    expect(await dlq.show('ik-cas')).toEqual(again);
    expect(await dlq.removeIfUnchanged([again, letter('ik-never-routed')])).toEqual(['ik-cas']);
    expect(await dlq.count()).toBe(0);
    expect(await redis.zcard(`{${prefix}}:crawl-dlq:failed`)).toBe(0);
  });

  it('keeps one entry, with the newest failure, when the same id is routed twice', async () => {
    await dlq.route(letter('ik-twice', { reason: 'http_404', attempts: 1 }));
    const second = letter('ik-twice', { reason: 'http_410', attempts: 2, class: 'compliance_blocked' });
    await dlq.route(second);

    expect(await dlq.count()).toBe(1);
    expect(await dlq.show('ik-twice')).toEqual(second);
    expect(await redis.zcard(`{${prefix}}:crawl-dlq:failed`)).toBe(1);
  });

  it('routes a letter for a job whose BullMQ id was generated (all digits)', async () => {
    // A job added to `crawl` without a jobId (by a script, or Bull Board) gets id "17"; when its
    // payload does not fit the schema the worker routes a letter with that id.
    const numeric = letter('17', { url: null, job: { not: 'a fetch job' }, reason: 'invalid_payload' });

    await dlq.route(numeric);

    expect(await dlq.count()).toBe(1);
    expect(await dlq.show('17')).toEqual(numeric);
    expect((await dlq.list()).map((summary) => summary.id)).toEqual(['17']);
  });
});

describe('DeadLetterQueue.list', () => {
  it('returns one summary per entry, newest first', async () => {
    await dlq.route(letter('ik-a'));
    await dlq.route(letter('ik-b', { class: 'compliance_blocked', reason: 'waf_challenge', tenant: null }));
    await dlq.route(letter('ik-c', { attempts: 4, reason: 'retries_exhausted:http_503' }));

    const summaries = await dlq.list();

    expect(summaries.map((summary) => summary.id)).toEqual(['ik-c', 'ik-b', 'ik-a']);
    expect(summaries[1]).toEqual({
      id: 'ik-b',
      url: letter('ik-b').url,
      class: 'compliance_blocked',
      reason: 'waf_challenge',
      attempts: 1,
      failedAt: '2025-01-02T03:04:05.000Z',
      tenant: null,
    });
    for (const summary of summaries) {
      expect(Object.keys(summary).sort()).toEqual(['attempts', 'class', 'failedAt', 'id', 'reason', 'tenant', 'url']);
    }
  });

  it('filters by failure class', async () => {
    await dlq.route(letter('ik-1'));
    await dlq.route(letter('ik-2', { class: 'compliance_blocked' }));
    await dlq.route(letter('ik-3'));
    await dlq.route(letter('ik-4', { class: 'compliance_blocked' }));

    const blocked = await dlq.list({ failureClass: 'compliance_blocked' });

    expect(blocked.map((summary) => summary.id)).toEqual(['ik-4', 'ik-2']);
    expect((await dlq.list({ failureClass: 'non_recoverable' })).map((summary) => summary.id)).toEqual([
      'ik-3',
      'ik-1',
    ]);
    expect(await dlq.list({ failureClass: 'recoverable' })).toEqual([]);
  });

  it('returns at most limit entries, also when filtering', async () => {
    for (let i = 0; i < 6; i++) {
      await dlq.route(letter(`ik-${i}`, { class: i % 2 === 0 ? 'non_recoverable' : 'compliance_blocked' }));
    }

    expect((await dlq.list({ limit: 2 })).map((summary) => summary.id)).toEqual(['ik-5', 'ik-4']);
    expect((await dlq.list({ limit: 2, failureClass: 'non_recoverable' })).map((summary) => summary.id)).toEqual([
      'ik-4',
      'ik-2',
    ]);
    expect(await dlq.list({ limit: 0 })).toEqual([]);
  });

  it('lists past one page of 500 entries with nothing missing or repeated', async () => {
    await Promise.all(Array.from({ length: 620 }, (_, i) => dlq.route(letter(`ik-many-${i}`))));

    const ids = (await dlq.list()).map((summary) => summary.id);

    expect(ids).toHaveLength(620);
    expect(new Set(ids).size).toBe(620);
    expect(await dlq.count()).toBe(620);
  });

  it('is empty when nothing was routed', async () => {
    expect(await dlq.list()).toEqual([]);
    expect(await dlq.count()).toBe(0);
  });
});

describe('DeadLetterQueue.show', () => {
  it('returns the whole letter', async () => {
    const routed = letter('ik-show', { history: [], lastResponse: null, sessionId: null });
    await dlq.route(routed);

    expect(await dlq.show('ik-show')).toEqual(routed);
  });

  it('returns undefined for an unknown id', async () => {
    await dlq.route(letter('ik-known'));

    expect(await dlq.show('ik-unknown')).toBeUndefined();
  });
});

describe('DeadLetterQueue.count', () => {
  it('counts the entries waiting for a person', async () => {
    await dlq.route(letter('ik-x'));
    await dlq.route(letter('ik-y'));
    await dlq.route(letter('ik-x'));

    expect(await dlq.count()).toBe(2);
    expect(await redis.exists(keys.dlqJob('ik-x'), keys.dlqJob('ik-y'))).toBe(2);
  });

  it('still counts and lists entries while the DLQ is paused in Bull Board', async () => {
    await dlq.queue.pause();

    await dlq.route(letter('ik-paused'));

    expect(await dlq.count()).toBe(1);
    expect((await dlq.list()).map((summary) => summary.id)).toEqual(['ik-paused']);
  });
});
