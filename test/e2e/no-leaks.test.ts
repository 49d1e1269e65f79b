import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionCookieJar } from '@crawlfleet/sessions';
import { SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { type ForwardProxy, startForwardProxy } from '../src/forward-proxy.js';
import {
  cleanupPrefix,
  dumpPrefix,
  keyLayout,
  openTestRedis,
  runCli,
  testRing,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

const PROXY_PASSWORD = 'proxy-pass-7c1e9b';

describe('a crawl of pages with cookies, logins and personal data, through a proxy that asks for credentials', () => {
  let site: FixtureSite;
  let proxy: ForwardProxy;
  let redis: Redis;
  let dir: string;
  let worker: WorkerProcess;
  let env: Record<string, string>;
  const prefix = uniquePrefix('no-leaks');

  beforeAll(async () => {
    site = await startFixtureSite();
    proxy = await startForwardProxy({ username: 'crawler', password: PROXY_PASSWORD });
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-leaks-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: {
          default: {
            allowHosts: ['127.0.0.1'],
            auth: { login: { url: site.url('/login'), form: { user: 'alice', password: '${FIXTURE_PASSWORD}' } } },
            proxy: { urls: [`http://crawler:\${LEAK_PROXY_PASSWORD}@127.0.0.1:${proxy.port}`] },
          },
        },
        jobs: { retries: 1, backoffBaseMs: 20 },
      }),
    );
    env = {
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_PREFIX: prefix,
      FIXTURE_PASSWORD: 'secret',
      LEAK_PROXY_PASSWORD: PROXY_PASSWORD,
      CRAWLFLEET_LOG_LEVEL: 'debug',
    };
    worker = startWorkerProcess(env, ['--concurrency', '4']);
    const urls = ['/protected/home', '/pii', '/tracking-cookies', '/cookies/echo', '/status/503?pii=1'].map((p) =>
      site.url(p),
    );
    await runCli(['submit', '--session', 'alice-account', ...urls], { env });
    await waitFor(async () => (await redis.xlen(soleShard(keyLayout(prefix)).results)) === 4, {
      timeoutMs: 20_000,
      what: 'the crawl',
    });
  });
  afterAll(async () => {
    await worker.stop('SIGKILL');
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    await proxy.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves no cookie value, token, password or e-mail address in any log line or stored result', async () => {
    const keys = keyLayout(prefix);
    const store = new SlateStore(redis, keys, testRing());
    const stored = (await store.read(store.session('default', 'alice-account'), ['cookies'])).get('cookies')?.value;
    const { jar } = await SessionCookieJar.fromSlate(stored);
    const cookieValues = (await jar.jar.getCookies(site.url('/'))).map((c) => c.value);
    expect(cookieValues.length).toBeGreaterThanOrEqual(2);
    const secrets = [...cookieValues, 'secret', 'alice@example.com', '415 555 0100', '203.0.113.7', PROXY_PASSWORD];
    // Every page and the login went through the proxy, which took the credentials.
    expect(proxy.forwarded.length).toBeGreaterThanOrEqual(5);
    expect(proxy.refused).toBe(0);

    const logs = worker.output();
    expect(logs).toContain('page stored');
    const exported = (await runCli(['results', 'export'], { env })).stdout;
    expect(exported.split('\n').filter(Boolean)).toHaveLength(4);
    const dlq = (await runCli(['dlq', 'list', '--json'], { env })).stdout;
    const audit = (await runCli(['audit', '--json'], { env })).stdout;
    for (const secret of secrets) {
      expect(logs, `logs hold ${secret}`).not.toContain(secret);
      expect(exported, `results hold ${secret}`).not.toContain(secret);
      expect(dlq, `the DLQ holds ${secret}`).not.toContain(secret);
      expect(audit, `the audit stream holds ${secret}`).not.toContain(secret);
    }
    // Nothing in Redis holds the proxy's password, and results name the proxy without it.
    expect(await dumpPrefix(redis, prefix)).not.toContain(PROXY_PASSWORD);
    expect(exported).toContain(`"proxy":"http://127.0.0.1:${proxy.port}"`);
    expect(exported).toContain('[email]');
    // Results name their session (the export contract); logs name it by its keyed hash only.
    expect(logs).not.toContain('alice-account');
  });
});
