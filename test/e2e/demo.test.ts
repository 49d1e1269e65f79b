import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv, cleanupPrefix, openTestRedis } from '../src/harness.js';

const DEMO_PATH = fileURLToPath(new URL('../dist/demo.js', import.meta.url));

/** Every key of the shared Redis whose name holds `cf-demo` (the demo's prefixes). */
async function demoKeys(redis: Redis): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', '*cf-demo*', 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

describe('npm run demo on a shared Redis', () => {
  let redis: Redis;
  let dir: string;

  beforeAll(async () => {
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-demo-'));
    // What an earlier demo left under its old fixed prefix.
    await cleanupPrefix(redis, 'cf-demo');
  });
  afterAll(() => {
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it('leaves its results file and nothing in Redis or the config home', async () => {
    const child = spawn(process.execPath, [DEMO_PATH], {
      cwd: dir,
      env: childEnv({ CRAWLFLEET_KEYS: undefined, CRAWLFLEET_PREFIX: undefined, XDG_CONFIG_HOME: join(dir, 'config') }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    const [code] = await once(child, 'exit');
    expect(code, output).toBe(0);
    expect(output).toContain('crawled 24 URLs');
    const results = readFileSync(join(dir, 'crawlfleet-demo-results.jsonl'), 'utf8').trim().split('\n');
    expect(results).toHaveLength(23);
    expect(await demoKeys(redis)).toEqual([]);
    expect(existsSync(join(dir, 'config', 'crawlfleet', 'keys'))).toBe(false);
  });
});
