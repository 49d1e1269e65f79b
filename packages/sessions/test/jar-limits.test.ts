import { CookieJar } from 'tough-cookie';
import { describe, expect, it } from 'vitest';
import { JAR_LIMITS, SessionCookieJar } from '../src/index.js';

const SITE = 'https://shop.example/';

/** A stored jar (a slate value) of `count` cookies on one host, the oldest first. */
async function storedJar(count: number, host = 'shop.example'): Promise<unknown> {
  const jar = new CookieJar();
  const start = Date.now() - count * 1000;
  for (let i = 0; i < count; i++)
    await jar.setCookie(`c${i}=${'v'.repeat(8)}; Path=/`, `https://${host}/`, { now: new Date(start + i * 1000) });
  return Object.freeze(await jar.serialize());
}

describe('a session jar within browser-like limits', () => {
  it('hydrates a stored jar of 4,000 cookies without recursing, keeping the newest 180 of the domain', async () => {
    const { jar } = await SessionCookieJar.fromSlate(await storedJar(4_000));
    expect(jar.evicted).toBe(4_000 - JAR_LIMITS.perDomain);
    const names = (await jar.describe()).map((cookie) => cookie.name);
    expect(names).toHaveLength(JAR_LIMITS.perDomain);
    expect(names).toContain('c3999');
    expect(names).not.toContain('c0');
  });

  it('copies a shared jar of thousands of cookies before its first change without recursing', async () => {
    const big = new CookieJar();
    for (let i = 0; i < 5_000; i++) await big.setCookie(`k${i}=1`, SITE);
    const shared = new SessionCookieJar(big, true);
    await shared.setCookie('fresh=1; Path=/', SITE);
    expect(shared.changes).toHaveLength(1);
    const slate = (await shared.toSlate()) as { cookies: unknown[] };
    expect(slate.cookies).toHaveLength(JAR_LIMITS.perDomain);
    expect(shared.evicted).toBe(5_001 - JAR_LIMITS.perDomain);
  });

  it('sends a Cookie header of at most 8 KiB, cut at a whole cookie', async () => {
    const jar = new SessionCookieJar();
    for (let i = 0; i < 1_600; i++) await jar.setCookie(`name${i}=${'x'.repeat(12)}; Path=/`, SITE);
    const header = await jar.getCookieString(SITE);
    expect(header.length).toBeLessThanOrEqual(JAR_LIMITS.headerBytes);
    expect(header.length).toBeGreaterThan(JAR_LIMITS.headerBytes - 64);
    expect(header.split('; ').every((pair) => /^name\d+=x{12}$/.test(pair))).toBe(true);
  });

  it('refuses a cookie larger than 4 KiB and counts it, as a browser does', async () => {
    const jar = new SessionCookieJar();
    await jar.setCookie(`huge=${'x'.repeat(5_000)}; Path=/`, SITE);
    expect(jar.rejected).toBe(1);
    expect(await jar.getCookieString(SITE)).toBe('');
  });
});
