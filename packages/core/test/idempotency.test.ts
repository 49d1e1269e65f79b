import { describe, expect, it } from 'vitest';
import { canonicalizeUrl, checkCallerKey, deriveIdempotencyKey, type IdempotencyInput } from '../src/index.js';
import { expectInputError } from './expect-input-error.js';

const base: IdempotencyInput = {
  tenant: 'acme',
  method: 'GET',
  canonicalUrl: 'https://example.com/products?id=1',
};

describe('deriveIdempotencyKey', () => {
  it("keys a named crawl's URL apart from the same URL in another crawl or a plain submit", () => {
    const plain = deriveIdempotencyKey({ ...base });
    const inShop = deriveIdempotencyKey({ ...base, crawl: 'shop' });
    expect(inShop).not.toBe(plain);
    expect(inShop).not.toBe(deriveIdempotencyKey({ ...base, crawl: 'shop-2' }));
    expect(inShop).toBe(deriveIdempotencyKey({ ...base, crawl: 'shop' }));
    expect(deriveIdempotencyKey({ ...base, crawl: undefined })).toBe(plain);
  });

  it('gives the same key for equal inputs', () => {
    expect(deriveIdempotencyKey({ ...base })).toBe(deriveIdempotencyKey({ ...base }));
    expect(deriveIdempotencyKey({ ...base, method: 'POST', body: '{"a":1}' })).toBe(
      deriveIdempotencyKey({ ...base, method: 'POST', body: '{"a":1}' }),
    );
  });

  it('differs by tenant', () => {
    expect(deriveIdempotencyKey({ ...base, tenant: 'globex' })).not.toBe(deriveIdempotencyKey(base));
  });

  it('differs by method', () => {
    expect(deriveIdempotencyKey({ ...base, method: 'HEAD' })).not.toBe(deriveIdempotencyKey(base));
  });

  it('ignores the case of the method', () => {
    expect(deriveIdempotencyKey({ ...base, method: 'get' })).toBe(deriveIdempotencyKey(base));
    expect(deriveIdempotencyKey({ ...base, method: 'Post' })).toBe(deriveIdempotencyKey({ ...base, method: 'POST' }));
  });

  it('differs by canonical URL', () => {
    expect(deriveIdempotencyKey({ ...base, canonicalUrl: 'https://example.com/products?id=2' })).not.toBe(
      deriveIdempotencyKey(base),
    );
  });

  it('differs by body', () => {
    const post = { ...base, method: 'POST' };
    const a = deriveIdempotencyKey({ ...post, body: '{"page":1}' });
    const b = deriveIdempotencyKey({ ...post, body: '{"page":2}' });
    expect(a).not.toBe(b);
    expect(a).not.toBe(deriveIdempotencyKey(post));
  });

  it('treats an undefined body and an empty body as the same', () => {
    expect(deriveIdempotencyKey({ ...base, body: undefined })).toBe(deriveIdempotencyKey({ ...base, body: '' }));
    expect(deriveIdempotencyKey({ ...base, body: '' })).toBe(deriveIdempotencyKey(base));
  });

  it('does not confuse a body of "-" with no body', () => {
    expect(deriveIdempotencyKey({ ...base, body: '-' })).not.toBe(deriveIdempotencyKey(base));
  });

  it('is ik- followed by 40 lower-case hex digits', () => {
    expect(deriveIdempotencyKey(base)).toMatch(/^ik-[0-9a-f]{40}$/);
  });

  it('is a valid BullMQ job id: never all digits and without a colon', () => {
    for (let i = 0; i < 50; i++) {
      const key = deriveIdempotencyKey({ ...base, canonicalUrl: `https://example.com/item/${i}` });
      expect(key).not.toMatch(/^\d+$/);
      expect(key).not.toContain(':');
    }
  });

  it('passes checkCallerKey, so derived and chosen keys follow one alphabet', () => {
    const key = deriveIdempotencyKey(base);
    expect(checkCallerKey(key)).toBe(key);
  });

  it('gives the same key to two URLs that canonicalize equal', () => {
    const a = canonicalizeUrl('HTTPS://Example.com:443/products?utm_source=mail&id=1#top');
    const b = canonicalizeUrl('https://example.com/products?id=1&gclid=xyz');
    expect(a).toBe(b);
    expect(deriveIdempotencyKey({ ...base, canonicalUrl: a })).toBe(deriveIdempotencyKey({ ...base, canonicalUrl: b }));
  });

  it('gives different keys to URLs that differ only by a trailing slash', () => {
    const a = canonicalizeUrl('https://example.com/a');
    const b = canonicalizeUrl('https://example.com/a/');
    expect(deriveIdempotencyKey({ ...base, canonicalUrl: a })).not.toBe(
      deriveIdempotencyKey({ ...base, canonicalUrl: b }),
    );
  });
});

describe('checkCallerKey', () => {
  it.each(['order-2024-0001', 'a', 'ik-0123abcd', 'v1.2_batch~3', '1a', 'x'.repeat(200)])('accepts %s', (key) => {
    expect(checkCallerKey(key)).toBe(key);
  });

  it.each([
    { shape: 'all digits', key: '12345' },
    { shape: 'a single digit', key: '0' },
    { shape: 'a colon', key: 'tenant:order-1' },
    { shape: 'the empty string', key: '' },
    { shape: '201 characters', key: 'k'.repeat(201) },
    { shape: 'a space', key: 'order 1' },
    { shape: 'a leading space', key: ' order-1' },
    { shape: 'a slash', key: 'a/b' },
    { shape: 'a newline', key: 'a\nb' },
    { shape: 'braces, which would break the Redis hash tag', key: '{cf}' },
  ])('rejects a key with $shape as invalid_key', ({ key }) => {
    expectInputError(() => checkCallerKey(key), 'invalid_key');
  });
});
