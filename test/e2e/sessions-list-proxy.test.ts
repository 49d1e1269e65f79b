import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionProfile } from '@crawlfleet/sessions';
import { generateKeyEntry, parseKeyRing, SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { type ForwardProxy, startForwardProxy } from '../src/forward-proxy.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, testRing, uniquePrefix } from '../src/harness.js';

const PROXY_A = 'http://127.0.0.1:8080';
const PROXY_B = 'https://10.0.0.7:443';
const HOUR = 3600 * 1000;

/** Writes a session as a worker's first job does: its profile (naming `proxy`, when given) and its meta. */
async function writeSession(store: SlateStore, tenant: string, sessionId: string, proxy?: string): Promise<void> {
  const profile: SessionProfile = {
    userAgent: 'crawlfleet-test',
    createdAt: new Date().toISOString(),
    ...(proxy === undefined ? {} : { proxy }),
  };
  const answer = await store.commit(store.session(tenant, sessionId), [
    { rule: 'create', name: 'profile', value: profile, ttlMs: HOUR },
    { rule: 'counters', name: 'meta', jobs: 1, errors: 0, lastUsedMs: Date.now(), ttlMs: HOUR },
  ]);
  expect(answer.ok).toBe(true);
}

/** A session with meta only: it holds no profile, so `--proxy` never reads it. */
async function writeMetaOnly(store: SlateStore, tenant: string, sessionId: string): Promise<void> {
  const session = store.session(tenant, sessionId);
  const write = { rule: 'counters', name: 'meta', jobs: 1, errors: 0, lastUsedMs: Date.now(), ttlMs: HOUR } as const;
  expect((await store.commit(session, [write])).ok).toBe(true);
}

describe('sessions list --proxy', () => {
  const prefix = uniquePrefix('list-proxy');
  const keys = keyLayout(prefix);
  let redis: Redis;
  let site: FixtureSite;
  let forward: ForwardProxy;
  let dir: string;
  let env: Record<string, string>;
  const list = async (...args: string[]) => runCli(['sessions', 'list', ...args], { env });

  beforeAll(async () => {
    redis = openTestRedis();
    site = await startFixtureSite();
    forward = await startForwardProxy();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-list-proxy-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: {
          default: { allowHosts: ['127.0.0.1'], robots: 'ignore', proxy: { urls: [forward.url] } },
          shop: { allowHosts: ['127.0.0.1'] },
        },
      }),
    );
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config, CRAWLFLEET_LOG_LEVEL: 'warn' };

    const store = new SlateStore(redis, keys, testRing(), { openedSlates: 0 });
    await writeSession(store, 'default', 'a1', PROXY_A);
    await writeSession(store, 'default', 'a2', PROXY_A);
    await writeSession(store, 'shop', 'a3', PROXY_A);
    await writeSession(store, 'default', 'b1', PROXY_B);
    await writeSession(store, 'default', 'direct');
    await writeMetaOnly(store, 'default', 'no-profile');
    // Sealed with keys the CLI does not hold: it cannot tell this session's proxy.
    const stranger = new SlateStore(redis, keys, parseKeyRing(generateKeyEntry()), { openedSlates: 0 });
    await writeSession(stranger, 'default', 'foreign', PROXY_A);

    // A real job through a real proxy: its profile names the proxy as the worker does.
    const crawled = await runCli(['crawl', '--session', 'real', site.url('/ok/through-the-proxy')], { env });
    expect(crawled.code).toBe(0);
    expect(forward.forwarded).toContain(site.url('/ok/through-the-proxy'));
  });
  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await forward.stop();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists only the sessions whose profile names the proxy, each with its proxy (--json)', async () => {
    const listed = await list('--proxy', PROXY_A, '--json');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      { tenant: 'default', sessionId: 'a1', slates: ['meta', 'profile'], proxy: PROXY_A },
      { tenant: 'default', sessionId: 'a2', slates: ['meta', 'profile'], proxy: PROXY_A },
      { tenant: 'shop', sessionId: 'a3', slates: ['meta', 'profile'], proxy: PROXY_A },
    ]);
  });

  it('skips a session whose profile its keys cannot open, and says how many on stderr', async () => {
    const listed = await list('--proxy', PROXY_A, '--json');
    expect(listed.stdout).not.toContain('foreign');
    expect(listed.stderr.trim().split('\n')).toEqual([
      'crawlfleet: skipped 1 session whose profile could not be opened (sealed with a key these keys lack, or damaged)',
    ]);
  });

  it('prints the same sessions as a table with a proxy column', async () => {
    const listed = await list('--proxy', PROXY_A);
    expect(listed.code).toBe(0);
    expect(listed.stdout.trimEnd().split('\n')).toEqual([
      'tenant   session  proxy                  slates',
      `default  a1       ${PROXY_A}  meta,profile`,
      `default  a2       ${PROXY_A}  meta,profile`,
      `shop     a3       ${PROXY_A}  meta,profile`,
    ]);
  });

  it('takes the id with a trailing slash or a default port left out, and narrows by --tenant', async () => {
    const slashed = await list('--proxy', `${PROXY_A}/`, '--tenant', 'shop', '--json');
    expect(JSON.parse(slashed.stdout).map((s: { sessionId: string }) => s.sessionId)).toEqual(['a3']);
    const defaultPort = await list('--proxy', 'https://10.0.0.7/', '--json');
    expect(JSON.parse(defaultPort.stdout)).toEqual([
      { tenant: 'default', sessionId: 'b1', slates: ['meta', 'profile'], proxy: PROXY_B },
    ]);
  });

  it('finds a session a real job wrote through a proxy, by the URL the config names it with', async () => {
    const listed = await list('--proxy', forward.url, '--json');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      { tenant: 'default', sessionId: 'real', slates: expect.arrayContaining(['meta', 'profile']), proxy: forward.url },
    ]);
  });

  it('says so when no session goes through the proxy', async () => {
    const listed = await list('--proxy', 'http://127.0.0.1:9');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toBe('no sessions go through http://127.0.0.1:9\n');
  });

  it('lists every session without proxies when --proxy is not given, as before', async () => {
    const listed = await list('--json');
    expect(listed.code).toBe(0);
    const all = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
    expect(all.map((s) => s.sessionId).sort()).toEqual(
      ['a1', 'a2', 'a3', 'b1', 'direct', 'foreign', 'no-profile', 'real'].sort(),
    );
    expect(all.every((s) => !('proxy' in s))).toBe(true);
  });

  it.each([
    ['no scheme', '127.0.0.1:8080'],
    ['another scheme', 'socks5://127.0.0.1:1080'],
    ['a path', 'http://127.0.0.1:8080/pool'],
    ['a query', 'http://127.0.0.1:8080/?x=1'],
    ['not a URL', 'proxy a'],
  ])('refuses a value with %s in one line, exit 2', async (_, value) => {
    const refused = await list('--proxy', value);
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe('crawlfleet: --proxy must be a proxy id: http://host:port or https://host:port\n');
  });

  it('refuses a URL with credentials, asking for scheme://host:port, and never echoes them', async () => {
    const refused = await list('--proxy', 'http://user:s3cret-pw@127.0.0.1:8080');
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(
      /^crawlfleet: --proxy must not hold credentials: give the proxy id, scheme:\/\/host:port/,
    );
    expect(refused.stderr).not.toContain('s3cret-pw');
  });

  it('needs the session keys to read profiles (exit 2), while the plain list does not', async () => {
    const home = mkdtempSync(join(dir, 'no-keys-'));
    const keyless = { ...env, CRAWLFLEET_KEYS: '', XDG_CONFIG_HOME: home };
    const refused = await runCli(['sessions', 'list', '--proxy', PROXY_A], { env: keyless });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^crawlfleet: no session key: set CRAWLFLEET_KEYS/);
    expect((await runCli(['sessions', 'list'], { env: keyless })).code).toBe(0);
  });

  it('says what --proxy does in --help', async () => {
    const help = await list('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--proxy <id>\s+only sessions whose profile names this proxy/);
  });
});

