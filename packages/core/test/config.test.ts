import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  type CrawlfleetConfig,
  DEFAULT_CONFIG_FILE,
  loadConfig,
  parseConfig,
  tenantConfig,
} from '../src/index.js';
import { expectInputError } from './expect-input-error.js';

const MiB = 1024 * 1024;

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'crawlfleet-config-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `content` (JSON-encoded unless it is already a string) to `name` in the temp dir. */
function writeConfig(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** Loads the config and returns the ConfigError it must throw. */
function expectConfigError(load: () => unknown): ConfigError {
  const error = expectInputError(load, 'invalid_config');
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

describe('loadConfig', () => {
  it('returns the defaults when there is no file anywhere', () => {
    const config = loadConfig({ cwd: dir, env: {} });
    expect(config.source).toBeUndefined();
    expect(config.tenants).toEqual({});
    expect(config.fetch).toEqual({
      timeoutMs: 30_000,
      connectTimeoutMs: 10_000,
      maxRedirects: 10,
      maxBodyBytes: 16 * MiB,
      resultBodyBytes: 2 * MiB,
      userAgent: 'crawlfleet/0.1',
      maxSocketsPerHost: 32,
    });
    expect(config.jobs).toEqual({ retries: 3, backoffBaseMs: 1_000, backoffMaxMs: 60_000 });
    expect(config.results).toEqual({ outboxMaxLen: 100_000, outboxMaxBytes: 512 * MiB, inlineBodyBytes: 16 * 1024 });
    expect(config.retention).toEqual({
      auditMaxLen: 100_000,
      ledgerTtlSeconds: 30 * 24 * 3600,
      completedJobs: 1_000,
      failedJobs: 5_000,
    });
  });

  it('refuses retention.resultsMaxLen with one line that names its replacement', () => {
    const path = writeConfig('old.json', { retention: { resultsMaxLen: 100 } });
    expect(() => loadConfig({ path, cwd: dir, env: {} })).toThrow(
      /retention\.resultsMaxLen is no longer supported: .*results\.outboxMaxLen/,
    );
  });

  it('takes proxies with credentials named as secrets, and refuses one with a path or another scheme', () => {
    const proxy = {
      urls: ['http://127.0.0.1:8080', 'http://crawler:${PROXY_PASSWORD}@proxy.internal:3128'],
      routes: [{ hosts: ['*.example.com'], urls: ['https://eu.proxy.example:443'] }],
    };
    expect(parseConfig({ tenants: { default: { proxy } } }).tenants.default?.proxy).toEqual({
      ...proxy,
      resolveLocally: false,
    });
    expect(() => parseConfig({ tenants: { default: { proxy: { urls: ['socks5://127.0.0.1:1080'] } } } })).toThrow(
      /must be http:\/\/\[user:password@\]host:port/,
    );
    expect(() => parseConfig({ tenants: { default: { proxy: { urls: ['http://127.0.0.1:8080/path'] } } } })).toThrow(
      /with no path/,
    );
  });

  it('refuses a body store that is neither file: nor s3://', () => {
    expect(() => parseConfig({ results: { bodyStore: 'ftp://x/y' } })).toThrow(/file:DIR or s3:\/\/bucket\/prefix/);
    expect(parseConfig({ results: { bodyStore: 's3://bodies/crawl' } }).results.bodyStore).toBe('s3://bodies/crawl');
  });

  it('reads ./crawlfleet.config.json from cwd when nothing is named', () => {
    const path = writeConfig(DEFAULT_CONFIG_FILE, { jobs: { retries: 5 } });
    const config = loadConfig({ cwd: dir, env: {} });
    expect(config.jobs.retries).toBe(5);
    expect(config.source).toContain(path);
  });

  it('prefers CRAWLFLEET_CONFIG over the file in cwd', () => {
    writeConfig(DEFAULT_CONFIG_FILE, { jobs: { retries: 5 } });
    const fromEnv = writeConfig('env.json', { jobs: { retries: 7 } });
    expect(loadConfig({ cwd: dir, env: { CRAWLFLEET_CONFIG: fromEnv } }).jobs.retries).toBe(7);
  });

  it('prefers an explicit path over CRAWLFLEET_CONFIG', () => {
    writeConfig(DEFAULT_CONFIG_FILE, { jobs: { retries: 5 } });
    const fromEnv = writeConfig('env.json', { jobs: { retries: 7 } });
    const explicit = writeConfig('explicit.json', { jobs: { retries: 9 } });
    const config = loadConfig({ path: explicit, cwd: dir, env: { CRAWLFLEET_CONFIG: fromEnv } });
    expect(config.jobs.retries).toBe(9);
    expect(config.source).toContain(explicit);
  });

  it('resolves a relative path against cwd', () => {
    mkdirSync(join(dir, 'conf'));
    writeConfig(join('conf', 'fleet.json'), { jobs: { retries: 11 } });
    expect(loadConfig({ path: 'conf/fleet.json', cwd: dir, env: {} }).jobs.retries).toBe(11);
    expect(loadConfig({ cwd: dir, env: { CRAWLFLEET_CONFIG: 'conf/fleet.json' } }).jobs.retries).toBe(11);
  });

  it('ignores an empty CRAWLFLEET_CONFIG', () => {
    writeConfig(DEFAULT_CONFIG_FILE, { jobs: { retries: 5 } });
    expect(loadConfig({ cwd: dir, env: { CRAWLFLEET_CONFIG: '' } }).jobs.retries).toBe(5);
  });

  it('fails when an explicitly named file is missing, naming the path', () => {
    const missing = join(dir, 'nope.json');
    const error = expectConfigError(() => loadConfig({ path: missing, cwd: dir, env: {} }));
    expect(error.message).toContain(missing);
    expect(error.message).toContain('file not found');
  });

  it('fails when the file named by CRAWLFLEET_CONFIG is missing', () => {
    const missing = join(dir, 'from-env.json');
    const error = expectConfigError(() => loadConfig({ cwd: dir, env: { CRAWLFLEET_CONFIG: missing } }));
    expect(error.message).toContain(missing);
    expect(error.message).toContain('file not found');
  });

  it('fails on a file that is not JSON, naming the path', () => {
    const path = writeConfig('broken.json', '{ "jobs": { "retries": 3, } ');
    const error = expectConfigError(() => loadConfig({ path, cwd: dir, env: {} }));
    expect(error.message).toContain('not valid JSON');
    expect(error.message).toContain(path);
  });

  it('fails on an unknown top-level field, naming it', () => {
    const path = writeConfig('c.json', { fetch: {}, retires: 3 });
    const error = expectConfigError(() => loadConfig({ path, cwd: dir, env: {} }));
    expect(error.message).toContain('retires');
  });

  it('fails on an unknown tenant field, naming the tenant and the field', () => {
    const path = writeConfig('c.json', { tenants: { acme: { allowHosts: [], userAgnet: 'x' } } });
    const error = expectConfigError(() => loadConfig({ path, cwd: dir, env: {} }));
    expect(error.message).toContain('tenants.acme');
    expect(error.message).toContain('userAgnet');
  });

  it('fails on an unknown field inside a section, naming the section', () => {
    const path = writeConfig('c.json', { fetch: { timeout: 5000 } });
    const error = expectConfigError(() => loadConfig({ path, cwd: dir, env: {} }));
    expect(error.message).toContain('fetch');
    expect(error.message).toContain('timeout');
  });

  it('fails on a wrong type, naming the field path', () => {
    const path = writeConfig('c.json', { fetch: { timeoutMs: 'fast' } });
    const error = expectConfigError(() => loadConfig({ path, cwd: dir, env: {} }));
    expect(error.message).toContain('fetch.timeoutMs');
    expect(error.message).toContain(path);
  });

  it('fails on a value out of range, naming the field path', () => {
    const path = writeConfig('c.json', { jobs: { retries: -1 } });
    expect(expectConfigError(() => loadConfig({ path, cwd: dir, env: {} })).message).toContain('jobs.retries');
  });

  it('fails on an invalid tenant name', () => {
    const path = writeConfig('c.json', { tenants: { 'acme corp': {} } });
    expect(expectConfigError(() => loadConfig({ path, cwd: dir, env: {} })).message).toContain('tenants');
  });

  it('refuses a login with both page and url, or neither, naming tenants.T.auth.login', () => {
    for (const login of [{ page: 'https://a.example/login', url: 'https://a.example/login' }, { form: {} }]) {
      const path = writeConfig('c.json', { tenants: { shop: { auth: { login } } } });
      const error = expectConfigError(() => loadConfig({ path, cwd: dir, env: {} }));
      expect(error.message).toContain('tenants.shop.auth.login');
      expect(error.message).toContain('give page or url, not both');
      expect(error.message).not.toContain('\n');
    }
  });

  it('refuses a refresh without login.token, a loggedOut URL that is no regular expression, and a JSON path with spaces', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [
        { login: { url: 'https://a.example/t', json: {} }, refresh: { url: 'https://a.example/r' } },
        'refresh needs login.token',
      ],
      [
        { login: { url: 'https://a.example/t', form: {} }, loggedOut: { url: '([' } },
        'must be a valid regular expression',
      ],
      [{ login: { url: 'https://a.example/t', json: {}, token: { path: 'a b' } } }, 'must be dotted field names'],
    ];
    for (const [auth, message] of cases) {
      const path = writeConfig('c.json', { tenants: { api: { auth } } });
      expect(expectConfigError(() => loadConfig({ path, cwd: dir, env: {} })).message).toContain(message);
    }
  });

  it('refuses a form login sent with GET, and header names or values that would break a request', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ login: { page: 'https://a.example/login', method: 'GET', form: {} } }, 'credentials do not go in a URL'],
      [
        { login: { url: 'https://a.example/t', form: {}, headers: { 'bad header': 'x' } } },
        'login.headers.bad header: Invalid key',
      ],
      [
        { login: { url: 'https://a.example/t', json: {}, token: { path: 'a', prefix: 'Bearer\r\nX: 1' } } },
        'must be one line',
      ],
    ];
    for (const [auth, message] of cases) {
      const path = writeConfig('c.json', { tenants: { api: { auth } } });
      expect(expectConfigError(() => loadConfig({ path, cwd: dir, env: {} })).message).toContain(message);
    }
  });

  it('gives a login its defaults: a 60 s renewal margin, a 300 s cool-down that dead-letters, tokens as Bearer in authorization', () => {
    const path = writeConfig('c.json', {
      tenants: { api: { auth: { login: { url: 'https://a.example/t', json: {}, token: { path: 'access' } } } } },
    });
    const auth = loadConfig({ path, cwd: dir, env: {} }).tenants.api?.auth;
    expect(auth?.refreshMarginSeconds).toBe(60);
    expect(auth?.refused).toEqual({ cooldownSeconds: 300, maxCooldownSeconds: 3600, jobs: 'dead_letter' });
    expect(auth?.login.token).toMatchObject({ header: 'authorization', prefix: 'Bearer ' });
  });

  it('refuses an allowHosts entry with a port, naming the field, and keeps IPv6 addresses and ranges', () => {
    const path = writeConfig('c.json', { tenants: { local: { allowHosts: ['127.0.0.1:8080'] } } });
    const error = expectConfigError(() => loadConfig({ path, cwd: dir, env: {} }));
    expect(error.message).toContain('tenants.local.allowHosts.0');
    expect(error.message).toContain('takes a host without a port');
    const ok = writeConfig('ok.json', { tenants: { local: { allowHosts: ['::1', 'fd00::/8', 'wiki.example'] } } });
    expect(loadConfig({ path: ok, cwd: dir, env: {} }).tenants.local?.allowHosts).toEqual([
      '::1',
      'fd00::/8',
      'wiki.example',
    ]);
  });

  it('fails on a JSON document that is not an object', () => {
    const path = writeConfig('c.json', '[]');
    expectConfigError(() => loadConfig({ path, cwd: dir, env: {} }));
  });

  it('applies the defaults of a section that is only partly given', () => {
    const path = writeConfig('c.json', { fetch: { maxRedirects: 3 } });
    const config = loadConfig({ path, cwd: dir, env: {} });
    expect(config.fetch.maxRedirects).toBe(3);
    expect(config.fetch.timeoutMs).toBe(30_000);
    expect(config.fetch.resultBodyBytes).toBe(2 * MiB);
    expect(config.jobs.retries).toBe(3);
  });

  it('applies the defaults of a tenant that is only partly given', () => {
    const path = writeConfig('c.json', { tenants: { acme: { userAgent: 'acme-bot/1' } } });
    expect(loadConfig({ path, cwd: dir, env: {} }).tenants.acme).toEqual({
      allowHosts: [],
      headers: {},
      redactPii: true,
      robots: 'respect',
      hostDelayMs: 0,
      maxRetryAfterSeconds: 3600,
      identity: { profile: 'crawler', locales: ['en-US'], browsers: ['chrome', 'firefox', 'safari', 'edge'] },
      render: { block: [] },
      userAgent: 'acme-bot/1',
    });
  });
});

