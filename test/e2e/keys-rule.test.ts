import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CliProcess, startCliProcess } from '../src/cli-process.js';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, TEST_KEYS, uniquePrefix, waitFor } from '../src/harness.js';
import { soleShard } from '../src/shard.js';

/**
 * One rule for every command that needs session keys: CRAWLFLEET_KEYS when set, else the local key
 * file when it exists; only `crawl` and `keys generate --save` create that file.
 */
describe('where every command finds its session keys', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let config: string;
  let prefix: string;
  let home: string;
  /** The environment of a command that has no CRAWLFLEET_KEYS and its own empty config home. */
  let noKeys: Record<string, string | undefined>;
  let worker: CliProcess | undefined;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-keys-'));
    config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: { allowHosts: ['127.0.0.1'] } } }));
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('keys-rule');
    home = mkdtempSync(join(dir, 'xdg-'));
    noKeys = {
      CRAWLFLEET_PREFIX: prefix,
      CRAWLFLEET_CONFIG: config,
      CRAWLFLEET_KEYS: undefined,
      XDG_CONFIG_HOME: home,
    };
  });
  afterEach(async () => {
    worker?.kill();
    worker = undefined;
    await cleanupPrefix(redis, prefix);
  });

  it('lets a worker and sessions show open the sessions crawl sealed with the key file it created', async () => {
    const file = join(home, 'crawlfleet', 'keys');
    const crawled = await runCli(['crawl', '--session', 'k', site.url('/cookies/set?a=1')], { env: noKeys });
    expect(crawled.code).toBe(0);
    expect(crawled.stderr.split(`created a local session key in ${file}`)).toHaveLength(2);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const shown = await runCli(['sessions', 'show', 'k', '--json'], { env: noKeys });
    expect(shown.stderr).toBe('');
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout).cookies.map((c: { name: string }) => c.name)).toEqual(['a']);

    expect((await runCli(['submit', '--session', 'k', site.url('/cookies/echo')], { env: noKeys })).code).toBe(0);
    worker = startCliProcess(['worker', '--concurrency', '2'], { ...noKeys, CRAWLFLEET_LOG_LEVEL: 'info' });
    const keys = keyLayout(prefix);
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === 2, {
      what: 'the echo page fetched by the worker',
    });
    const bodies = (await redis.xrange(soleShard(keys).results, '-', '+')).map(
      ([, f]) => JSON.parse(String(f[1])).body,
    );
    expect(bodies).toContain('{"a":"1"}\n');
    expect(worker.stdout()).not.toMatch(/discard/i);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    // Only crawl creates the file, once.
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('uses ~/.config/crawlfleet/keys when XDG_CONFIG_HOME is unset', async () => {
    const env = { ...noKeys, XDG_CONFIG_HOME: undefined, HOME: home };
    const crawled = await runCli(['crawl', '--session', 'h', site.url('/cookies/set?h=1')], { env });
    expect(crawled.code).toBe(0);
    expect(crawled.stderr).toContain(`created a local session key in ${join(home, '.config', 'crawlfleet', 'keys')}`);
    const shown = await runCli(['sessions', 'show', 'h', '--json'], { env });
    expect(shown.code).toBe(0);
  });

  it('stops worker, sessions and keys rotate with exit 2 and one line naming both ways when neither is there', async () => {
    const file = join(home, 'crawlfleet', 'keys');
    for (const args of [['worker'], ['sessions', 'show', 'x'], ['keys', 'rotate']]) {
      const result = await runCli(args, { env: noKeys });
      expect(result.code, args.join(' ')).toBe(2);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('CRAWLFLEET_KEYS');
      expect(lines[0]).toContain(file);
      expect(lines[0]).toContain('crawlfleet keys generate --save');
    }
    // None of them made a key file on the way.
    expect(existsSync(file)).toBe(false);
  });

  it('prefers CRAWLFLEET_KEYS over the key file, and crawl creates no file while it is set', async () => {
    const withEnv = { ...noKeys, CRAWLFLEET_KEYS: TEST_KEYS };
    const crawled = await runCli(['crawl', '--session', 'e', site.url('/cookies/set?e=1')], { env: withEnv });
    expect(crawled.code).toBe(0);
    expect(crawled.stderr).not.toContain('created a local session key');
    expect(existsSync(join(home, 'crawlfleet', 'keys'))).toBe(false);
    // A key file made afterwards does not hide CRAWLFLEET_KEYS: the session still opens with it.
    expect((await runCli(['keys', 'generate', '--save'], { env: noKeys })).code).toBe(0);
    const shown = await runCli(['sessions', 'show', 'e', '--json'], { env: withEnv });
    expect(JSON.parse(shown.stdout).slates.cookies).not.toHaveProperty('unreadable');
  });

  it('saves a new key with keys generate --save (0600, said on stderr, nothing on stdout), which a worker then uses', async () => {
    const file = join(home, 'crawlfleet', 'keys');
    const saved = await runCli(['keys', 'generate', '--save'], { env: noKeys });
    expect(saved.code).toBe(0);
    expect(saved.stdout).toBe('');
    expect(saved.stderr).toContain(`saved a new session key`);
    expect(saved.stderr).toContain(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const first = readFileSync(file, 'utf8');
    expect(first).toMatch(/^k\d{8}[0-9a-f]{6}:[A-Za-z0-9+/]{43}=\n$/);

    // Again: the new key goes first and the old one stays, so slates sealed with it still open.
    expect((await runCli(['keys', 'generate', '--save'], { env: noKeys })).code).toBe(0);
    const entries = readFileSync(file, 'utf8').trim().split('\n');
    expect(entries).toHaveLength(2);
    expect(entries[1]).toBe(first.trim());

    worker = startCliProcess(['worker'], { ...noKeys, CRAWLFLEET_LOG_LEVEL: 'info' });
    await waitFor(() => worker?.stdout().includes('worker started'), { what: 'the worker to start' });
    expect(worker.stdout()).toContain(`"key_id":"${entries[0]?.split(':')[0]}"`);
  });

  it('repairs an empty key file with keys generate --save, and names the file, not CRAWLFLEET_KEYS, when it is empty', async () => {
    const file = join(home, 'crawlfleet', 'keys');
    mkdirSync(join(home, 'crawlfleet'), { recursive: true, mode: 0o700 });
    writeFileSync(file, '\n', { mode: 0o600 });
    const refused = await runCli(['sessions', 'show', 'anyone'], { env: noKeys });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`${file} holds no key`);
    const saved = await runCli(['keys', 'generate', '--save'], { env: noKeys });
    expect(saved.stderr).not.toMatch(/EEXIST/);
    expect(saved.code).toBe(0);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});
