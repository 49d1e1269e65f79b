import type { KeyLayout } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import { type ForwardProxy, startForwardProxy } from '../src/forward-proxy.js';
import { cleanupPrefix, keyLayout, openTestRedis, testConfig, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

/**
 * Through a proxy, the proxy resolves target names and connects: address safety must hold
 * before the request. The proxy here listens on 127.0.0.2, an address a tenant lists or not.
 */
describe('address safety through a proxy', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let keys: KeyLayout;
  let proxy: ForwardProxy;
  let worker: TestWorker | undefined;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
  });
  beforeEach(async () => {
    prefix = uniquePrefix('proxy-addresses');
    keys = keyLayout(prefix);
    proxy = await startForwardProxy({ listenAddress: '127.0.0.2' });
  });
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
    await proxy.stop();
    await cleanupPrefix(redis, prefix);
  });

  /** Crawls one URL as the tenant; its result's status, or its dead letter. */
  async function crawl(url: string, tenant: Record<string, unknown>) {
    const cfg = testConfig({
      jobs: { retries: 1, backoffBaseMs: 20, backoffMaxMs: 50 },
      tenants: { default: { robots: 'ignore', ...tenant, proxy: { urls: [proxy.url], ...(tenant.proxy ?? {}) } } },
    });
    await submit(redis, keys, cfg, [{ url }], 'default', 'addresses');
    worker = await startTestWorker(keys, cfg);
    const dlq = new DeadLetterQueue(redis, keys);
    try {
      return await waitFor(
        async () => {
          const letter = (await dlq.list()).find((entry) => entry.url === url);
          if (letter !== undefined) return { letter: await dlq.show(letter.id) };
          const stored = await redis.xrange(soleShard(keys).results, '-', '+');
          const result = stored.map(([, fields]) => JSON.parse(String(fields[1]))).find((r) => r.url === url);
          return result === undefined ? undefined : { status: result.status as number, proxy: result.proxy };
        },
        { timeoutMs: 20_000, what: `the outcome of ${url}` },
      );
    } finally {
      await dlq.close();
    }
  }

  it('refuses a proxy at a private address the tenant does not list, before sending it anything', async () => {
    const url = site.url('/ok/through-an-unlisted-proxy');
    const { letter } = await crawl(url, { allowHosts: ['127.0.0.1'] });
    expect(letter).toMatchObject({ class: 'non_recoverable', reason: 'address_not_allowed', attempts: 1 });
    expect(letter?.message).toContain(`the proxy http://127.0.0.2:${proxy.port}`);
    expect(proxy.forwarded).toEqual([]);
    expect(site.hitsByPrefix('/ok/through-an-unlisted-proxy')).toBe(0);
  });

  it('uses it once allowHosts lists it', async () => {
    const url = site.url('/ok/through-a-listed-proxy');
    const outcome = await crawl(url, { allowHosts: ['127.0.0.1', '127.0.0.2'] });
    expect(outcome).toEqual({ status: 200, proxy: `http://127.0.0.2:${proxy.port}` });
    expect(proxy.forwarded).toEqual([url]);
  });

  it('with resolveLocally, refuses a name that resolves to an unlisted private address before the proxy sees it', async () => {
    // The tenant may reach its proxy and nothing else private; localhost is 127.0.0.1 or ::1.
    const url = site.url('/ok/resolved-here').replace('127.0.0.1', 'localhost');
    const { letter } = await crawl(url, { allowHosts: ['127.0.0.2'], proxy: { resolveLocally: true } });
    expect(letter).toMatchObject({ class: 'non_recoverable', reason: 'address_not_allowed', attempts: 1 });
    expect(letter?.message).toContain('for localhost');
    expect(proxy.forwarded).toEqual([]);
  });

  it('without it, leaves the name to the proxy (only address literals are checked here)', async () => {
    const url = site.url('/ok/resolved-there').replace('127.0.0.1', 'localhost');
    await crawl(url, { allowHosts: ['127.0.0.2'] });
    expect(proxy.forwarded).toEqual([url]);
  });
});
