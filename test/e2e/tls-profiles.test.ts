import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@crawlfleet/core';
import { freePort } from '@crawlfleet/local-redis';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submit } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';
import { startTlsSite, type TlsHit, type TlsSite } from '../src/tls-site.js';

const SESSIONS = 12;
/** The last sessions: two of a tenant that pins a Firefox user agent, two of one that draws Firefox only. */
const PINNED = 4;
const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';
const PAGES = 3;

/** What each browser offers, in its order (IANA names), as Node's OpenSSL can say it. */
const OFFERED = {
  chrome: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
    'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
    'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
    'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
    'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
    'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
    'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
    'TLS_RSA_WITH_AES_128_GCM_SHA256',
    'TLS_RSA_WITH_AES_256_GCM_SHA384',
    'TLS_RSA_WITH_AES_128_CBC_SHA',
    'TLS_RSA_WITH_AES_256_CBC_SHA',
  ],
  firefox: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_CHACHA20_POLY1305_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
    'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
    'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
    'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
    'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
    'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA',
    'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA',
    'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
    'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
    'TLS_RSA_WITH_AES_128_GCM_SHA256',
    'TLS_RSA_WITH_AES_256_GCM_SHA384',
    'TLS_RSA_WITH_AES_128_CBC_SHA',
    'TLS_RSA_WITH_AES_256_CBC_SHA',
  ],
} as const;
/** Supported groups: x25519, secp256r1, secp384r1 (Chrome); Firefox adds secp521r1 and ffdhe2048/3072. */
const GROUPS = { chrome: [29, 23, 24], firefox: [29, 23, 24, 25, 256, 257] } as const;

/** OpenSSL signals secure renegotiation as a cipher suite where browsers use an extension. */
const offered = (hit: TlsHit) => hit.ciphers.filter((name) => name !== 'TLS_EMPTY_RENEGOTIATION_INFO_SCSV');

/** What a client offers, which a session keeps: cipher suites and groups, in order. */
const handshake = (hit: TlsHit) => `${hit.ciphers.join(',')}|${hit.groups.join(',')}`;

const familyOf = (userAgent: string) =>
  userAgent.includes('Firefox/') ? 'firefox' : /Chrome\/|Edg\//.test(userAgent) ? 'chrome' : 'safari';

