import { AuditLog } from '@crawlfleet/audit';
import type { KeyLayout } from '@crawlfleet/core';
import { DeadLetterQueue } from '@crawlfleet/dlq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { startTestWorker, submit, type TestWorker } from '../src/fleet.js';
import { type ForwardProxy, startForwardProxy } from '../src/forward-proxy.js';
import { cleanupPrefix, keyLayout, openTestRedis, testConfig, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

/** The exit address of the proxy the site blocks: loopback, so the site sees it as the client's address. */
const BLOCKED_EXIT = '127.0.0.2';
const SESSIONS = 6;
const PAGES_PER_SESSION = 20;
/** Pages of every session per submission, so that the sessions' jobs run side by side. */
const ROUND = 5;

describe('proxy blocks: a proxy the site keeps blocking is down for the fleet', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let keys: KeyLayout;
  let open: ForwardProxy;
  let blocked: ForwardProxy;
  let workers: TestWorker[] = [];

  beforeAll(async () => {
    site = await startFixtureSite({ blockedAddresses: [BLOCKED_EXIT] });
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
  });
  beforeEach(async () => {
    prefix = uniquePrefix('proxy-blocks');
    keys = keyLayout(prefix);
    site.resetHits();
    open = await startForwardProxy();
    blocked = await startForwardProxy({ exitAddress: BLOCKED_EXIT });
  });
  afterEach(async () => {
    await Promise.all(workers.map((worker) => worker.stop()));
    workers = [];
    await Promise.all([open.stop(), blocked.stop()]);
    await cleanupPrefix(redis, prefix);
  });

  it('marks a proxy down as proxy_blocked after repeated 403s through it, and moves its sessions to the other proxy', async () => {
    const cfg = testConfig({
      tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore', proxy: { urls: [open.url, blocked.url] } } },
    });
    for (let from = 0; from < PAGES_PER_SESSION; from += ROUND)
      for (let s = 0; s < SESSIONS; s++) {
        const targets = Array.from({ length: ROUND }, (_, i) => ({ url: site.url(`/ok/s${s}-p${from + i}`) }));
        await submit(redis, keys, cfg, targets, 'default', `s${s}`);
      }
    workers = [
      await startTestWorker(keys, cfg, { concurrency: 2 }),
      await startTestWorker(keys, cfg, { concurrency: 2 }),
    ];
    const sessionOf = (url: string) => /\/ok\/(s\d+)-p\d+$/.exec(url)?.[1];
    const pages = (proxy: ForwardProxy) => proxy.forwarded.filter((url) => sessionOf(url) !== undefined);

    // Every page went through the blocked proxy (answered 403, dead-lettered) or was stored.
    const total = SESSIONS * PAGES_PER_SESSION;
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) + pages(blocked).length >= total, {
      timeoutMs: 30_000,
      what: 'every page stored or blocked',
    });
    const dlq = new DeadLetterQueue(redis, keys);
    try {
      const letters = await waitFor(
        async () => {
          const found = await dlq.list();
          return found.length >= pages(blocked).length && found;
        },
        { what: 'the dead letters of the blocked pages' },
      );
      // The blocks kept their normal handling: each is the site's 403 for its page.
      expect(letters).toHaveLength(pages(blocked).length);
      for (const letter of letters) expect(letter).toMatchObject({ reason: 'http_403', class: 'non_recoverable' });
    } finally {
      await dlq.close();
    }

    const blockedId = `http://127.0.0.1:${blocked.port}`;
    const openId = `http://127.0.0.1:${open.port}`;
    const audit = new AuditLog(redis, keys, 1_000);
    const down = await audit.query({ kind: 'proxy_down' });
    expect(down).toHaveLength(1);
    expect(down[0]).toMatchObject({ reason: 'proxy_blocked', detail: { proxy: blockedId } });
    expect(down[0]?.detail?.blocks).toBeGreaterThanOrEqual(10);
    expect(await redis.get(keys.proxyDown(blockedId))).toBe('proxy_blocked');
    expect(await redis.pttl(keys.proxyDown(blockedId))).toBeGreaterThan(0);
    expect(Number(await redis.get(keys.proxyBlocks(blockedId)))).toBe(pages(blocked).length);
    expect(await redis.exists(keys.proxyFailures(blockedId))).toBe(0);

    // The sessions bound to the blocked proxy moved once each, and their pages after that went
    // through the open one.
    const moved = new Set(pages(blocked).map(sessionOf));
    expect(moved.size).toBeGreaterThan(0);
    const rotated = await audit.query({ kind: 'proxy_rotated' });
    expect(rotated).toHaveLength(moved.size);
    for (const event of rotated)
      expect(event).toMatchObject({ reason: 'proxy_down', detail: { from: blockedId, to: openId } });
    const results = (await redis.xrange(soleShard(keys).results, '-', '+')).map(([, f]) => JSON.parse(String(f[1])));
    expect(results).toHaveLength(total - pages(blocked).length);
    for (const session of moved) {
      const stored = results.filter((result) => sessionOf(result.url) === session);
      expect(stored.length, `${session} after its proxy was blocked`).toBeGreaterThan(0);
      for (const result of stored) expect(result.proxy).toBe(openId);
    }
  });
});
