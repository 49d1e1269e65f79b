import { describe, expect, it } from 'vitest';
import { SessionCookieJar } from '../src/index.js';

const SITE = 'https://shop.example/';

describe('the session cookie jar', () => {
  it('records the cookies a job sets and replays them onto a newer jar', async () => {
    const ours = new SessionCookieJar();
    await ours.setCookie('cart=42; Path=/', SITE);
    const theirs = new SessionCookieJar();
    await theirs.setCookie('theme=dark; Path=/', SITE);
    const merged = await ours.replayOnto(theirs);
    expect((await merged.getCookieString(SITE)).split('; ').sort()).toEqual(['cart=42', 'theme=dark']);
  });

  it('lets a later replayed value win for the same cookie, and applies a deletion', async () => {
    const ours = new SessionCookieJar();
    await ours.setCookie('sid=new; Path=/', SITE);
    await ours.setCookie('old=; Path=/; Max-Age=0', SITE);
    const theirs = new SessionCookieJar();
    await theirs.setCookie('sid=stale; Path=/', SITE);
    await theirs.setCookie('old=1; Path=/', SITE);
    const merged = await ours.replayOnto(theirs);
    expect(await merged.getCookieString(SITE)).toBe('sid=new');
  });

  it('refuses cookies for another domain and counts them', async () => {
    const jar = new SessionCookieJar();
    await jar.setCookie('x=1; Domain=evil.example', SITE);
    expect(jar.rejected).toBe(1);
    expect(jar.changes).toHaveLength(0);
    expect(await jar.getCookieString(SITE)).toBe('');
  });

  it('keeps Secure cookies off plain http and scopes cookies by path', async () => {
    const jar = new SessionCookieJar();
    await jar.setCookie('s=1; Secure; Path=/', SITE);
    await jar.setCookie('a=1; Path=/account', SITE);
    expect(await jar.getCookieString('http://shop.example/')).toBe('');
    expect(await jar.getCookieString('https://shop.example/account/orders')).toBe('a=1; s=1');
  });

  it('round-trips through its slate value and drops expired and malformed cookies on the way in', async () => {
    const jar = new SessionCookieJar();
    await jar.setCookie('keep=1; Path=/; Max-Age=3600', SITE);
    await jar.setCookie('soon=1; Path=/; Max-Age=1', SITE);
    const value = (await jar.toSlate()) as { cookies: unknown[] };
    value.cookies.push({ not: 'a cookie' });
    const { jar: later, dropped } = await SessionCookieJar.fromSlate(value, Date.now() + 5_000);
    expect(dropped).toBe(2);
    expect(await later.getCookieString(SITE)).toBe('keep=1');
  });

  it('builds one jar for a frozen slate value and lets each job change only its own copy', async () => {
    const stored = new SessionCookieJar();
    await stored.setCookie('sid=abc; Path=/', SITE);
    const slate = Object.freeze(await stored.toSlate());
    const { jar: a } = await SessionCookieJar.fromSlate(slate);
    const { jar: b } = await SessionCookieJar.fromSlate(slate);
    expect(a.jar).toBe(b.jar);
    await a.setCookie('cart=1; Path=/', SITE);
    expect(a.jar).not.toBe(b.jar);
    expect((await a.getCookieString(SITE)).split('; ').sort()).toEqual(['cart=1', 'sid=abc']);
    expect(await b.getCookieString(SITE)).toBe('sid=abc');
    // A replay onto a shared jar copies it too.
    const { jar: c } = await SessionCookieJar.fromSlate(slate);
    const merged = await a.replayOnto(c);
    expect((await merged.getCookieString(SITE)).split('; ').sort()).toEqual(['cart=1', 'sid=abc']);
    expect(await b.getCookieString(SITE)).toBe('sid=abc');
    // Two Set-Cookie headers of one response arrive at once (got sets them concurrently).
    const { jar: d } = await SessionCookieJar.fromSlate(slate);
    await Promise.all([d.setCookie('x=1; Path=/', SITE), d.setCookie('y=2; Path=/', SITE)]);
    expect((await d.getCookieString(SITE)).split('; ').sort()).toEqual(['sid=abc', 'x=1', 'y=2']);
    expect(d.changes).toHaveLength(2);
    expect(await b.getCookieString(SITE)).toBe('sid=abc');
    // A value that is not frozen may still change: it gets a jar of its own every time.
    const loose = JSON.parse(JSON.stringify(slate));
    expect((await SessionCookieJar.fromSlate(loose)).jar.jar).not.toBe(
      (await SessionCookieJar.fromSlate(loose)).jar.jar,
    );
  });

  it("gives a shared jar's Cookie header as tough-cookie does, for every scheme, host and path, until a cookie expires", async () => {
    const stored = new SessionCookieJar();
    await stored.setCookie('sid=abc; Path=/', SITE);
    await stored.setCookie('secure=1; Path=/; Secure', SITE);
    await stored.setCookie('short=1; Path=/; Max-Age=1', SITE);
    const urls = [SITE, 'http://shop.example/x?q=1', 'https://shop.example/a/b#f', 'https://other.example/', SITE];
    const slate = Object.freeze(await stored.toSlate());
    // A jar of its own (the value is not frozen): tough-cookie answers every time.
    const fresh = async (url: string) =>
      (await SessionCookieJar.fromSlate(JSON.parse(JSON.stringify(slate)))).jar.getCookieString(url);
    const { jar: shared } = await SessionCookieJar.fromSlate(slate);
    for (const url of urls) expect(await shared.getCookieString(url), url).toBe(await fresh(url));
    expect(await shared.getCookieString(SITE)).toContain('short=1');
    // Path-scoped cookies: the header depends on the path as well.
    const scoped = new SessionCookieJar();
    await scoped.setCookie('a=1; Path=/a', SITE);
    await scoped.setCookie('root=1; Path=/', SITE);
    const scopedSlate = Object.freeze(await scoped.toSlate());
    const { jar: sharedScoped } = await SessionCookieJar.fromSlate(scopedSlate);
    expect(await sharedScoped.getCookieString('https://shop.example/a/page')).toBe('a=1; root=1');
    expect(await sharedScoped.getCookieString('https://shop.example/b/page')).toBe('root=1');
    expect(await sharedScoped.getCookieString('https://shop.example/a/other?x')).toBe('a=1; root=1');
    // The one-second cookie expires: the shared header stops sending it.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await shared.getCookieString(SITE)).toBe('sid=abc; secure=1');
  });

  it('hydrates an empty jar from nothing or garbage', async () => {
    for (const value of [undefined, null, 'text', 42, { cookies: 'no' }]) {
      const { jar } = await SessionCookieJar.fromSlate(value);
      expect(await jar.getCookieString(SITE)).toBe('');
    }
  });

  it('describes cookies by name, domain, path and expiry, never by value', async () => {
    const jar = new SessionCookieJar();
    await jar.setCookie('token=abcdef123456; Path=/; HttpOnly; Secure; Max-Age=60', SITE);
    await jar.setCookie('session=xyz987654; Path=/', SITE);
    const described = await jar.describe();
    expect(described.map((c) => c.name)).toEqual(['token', 'session']);
    expect(described[0]).toMatchObject({ domain: 'shop.example', path: '/', secure: true, httpOnly: true });
    expect(Date.parse(String(described[0]?.expires))).toBeGreaterThan(Date.now());
    expect(described[1]?.expires).toBeNull();
    expect(JSON.stringify(described)).not.toMatch(/abcdef123456|xyz987654/);
  });
});