/** The value of one sample line of /metrics. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : '{'}`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('a session is one TLS handshake: its browser family, TLS 1.2 at least', () => {
  let site: TlsSite;
  let legacy: TlsSite;
  let redis: Redis;
  let dir: string;
  let worker: WorkerProcess | undefined;
  let env: Record<string, string>;
  let metricsPort: number;
  const prefix = uniquePrefix('tls-profiles');
  const keys = keyLayout(prefix);
  const tenants = {
    default: { allowHosts: ['127.0.0.1'], robots: 'ignore', identity: { profile: 'browser', locales: ['en-US'] } },
    pinned: { allowHosts: ['127.0.0.1'], robots: 'ignore', userAgent: FIREFOX },
    firefoxes: {
      allowHosts: ['127.0.0.1'],
      robots: 'ignore',
      identity: { profile: 'browser', browsers: ['firefox'] },
    },
  };

  beforeAll(async () => {
    site = await startTlsSite();
    legacy = await startTlsSite({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' });
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-tls-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants, jobs: { retries: 1 } }));
    // Both sites' certificates are made by this run; the worker trusts them.
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, [site.caFile, legacy.caFile].map((file) => readFileSync(file, 'utf8')).join(''));
    env = {
      CRAWLFLEET_PREFIX: prefix,
      CRAWLFLEET_CONFIG: config,
      NODE_EXTRA_CA_CERTS: ca,
      CRAWLFLEET_LOG_LEVEL: 'warn',
    };
    metricsPort = await freePort();
  });
  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await Promise.all([site.close(), legacy.close()]);
    await cleanupPrefix(redis, prefix);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends each session's every request with one user agent and that browser's cipher suites and groups", async () => {
    const config = parseConfig({ tenants });
    for (let s = 0; s < SESSIONS; s++)
      await submit(
        redis,
        keys,
        config,
        Array.from({ length: PAGES }, (_, p) => ({ url: `${site.url}/s${s}/page-${p}` })),
        s < SESSIONS - PINNED ? 'default' : s < SESSIONS - PINNED / 2 ? 'pinned' : 'firefoxes',
        `s${s}`,
      );
    worker = startWorkerProcess(env, ['--concurrency', '6', '--metrics-port', String(metricsPort)]);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) >= SESSIONS * PAGES, {
      timeoutMs: 30_000,
      what: 'every page',
    }).catch((error: Error) => {
      throw new Error(`${error.message}; worker: ${worker?.output().slice(-2000)}`);
    });
    expect(site.hits).toHaveLength(SESSIONS * PAGES);

    const families = new Set<string>();
    for (let s = 0; s < SESSIONS; s++) {
      const hits = site.hits.filter((hit) => hit.path.startsWith(`/s${s}/`));
      expect(hits).toHaveLength(PAGES);
      const userAgents = new Set(hits.map((hit) => hit.userAgent));
      expect(userAgents.size).toBe(1);
      const family = familyOf(String(hits[0]?.userAgent));
      families.add(family);
      // A tenant that pins the user agent, or draws from Firefox only, gets Firefox's handshake.
      if (s >= SESSIONS - PINNED) expect(family, `session s${s}`).toBe('firefox');
      // One handshake for the session's life, and the one of its browser. (Not one JA3: a resumed
      // TLS session adds its pre-shared key extension, as a browser's does.)
      expect(new Set(hits.map(handshake)).size).toBe(1);
      if (family === 'chrome' || family === 'firefox') {
        expect(offered(hits[0] as TlsHit)).toEqual(OFFERED[family]);
        expect(hits[0]?.groups).toEqual(GROUPS[family]);
      }
      for (const hit of hits) expect(['TLSv1.2', 'TLSv1.3']).toContain(hit.version);
    }
    // Drawn browsers (mostly Chrome, as the web is) and the pinned Firefox: handshakes that differ.
    expect(families.has('chrome') && families.has('firefox')).toBe(true);
    expect(new Set(site.hits.map(handshake)).size).toBeGreaterThanOrEqual(2);

    // sessions show names the session's TLS family beside its user agent.
    const shown = JSON.parse((await runCli(['sessions', 'show', 's0', '--json'], { env })).stdout);
    expect(shown.profile.tls).toBe(familyOf(shown.profile.userAgent));

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(sample(metrics, 'tls_version_distribution', 'version="TLSv1.3"')).toBe(SESSIONS * PAGES);
    const cipher = site.hits[0]?.cipher as string;
    expect(sample(metrics, 'cipher_suite_usage', `cipher="${cipher}"`)).toBe(
      site.hits.filter((hit) => hit.cipher === cipher).length,
    );
    expect(sample(metrics, 'fingerprint_consistency_score')).toBe(1);
    expect(await worker.stop('SIGTERM')).toBe(0);
    worker = undefined;
  });

  it('refuses a site that speaks nothing newer than TLS 1.1, as tls_version, without retrying', async () => {
    const crawled = await runCli(['crawl', '--json', '--session', 'old', `${legacy.url}/old`], { env });
    expect(JSON.parse(crawled.stdout)).toMatchObject({ fetched: 0, dlq: 1 });
    const letters = JSON.parse((await runCli(['dlq', 'list', '--json'], { env })).stdout);
    expect(letters.find((letter: { url: string }) => letter.url.endsWith('/old'))).toMatchObject({
      reason: 'tls_version',
      attempts: 1,
    });
    // The handshake never completed: the old site served nothing.
    expect(legacy.hits).toHaveLength(0);
  });
});
