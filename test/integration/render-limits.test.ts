import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { deadLettersOf, startBrowserWorker, storedResults, submitRender, type TestWorker } from '../src/fleet.js';
import { cleanupPrefix, keyLayout, openTestRedis, testConfig, uniquePrefix, waitFor } from '../src/harness.js';

/** A browser worker's bounds: a page's time limit, downloads, blocked resource types, its memory ceiling. */
describe('render jobs are bounded', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let running: TestWorker[] = [];

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await site.close();
  });
  beforeEach(() => {
    prefix = uniquePrefix('render-limits');
    site.resetHits();
  });
  afterEach(async () => {
    await Promise.all(running.map((worker) => worker.stop()));
    running = [];
    await cleanupPrefix(redis, prefix);
  });

  const keys = () => keyLayout(prefix);

  const stored = () => storedResults<{ url: string; body: string; status: number }>(redis, keys());

  const letters = () => deadLettersOf(redis, keys());

  async function ended(count: number): Promise<void> {
    await waitFor(async () => (await stored()).length + (await letters()).length >= count, {
      timeoutMs: 60_000,
      what: `${count} render jobs to end`,
    });
  }

  it('a page past render.timeoutMs is a timeout, retried, then dead-lettered; a download is refused', async () => {
    // Not much less: the limit bounds the download's render too, which took over a second once
    // while the rest of the suite ran beside it (it then timed out like the hanging page).
    const config = testConfig({
      render: { timeoutMs: 4_000 },
      jobs: { retries: 1, backoffBaseMs: 20, backoffMaxMs: 50 },
    });
    running.push(await startBrowserWorker(keys(), config, 2));
    // In a session: what a page that never loaded changed is read back without waiting on it.
    await submitRender(
      redis,
      keys(),
      config,
      [{ url: site.url('/hang') }, { url: site.url('/js/download') }],
      'default',
      'slow',
    );
    await ended(2);
    const reasons = Object.fromEntries((await letters()).map((letter) => [letter.url, letter]));
    expect(reasons[site.url('/hang')]).toMatchObject({ class: 'recoverable', reason: 'retries_exhausted:timeout' });
    expect(site.hits('/hang')).toBe(2);
    expect(reasons[site.url('/js/download')]).toMatchObject({ class: 'non_recoverable', reason: 'download_refused' });
  });

  it("a tenant's blocked resource types are never requested", async () => {
    const config = testConfig({
      tenants: { default: { allowHosts: ['127.0.0.1'], render: { block: ['image', 'media', 'font'] } } },
    });
    running.push(await startBrowserWorker(keys(), config, 1));
    await submitRender(redis, keys(), config, [{ url: site.url('/js/heavy') }]);
    await ended(1);
    expect((await stored())[0]?.body).toContain('text');
    expect(site.hits('/ok/picture.png') + site.hits('/ok/clip.mp4') + site.hits('/ok/font.woff2')).toBe(0);
  });

  it('with render.screenshot, a PNG of the page goes to the body store and the result names it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crawlfleet-shots-'));
    try {
      const config = testConfig({ results: { bodyStore: `file:${dir}` }, render: { screenshot: true } });
      running.push(await startBrowserWorker(keys(), config, 1));
      await submitRender(redis, keys(), config, [{ url: site.url('/js/button') }]);
      await ended(1);
      const [page] = (await stored()) as Array<{ screenshotRef?: string; body: string }>;
      expect(page?.screenshotRef).toMatch(/^file:/);
      const png = readFileSync(fileURLToPath(page?.screenshotRef as string));
      expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      // Never in Redis: the outbox holds the reference alone.
      expect(JSON.stringify(page).length).toBeLessThan(png.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a browser over its memory ceiling is replaced between pages, and every page is still rendered', async () => {
    // Below what Chromium needs with a page open: every reading finds it over the ceiling.
    const config = testConfig({ render: { maxBrowserMemoryMb: 128 } });
    const worker = await startBrowserWorker(keys(), config, 2);
    running.push(worker);
    // Its memory is read every 2 s; idle, an over-ceiling browser is replaced at once.
    await waitFor(() => worker.browser.pool.replacements >= 1, { timeoutMs: 10_000, what: 'a replacement' });
    const pages = Array.from({ length: 12 }, (_, i) => ({ url: site.url(`/js/set-cookie?name=m${i}&value=1`) }));
    await submitRender(redis, keys(), config, pages, 'default', 'mem');
    await ended(12);
    expect(await letters()).toEqual([]);
    expect((await stored()).every((page) => page.body.includes('set m'))).toBe(true);
    expect(worker.browser.pool.memory.peakMb).toBeGreaterThan(128);
  });
});
