import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import { deadLettersOf, startTestWorker, storedResults, submit, type TestWorker } from '../src/fleet.js';
import {
  cleanupPrefix,
  dumpPrefix,
  keyLayout,
  openTestRedis,
  testConfig,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';

const USER = 'CRAWLFLEET_TEST_JS_USER';
const PASSWORD = 'CRAWLFLEET_TEST_JS_PASSWORD';

interface StoredPage {
  url: string;
  status: number;
  body: string;
}

/**
 * A site whose login only a browser can do (its form posts with fetch() and a token the page's
 * script computes): a tenant whose login says `browser` logs in through Chromium once for the
 * fleet, and its HTTP jobs then go on with the cookie that login produced.
 */
describe('browser logins', () => {
  let site: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let running: TestWorker[] = [];

  beforeAll(async () => {
    site = await startFixtureSite();
    redis = openTestRedis();
    process.env[USER] = 'jsuser';
    process.env[PASSWORD] = 'jspass';
  });
  afterAll(async () => {
    delete process.env[USER];
    delete process.env[PASSWORD];
    redis.disconnect();
    await site.close();
  });
  beforeEach(() => {
    prefix = uniquePrefix('browser-login');
    site.resetHits();
    site.revokeAccountSessions();
  });
  afterEach(async () => {
    await Promise.all(running.map((worker) => worker.stop()));
    running = [];
    await cleanupPrefix(redis, prefix);
  });

  const keys = () => keyLayout(prefix);
  const config = (password = `\${${PASSWORD}}`) =>
    testConfig({
      tenants: {
        shop: {
          allowHosts: ['127.0.0.1'],
          auth: {
            login: {
              page: site.url('/js/login'),
              form: { user: `\${${USER}}`, pass: password },
              browser: { submit: 'button[type=submit]' },
            },
          },
        },
      },
    });

  const results = () => storedResults<StoredPage>(redis, keys());

  const deadLetters = () => deadLettersOf(redis, keys());

  it('logs in once in a browser for 2 workers x 8 jobs, and every HTTP job after it is served as logged in', async () => {
    const cfg = config();
    for (let i = 0; i < 2; i++) running.push(await startTestWorker(keys(), cfg, { concurrency: 8 }));
    await submit(
      redis,
      keys(),
      cfg,
      Array.from({ length: 16 }, (_, i) => ({ url: site.url(`/js/area/${i}`) })),
      'shop',
      'acct',
    );
    await waitFor(async () => (await results()).length + (await deadLetters()).length >= 16, {
      timeoutMs: 60_000,
      what: '16 jobs to end',
    });
    expect(await deadLetters()).toEqual([]);
    const pages = await results();
    expect(pages).toHaveLength(16);
    for (const page of pages) {
      expect(page.status).toBe(200);
      expect(page.body).toContain('WELCOME MEMBER');
    }
    // One login for the whole fleet, and it went through the page's script (a plain form post cannot).
    expect(site.jsLogins()).toBe(1);
    expect(site.hits('/js/login')).toBe(2);
  });

  it('a browser login the site refuses sends the job to the DLQ as auth_failed, secrets nowhere', async () => {
    const cfg = config('wrong-password');
    running.push(await startTestWorker(keys(), cfg, { concurrency: 2 }));
    await submit(redis, keys(), cfg, [{ url: site.url('/js/area/x') }], 'shop', 'refused');
    const [letter] = await waitFor(async () => {
      const letters = await deadLetters();
      return letters.length > 0 ? letters : undefined;
    });
    expect(letter).toMatchObject({ reason: 'auth_failed' });
    expect(site.jsLogins()).toBe(0);
    // The user name was typed into the page, never stored: not in any key of the run.
    expect(await dumpPrefix(redis, prefix)).not.toContain('jsuser');
  });
});