describe('sessions list --proxy over more sessions than one batch reads', () => {
  const prefix = uniquePrefix('list-proxy-many');
  const keys = keyLayout(prefix);
  let redis: Redis;
  const ids = Array.from({ length: 1100 }, (_, i) => `s-${String(i).padStart(4, '0')}`);

  beforeAll(async () => {
    redis = openTestRedis();
    const store = new SlateStore(redis, keys, testRing(), { openedSlates: 0 });
    await Promise.all(ids.map((id, i) => writeSession(store, 'default', id, i % 2 === 0 ? PROXY_A : PROXY_B)));
  });
  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
  });

  it('returns exactly the sessions of each proxy, across batches', async () => {
    const env = { CRAWLFLEET_PREFIX: prefix };
    const [a, b] = await Promise.all(
      [PROXY_A, PROXY_B].map((proxy) => runCli(['sessions', 'list', '--proxy', proxy, '--json'], { env })),
    );
    expect(a?.stderr).toBe('');
    const idsOf = (stdout: string | undefined) =>
      JSON.parse(String(stdout)).map((s: { sessionId: string }) => s.sessionId);
    expect(idsOf(a?.stdout)).toEqual(ids.filter((_, i) => i % 2 === 0));
    expect(idsOf(b?.stdout)).toEqual(ids.filter((_, i) => i % 2 === 1));
  });
});
