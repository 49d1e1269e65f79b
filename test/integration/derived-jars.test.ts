import { SessionCookieJar } from '@crawlfleet/sessions';
import { SlateStore } from '@crawlfleet/slates';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, keyLayout, openTestRedis, testRing, uniquePrefix } from '../src/harness.js';

/**
 * The jar of a cookies slate a worker wrote itself is built on the jar it was written from, and
 * its Cookie headers are carried over when the write only gave cookies new values: what a job
 * sends must be exactly what tough-cookie works out from the stored cookies.
 */
describe('a jar built on the jar its write came from', () => {
  let redis: Redis;
  const prefix = uniquePrefix('derived-jars');
  const url = 'http://shop.example/cart?item=1';
  const day = 24 * 3600 * 1000;

  beforeAll(() => {
    redis = openTestRedis();
  });
  afterAll(async () => {
    await cleanupPrefix(redis, prefix);
    redis.disconnect();
  });

  /** The Cookie header tough-cookie gives for the stored value, built from scratch. */
  async function fromScratch(value: unknown): Promise<string> {
    const { jar } = await SessionCookieJar.fromSlate(JSON.parse(JSON.stringify(value)));
    return jar.getCookieString(url);
  }

  /** The cookie fields a job's jar would write after these Set-Cookies on `url`. */
  async function fieldsAfter(setCookies: string[], base?: unknown) {
    const { jar } = await SessionCookieJar.fromSlate(base);
    for (const setCookie of setCookies) await jar.setCookie(setCookie, url);
    return jar.fieldWrites();
  }

  it('sends what tough-cookie would, through value changes, new cookies, deletions and scoped paths', async () => {
    const store = new SlateStore(redis, keyLayout(prefix), testRing());
    const session = store.session('default', 'derived');
    const write = async (setCookies: string[], base?: unknown) => {
      const { set, unset } = await fieldsAfter(setCookies, base);
      const result = await store.commit(session, [{ rule: 'fields', name: 'cookies', set, unset, ttlMs: day }]);
      if (!result.ok) throw new Error('the write conflicted');
      const value = result.slates.get('cookies')?.value;
      expect(value).toBeDefined();
      return value;
    };
    let value = await write(['sid=a1; Path=/', 'theme=dark; Path=/', 'cart=3; Path=/cart']);
    const steps: string[][] = [
      ['sid=a2; Path=/'],
      ['sid=a3; Path=/', 'theme=light; Path=/'],
      ['lb=x; Path=/'],
      ['theme=; Path=/; Max-Age=0'],
      ['cart=4; Path=/cart'],
      ['sid=a4; Path=/; HttpOnly'],
      ['sid=a5; Path=/'],
    ];
    for (const step of steps) {
      // The jar this job reads, and its headers worked out, before the write.
      const { jar: before } = await SessionCookieJar.fromSlate(value);
      expect(await before.getCookieString(url)).toBe(await fromScratch(value));
      value = await write(step, value);
      const { jar: after } = await SessionCookieJar.fromSlate(value);
      expect(await after.getCookieString(url), `after ${step.join(' + ')}`).toBe(await fromScratch(value));
      expect(await after.getCookieString('http://shop.example/'), `after ${step.join(' + ')}`).toBe(
        await (await SessionCookieJar.fromSlate(JSON.parse(JSON.stringify(value)))).jar.getCookieString(
          'http://shop.example/',
        ),
      );
    }
    expect(await fromScratch(value)).toContain('sid=a5');
    expect(await fromScratch(value)).not.toContain('theme');
  });
});
