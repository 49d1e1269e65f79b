import type { KeyLayout } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
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
  testConfig,
  testRing,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { soleShard } from '../src/shard.js';

describe('data governance', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let keys: KeyLayout;
  let worker: TestWorker;
  const config = testConfig({
    tenants: {
      default: { allowHosts: ['127.0.0.1'] },
      raw: { allowHosts: ['127.0.0.1'], redactPii: false },
    },
    sessions: { trackingCookies: ['sid_tracker', 'ad_*'] },
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
    prefix = uniquePrefix('governance');
    keys = keyLayout(prefix);
    worker = await startTestWorker(keys, config);
  });
  afterEach(async () => {
    await worker.stop();
    await cleanupPrefix(redis, prefix);
  });

  async function bodyOf(tenant: string): Promise<string> {
    await submit(redis, keys, config, [{ url: site.url('/pii') }], tenant);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 1);
    const [, fields] = (await redis.xrange(soleShard(keys).results, '-', '+'))[0] ?? [];
    return JSON.parse(String(fields?.[1])).body;
  }

  it("redacts the headers a DLQ entry keeps of the last response, as results' headers are", async () => {
    const url = site.url('/pii-headers?status=404');
    await submit(redis, keys, config, [{ url }]);
    const dlq = new DeadLetterQueue(redis, keys);
    try {
      const summary = await waitFor(async () => (await dlq.list()).find((entry) => entry.url === url));
      const letter = await dlq.show(summary.id);
      expect(letter?.lastResponse?.headers['content-language']).toBe('en, [email]');
      expect(JSON.stringify(letter)).not.toContain('mallory.pii@example.org');
    } finally {
      await dlq.close();
    }
  });

  it('redacts e-mail addresses, phone numbers and IP addresses from stored bodies by default', async () => {
    const body = await bodyOf('default');
    for (const pii of ['alice@example.com', '415 555 0100', '203.0.113.7']) expect(body).not.toContain(pii);
    expect(body).toContain('[email]');
    expect(body).toContain('[phone]');
    expect(body).toContain('[ip]');
  });

  it('keeps them for a tenant that turned redactPii off', async () => {
    const body = await bodyOf('raw');
    expect(body).toContain('alice@example.com');
  });

  it("never stores tracking cookies in a session's jar, while the site's own cookie is kept", async () => {
    await submit(
      redis,
      keys,
      config,
      [{ url: site.url('/tracking-cookies') }, { url: site.url('/cookies/set?ad_id=1&keep=1') }],
      'default',
      'visitor',
    );
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 2);
    const store = new SlateStore(redis, keys, testRing());
    const stored = (await store.read(store.session('default', 'visitor'), ['cookies'])).get('cookies')?.value;
    const names = (await (await SessionCookieJar.fromSlate(stored)).jar.describe()).map((c) => c.name).sort();
    expect(names).toEqual(['keep', 'sid']);
  });
});
