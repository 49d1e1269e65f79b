import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResultsStore, type StoredResult } from '@crawlfleet/results';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix } from '../src/harness.js';
import { storedResult } from '../src/stored-result.js';

const result = (idempotencyKey: string, tenant: string) => storedResult(idempotencyKey, { tenant });

describe('crawlfleet results export --since / --tenant', () => {
  const prefix = uniquePrefix('export');
  const keys = keyLayout(prefix);
  let redis: Redis;
  let dir: string;
  let env: Record<string, string>;
  /** The Redis server's time between the earlier and the later results. */
  let boundary: number;

  /** The idempotency keys an export with these arguments writes to stdout, in order. */
  async function exported(args: string[]): Promise<string[]> {
    const run = await runCli(['results', 'export', ...args], { env });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    return run.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as StoredResult).idempotencyKey);
  }

  beforeAll(async () => {
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-export-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(config, JSON.stringify({ tenants: { default: {}, shop: {} } }));
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config };
    const store = new ResultsStore(redis, keys, { ledgerTtlSeconds: 3_600 });
    for (const key of ['early-1', 'early-2']) await store.write(result(key, key === 'early-1' ? 'default' : 'shop'));
    // Entry ids are the server's milliseconds: the later ones start a millisecond after this.
    boundary = (await store.serverNow()) + 1;
    await new Promise((resolve) => setTimeout(resolve, 5));
    for (const key of ['late-1', 'late-2', 'late-3'])
      await store.write(result(key, key === 'late-2' ? 'default' : 'shop'));
  });

  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports what was stored from a date and time on, oldest first', async () => {
    expect(await exported(['--since', new Date(boundary).toISOString()])).toEqual(['late-1', 'late-2', 'late-3']);
    expect(await exported(['--since', '2000-01-01'])).toEqual(['early-1', 'early-2', 'late-1', 'late-2', 'late-3']);
  });

  it('exports what was stored within a duration back from now', async () => {
    expect(await exported(['--since', '1h'])).toEqual(['early-1', 'early-2', 'late-1', 'late-2', 'late-3']);
  });

  it("exports one tenant's results, alone or with --since, to a file", async () => {
    expect(await exported(['--tenant', 'shop'])).toEqual(['early-2', 'late-1', 'late-3']);
    const out = join(dir, 'shop.jsonl');
    const run = await runCli(
      ['results', 'export', '--tenant', 'shop', '--since', new Date(boundary).toISOString(), '--out', out],
      { env },
    );
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('exported 2 results');
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines.map((line) => (JSON.parse(line) as StoredResult).idempotencyKey)).toEqual(['late-1', 'late-3']);
    expect(await exported(['--tenant', 'nobody'])).toEqual([]);
  });

  it('refuses a --since it cannot read with one line and exit code 2', async () => {
    for (const since of ['yesterday', '5 minutes', '2026-13-45T99:00Z', '12']) {
      const run = await runCli(['results', 'export', '--since', since], { env });
      expect(run.code, since).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toContain('--since must be a duration');
    }
  });
});
