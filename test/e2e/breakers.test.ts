import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '@crawlfleet/audit';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix, waitFor } from '../src/harness.js';
import { startWorkerProcess, type WorkerProcess } from '../src/processes.js';
import { soleShard } from '../src/shard.js';

// Long enough for the healthy pages to finish while it is open, even on a loaded machine.
const RESET_MS = 8_000;

describe('session breakers shared by the fleet', () => {
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let prefix: string;
  let env: Record<string, string>;
  let workers: WorkerProcess[] = [];

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-breakers-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'] } },
        jobs: { retries: 0 },
        breakers: { failureThreshold: 2, resetTimeoutMs: RESET_MS },
      }),
    );
    env = { CRAWLFLEET_CONFIG: config, CRAWLFLEET_LOG_LEVEL: 'warn' };
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    prefix = uniquePrefix('breakers');
    env.CRAWLFLEET_PREFIX = prefix;
    // One worker first: the trip happens on it; a second worker joins once the breaker is open.
    workers = [startWorkerProcess(env, ['--concurrency', '2'])];
  });
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await cleanupPrefix(redis, prefix);
  });

  it("holds back a failing session's jobs on every worker while other sessions flow, then one probe closes it", async () => {
    const keys = keyLayout(prefix);
    const sick = keys.session('default', 'sick');
    const failing = Array.from({ length: 2 }, (_, i) => site.url(`/status/503?sick=${i}`));
    await runCli(['submit', '--session', 'sick', ...failing], { env });
    const openUntil = Number(await waitFor(() => redis.get(sick.breaker), { what: 'the breaker to open' }));
    expect(openUntil).toBeGreaterThan(Date.now());
    workers.push(startWorkerProcess(env, ['--concurrency', '2']));

    const held = Array.from({ length: 3 }, (_, i) => site.url(`/ok/held-${i}`));
    const well = Array.from({ length: 6 }, (_, i) => site.url(`/ok/well-${i}`));
    await runCli(['submit', '--session', 'sick', ...held], { env });
    await runCli(['submit', '--session', 'well', ...well], { env });
    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === well.length, {
      what: "the healthy session's pages",
    });
    expect(Date.now()).toBeLessThan(openUntil);
    expect(site.hitsByPrefix('/ok/held-')).toBe(0);

    await waitFor(async () => (await redis.xlen(soleShard(keys).results)) === well.length + held.length, {
      timeoutMs: RESET_MS + 10_000,
      what: 'the held pages after the breaker closed',
    });
    for (let i = 0; i < held.length; i++) {
      const hits = site.hitTimes(`/ok/held-${i}`);
      expect(hits).toHaveLength(1);
      expect(hits[0]).toBeGreaterThanOrEqual(openUntil);
    }
    const results = (await redis.xrange(soleShard(keys).results, '-', '+')).map(([, f]) => JSON.parse(String(f[1])));
    expect(results.filter((r) => r.sessionId === 'sick').map((r) => r.attempts)).toEqual([1, 1, 1]);
    expect(await redis.exists(sick.breaker)).toBe(0);

    // One incident, seen by both workers: opened once, probed once, closed once.
    const events = (await new AuditLog(redis, keys, 1000).query())
      .reverse()
      .filter((e) => e.kind.startsWith('breaker_'));
    expect(events.map((e) => e.kind)).toEqual(['breaker_open', 'breaker_half_open', 'breaker_closed']);
    expect(events[0]?.reason).toBe('failure_threshold');
  });
});
