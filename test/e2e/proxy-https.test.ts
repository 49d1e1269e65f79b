import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyLayout } from '@crawlfleet/core';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ForwardProxy, startForwardProxy } from '../src/forward-proxy.js';
import { cleanupPrefix, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';

const PAGES = 60;

describe('https targets through a proxy (CONNECT), as a worker process trusting a private CA', () => {
  let dir: string;
  let site: Server;
  let siteUrl: string;
  let proxy: ForwardProxy;
  let redis: Redis;
  let prefix: string;
  let worker: WorkerProcess | undefined;
  let hits = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-https-'));
    // A certificate for 127.0.0.1 that only this test trusts (NODE_EXTRA_CA_CERTS of the worker).
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    site = createServer(
      { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
      (req, res) => {
        hits++;
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<html><body>secure ${req.url}</body></html>`);
      },
    );
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteUrl = `https://127.0.0.1:${(site.address() as AddressInfo).port}`;
    proxy = await startForwardProxy();
    redis = openTestRedis();
    prefix = uniquePrefix('https-proxy');
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await proxy.stop();
    await new Promise((resolve) => site.close(resolve));
    await cleanupPrefix(redis, prefix);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tunnels every page through the proxy, over kept-alive tunnels, and stores them', async () => {
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'], robots: 'ignore', proxy: { urls: [proxy.url] } } },
      }),
    );
    const env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') };
    const urls = join(dir, 'urls.txt');
    writeFileSync(urls, Array.from({ length: PAGES }, (_, i) => `${siteUrl}/page-${i}`).join('\n'));
    expect((await runCli(['submit', '--file', urls], { env })).code).toBe(0);
    worker = startWorkerProcess(env, ['--concurrency', '4']);
    const keys = keyLayout(prefix);
    // On a timeout, say what the worker and the proxy saw.
    await waitFor(async () => (await redis.xlen(keys.results)) >= PAGES, {
      timeoutMs: 30_000,
      what: 'every page',
    }).catch((error: Error) => {
      throw new Error(
        `${error.message}; worker: ${worker?.output().slice(-2000)}; proxy: ${proxy.forwarded.slice(0, 5)}`,
      );
    });

    const results = (await redis.xrange(keys.results, '-', '+')).map(([, f]) => JSON.parse(String(f[1])));
    expect(results.every((r) => r.status === 200 && r.body.startsWith('<html><body>secure /page-'))).toBe(true);
    expect(hits).toBe(PAGES);
    // Every request went through a CONNECT tunnel of the proxy, and tunnels were kept and reused.
    const tunnels = proxy.forwarded.filter((target) => target === siteUrl.slice('https://'.length));
    expect(tunnels.length).toBe(proxy.forwarded.length);
    expect(tunnels.length).toBeGreaterThan(0);
    expect(tunnels.length).toBeLessThanOrEqual(4);
    expect(await worker.stop('SIGTERM')).toBe(0);
    worker = undefined;
  });

  it('still refuses a certificate the worker does not trust, through the tunnel', async () => {
    const config = join(dir, 'crawlfleet.config.json');
    const env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config };
    const crawled = await runCli(['crawl', '--json', `${siteUrl}/untrusted`], { env });
    expect(JSON.parse(crawled.stdout)).toMatchObject({ fetched: 0, dlq: 1 });
    const letters = JSON.parse((await runCli(['dlq', 'list', '--json'], { env })).stdout);
    expect(letters.find((letter: { url: string }) => letter.url.endsWith('/untrusted'))).toMatchObject({
      reason: 'tls_certificate',
    });
  });
});
