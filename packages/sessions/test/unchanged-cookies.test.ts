import { describe, expect, it } from 'vitest';
import { SessionCookieJar } from '../src/index.js';

const SITE = 'https://shop.example/cart';

/** A session's stored jar as jobs share it: built from a frozen slate value. */
async function sharedJar(...setCookies: string[]): Promise<SessionCookieJar> {
  const first = new SessionCookieJar();
  for (const setCookie of setCookies) await first.setCookie(setCookie, SITE);
  const slate = Object.freeze(await first.toSlate());
  return (await SessionCookieJar.fromSlate(slate)).jar;
}

describe('a Set-Cookie that changes nothing a server would see', () => {
  it('is not a change when it re-sends the stored cookie: nothing to commit, the shared jar not copied', async () => {
    const jar = await sharedJar('sid=abc; Path=/; HttpOnly; Secure; SameSite=Lax');
    const before = jar.jar;
    await jar.setCookie('sid=abc; Path=/; HttpOnly; Secure; SameSite=Lax', SITE);
    expect(jar.changes).toHaveLength(0);
    expect(jar.jar).toBe(before);
  });

  it('is not a change when a sliding Max-Age is refreshed, nor when the same Expires comes again', async () => {
    const jar = await sharedJar(
      'sid=abc; Path=/; Max-Age=1800',
      'pref=1; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT',
    );
    await jar.setCookie('sid=abc; Path=/; Max-Age=1800', SITE);
    await jar.setCookie('pref=1; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT', SITE);
    expect(jar.changes).toHaveLength(0);
  });

  it('is answered again without a change for the same text, and is a change once the job changed the cookie', async () => {
    const jar = await sharedJar('sid=abc; Path=/; HttpOnly');
    const shared = jar.jar;
    for (let i = 0; i < 3; i++) await jar.setCookie('sid=abc; Path=/; HttpOnly', SITE);
    expect(jar.changes).toHaveLength(0);
    expect(jar.jar).toBe(shared);
    // Another job of the session reads the same shared jar: the same text is still no change.
    const other = (await SessionCookieJar.fromSlate(Object.freeze(await jar.toSlate()))).jar;
    await jar.setCookie('sid=xyz; Path=/; HttpOnly', SITE);
    expect(jar.changes).toHaveLength(1);
    await jar.setCookie('sid=abc; Path=/; HttpOnly', SITE);
    expect(jar.changes).toHaveLength(2);
    expect(await jar.getCookieString(SITE)).toBe('sid=abc');
    await other.setCookie('sid=abc; Path=/; HttpOnly', SITE);
    expect(other.changes).toHaveLength(0);
  });

  it('drops tracking cookies before they reach the jar, so they copy and write nothing', async () => {
    const jar = await sharedJar('sid=abc; Path=/');
    await jar.setCookie(`_ga=GA1.1.${Date.now()}; Path=/; Max-Age=63072000`, SITE);
    expect(jar.changes).toHaveLength(0);
    expect(await jar.getCookieString(SITE)).toBe('sid=abc');
  });

  for (const [what, setCookie] of [
    ['a new value', 'sid=xyz; Path=/; HttpOnly; Secure; SameSite=Lax'],
    ['a deletion', 'sid=; Path=/; Max-Age=0'],
    ['a flag dropped', 'sid=abc; Path=/; Secure; SameSite=Lax'],
    ['another path', 'sid=abc; Path=/cart; HttpOnly; Secure; SameSite=Lax'],
    [
      'a Domain attribute (no longer host-only)',
      'sid=abc; Domain=shop.example; Path=/; HttpOnly; Secure; SameSite=Lax',
    ],
    ['an expiry where there was none', 'sid=abc; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=86400'],
  ] as const) {
    it(`is a change when it brings ${what}`, async () => {
      const jar = await sharedJar('sid=abc; Path=/; HttpOnly; Secure; SameSite=Lax');
      await jar.setCookie(setCookie, SITE);
      expect(jar.changes).toHaveLength(1);
    });
  }

  it('is a change when an expiry moves by more than a tenth of its lifetime', async () => {
    const jar = await sharedJar('pref=1; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT');
    await jar.setCookie('pref=1; Path=/; Expires=Wed, 01 Jan 2036 00:00:00 GMT', SITE);
    expect(jar.changes).toHaveLength(1);
  });
});
