import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, TEST_KEYS, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

describe('sessions across processes and from the CLI', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let prefix: string;
  let env: Record<string, string>;
  let workers: WorkerProcess[] = [];

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-sessions-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: {
          default: { allowHosts: ['127.0.0.1'] },
          member: {
            allowHosts: ['127.0.0.1'],
            auth: { login: { url: site.url('/login'), form: { user: 'alice', password: '${FIXTURE_PASSWORD}' } } },
          },
        },
        jobs: { retries: 2, backoffBaseMs: 50 },
      }),
    );
    env = { CRAWLFLEET_CONFIG: config, FIXTURE_PASSWORD: 'secret', CRAWLFLEET_LOG_LEVEL: 'warn' };
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('sess-e2e');
    env.CRAWLFLEET_PREFIX = prefix;
    site.resetHits();
  });
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    workers = [];
    await cleanupPrefix(redis, prefix);
  });

  it('logs a session in once or twice, not 60 times, when 2 workers x 16 hit 60 protected pages', async () => {
    const urls = Array.from({ length: 60 }, (_, i) => site.url(`/protected/page-${i}`));
    const submitted = await runCli(['submit', '--tenant', 'member', '--session', 'shared', '--json', ...urls], { env });
    expect(JSON.parse(submitted.stdout)).toEqual({ enqueued: 60, duplicates: 0 });
    workers = [startWorkerProcess(env, ['--concurrency', '16']), startWorkerProcess(env, ['--concurrency', '16'])];
    const keys = keyLayout(prefix);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 60, {
      timeoutMs: 40_000,
      what: '60 results',
    });
    const statuses = (await redis.xrange(soleShard(keys).results, '-', '+')).map(
      ([, f]) => JSON.parse(String(f[1])).status,
    );
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(site.logins()).toBeGreaterThanOrEqual(1);
    expect(site.logins()).toBeLessThanOrEqual(2);
    const outputs = workers.map((w) => w.output()).join('\n');
    expect(outputs).not.toContain('secret');
  });

  it('refuses to start a worker without CRAWLFLEET_KEYS or a key file (exit 2, one line)', async () => {
    const home = mkdtempSync(join(dir, 'no-keys-'));
    const worker = startWorkerProcess({ ...env, CRAWLFLEET_KEYS: '', XDG_CONFIG_HOME: home });
    const code = await new Promise<number | null>((resolve) => worker.child.once('exit', resolve));
    expect(code).toBe(2);
    expect(worker.output().trim()).toMatch(
      /^crawlfleet: no session key: set CRAWLFLEET_KEYS \(.*crawlfleet keys generate.*\) or keep one in \S+\/crawlfleet\/keys/,
    );
    const bad = startWorkerProcess({ ...env, CRAWLFLEET_KEYS: 'k1:c2hvcnQ=' });
    expect(await new Promise<number | null>((resolve) => bad.child.once('exit', resolve))).toBe(2);
    expect(bad.output()).toContain('must be 32 bytes');
    expect(bad.output()).not.toContain('c2hvcnQ=');
  });

  it('creates a 0600 local key file for crawl when CRAWLFLEET_KEYS is unset, and reuses it', async () => {
    const home = mkdtempSync(join(dir, 'xdg-'));
    const noKeys = { ...env, CRAWLFLEET_KEYS: undefined, XDG_CONFIG_HOME: home };
    const first = await runCli(['crawl', '--session', 'k', site.url('/cookies/set?a=1')], { env: noKeys });
    expect(first.code).toBe(0);
    const file = join(home, 'crawlfleet', 'keys');
    expect(first.stderr).toContain(`created a local session key in ${file}`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toMatch(/^k\d{8}[0-9a-f]{6}:[A-Za-z0-9+/]{43}=\n$/);
    const second = await runCli(['crawl', '--session', 'k', site.url('/cookies/echo')], { env: noKeys });
    expect(second.code).toBe(0);
    expect(second.stderr).not.toContain('created a local session key');
    const echo = await runCli(['results', 'export'], { env });
    const bodies = echo.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).body);
    expect(bodies).toContain('{"a":"1"}\n');
  });

  it('lists, shows (names, never values) and purges sessions', async () => {
    const crawled = await runCli(
      ['crawl', '--tenant', 'member', '--session', 'alice', site.url('/protected/x'), site.url('/tracking-cookies')],
      { env },
    );
    expect(crawled.code).toBe(0);
    const listed = JSON.parse((await runCli(['sessions', 'list', '--json'], { env })).stdout);
    expect(listed).toEqual([
      { tenant: 'member', sessionId: 'alice', slates: expect.arrayContaining(['cookies', 'auth', 'meta']) },
    ]);
    expect(JSON.parse((await runCli(['sessions', 'list', '--tenant', 'default', '--json'], { env })).stdout)).toEqual(
      [],
    );

    const shown = await runCli(['sessions', 'show', 'alice', '--tenant', 'member', '--json'], { env });
    const view = JSON.parse(shown.stdout);
    // Tracking cookies (_ga, _gid, _fbp) are stripped before the jar is stored.
    expect(view.cookies.map((c: { name: string }) => c.name).sort()).toEqual(['auth', 'sid']);
    expect(view.auth.expiresAt).toMatch(/^\d{4}-/);
    expect(view.meta).toMatchObject({ jobs: 2 });
    expect(shown.stdout).not.toMatch(/"value"/);
    const human = await runCli(['sessions', 'show', 'alice', '--tenant', 'member'], { env });
    expect(human.stdout).toContain('cookies (2):');
    expect(human.stdout).toContain('auth: logged in');

    const missing = await runCli(['sessions', 'show', 'nobody'], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no state for session "nobody"/);

    const purged = await runCli(['sessions', 'purge', 'alice', '--tenant', 'member'], { env });
    expect(purged.stderr).toMatch(/purged session alice \(tenant member\): \d+ keys/);
    expect(JSON.parse((await runCli(['sessions', 'list', '--json'], { env })).stdout)).toEqual([]);
  });

  it('rotates every slate to a new key online; the old key can then be dropped', async () => {
    await runCli(['crawl', '--session', 'r1', site.url('/cookies/set?one=1')], { env });
    await runCli(['crawl', '--session', 'r2', site.url('/cookies/set?two=2')], { env });
    const generated = (await runCli(['keys', 'generate'])).stdout.trim();
    expect(generated).toMatch(/^k\d{8}[0-9a-f]{6}:/);
    const both = `${generated},${TEST_KEYS}`;
    const rotated = await runCli(['keys', 'rotate', '--json'], { env: { ...env, CRAWLFLEET_KEYS: both } });
    expect(rotated.code).toBe(0);
    // Two sessions, each with one cookie and a profile (meta holds only counts, in clear).
    expect(JSON.parse(rotated.stdout)).toMatchObject({ resealed: 4, unreadable: 0 });
    const again = await runCli(['keys', 'rotate', '--json'], { env: { ...env, CRAWLFLEET_KEYS: both } });
    expect(JSON.parse(again.stdout)).toMatchObject({ resealed: 0, current: 4 });
    for (const id of ['r1', 'r2']) {
      const shown = await runCli(['sessions', 'show', id, '--json'], { env: { ...env, CRAWLFLEET_KEYS: generated } });
      expect(shown.code).toBe(0);
      // A cookie re-sealed keeps its slate's version: its value did not change.
      expect(JSON.parse(shown.stdout).slates.cookies).toEqual({ version: 1 });
      expect(JSON.parse(shown.stdout).cookies).toHaveLength(1);
    }
  });
});
