import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { cleanupPrefix, keyLayout, openTestRedis, runCli, uniquePrefix } from '../src/harness.js';

describe('sessions show on a quarantined session', () => {
  const prefix = uniquePrefix('quarantine-show');
  const keys = keyLayout(prefix);
  let site: FixtureSite;
  let redis: Redis;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'crawlfleet-quarantine-'));
    const config = join(dir, 'crawlfleet.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tenants: { default: { allowHosts: ['127.0.0.1'] } },
        sessions: { quarantineSeconds: 600 },
      }),
    );
    env = { CRAWLFLEET_PREFIX: prefix, CRAWLFLEET_CONFIG: config };
    expect((await runCli(['crawl', '--session', 'q', site.url('/cookies/set?q=1')], { env })).code).toBe(0);
    expect((await runCli(['crawl', '--session', 'q', site.url('/waf')], { env })).code).toBe(0);
  });
  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the quarantine, until when and why, instead of "no state" (--json)', async () => {
    const shown = await runCli(['sessions', 'show', 'q', '--json'], { env });
    expect(shown.stderr).toBe('');
    expect(shown.code).toBe(0);
    const view = JSON.parse(shown.stdout);
    expect(view.cookies).toEqual([]);
    expect(view.quarantine).toMatchObject({ reason: 'waf_challenge' });
    const since = Date.parse(view.quarantine.since);
    const until = Date.parse(view.quarantine.until);
    expect(Date.now() - since).toBeLessThan(60_000);
    expect(until - since).toBeGreaterThan(590_000);
    expect(until - since).toBeLessThanOrEqual(601_000);
  });

  it('says so in the text view', async () => {
    const shown = await runCli(['sessions', 'show', 'q'], { env });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      /quarantined until \d{4}-\d\d-\d\dT[\d:.]+Z \(waf_challenge\), since \d{4}-\d\d-\d\dT[\d:.]+Z: its jobs go to the DLQ/,
    );
  });

  it('says the reason is unavailable once the audit stream no longer holds it', async () => {
    await redis.del(keys.audit);
    const json = JSON.parse((await runCli(['sessions', 'show', 'q', '--json'], { env })).stdout);
    expect(json.quarantine.reason).toBeNull();
    const text = await runCli(['sessions', 'show', 'q'], { env });
    expect(text.stdout).toContain('reason unavailable');
  });

  it('still says "no state" for a session that has none and is not quarantined', async () => {
    const missing = await runCli(['sessions', 'show', 'nobody'], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no state for session "nobody"/);
  });
});
