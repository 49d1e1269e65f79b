import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { InputError } from '@crawlfleet/core';
import { ensureRedis, freePort, redisAnswers, startRedisServer } from '@crawlfleet/local-redis';
import { describe, expect, it } from 'vitest';
import { REDIS_URL, waitFor } from '../src/harness.js';

/** A process that starts a private redis-server, and on SIGINT says whether it still answers, then exits. */
const OWNER = `
import { redisAnswers, startRedisServer } from '@crawlfleet/local-redis';
const server = await startRedisServer();
process.stdout.write('url ' + server.url + '\\n');
process.on('SIGINT', async () => {
  process.stdout.write((await redisAnswers(server.url, 500)) ? 'alive\\n' : 'dead\\n');
  process.exit(0);
});
setInterval(() => {}, 1000);
`;

describe('finding a Redis for the one-machine quick path', () => {
  it('uses REDIS_URL as given when it is set, without probing or starting anything', async () => {
    const ensured = await ensureRedis({ url: 'redis://127.0.0.1:1', fromEnv: true });
    expect(ensured).toEqual({ url: 'redis://127.0.0.1:1' });
  });

  it('uses the default Redis when it answers', async () => {
    const ensured = await ensureRedis({ url: REDIS_URL, fromEnv: false });
    expect(ensured.server).toBeUndefined();
    expect(ensured.url).toBe(REDIS_URL);
  });

  it('starts a private redis-server when nothing answers, and removes it afterwards', async () => {
    const silent = `redis://127.0.0.1:${await freePort()}`;
    const ensured = await ensureRedis({ url: silent, fromEnv: false });
    const server = ensured.server;
    expect(server).toBeDefined();
    expect(ensured.url).not.toBe(silent);
    expect(await redisAnswers(ensured.url)).toBe(true);
    expect(existsSync(String(server?.dir))).toBe(true);
    await server?.stop();
    expect(await redisAnswers(ensured.url, 300)).toBe(false);
    expect(existsSync(String(server?.dir))).toBe(false);
  });

  it('says how to get Redis when none answers and redis-server is not on PATH', async () => {
    const silent = `redis://127.0.0.1:${await freePort()}`;
    const attempt = ensureRedis({ url: silent, fromEnv: false, path: '/nonexistent' });
    await expect(attempt).rejects.toBeInstanceOf(InputError);
    await expect(attempt).rejects.toMatchObject({ code: 'redis_not_found', exitCode: 2 });
    await expect(attempt).rejects.toThrow(/redis-server is not on PATH; install Redis .* or set REDIS_URL/);
  });

  it('restarts a server with append-only persistence on its own data', async () => {
    const first = await startRedisServer({ appendOnly: true });
    const { Redis } = await import('ioredis');
    const client = new Redis(first.url);
    await client.set('kept', 'yes');
    client.disconnect();
    await first.stop({ keepDir: true });
    const second = await startRedisServer({ appendOnly: true, dir: first.dir, port: first.port });
    const again = new Redis(second.url);
    try {
      expect(await again.get('kept')).toBe('yes');
    } finally {
      again.disconnect();
      await second.stop();
    }
  });

  it('keeps a private redis-server through a Ctrl-C to its owner (the owner drains with it), and stops it when the owner exits', async () => {
    // Detached: its own process group, as a shell gives a command; the group gets the SIGINT.
    const owner = spawn(process.execPath, ['--input-type=module', '-e', OWNER], {
      cwd: new URL('../', import.meta.url),
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    owner.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    const url = await waitFor(() => /url (\S+)/.exec(output)?.[1], { what: 'the private redis-server' });
    const exited = once(owner, 'exit');
    process.kill(-(owner.pid as number), 'SIGINT');
    await exited;
    expect(output).toContain('alive');
    // The owner's exit sends it SIGTERM; it is gone within moments.
    await waitFor(async () => !(await redisAnswers(url, 300)), { timeoutMs: 5_000, what: 'the server to stop' });
  });
});