describe('tenantConfig', () => {
  const config: CrawlfleetConfig = parseConfig(
    {
      tenants: {
        acme: { allowHosts: ['intranet.acme.example', '10.0.0.0/8'], headers: { 'x-team': 'crawl' } },
        globex: {},
      },
    },
    'config /etc/crawlfleet.json',
  );

  it('returns a configured tenant', () => {
    expect(tenantConfig(config, 'acme')).toEqual({
      allowHosts: ['intranet.acme.example', '10.0.0.0/8'],
      headers: { 'x-team': 'crawl' },
      redactPii: true,
      robots: 'respect',
      hostDelayMs: 0,
      maxRetryAfterSeconds: 3600,
      identity: { profile: 'crawler', locales: ['en-US'], browsers: ['chrome', 'firefox', 'safari', 'edge'] },
      render: { block: [] },
    });
  });

  it('returns the defaults for "default" even when it is not configured', () => {
    expect(tenantConfig(config, 'default')).toEqual({
      allowHosts: [],
      headers: {},
      redactPii: true,
      robots: 'respect',
      hostDelayMs: 0,
      maxRetryAfterSeconds: 3600,
      identity: { profile: 'crawler', locales: ['en-US'], browsers: ['chrome', 'firefox', 'safari', 'edge'] },
      render: { block: [] },
    });
    expect(tenantConfig(parseConfig({}), 'default')).toEqual({
      allowHosts: [],
      headers: {},
      redactPii: true,
      robots: 'respect',
      hostDelayMs: 0,
      maxRetryAfterSeconds: 3600,
      identity: { profile: 'crawler', locales: ['en-US'], browsers: ['chrome', 'firefox', 'safari', 'edge'] },
      render: { block: [] },
    });
  });

  it('returns a configured "default" tenant over the built-in one', () => {
    const custom = parseConfig({ tenants: { default: { userAgent: 'custom/1' } } });
    expect(tenantConfig(custom, 'default').userAgent).toBe('custom/1');
  });

  it('refuses an unknown tenant, naming the config file and the tenants it has', () => {
    const error = expectInputError(() => tenantConfig(config, 'initech'), 'unknown_tenant');
    expect(error).not.toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      'unknown tenant "initech": config /etc/crawlfleet.json has tenants default, acme, globex',
    );
  });

  it('says so when the config file has only the default tenant', () => {
    const error = expectInputError(() => tenantConfig(parseConfig({}, 'config /x.json'), 'site'), 'unknown_tenant');
    expect(error.message).toBe('unknown tenant "site": config /x.json has only the tenant "default"');
  });

  it('lists the tenants of a config that no file holds', () => {
    const error = expectInputError(
      () => tenantConfig(parseConfig({ tenants: { shop: {} } }), 'site'),
      'unknown_tenant',
    );
    expect(error.message).toBe('unknown tenant "site": the config has tenants default, shop');
  });

  it('says that only "default" exists when no config file is loaded', () => {
    const error = expectInputError(() => tenantConfig(parseConfig({}), 'site'), 'unknown_tenant');
    expect(error.message).toBe('unknown tenant "site": no config file is loaded, so only the tenant "default" exists');
  });

  it.each(['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__'])(
    'refuses %s, a name inherited from Object.prototype, as an unknown tenant',
    (name) => {
      expectInputError(() => tenantConfig(config, name), 'unknown_tenant');
    },
  );
});

describe('render settings', () => {
  it('has defaults a browser worker can run with', () => {
    expect(parseConfig({}).render).toEqual({
      timeoutMs: 30_000,
      waitUntil: 'load',
      maxBrowserMemoryMb: 2048,
      screenshot: false,
      maxStorageBytesPerOrigin: 1024 * 1024,
    });
  });

  it('refuses screenshots without a body store, and a browser login without its page and fields, in one line', () => {
    expect(() => parseConfig({ render: { screenshot: true } }, 'config c.json')).toThrow(
      'config c.json: render.screenshot needs results.bodyStore (screenshots go to the body store, never into Redis)',
    );
    expect(() =>
      parseConfig({ tenants: { t: { auth: { login: { url: 'https://a.example/login', browser: {} } } } } }),
    ).toThrow(/a browser login takes page \(the login page\) and form \(the fields to fill\)/);
    expect(() => parseConfig({ tenants: { t: { render: { block: ['scripts'] } } } })).toThrow(/render\.block\.0/);
  });
});
