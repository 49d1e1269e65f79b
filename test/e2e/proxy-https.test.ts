import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyLayout } from '@crawlfleet/core';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ForwardProxy, startForwardProxy } from '../src/forward-proxy.js';
import { cleanupPrefix, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';
import { startTlsSite, type TlsSite } from '../src/tls-site.js';

const PAGES = 60;

describe('https targets through a proxy (CONNECT), as a worker process trusting a private CA', () => {
  let dir: string;
  let site: TlsSite;
  let proxy: ForwardProxy;
  let redis: Redis;
  let worker: WorkerProcess | undefined;
  const prefixes: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-https-'));
    // A certificate for 127.0.0.1 that only this test trusts (NODE_EXTRA_CA_CERTS of the worker).
    site = await startTlsSite();
    proxy = await startForwardProxy();
    redis = openTestRedis();
  });
  afterEach(async () => {
    await worker?.stop('SIGKILL');
    worker = undefined;
  });
  afterAll(async () => {
    await proxy.stop();
    await site.close();
    for (const prefix of prefixes) await cleanupPrefix(redis, prefix);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The environment of a worker of tenant `default` with these proxies, on a prefix of its own. */
  function environment(proxyUrls: string[], trusted = true): Record<string, string> {
    const prefix = uniquePrefix('https-proxy');
    prefixes.push(prefix);
    const config = join(dir, `${prefix}.config.json`);
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore', proxy: { urls: proxyUrls } } },
      }),
    );
    return {
      CRAWLFLEET_PREFIX: prefix,
      CRAWLFLEET_CONFIG: config,
      ...(trusted ? { NODE_EXTRA_CA_CERTS: site.caFile } : {}),
    };
  }

  /** Submits the pages and waits until a worker with `env` stored them all; their results. */
  async function crawl(env: Record<string, string>, path: string) {
    const urls = join(dir, 'urls.txt');
    writeFileSync(urls, Array.from({ length: PAGES }, (_, i) => `${site.url}${path}-${i}`).join('\n'));
    expect((await runCli(['submit', '--file', urls], { env })).code).toBe(0);
    worker = startWorkerProcess(env, ['--concurrency', '4']);
    const keys = keyLayout(env.CRAWLFLEET_PREFIX as string);
    // On a timeout, say what the worker and the proxy saw.
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= PAGES, {
      timeoutMs: 30_000,
      what: 'every page',
    }).catch((error: Error) => {
      throw new Error(
        `${error.message}; worker: ${worker?.output().slice(-2000)}; proxy: ${proxy.forwarded.slice(0, 5)}`,
      );
    });
    return (await redis.xrange(soleShard(keys).results, '-', '+')).map(([, f]) => JSON.parse(String(f[1])));
  }

  it('tunnels every page through the proxy, over kept-alive tunnels, and stores them', async () => {
    const env = environment([proxy.url]);
    const results = await crawl(env, '/page');
    expect(results.every((r) => r.status === 200 && r.body.startsWith('<html><body>secure /page-'))).toBe(true);
    expect(site.hits.filter((hit) => hit.path.startsWith('/page-'))).toHaveLength(PAGES);
    // Every request went through a CONNECT tunnel of the proxy, and tunnels were kept and reused.
    const tunnels = proxy.forwarded.filter((target) => target === site.url.slice('https://'.length));
    expect(tunnels.length).toBe(proxy.forwarded.length);
    expect(tunnels.length).toBeGreaterThan(0);
    expect(tunnels.length).toBeLessThanOrEqual(4);
    expect(await worker?.stop('SIGTERM')).toBe(0);
    worker = undefined;
  });

  it('speaks TLS to an https:// proxy too, and tunnels through it', async () => {
    // The proxy presents the same private certificate (for 127.0.0.1) as the site.
    const secure = await startForwardProxy({ tls: { keyFile: site.keyFile, certFile: site.caFile } });
    try {
      expect(secure.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const results = await crawl(environment([secure.url]), '/secure-proxy');
      expect(results.every((r) => r.status === 200 && r.proxy === secure.url)).toBe(true);
      expect(secure.forwarded.length).toBeGreaterThan(0);
      expect(secure.forwarded.every((target) => target === site.url.slice('https://'.length))).toBe(true);
    } finally {
      await secure.stop();
    }
  });

  it('still refuses a certificate the worker does not trust, through the tunnel', async () => {
    const env = environment([proxy.url], false);
    const crawled = await runCli(['crawl', '--json', `${site.url}/untrusted`], { env });
    expect(JSON.parse(crawled.stdout)).toMatchObject({ fetched: 0, dlq: 1 });
    const letters = JSON.parse((await runCli(['dlq', 'list', '--json'], { env })).stdout);
    expect(letters.find((letter: { url: string }) => letter.url.endsWith('/untrusted'))).toMatchObject({
      reason: 'tls_certificate',
    });
  });
});
