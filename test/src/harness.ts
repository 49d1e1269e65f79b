import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type CrawlfleetConfig, keyLayout, parseConfig } from '@crawlfleet/core';
import { generateKeyEntry, parseKeyRing } from '@crawlfleet/slates';
import { Redis } from 'ioredis';

/** The Redis every test shares; each test keeps to its own prefix. */
export const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

/** The built CLI entry point. */
export const CLI_PATH = fileURLToPath(new URL('../../apps/cli/dist/main.js', import.meta.url));
export const WORKER_PATH = fileURLToPath(new URL('../../apps/worker/dist/main.js', import.meta.url));

/** A session key ring for this test process (what CRAWLFLEET_KEYS holds in production). */
export const TEST_KEYS = generateKeyEntry();
export const testRing = () => parseKeyRing(TEST_KEYS);

/** A prefix no other test uses, so tests can run side by side on one Redis. */
export function uniquePrefix(label: string): string {
  return `t-${label}-${randomBytes(4).toString('hex')}`;
}

export function openTestRedis(url: string = REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: null });
}

/** Deletes every key of a prefix (its `{prefix}` hash tag and plain `prefix:` keys). */
export async function cleanupPrefix(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  for (const pattern of [`{${prefix}}*`, `${prefix}:*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== '0');
  }
  return deleted;
}

/** Everything stored under a prefix, as text: the "whole keyspace dump" of the tests. */
export async function dumpPrefix(redis: Redis, prefix: string): Promise<string> {
  const parts: string[] = [];
  for (const pattern of [`{${prefix}}*`, `${prefix}:*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const type = await redis.type(key);
        if (type === 'string') parts.push(String(await redis.get(key)));
        else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
        else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
        else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, 0, -1)));
        else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
        else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
        parts.push(key);
      }
    } while (cursor !== '0');
  }
  return parts.join('\n');
}

/** Every key of a prefix, for assertions on Redis state. */
export async function keysOf(redis: Redis, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

/** A config for tests: the fixture site (127.0.0.1) allowed, retries fast. */
export function testConfig(overrides: Record<string, unknown> = {}): CrawlfleetConfig {
  return parseConfig({
    tenants: { default: { allowHosts: ['127.0.0.1'] }, other: { allowHosts: [] } },
    jobs: { retries: 3, backoffBaseMs: 50, backoffMaxMs: 200 },
    ...overrides,
  });
}

export { keyLayout };

/** The environment of a child process: ours, the test Redis and keys, then `extra` (undefined unsets). */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL, CRAWLFLEET_KEYS: TEST_KEYS, ...extra };
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  return env;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `crawlfleet` CLI as a real process. */
export function runCli(
  args: string[],
  options: { env?: Record<string, string | undefined>; input?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      cwd: options.cwd,
      env: childEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`crawlfleet ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, options.timeoutMs ?? 50_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Polls `check` until it returns a value other than undefined, null or false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  { timeoutMs = 20_000, intervalMs = 50, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
