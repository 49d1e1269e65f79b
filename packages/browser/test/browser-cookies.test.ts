import { Cookie, CookieJar } from 'tough-cookie';
import { describe, expect, it } from 'vitest';
import { type BrowserCookie, cookieChanges, toBrowserCookies } from '../src/browser-cookies.js';

/** Cookies as a session's jar holds them, each set by a response of `url`. */
async function jarCookies(url: string, ...setCookies: string[]): Promise<Cookie[]> {
  const jar = new CookieJar();
  for (const header of setCookies) await jar.setCookie(header, url);
  return jar.store.getAllCookies();
}

const cookie = (overrides: Partial<BrowserCookie> = {}): BrowserCookie => ({
  name: 'sid',
  value: 'a',
  domain: 'shop.example',
  path: '/',
  expires: -1,
  httpOnly: false,
  secure: false,
  sameSite: 'Lax',
  ...overrides,
});

describe('session cookies into a browser context', () => {
  it('keeps scope, expiry and flags as a browser takes them', async () => {
    const at = Date.now();
    const cookies = await jarCookies(
      'https://shop.example/a/b',
      'host=1; Path=/',
      'wide=2; Domain=shop.example; Path=/a; Secure; HttpOnly; SameSite=Strict',
      `later=3; Path=/; Max-Age=3600`,
    );
    const { cookies: browser, dropped } = toBrowserCookies(cookies, at);
    expect(dropped.size).toBe(0);
    const byName = Object.fromEntries(browser.map((c) => [c.name, c]));
    // Host-only stays on the host; a Domain cookie gets Playwright's leading dot.
    expect(byName.host).toMatchObject({ domain: 'shop.example', path: '/', expires: -1, sameSite: 'Lax' });
    expect(byName.wide).toMatchObject({ domain: '.shop.example', path: '/a', secure: true, httpOnly: true });
    expect(byName.wide?.sameSite).toBe('Strict');
    expect(byName.later?.expires).toBeGreaterThan(at / 1000 + 3500);
    expect(byName.later?.expires).toBeLessThan(at / 1000 + 3700);
  });

  it('drops and counts expired, malformed, out-of-scope and SameSite=None-without-Secure cookies', async () => {
    const now = Date.now();
    const expired = Cookie.parse('old=1; Path=/') as Cookie;
    Object.assign(expired, { domain: 'shop.example', expires: new Date(now - 1000) });
    const control = Cookie.parse('ctl=1; Path=/') as Cookie;
    Object.assign(control, { domain: 'shop.example', value: 'a\u0001b' });
    const badDomain = Cookie.parse('dom=1; Path=/') as Cookie;
    Object.assign(badDomain, { domain: 'bad domain!' });
    const badPath = Cookie.parse('pth=1') as Cookie;
    Object.assign(badPath, { domain: 'shop.example', path: 'relative' });
    const hostPrefix = Cookie.parse('__Host-x=1; Path=/sub; Secure') as Cookie;
    Object.assign(hostPrefix, { domain: 'shop.example', hostOnly: true });
    const securePrefix = Cookie.parse('__Secure-y=1; Path=/') as Cookie;
    Object.assign(securePrefix, { domain: 'shop.example' });
    const none = Cookie.parse('cross=1; Path=/; SameSite=None') as Cookie;
    Object.assign(none, { domain: 'shop.example' });
    const fine = Cookie.parse('ok=1; Path=/') as Cookie;
    Object.assign(fine, { domain: 'shop.example', hostOnly: true });
    const { cookies, dropped } = toBrowserCookies(
      [expired, control, badDomain, badPath, hostPrefix, securePrefix, none, fine],
      now,
    );
    expect(cookies.map((c) => c.name)).toEqual(['ok']);
    expect(Object.fromEntries(dropped)).toEqual({ expired: 1, malformed: 3, scope: 2, samesite: 1 });
  });
});

describe('what a page changed, back to the jar as Set-Cookie headers', () => {
  it('writes nothing for cookies the page left as they were', () => {
    const before = [cookie(), cookie({ name: 'other', value: 'b', expires: 2_000_000_000 })];
    const after = [cookie(), cookie({ name: 'other', value: 'b', expires: 2_000_000_000.4 })];
    expect(cookieChanges(before, after)).toEqual([]);
  });

  it('gives new and changed cookies with their scope and flags, and deletions for those that went', async () => {
    const before = [cookie(), cookie({ name: 'gone', domain: '.shop.example', path: '/x' })];
    const after = [
      cookie({ value: 'b' }),
      cookie({ name: 'js', domain: '.shop.example', expires: 2_000_000_000, secure: true, httpOnly: true }),
    ];
    const changes = cookieChanges(before, after);
    expect(changes).toEqual([
      { setCookie: 'sid=b; Path=/; SameSite=Lax', url: 'http://shop.example/' },
      {
        setCookie: `js=a; Path=/; Domain=shop.example; Expires=${new Date(2_000_000_000_000).toUTCString()}; Secure; HttpOnly; SameSite=Lax`,
        url: 'https://shop.example/',
      },
      {
        setCookie: 'gone=; Path=/x; Domain=shop.example; Expires=Thu, 01 Jan 1970 00:00:00 GMT; SameSite=Lax',
        url: 'http://shop.example/x',
      },
    ]);
    // A jar takes each as a response's Set-Cookie: the change lands, the deletion removes.
    const jar = new CookieJar();
    await jar.setCookie('gone=1; Domain=shop.example; Path=/x', 'http://shop.example/x');
    for (const change of changes) await jar.setCookie(change.setCookie, change.url);
    const held = Object.fromEntries((await jar.getCookies('https://shop.example/x')).map((c) => [c.key, c.value]));
    expect(held).toEqual({ sid: 'b', js: 'a' });
  });
});
