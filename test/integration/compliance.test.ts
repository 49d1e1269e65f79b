import { AuditLog } from '@crawlfleet/audit';
import { CRAWL_QUEUE, type KeyLayout } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, testConfig, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

describe('compliance blocks and rate limits', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let keys: KeyLayout;
  let dlq: DeadLetterQueue;
  let running: TestWorker[] = [];
  const config = testConfig({
    jobs: { retries: 5, backoffBaseMs: 10, backoffMaxMs: 20 },
    sessions: { max429: 3, quarantineSeconds: 600 },
  });

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
  });
  beforeEach(async () => {
    prefix = uniquePrefix('compliance');
    keys = keyLayout(prefix);
    dlq = new DeadLetterQueue(redis, keys);
    const worker = await startTestWorker(keys, config);
    running.push(worker);
  });
  afterEach(async () => {
    await Promise.all(running.map((w) => w.stop()));
    running = [];
    await dlq.close();
    await cleanupPrefix(redis, prefix);
  });

  const letterFor = (url: string) =>
    waitFor(async () => (await dlq.list()).find((e) => e.url === url), { what: `${url} in the DLQ` });

  it('dead-letters a Retry-After of a year as compliance_blocked/retry_after_too_long and holds the host for the maximum only', async () => {
    const url = site.url('/ratelimit/year?retryAfter=31536000&times=5');
    await submit(redis, keys, config, [{ url }]);
    expect(await letterFor(url)).toMatchObject({
      class: 'compliance_blocked',
      reason: 'retry_after_too_long',
      attempts: 1,
    });
    const letter = await dlq.show((await letterFor(url)).id);
    expect(letter?.message).toMatch(
      /asks to wait 31536000 s \(Retry-After\), more than the tenant's maxRetryAfterSeconds of 3600/,
    );
    const hold = Number(await redis.get(keys.host(new URL(url).host))) - Date.now();
    expect(hold).toBeGreaterThan(3_500_000);
    expect(hold).toBeLessThanOrEqual(3_600_000);
    expect(await redis.pttl(keys.host(new URL(url).host))).toBeLessThanOrEqual(3_700_000);
  });

  it('quarantines a session that meets a WAF challenge: flushed, flagged, its next jobs never reach the site', async () => {
    await submit(redis, keys, config, [{ url: site.url('/cookies/set?before=1') }], 'default', 'q1');
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 1);
    const session = keys.session('default', 'q1');
    expect(await redis.exists(session.slate('cookies'))).toBe(1);

    await submit(redis, keys, config, [{ url: site.url('/waf') }], 'default', 'q1');
    expect(await letterFor(site.url('/waf'))).toMatchObject({
      class: 'compliance_blocked',
      reason: 'waf_challenge',
      attempts: 1,
    });
    expect(site.hits('/waf')).toBe(1);
    expect(await redis.exists(session.slate('cookies'), session.slate('meta'), session.slate('profile'))).toBe(0);
    const ttl = await redis.pttl(session.quarantine);
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
    expect(running[0]?.worker.sessionCounters.quarantined).toBe(1);

    await submit(redis, keys, config, [{ url: site.url('/ok/after-quarantine') }], 'default', 'q1');
    expect(await letterFor(site.url('/ok/after-quarantine'))).toMatchObject({
      class: 'compliance_blocked',
      reason: 'session_quarantined',
    });
    expect(site.hits('/ok/after-quarantine')).toBe(0);
    // Other sessions are not affected.
    await submit(redis, keys, config, [{ url: site.url('/ok/other-session') }], 'default', 'q2');
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 2);

    const audit = await new AuditLog(redis, keys, 1000).query({ kind: 'quarantine' });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ reason: 'waf_challenge', url: site.url('/waf') });
  });

  it('does not retry a CAPTCHA page, even without a session', async () => {
    await submit(redis, keys, config, [{ url: site.url('/captcha') }]);
    expect(await letterFor(site.url('/captcha'))).toMatchObject({
      class: 'compliance_blocked',
      reason: 'captcha',
      attempts: 1,
    });
    expect(site.hits('/captcha')).toBe(1);
  });

  it('treats repeated 429s to one session as a compliance block and quarantines it', async () => {
    const url = site.url('/ratelimit/hammer?times=100&retryAfter=0');
    await submit(redis, keys, config, [{ url }], 'default', 'r1');
    expect(await letterFor(url)).toMatchObject({
      class: 'compliance_blocked',
      reason: 'rate_limited_repeatedly',
      attempts: 3,
    });
    expect(site.hits('/ratelimit/hammer?times=100&retryAfter=0')).toBe(3);
    expect(await redis.exists(keys.session('default', 'r1').quarantine)).toBe(1);
  });

  it('retries a 429 with Retry-After: 2 no sooner than 2 s later', async () => {
    const started = Date.now();
    const [job] = await submit(redis, keys, config, [{ url: site.url('/ratelimit/polite?times=1&retryAfter=2') }]);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 1, { timeoutMs: 10_000 });
    const [, fields] = (await redis.xrange(soleShard(keys).results, '-', '+'))[0] ?? [];
    const result = JSON.parse(String(fields?.[1]));
    expect(result).toMatchObject({ status: 200, attempts: 2 });
    expect(Date.parse(result.fetchedAt) - started).toBeGreaterThanOrEqual(2_000);
    const queue = new Queue(CRAWL_QUEUE, { connection: redis, prefix: keys.bullPrefix });
    try {
      const { logs } = await queue.getJobLogs(String(job?.idempotencyKey));
      expect(JSON.parse(String(logs[0]))).toMatchObject({ reason: 'http_429', status: 429 });
      expect(JSON.parse(String(logs[0])).backoffMs).toBeGreaterThanOrEqual(2_000);
    } finally {
      await queue.close();
    }
  });
});
