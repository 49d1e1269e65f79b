import { SessionCookieJar } from '@crawlfleet/sessions';
import { SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FixtureSite, startFixtureSite } from '../src/fixture/site.js';
import {
  deadLettersOf,
  startBrowserWorker,
  startTestWorker,
  storedResults,
  submit,
  submitRender,
  type TestWorker,
} from '../src/fleet.js';
import {
  cleanupPrefix,
  keyLayout,
  openTestRedis,
  testConfig,
  testRing,
  uniquePrefix,
  waitFor,
} from '../src/harness.js';

interface StoredPage {
  url: string;
  finalUrl: string;
  status: number;
  body: string;
  rendered?: boolean;
  sessionId: string | null;
}

describe('render jobs: browser pages that share the session', () => {
  let site: FixtureSite;
  /** A second site on another loopback address, which the tenant may not reach. */
  let forbidden: FixtureSite;
  let redis: Redis;
  let prefix: string;
  let running: TestWorker[] = [];
  const config = testConfig();

  beforeAll(async () => {
    site = await startFixtureSite();
    forbidden = await startFixtureSite({ host: '127.0.0.2' });
    redis = openTestRedis();
  });
  afterAll(async () => {
    redis.disconnect();
    await Promise.all([site.close(), forbidden.close()]);
  });
  beforeEach(() => {
    prefix = uniquePrefix('render');
    site.resetHits();
    forbidden.resetHits();
  });
  afterEach(async () => {
    await Promise.all(running.map((worker) => worker.stop()));
    running = [];
    await cleanupPrefix(redis, prefix);
  });

  const keys = () => keyLayout(prefix);

  const results = () => storedResults<StoredPage>(redis, keys());

  const deadLetters = () => deadLettersOf(redis, keys());

  async function settled(count: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => (await results()).length + (await deadLetters()).length >= count, {
      timeoutMs,
      what: `${count} jobs to end`,
    });
  }

  /** The session's cookies as stored (names to values). */
  async function storedCookies(session: string): Promise<Record<string, string>> {
    const store = new SlateStore(redis, keys(), testRing());
    const read = (await store.read(store.session('default', session), ['cookies'])).get('cookies');
    const { jar } = await SessionCookieJar.fromSlate(read?.value);
    return Object.fromEntries((await jar.liveCookies()).map((cookie) => [cookie.key, cookie.value]));
  }

  it('a cookie set by a page script in a render job is sent by the next HTTP job of the session, on another worker', async () => {
    running.push(await startBrowserWorker(keys(), config, 2));
    running.push(await startTestWorker(keys(), config));
    await submitRender(redis, keys(), config, [{ url: site.url('/js/set-cookie?name=jsc&value=v1') }], 'default', 'S');
    await settled(1);
    const [rendered] = await results();
    expect(rendered).toMatchObject({ status: 200, rendered: true, sessionId: 'S' });
    // The rendered document: what the script wrote, not the HTML as served.
    expect(rendered?.body).toContain('set jsc');
    expect(await storedCookies('S')).toMatchObject({ jsc: 'v1' });

    await submit(redis, keys(), config, [{ url: site.url('/js/check?name=jsc&value=v1') }], 'default', 'S');
    await settled(2);
    const checked = (await results()).find((page) => page.url.includes('/js/check'));
    // The site answers 412 without the cookie: 200 means the HTTP job sent what the script set.
    expect(checked).toMatchObject({ status: 200 });
    expect(checked?.rendered).toBeUndefined();
    expect(checked?.body).toContain('has jsc');
  });

  it('a session logged in over HTTP renders the logged-in content, which a session without the cookie does not see', async () => {
    // The page fetches its content after it loads: the render waits for the network to go quiet.
    const member = testConfig({
      render: { waitUntil: 'networkidle' },
      tenants: {
        default: {
          allowHosts: ['127.0.0.1'],
          auth: {
            login: {
              page: site.url('/accounts/login/'),
              form: { username: 'alice', password: 'secret' },
            },
          },
        },
      },
    });
    running.push(await startTestWorker(keys(), member));
    running.push(await startBrowserWorker(keys(), member, 2));
    // The HTTP job meets the login page, logs the session in, and stores the profile.
    await submit(redis, keys(), member, [{ url: site.url('/accounts/profile/') }], 'default', 'M');
    await settled(1);
    expect(site.accounts().formLogins).toBe(1);
    await submitRender(redis, keys(), member, [{ url: site.url('/js/members') }], 'default', 'M');
    await submitRender(redis, keys(), member, [{ url: site.url('/js/members?anon=1') }], 'default', 'N');
    await settled(3);
    const pages = await results();
    const loggedIn = pages.find((page) => page.url.endsWith('/js/members'));
    const anonymous = pages.find((page) => page.url.endsWith('/js/members?anon=1'));
    expect(loggedIn?.body).toMatch(/<div id="out">LOGGED IN: [^<]*alice/);
    // Session N has no login cookie: the same page shows nothing of the member's.
    expect(anonymous?.body).toContain('<div id="out">LOGGED OUT</div>');
    // No second login: the render used the cookie the HTTP login produced.
    expect(site.accounts().formLogins).toBe(1);
  });

  it('20 render jobs and 200 HTTP jobs of one session at once: every cookie either side set is in the jar', async () => {
    running.push(await startBrowserWorker(keys(), config, 4));
    running.push(await startTestWorker(keys(), config, { concurrency: 16 }));
    const renders = Array.from({ length: 20 }, (_, i) => ({
      url: site.url(`/js/both?server=rs${i}&script=rj${i}`),
    }));
    // 120 names, the last 80 jobs setting the first 80 again: with the 40 the renders set, the jar
    // stays under the 180 cookies a domain may hold (the jar keeps a browser's limits).
    const https = Array.from({ length: 200 }, (_, i) => ({
      url: site.url(`/cookies/set?h${i % 120}=v${i % 120}&n=${i}`),
    }));
    await Promise.all([
      submitRender(redis, keys(), config, renders, 'default', 'busy'),
      submit(redis, keys(), config, https, 'default', 'busy'),
    ]);
    await settled(220, 120_000);
    expect(await deadLetters()).toHaveLength(0);
    const jar = await storedCookies('busy');
    const missing: string[] = [];
    for (let i = 0; i < 20; i++) for (const name of [`rs${i}`, `rj${i}`]) if (jar[name] !== '1') missing.push(name);
    for (let i = 0; i < 120; i++) if (jar[`h${i}`] !== `v${i}`) missing.push(`h${i}`);
    expect(missing).toEqual([]);
  });

  it("keeps a page's localStorage in the session's storage slate and gives it to the session's next render", async () => {
    running.push(await startBrowserWorker(keys(), config, 2));
    await submitRender(redis, keys(), config, [{ url: site.url('/js/storage?key=theme&value=dark') }], 'default', 'st');
    await settled(1);
    await submitRender(redis, keys(), config, [{ url: site.url('/js/storage?read=1') }], 'default', 'st');
    await submitRender(redis, keys(), config, [{ url: site.url('/js/storage?read=2') }], 'default', 'other');
    await settled(3);
    const pages = await results();
    expect(pages.find((page) => page.url.endsWith('read=1'))?.body).toContain('{"theme":"dark"}');
    // Another session's storage is its own.
    expect(pages.find((page) => page.url.endsWith('read=2'))?.body).toContain('{}');
    // Sealed like every slate: the value is not in Redis in clear.
    const stored = await redis.hgetall(keys().session('default', 'st').slate('storage'));
    expect(Object.keys(stored)).toContain(site.origin);
    expect(JSON.stringify(stored)).not.toContain('dark');
  });

  it('never reaches a private address or a path robots.txt disallows, as the job, a navigation or a subresource', async () => {
    // Each page is rendered until its network is quiet: its script's navigation is attempted in time.
    const quiet = testConfig({ render: { waitUntil: 'networkidle' } });
    running.push(await startBrowserWorker(keys(), quiet, 2));
    const hidden = forbidden.url('/ok/hidden');
    await submitRender(redis, keys(), quiet, [
      // The control: a page whose script navigates somewhere allowed gets there.
      { url: site.url('/js/nav?to=/ok/landed') },
      // The job itself at an address the tenant may not reach.
      { url: hidden },
      // A page that embeds it (image and frame) and one that navigates to it.
      { url: site.url(`/js/embed?src=${encodeURIComponent(hidden)}`) },
      { url: site.url(`/js/nav?to=${encodeURIComponent(hidden)}`) },
      // A page whose script navigates to a path robots.txt disallows, and the path itself.
      { url: site.url('/js/nav?to=/private/secret') },
      { url: site.url('/private/direct') },
    ]);
    await settled(6);
    expect(site.hits('/ok/landed')).toBe(1);
    expect(forbidden.hitsByPrefix('/')).toBe(0);
    expect(site.hitsByPrefix('/private/')).toBe(0);
    const letters = await deadLetters();
    const reasons = Object.fromEntries(letters.map((letter) => [letter.url, letter.reason]));
    expect(reasons[hidden]).toBe('address_not_allowed');
    expect(reasons[site.url('/private/direct')]).toBe('robots_disallowed');
    // The embedding page itself is fine: only what it asked of the forbidden site was refused.
    const embed = (await results()).find((page) => page.url.includes('/js/embed'));
    expect(embed?.body).toContain('embedded');
  });
});
