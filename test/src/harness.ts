import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
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
  // The fleet tag, each shard's tag (`{prefix:<i>...}`), and the session keys.
  for (const pattern of [`{${prefix}}*`, `{${prefix}:*`, `${prefix}:*`]) {
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
  // The fleet tag, each shard's tag (`{prefix:<i>...}`), and the session keys.
  for (const pattern of [`{${prefix}}*`, `{${prefix}:*`, `${prefix}:*`]) {
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

/** The commands Redis runs for its clients, as a MONITOR connection sees them (not those a script runs). */
export interface CommandWatch {
  /**
   * Every command run since the watch started that mentions `text`, each as its arguments (as
   * MONITOR quotes them); every command answered before this call is among them.
   */
  ran(text: string): Promise<string[][]>;
  close(): Promise<void>;
}

/**
 * Starts watching every command Redis runs (MONITOR): for specs of how many commands an operation
 * sends. A plain socket: ioredis enters its monitor mode a moment after Redis's OK, and on a busy
 * Redis the lines that arrive in between break its command queue.
 */
export async function watchCommands(url: string = REDIS_URL): Promise<CommandWatch> {
  const { hostname, port, username, password } = new URL(url);
  const socket = connect(Number(port || 6379), hostname);
  socket.setEncoding('utf8');
  socket.on('error', () => {});
  const lines: string[] = [];
  let partial = '';
  socket.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\r\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const commands =
    password === ''
      ? ['MONITOR']
      : [`AUTH ${decodeURIComponent(username) || 'default'} ${decodeURIComponent(password)}`, 'MONITOR'];
  socket.write(commands.map((command) => `${command}\r\n`).join(''));
  await waitFor(() => lines.filter((line) => line === '+OK').length === commands.length, {
    timeoutMs: 5_000,
    what: 'MONITOR to start',
  });
  const control = openTestRedis(url);
  const args = (line: string) => [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((match) => match[1] ?? '');
  return {
    async ran(text) {
      // A command sent after the ones asked about is seen after them: once it shows, they have.
      const mark = `watch-mark-${randomBytes(6).toString('hex')}`;
      await control.echo(mark);
      await waitFor(() => lines.some((line) => line.includes(mark)), { timeoutMs: 5_000, what: 'MONITOR to catch up' });
      return lines
        .filter((line) => line.startsWith('+') && !/^\+\S+ \[\d+ lua\]/.test(line) && !line.includes(mark))
        .map(args)
        .filter((command) => command.some((arg) => arg.includes(text)));
    },
    async close() {
      socket.destroy();
      await control.quit();
    },
  };
}

/** The value of one Prometheus sample line, e.g. `retry_total 3` or `crawl_jobs_total{outcome="stored",...} 5`. */
export function metricSample(text: string, name: string, labels = ''): number | undefined {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(name) && l.includes(labels) && !l.startsWith('#') && l[name.length] !== '_');
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}
